"""Checks of LTX2VideoTransformer3DModel's config and forward inputs: a bad shape or an unsupported config is a
ValueError that names the argument, raised before any compute (kept apart so the model file reads as the model)."""

from typing import Any

from torch import Tensor

# ltx-core releases whose numerics the transformer reproduces; the first is the default (1.2 spec §5.1)
REFERENCES = ("1.2", "1.0")


def check_reference(version: str) -> str:
    if version not in REFERENCES:
        raise ValueError(
            f"reference={version!r} is not supported; expected one of {list(REFERENCES)}: \"1.2\" follows ltx-core "
            "1.2.0 (the default), \"1.0\" reproduces ltx-core 1.0.0 bit for bit"
        )
    return version


def per_token_timestep(timestep: Tensor, batch_size: int, num_tokens: int, name: str) -> Tensor:
    """(B,), (B, 1), (B, T) or (B, T, 1) -> (B, 1) or (B, T)."""
    if timestep.ndim == 0 or timestep.shape[0] != batch_size:
        raise ValueError(f"{name} must start with the batch dim {batch_size}, got shape {tuple(timestep.shape)}")
    timestep = timestep.reshape(batch_size, -1)
    if timestep.shape[1] not in (1, num_tokens):
        raise ValueError(
            f"{name} must be (B,) or (B, T) with T={num_tokens} tokens, got {timestep.shape[1]} per sample"
        )
    return timestep


def per_sample(value: Tensor, batch_size: int, name: str) -> Tensor:
    if value.numel() != batch_size:
        raise ValueError(f"{name} must hold one value per sample, shape ({batch_size},); got {tuple(value.shape)}")
    return value.reshape(batch_size)


def check_coords(coords: Tensor, expected: tuple[int, int, int], name: str) -> None:
    if tuple(coords.shape[:3]) != expected or coords.ndim not in (3, 4) or (coords.ndim == 4 and coords.shape[3] != 2):
        raise ValueError(f"{name} must be [start, end) bounds of shape {(*expected, 2)}, got {tuple(coords.shape)}")


def check_config(cfg: dict[str, Any]) -> None:
    """Reject configs this implementation (and the reference) cannot represent."""
    fixed = {
        "patch_size": 1, "patch_size_t": 1, "audio_patch_size": 1, "audio_patch_size_t": 1,
        "activation_fn": "gelu-approximate", "qk_norm": "rms_norm_across_heads", "norm_elementwise_affine": False,
    }  # fmt: skip
    for key, expected in fixed.items():
        if cfg[key] != expected:
            raise ValueError(f"{key}={cfg[key]!r} is not supported: LTX-2 uses {expected!r} (no patching in the model)")
    if cfg["rope_type"] not in ("split", "interleaved"):
        raise ValueError(f"rope_type must be 'split' (released models) or 'interleaved', got {cfg['rope_type']!r}")
    if cfg["cross_attn_mod"] != cfg["audio_cross_attn_mod"]:
        raise ValueError(
            f"cross_attn_mod={cfg['cross_attn_mod']} and audio_cross_attn_mod={cfg['audio_cross_attn_mod']} differ; "
            "LTX-2 (both False) and LTX-2.3 (both True) set them together"
        )
    audio_dim = cfg["audio_num_attention_heads"] * cfg["audio_attention_head_dim"]
    if cfg["audio_cross_attention_dim"] != audio_dim:
        raise ValueError(
            f"audio_cross_attention_dim={cfg['audio_cross_attention_dim']} must equal the audio width "
            f"audio_num_attention_heads * audio_attention_head_dim = {audio_dim}: it is also the width of the "
            "audio<->video RoPE"
        )
    if (
        not cfg["use_prompt_embeddings"]
        and cfg["cross_attention_dim"] != cfg["num_attention_heads"] * cfg["attention_head_dim"]
    ):
        raise ValueError("without the caption projection (LTX-2.3), cross_attention_dim must equal the video width")
