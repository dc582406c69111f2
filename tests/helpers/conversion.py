"""Tiny Lightricks-format single files for the conversion tests, built from ltx-core 1.0.0's own modules.

Each file is laid out like the released ones (spec §8.1): ltx-core state dicts under `model.diffusion_model.`,
`text_embedding_projection.`, `vae.encoder.` / `vae.decoder.` / `vae.per_channel_statistics.`, `audio_vae.*`,
`vocoder.`, and the safetensors metadata `config` (sections transformer / vae / audio_vae / vocoder) + `model_version`.
Upsampler files: no prefix, flat `config`. Also builders of hostile inputs (raw headers, edited metadata, damaged
folders) for test_conversion_safety.py. (Builders only: the conversion, metadata, pipeline and Hub tests import them.)
"""

import importlib.util
import json
import shutil
import struct
import subprocess
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ltx2_diffusers.loaders import metadata as md
from ltx2_diffusers.loaders import safetensors_io as sio

REPO = Path(__file__).resolve().parents[2]

GEMMA_WIDTH = 16  # caption_channels: Gemma's hidden size in the tiny files
GEMMA_STATES = 3  # hidden states concatenated before the text projection (layers + 1): text_proj_in_factor


def transformer_section(version: str) -> dict:
    t = dict(md.TRANSFORMER_ASSERTED)
    t.pop("num_vector_embeds")
    t.update(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=8,
        out_channels=8,
        num_layers=2,
        cross_attention_dim=16,
        audio_num_attention_heads=2,
        audio_attention_head_dim=4,
        audio_in_channels=8,
        audio_out_channels=8,
        audio_cross_attention_dim=8,
        caption_channels=GEMMA_WIDTH,
        av_ca_timestep_scale_multiplier=1000.0,
        rope_type="split",
        frequencies_precision="float64",
        positional_embedding_max_pos=[20, 2048, 2048],
        audio_positional_embedding_max_pos=[20],
        norm_eps=1e-6,
        connector_positional_embedding_max_pos=[4096],
        connector_num_layers=1,
        # ignored by ltx-core, present in the released headers
        _class_name="AVTransformer3DModel",
        causal_temporal_positioning=True,
        connector_num_learnable_registers=128,
    )
    if version == md.LTX2:  # connectors at Gemma's width: 2 x 8 = 16
        t.update(connector_num_attention_heads=2, connector_attention_head_dim=8)
    else:  # connectors at the transformer's widths; projections before them; gates and prompt AdaLN
        t.update(
            connector_num_attention_heads=2,
            connector_attention_head_dim=8,
            audio_connector_num_attention_heads=2,
            audio_connector_attention_head_dim=4,
            connector_apply_gated_attention=True,
            apply_gated_attention=True,
            cross_attention_adaln=True,
            **md._V2_TEXT_KEYS,
        )
    return t


ENCODER_BLOCKS = [
    ["res_x", {"num_layers": 1}],
    ["compress_space_res", {"multiplier": 2}],
    ["res_x", {"num_layers": 1}],
    ["compress_time_res", {"multiplier": 2}],
    ["res_x", {"num_layers": 1}],
    ["compress_all_res", {"multiplier": 2}],
    ["res_x", {"num_layers": 1}],
    ["compress_all_res", {"multiplier": 2}],
    ["res_x", {"num_layers": 1}],
]


def vae_section(version: str) -> dict:
    if version == md.LTX2:
        decoder = [["res_x", {"num_layers": 1, "inject_noise": False}]]
        for _ in range(3):
            decoder += [["compress_all", {"residual": True, "multiplier": 2}], ["res_x", {"num_layers": 1}]]
        return {
            "_class_name": "CausalVideoAutoencoder",
            "dims": 3,
            "latent_channels": 8,
            "encoder_blocks": ENCODER_BLOCKS,
            "decoder_blocks": decoder,
            "decoder_base_channels": 8,
            "timestep_conditioning": False,
            "causal_decoder": False,
            "norm_layer": "pixel_norm",
            "patch_size": 4,
            "latent_log_var": "uniform",
            "scaling_factor": 1.0,
        }
    encoder = [*ENCODER_BLOCKS[:7], ["compress_all_res", {"multiplier": 1}], ["res_x", {"num_layers": 1}]]
    decoder = [
        ["res_x", {"num_layers": 1}],
        ["compress_space", {"multiplier": 2}],
        ["res_x", {"num_layers": 1}],
        ["compress_time", {"multiplier": 2}],
        ["res_x", {"num_layers": 1}],
        ["compress_all", {"multiplier": 1}],
        ["res_x", {"num_layers": 1}],
        ["compress_all", {"multiplier": 2}],
        ["res_x", {"num_layers": 1}],
    ]
    return {
        "dims": 3,
        "latent_channels": 8,
        "encoder_blocks": encoder,
        "decoder_blocks": decoder,
        "decoder_base_channels": 8,
        "timestep_conditioning": False,
        "spatial_padding_mode": "zeros",
    }


