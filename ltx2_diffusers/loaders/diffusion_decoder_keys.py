"""LTX-2.5 diffusion video decoder: Lightricks' files <-> diffusers' `LTX2VideoDiffusionDecoderModel` (spec §4.1-4.2).

Keys. The split VAE file (`vae/ltx-2.5-video-vae-bf16.safetensors`) holds `decoder.*` and `per_channel_statistics.*`
(and the conv encoder's `encoder.*`, not this model's); a monolith prefixes them with `vae.`. Inside the decoder:
    attn.qkv.{weight,bias}   [3D, ...]   -> attn.to_q / to_k / to_v   (split in q, k, v order along dim 0, trap 18)
    attn.proj / q_norm / k_norm           -> attn.to_out.0 / norm_q / norm_k
    t_embedder.mlp.0 / mlp.2              -> t_embedder.timestep_embedder.linear_1 / linear_2
    per_channel_statistics.mean-of-means / std-of-means -> latents_mean / latents_std
    everything else                       -> decoder.<same name>
Tensors the model does not have (trap 18): per-block static gates `diff_blocks.{j}.gate_msa / gate_mlp / gate_ctx` are
folded into `attn.proj`, `mlp.w_down` and `context_proj` (rows of the weight and the bias times the gate, in float32,
cast back) and dropped; `coarse_*` (a preview head) is dropped. Folding is one-way: a converted file has no gates and
its folded weights, which decode the same (up to float rounding); a file without gates converts both ways exactly.

Config. Metadata `config.vae` (`_class_name` "CausalDiffusionVAE", `model_output_type`, and `decoder`: ltx-core's
names) <-> diffusers' config. Absent keys take ltx-core's class defaults, which differ from diffusers' defaults, so the
converted config spells every key.
"""

import re
from collections.abc import Mapping

import torch
from torch import Tensor

from .renames import rename_keys

ORIGINAL_PREFIXES: tuple[str, ...] = ("vae.decoder.", "vae.per_channel_statistics.", "decoder.", "per_channel_statistics.")
# Statistics that LTX-2's VAE files carry and no decoder reads (as in video_vae_keys); dropped when present
ORIGINAL_IGNORED_STATISTICS: tuple[str, ...] = ("channel", "mean-of-stds", "mean-of-stds_over_std-of-means")
GATE_FOLDS: dict[str, str] = {"gate_msa": "attn.proj", "gate_mlp": "mlp.w_down", "gate_ctx": "context_proj"}

# Original (prefix `vae.` removed, qkv already split) -> diffusers. Anchored; no row hits another's output.
RENAMES: tuple[tuple[str, str], ...] = (
    (r"^per_channel_statistics\.mean-of-means$", "latents_mean"),
    (r"^per_channel_statistics\.std-of-means$", "latents_std"),
    (r"\.attn\.qkv\.to_([qkv])\.", r".attn.to_\1."),
    (r"\.attn\.proj\.", ".attn.to_out.0."),
    (r"\.attn\.q_norm\.", ".attn.norm_q."),
    (r"\.attn\.k_norm\.", ".attn.norm_k."),
    (r"^decoder\.t_embedder\.mlp\.0\.", "decoder.t_embedder.timestep_embedder.linear_1."),
    (r"^decoder\.t_embedder\.mlp\.2\.", "decoder.t_embedder.timestep_embedder.linear_2."),
)
INVERSE_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^latents_mean$", "per_channel_statistics.mean-of-means"),
    (r"^latents_std$", "per_channel_statistics.std-of-means"),
    (r"\.attn\.to_out\.0\.", ".attn.proj."),
    (r"\.attn\.norm_q\.", ".attn.q_norm."),
    (r"\.attn\.norm_k\.", ".attn.k_norm."),
    (r"^decoder\.t_embedder\.timestep_embedder\.linear_1\.", "decoder.t_embedder.mlp.0."),
    (r"^decoder\.t_embedder\.timestep_embedder\.linear_2\.", "decoder.t_embedder.mlp.2."),
)

