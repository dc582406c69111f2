"""Tiny files in the layouts of the released checkpoints: scaled fp8 (Lightricks' and ComfyUI's), and the latent
upscalers of LTX-2 and LTX-2.3. Written with safetensors' own writer, as the released files were."""

import json
import re
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ltx2_diffusers.loaders import metadata as md
from ltx2_diffusers.loaders.transformer_keys import diffusers_to_original_keys
from ltx2_diffusers.models.transformer_ltx2 import LTX2VideoTransformer3DModel

# An LTX-2.3 transformer of one block (gates, prompt AdaLN, no caption projection)
TINY_LTX23_TRANSFORMER = dict(
    in_channels=8, out_channels=8, num_attention_heads=2, attention_head_dim=8, cross_attention_dim=16,
    audio_in_channels=8, audio_out_channels=8, audio_num_attention_heads=2, audio_attention_head_dim=4,
    audio_cross_attention_dim=8, num_layers=1, caption_channels=12, gated_attn=True, audio_gated_attn=True,
    cross_attn_mod=True, audio_cross_attn_mod=True, use_prompt_embeddings=False, perturbed_attn=True,
)  # fmt: skip
# the linears Lightricks' fp8 files quantise: attention projections and feed-forwards of the blocks
QUANTISED = re.compile(r"transformer_blocks\.\d+\.\w+\.(to_q|to_k|to_v|to_out\.0|net\.0\.proj|net\.2)\.weight")
FP8_MAX = torch.finfo(torch.float8_e4m3fn).max


def raw_tensors(path: Path) -> dict[str, tuple[str, tuple, bytes]]:
    """{name: (dtype, shape, bytes)} of a safetensors file."""
    with safe_open(str(path), framework="pt") as f:
        out = {}
        for k in f.keys():
            t = f.get_tensor(k)
            out[k] = (str(t.dtype), tuple(t.shape), t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        return out


def file_metadata(path: Path) -> dict | None:
    with safe_open(str(path), framework="pt") as f:
        return f.metadata()


def write_scaled_fp8_transformer(path: Path, layout: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A transformer-only LTX-2.3 file whose block linears are e4m3 with per-tensor float32 scales, in `layout`
    ("ltx": `<name>.weight_scale` and one `.input_scale`; "comfy": a `scaled_fp8` marker and `<name>.scale_weight`),
    the other tensors bf16. Returns the true weights in diffusers names: weight.float() * scale, or the bf16 tensor."""
    torch.manual_seed(seed)
    model = LTX2VideoTransformer3DModel(**TINY_LTX23_TRANSFORMER)
    state = {k: v.detach().to(torch.bfloat16) for k, v in model.state_dict().items()}
    original = diffusers_to_original_keys(state)
    tensors, reference = {}, {}
    for name, value in state.items():
        key = original[name]
        if not QUANTISED.fullmatch(name):
            tensors[key], reference[name] = value, value
            continue
        scale = value.float().abs().amax() / FP8_MAX
        quantised = (value.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
        module = key.removesuffix(".weight")
        tensors[key] = quantised
        tensors[f"{module}.weight_scale" if layout == "ltx" else f"{module}.scale_weight"] = scale.reshape(())
        reference[name] = quantised.float() * scale
    first = next(k for k in tensors if k.endswith(".to_q.weight"))
    if layout == "ltx":
        tensors[first.replace(".weight", ".input_scale")] = torch.tensor(0.02)  # static activation scale
    else:
        tensors["model.diffusion_model.scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    config = {k: v for k, v in model.config.items() if not k.startswith("_")}
    original_config = md.original_config_from_components({"transformer": ("LTX2VideoTransformer3DModel", config)})
    save_file(tensors, str(path), metadata=md.original_metadata(original_config, "2.3.0"))
    return reference


# The upscalers' metadata (spec §4) at a tiny width. The LTX-2 x2 file holds the rational resampler's names
# (`upsampler.conv.*`, `upsampler.blur_down.kernel`), the LTX-2.3 x2 file the plain pixel shuffle's (`upsampler.0.*`).
TINY_UPSCALER = {
    "_class_name": "LatentUpsampler", "in_channels": 8, "mid_channels": 32, "num_blocks_per_stage": 1, "dims": 3,
    "spatial_upsample": True, "temporal_upsample": False, "spatial_scale": 2.0, "rational_resampler": False,
}  # fmt: skip


def write_upscaler(path: Path, rational_names: bool, metadata_rational: bool, seed: int = 3) -> torch.nn.Module:
    """An x2 upscaler file: ltx-core's module with the rational (or plain) resampler, its `config` metadata saying
    `rational_resampler=metadata_rational`. Returns the module (random weights)."""
    from ltx_core.model.upsampler.model_configurator import LatentUpsamplerConfigurator

    torch.manual_seed(seed)
    module = LatentUpsamplerConfigurator.from_config({**TINY_UPSCALER, "rational_resampler": rational_names})
    for parameter in module.parameters():
        torch.nn.init.normal_(parameter, std=0.1)
    state = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
    save_file(
        state, str(path), metadata={"config": json.dumps({**TINY_UPSCALER, "rational_resampler": metadata_rational})}
    )
    return module.eval()