AUDIO_VAE_SECTION = {
    "model": {
        "params": {
            "sampling_rate": 16000,
            "ddconfig": {
                "ch": 32,  # ltx-core sizes the latent statistics by ch: z_channels x mel_bins / 4 = 2 x 16
                "ch_mult": [1, 2, 4],
                "num_res_blocks": 1,
                "attn_resolutions": [],
                "resolution": 256,
                "z_channels": 2,
                "double_z": True,
                "in_channels": 2,
                "out_ch": 2,
                "mel_bins": 64,
                "norm_type": "pixel",
                "causality_axis": "height",
                "mid_block_add_attention": False,
                "dropout": 0.0,
            },
        }
    },
    "preprocessing": {
        "stft": {"filter_length": 1024, "hop_length": 160, "win_length": 1024, "causal": True},
        "mel": {"n_mel_channels": 64, "mel_fmin": 0, "mel_fmax": 8000},
    },
}
_HIFIGAN = {
    "resblock_kernel_sizes": [3, 5],
    "upsample_rates": [3, 2],
    "upsample_kernel_sizes": [7, 4],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 2, 3]],
    "upsample_initial_channel": 16,
    "stereo": True,
}


def vocoder_section(version: str) -> dict:
    if version == md.LTX2:
        return {
            **_HIFIGAN,
            "resblock": "1",
            "activation": "snake",
            "output_sampling_rate": 24000,
            "use_tanh_at_final": True,
            "use_bias_at_final": True,
        }
    amp = {**_HIFIGAN, "resblock": "AMP1", "activation": "snakebeta", "use_tanh_at_final": False}
    amp["use_bias_at_final"] = False
    bwe = {
        **amp,
        "upsample_rates": [3, 2, 4],
        "upsample_kernel_sizes": [7, 4, 4],
        "resblock_kernel_sizes": [3],
        "resblock_dilation_sizes": [[1, 3, 5]],
        "apply_final_activation": False,
        "input_sampling_rate": 16000,
        "output_sampling_rate": 48000,
        "hop_length": 8,
        "n_fft": 16,
        "win_size": 16,
        "num_mels": 64,
    }
    return {"vocoder": amp, "bwe": bwe}


def original_config(version: str) -> dict:
    return {
        "transformer": transformer_section(version),
        "vae": vae_section(version),
        "audio_vae": AUDIO_VAE_SECTION,
        "vocoder": vocoder_section(version),
    }