_ATTN = r"attn\.(?:to_[qkv]\.(?:weight|bias)|to_out\.0\.(?:weight|bias)|norm_[qk]\.weight)"
_BLOCK = rf"(?:norm[12]\.weight|{_ATTN}|mlp\.w_(?:up|gate|down)\.weight)"
DIFFUSERS_KEY = re.compile(
    r"^(?:latents_mean|latents_std"
    rf"|decoder\.det_stages\.\d+\.\d+\.{_BLOCK}"
    rf"|decoder\.diff_blocks\.\d+\.(?:{_BLOCK}|scale_shift_table|context_proj\.(?:weight|bias))"
    r"|decoder\.upsamples\.\d+\.proj\.(?:weight|bias)"
    r"|decoder\.t_embedder\.timestep_embedder\.linear_[12]\.(?:weight|bias)"
    r"|decoder\.(?:conv_in|conv_in_x_t|conv_out|shared_adaln\.proj)\.(?:weight|bias)|decoder\.norm_out\.weight)$"
)


def _local_names(state_dict: Mapping[str, Tensor]) -> dict[str, str]:
    """{file key -> key without the monolith's `vae.`}; one layout per file, every key a decoder key."""
    prefixed = {key.startswith("vae.") for key in state_dict}
    if len(prefixed) > 1:
        raise ValueError("The decoder keys mix the monolith layout (`vae.decoder.*`) and the split layout "
                         "(`decoder.*`); pass one file's decoder tensors.")
    names = {}
    for key in state_dict:
        if not key.startswith(ORIGINAL_PREFIXES):
            raise ValueError(f"{key!r} is not a diffusion-decoder key (expected one of {ORIGINAL_PREFIXES}); a VAE "
                             f"file's `encoder.*` tensors belong to AutoencoderKLLTX2Video: select the decoder's "
                             f"keys with `is_original_decoder_key` first.")
        names[key] = key.removeprefix("vae.")
    return names


def is_original_decoder_key(key: str) -> bool:
    """Whether a key of a Lightricks VAE file belongs to the diffusion decoder."""
    return key.startswith(ORIGINAL_PREFIXES)


def original_to_diffusers(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The decoder's tensors of a Lightricks file -> diffusers' state dict (qkv split, gates folded, coarse dropped)."""
    tensors: dict[str, Tensor] = {}
    gates: dict[str, Tensor] = {}
    for key, local in _local_names(state_dict).items():
        value = state_dict[key]
        leaf = local.rsplit(".", 1)[-1]
        if local.startswith("decoder.coarse_") or (
                local.startswith("per_channel_statistics.") and leaf in ORIGINAL_IGNORED_STATISTICS):
            continue
        if local.startswith("decoder.diff_blocks.") and leaf in GATE_FOLDS:
            gates[local] = value
        elif re.search(r"\.attn\.qkv\.(weight|bias)$", local):
            if value.shape[0] % 3:
                raise ValueError(f"{key!r} has {value.shape[0]} rows, not 3 x dim: not a fused q, k, v projection.")
            for name, part in zip("qkv", value.chunk(3, dim=0), strict=True):
                tensors[local.replace(".attn.qkv.", f".attn.qkv.to_{name}.")] = part.clone()
        else:
            tensors[local] = value
    for gate_key, gate in gates.items():
        block, leaf = gate_key.rsplit(".", 1)
        if f"{block}.{GATE_FOLDS[leaf]}.weight" not in tensors:
            raise ValueError(f"{gate_key!r} gates {block}.{GATE_FOLDS[leaf]}, which the file does not have.")
        for suffix in ("weight", "bias"):  # the SwiGLU's w_down has no bias
            target = f"{block}.{GATE_FOLDS[leaf]}.{suffix}"
            if target not in tensors:
                continue
            value = tensors[target]
            scale = gate.float()[:, None] if value.ndim == 2 else gate.float()
            tensors[target] = (scale * value.float()).to(value.dtype)
    mapping = rename_keys(tensors, RENAMES)
    converted = {mapping[k]: v for k, v in tensors.items()}
    unknown = sorted(k for k in converted if not DIFFUSERS_KEY.match(k))
    if unknown:
        raise ValueError(f"Unknown diffusion-decoder keys after conversion: {unknown[:5]}; the file is not an LTX-2.5 "
                         f"diffusion VAE decoder, or it is a newer layout this map does not know.")
    return converted


def diffusers_to_original(state_dict: Mapping[str, Tensor], prefix: str = "") -> dict[str, Tensor]:
    """diffusers' state dict -> the file layout (q, k, v fused into `qkv`), keys under `prefix` ("" for the split
    file's `decoder.*`, "vae." for a monolith). No gates are written: the weights are already folded."""
    if prefix not in ("", "vae."):
        raise ValueError(f"prefix={prefix!r}; the files use '' (split) or 'vae.' (monolith).")
    unknown = sorted(k for k in state_dict if not DIFFUSERS_KEY.match(k))
    if unknown:
        raise ValueError(f"Not LTX2VideoDiffusionDecoderModel parameters: {unknown[:5]}.")
    renamed = rename_keys(state_dict, INVERSE_RENAMES)
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        name = renamed[key]
        match = re.search(r"\.attn\.to_([qkv])\.(weight|bias)$", name)
        if match is None:
            out[prefix + name] = value
        elif match.group(1) == "q":
            stem = name[:match.start()] + ".attn."
            parts = [state_dict[key.replace(".attn.to_q.", f".attn.to_{p}.")] for p in "qkv"]
            out[f"{prefix}{stem}qkv.{match.group(2)}"] = torch.cat(parts, dim=0)
    return out


# ltx-core's DiffusionVideoDecoder defaults (`core/model/video_vae/diffusion_video_decoder.py`), used for keys a
# file's `config.vae.decoder` leaves out
ORIGINAL_DEFAULTS: dict = {
    "in_channels": 128, "out_channels": 3, "patch_size": 4, "head_dim": 64, "t_emb_dim": 384,
    "stage_channels": (1024, 512, 256, 256, 128), "stage_depths": (4, 6, 4, 2, 8),
    "stage_kernels": ((3, 7, 7), (3, 7, 7), (3, 5, 5), (3, 5, 5), (3, 3, 3)), "stage5_kernel": (3, 7, 7),
    "upsamples": (((1, 2, 2), 2), ((2, 1, 1), 2), ((2, 2, 2), 1), ((2, 2, 2), 2)),
    "default_num_inference_steps": 2, "timestep_scale_multiplier": 1.0,
}
# The last deterministic-kernel entry ltx-core's ladder carries for its fifth stage: read by nothing (stage 5 uses
# stage5_kernel), not in diffusers' config, so written back as this default.
UNUSED_FIFTH_KERNEL = (3, 3, 3)


def _tuples(value) -> tuple:
    return tuple(_tuples(v) if isinstance(v, (list, tuple)) else v for v in value)


def config_from_original(vae_config: Mapping) -> dict:
    """Metadata `config.vae` of a diffusion-VAE file -> diffusers' LTX2VideoDiffusionDecoderModel config."""
    class_name = vae_config.get("_class_name", "CausalVideoAutoencoder")
    if class_name == "CausalVideoAutoencoder":
        raise ValueError("config.vae._class_name is 'CausalVideoAutoencoder' (or absent): this file holds the "
                         "convolutional decoder; load it as AutoencoderKLLTX2Video.")
    decoder = vae_config.get("decoder", vae_config)
    if "decoder" in vae_config:
        unknown = sorted(set(decoder) - set(ORIGINAL_DEFAULTS) - {"na_head_dim", "stage5_channels", "rope_dim_split"})
        if unknown:
            raise ValueError(f"config.vae.decoder has keys this converter does not know: {unknown}; known: "
                             f"{sorted(ORIGINAL_DEFAULTS)}, na_head_dim, stage5_channels, rope_dim_split.")
    c = {**ORIGINAL_DEFAULTS, **{k: _tuples(v) if isinstance(v, list) else v for k, v in decoder.items()}}
    if "in_channels" not in decoder and "latent_channels" in vae_config:
        c["in_channels"] = vae_config["latent_channels"]
    head_dim = decoder.get("head_dim", decoder.get("na_head_dim", ORIGINAL_DEFAULTS["head_dim"]))
    if c.get("stage5_channels", c["stage_channels"][-1]) != c["stage_channels"][-1]:
        raise ValueError(f"stage5_channels={c['stage5_channels']} differs from the context width "
                         f"{c['stage_channels'][-1]}; diffusers' format has one width for both.")
    if len(c["stage_kernels"]) not in (len(c["stage_channels"]), len(c["stage_channels"]) - 1):
        raise ValueError(f"stage_kernels has {len(c['stage_kernels'])} entries for {len(c['stage_channels'])} stages.")
    if "rope_dim_split" in c and tuple(c["rope_dim_split"]) != _default_rope_split(head_dim):
        raise ValueError(f"rope_dim_split={c['rope_dim_split']} is not the default {_default_rope_split(head_dim)} "
                         f"for head_dim={head_dim}, the only split diffusers' format describes.")
    strides = tuple(stride for stride, _ in c["upsamples"])
    return {
        "out_channels": c["out_channels"], "latent_channels": c["in_channels"], "patch_size": c["patch_size"],
        "scaling_factor": 1.0, "decoder_head_dim": head_dim, "decoder_stage_channels": c["stage_channels"],
        "decoder_stage_depths": c["stage_depths"], "decoder_stage_kernels": c["stage_kernels"][:len(strides)],
        "decoder_upsample_strides": strides,
        "decoder_upsample_channel_reductions": tuple(reduction for _, reduction in c["upsamples"]),
        "decoder_stage5_kernel": c["stage5_kernel"], "decoder_t_emb_dim": c["t_emb_dim"],
        "decoder_timestep_scale_multiplier": float(c["timestep_scale_multiplier"]),
        "decoder_model_output_type": vae_config.get("model_output_type", "v"),
        "decoder_num_inference_steps": c["default_num_inference_steps"],
        "spatial_compression_ratio": c["patch_size"] * _product(s[1] for s in strides),
        "temporal_compression_ratio": _product(s[0] for s in strides),
    }


def config_to_original(config: Mapping) -> dict:
    """diffusers' config -> metadata `config.vae` (JSON-ready lists), every decoder key spelt out."""
    kernels = [list(k) for k in config["decoder_stage_kernels"]] + [list(UNUSED_FIFTH_KERNEL)]
    return {
        "_class_name": "CausalDiffusionVAE",
        "model_output_type": config["decoder_model_output_type"],
        "decoder": {
            "in_channels": config["latent_channels"], "out_channels": config["out_channels"],
            "patch_size": config["patch_size"], "head_dim": config["decoder_head_dim"],
            "t_emb_dim": config["decoder_t_emb_dim"], "stage_channels": list(config["decoder_stage_channels"]),
            "stage_depths": list(config["decoder_stage_depths"]), "stage_kernels": kernels,
            "stage5_kernel": list(config["decoder_stage5_kernel"]),
            "upsamples": [[list(s), r] for s, r in zip(config["decoder_upsample_strides"],
                                                       config["decoder_upsample_channel_reductions"], strict=True)],
            "default_num_inference_steps": config["decoder_num_inference_steps"],
            "timestep_scale_multiplier": config["decoder_timestep_scale_multiplier"],
        },
    }


def _default_rope_split(head_dim: int) -> tuple[int, int, int]:
    """The split models.neighborhood_attention.rope_dim_split computes (loaders do not import models)."""
    d_t = head_dim // 4 // 2 * 2
    if (head_dim - d_t) // 2 % 2:
        d_t -= 2
    return d_t, (head_dim - d_t) // 2, (head_dim - d_t) // 2


def _product(values) -> int:
    out = 1
    for v in values:
        out *= v
    return out


__all__ = ["config_from_original", "config_to_original", "diffusers_to_original", "is_original_decoder_key",
           "original_to_diffusers"]