def randomize_(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter and floating buffer random (ltx-core leaves some uninitialised or on meta)."""
    generator = torch.Generator().manual_seed(seed)
    stored = set(module.state_dict())  # non-persistent buffers (e.g. the BWE resampler's filter) are computed
    with torch.no_grad():
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
            if name not in stored or not tensor.is_floating_point() or name.endswith("timestep_scale_multiplier"):
                continue
            fan_in = tensor[0].numel() if tensor.ndim > 1 else 1
            value = torch.randn(tensor.shape, generator=generator) / fan_in**0.5
            if name.endswith(("std-of-means", "mel_basis")):
                value = value.abs() + 0.5
            tensor.copy_(value * (0.3 if "vocoder" in type(module).__module__ else 1.0))
    return module.eval()


def ltx_core_modules(version: str, config: dict, seed: int = 0) -> dict[str, torch.nn.Module]:
    """The ltx-core modules a combined file of this config holds, with random weights."""
    from ltx_core.model.audio_vae.model_configurator import (
        AudioDecoderConfigurator,
        AudioEncoderConfigurator,
        VocoderConfigurator,
    )
    from ltx_core.model.transformer.model_configurator import LTXModelConfigurator
    from ltx_core.model.video_vae import VideoDecoderConfigurator, VideoEncoderConfigurator
    from ltx_core.text_encoders.gemma.embeddings_connector import (
        AudioEmbeddings1DConnectorConfigurator,
        Embeddings1DConnectorConfigurator,
    )

    transformer = LTXModelConfigurator.from_config(config)
    transformer.to_empty(device="cpu")  # the caption projections are built on the meta device
    modules = {
        "transformer": transformer,
        "video_connector": Embeddings1DConnectorConfigurator.from_config(config),
        "audio_connector": AudioEmbeddings1DConnectorConfigurator.from_config(config),
        "video_encoder": VideoEncoderConfigurator.from_config(config),
        "video_decoder": VideoDecoderConfigurator.from_config(config),
        "audio_encoder": AudioEncoderConfigurator.from_config(config),
        "audio_decoder": AudioDecoderConfigurator.from_config(config),
        "vocoder": VocoderConfigurator.from_config(config),
    }
    t = config["transformer"]
    flat = GEMMA_WIDTH * GEMMA_STATES
    if version == md.LTX2:
        modules["projection"] = torch.nn.ModuleDict({"aggregate_embed": torch.nn.Linear(flat, GEMMA_WIDTH, bias=False)})
    else:
        video_dim = t["num_attention_heads"] * t["attention_head_dim"]
        audio_dim = t["audio_num_attention_heads"] * t["audio_attention_head_dim"]
        modules["projection"] = torch.nn.ModuleDict(
            {
                "video_aggregate_embed": torch.nn.Linear(flat, video_dim),
                "audio_aggregate_embed": torch.nn.Linear(flat, audio_dim),
            }
        )
    for i, module in enumerate(modules.values()):
        randomize_(module, seed + i)
    # encoder and decoder share one copy of the latent statistics in the file
    for name in ("mean-of-means", "std-of-means"):
        for enc, dec in (("video_encoder", "video_decoder"), ("audio_encoder", "audio_decoder")):
            modules[dec].per_channel_statistics.get_buffer(name).copy_(
                modules[enc].per_channel_statistics.get_buffer(name)
            )
    return modules


def original_state_dict(modules: dict[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    """The modules' state dicts under the released file's key prefixes."""
    sd: dict[str, torch.Tensor] = {}

    def add(prefix: str, module: torch.nn.Module, skip_stats: bool = False) -> None:
        for key, value in module.state_dict().items():
            if skip_stats and key.startswith("per_channel_statistics."):
                continue
            sd[prefix + key] = value.detach().clone().contiguous()

    add("model.diffusion_model.", modules["transformer"])
    add("model.diffusion_model.video_embeddings_connector.", modules["video_connector"])
    add("model.diffusion_model.audio_embeddings_connector.", modules["audio_connector"])
    add("text_embedding_projection.", modules["projection"])
    add("vae.encoder.", modules["video_encoder"], skip_stats=True)
    add("vae.decoder.", modules["video_decoder"], skip_stats=True)
    add("vae.", torch.nn.ModuleDict({"per_channel_statistics": modules["video_encoder"].per_channel_statistics}))
    add("audio_vae.encoder.", modules["audio_encoder"], skip_stats=True)
    add("audio_vae.decoder.", modules["audio_decoder"], skip_stats=True)
    add("audio_vae.", torch.nn.ModuleDict({"per_channel_statistics": modules["audio_encoder"].per_channel_statistics}))
    add("vocoder.", modules["vocoder"])
    # the released headers also hold two statistics neither implementation reads
    sd["vae.per_channel_statistics.channel"] = torch.arange(8, dtype=torch.float32)
    sd["vae.per_channel_statistics.mean-of-stds"] = torch.rand(8)
    return sd


def write_checkpoint(path: Path, version: str, seed: int = 0, keep=None, dtype=None) -> dict[str, torch.nn.Module]:
    """A tiny combined file at `path`; returns the ltx-core modules. keep: predicate on keys (partial exports)."""
    config = original_config(version)
    modules = ltx_core_modules(version, config, seed)
    sd = original_state_dict(modules)
    if keep is not None:
        sd = {k: v for k, v in sd.items() if keep(k)}
    if dtype is not None:
        sd = {k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}
    model_version = "2.3.0" if version == md.LTX2_3 else "2.0.0"
    save_file(sd, str(path), metadata={"config": json.dumps(config), "model_version": model_version})
    return modules


UPSAMPLER_CONFIG = {
    "_class_name": "LatentUpsampler",
    "in_channels": 8,
    "mid_channels": 32,
    "num_blocks_per_stage": 1,
    "dims": 3,
    "spatial_upsample": True,
    "temporal_upsample": False,
    "spatial_scale": 2.0,
    "rational_resampler": False,
}


def write_upsampler(path: Path, config: dict | None = None, seed: int = 7) -> torch.nn.Module:
    from ltx_core.model.upsampler.model_configurator import LatentUpsamplerConfigurator

    config = config or UPSAMPLER_CONFIG
    module = randomize_(LatentUpsamplerConfigurator.from_config(config), seed)
    sd = {k: v.contiguous() for k, v in module.state_dict().items()}
    save_file(sd, str(path), metadata={"config": json.dumps(config)})
    return module


# ---------------------------------------------------------------------------------------------------------------------
# Hostile inputs and the CLI (test_conversion_safety.py)


def run_cli(*args) -> int:
    spec = importlib.util.spec_from_file_location("convert_checkpoint", REPO / "scripts" / "convert_checkpoint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main([str(a) for a in args])


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def dead_pid() -> int:
    """The pid of a process that has exited (for leftovers of a killed run)."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def header_bytes(body: bytes, data: bytes = b"", length: int | None = None) -> bytes:
    return struct.pack("<Q", len(body) if length is None else length) + body + data


def header(value, data: bytes = b"\0" * 8) -> bytes:
    return header_bytes(json.dumps(value).encode(), data)


def with_metadata(source: Path, path: Path, edit) -> Path:
    """A copy of `source` whose metadata is `edit(config, metadata)` (which returns the new metadata dict)."""
    entries, metadata = sio.read_header(source)
    new = edit(json.loads(metadata["config"]), dict(metadata))
    sio.write_safetensors(path, [sio.PlannedTensor(e, n, e.dtype) for n, e in sorted(entries.items())], new)
    return path


def set_config(where: str, value):
    """An edit setting the config entry at the dotted path `where` (list indices as numbers) to `value`."""

    def edit(config, metadata):
        *parents, last = [int(p) if p.isdigit() else p for p in where.split(".")]
        target = config
        for key in parents:
            target = target[key]
        target[last] = value
        return {**metadata, "config": json.dumps(config)}

    return edit


def edit_weights(folder: Path, component: str, edit) -> None:
    path = folder / component / sio.WEIGHTS_NAME
    sd = load_file(str(path))
    edit(sd)
    save_file(sd, str(path), metadata={"format": "pt"})


def edit_json(path: Path, edit) -> None:
    value = json.loads(path.read_text())
    edit(value)
    path.write_text(json.dumps(value))


def to_index(folder: Path, component: str, shard_of) -> None:
    """Replace a component's weights by an index whose weight_map sends each tensor to `shard_of(name)`."""
    weights = folder / component / sio.WEIGHTS_NAME
    names = list(sio.read_header(weights)[0])
    shutil.move(weights, folder / "outside.safetensors")  # a real file outside the component folder
    index = {"metadata": {}, "weight_map": {n: shard_of(n) for n in names}}
    (folder / component / sio.WEIGHTS_INDEX_NAME).write_text(json.dumps(index))


def split_into_shards(folder: Path, component: str, swap: bool = False, duplicate: bool = False) -> None:
    sd = load_file(str(folder / component / sio.WEIGHTS_NAME))
    names = sorted(sd)
    first, second = names[: len(names) // 2], names[len(names) // 2 :]
    save_file({n: sd[n] for n in first}, str(folder / component / "a.safetensors"))
    save_file({n: sd[n] for n in second + (first[:1] if duplicate else [])}, str(folder / component / "b.safetensors"))
    weight_map = {**{n: "a.safetensors" for n in first}, **{n: "b.safetensors" for n in second}}
    if swap:
        weight_map[first[0]] = "b.safetensors"
    (folder / component / sio.WEIGHTS_NAME).unlink()
    (folder / component / sio.WEIGHTS_INDEX_NAME).write_text(json.dumps({"weight_map": weight_map}))
