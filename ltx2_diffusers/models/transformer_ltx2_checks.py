"""Checks of LTX2VideoTransformer3DModel's config and forward inputs: a bad shape or an unsupported config is a
ValueError that names the argument, raised before any compute (kept apart so the model file reads as the model)."""

from typing import Any

import torch
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


def check_streams(
    hidden_states: Tensor | None,
    context: Tensor | None,
    audio_hidden_states: Tensor | None,
    audio_context: Tensor | None,
    timestep: Tensor | None,
) -> None:
    """At least one stream, each with its text context; tokens (B, T, C); `timestep` for the video stream."""
    if hidden_states is None and audio_hidden_states is None:
        raise TypeError("forward needs hidden_states (video), audio_hidden_states, or both")
    for tokens, text, name in ((hidden_states, context, ""), (audio_hidden_states, audio_context, "audio_")):
        if tokens is None:
            continue
        if text is None:
            raise TypeError(f"{name}hidden_states was given without {name}encoder_hidden_states")
        if tokens.ndim != 3:
            raise ValueError(f"{name}hidden_states must be (B, T, C) tokens, got shape {tuple(tokens.shape)}")
    if hidden_states is not None and timestep is None:
        raise TypeError("forward needs timestep for the video stream: (B,) or (B, T_v)")
    if hidden_states is not None and audio_hidden_states is not None:
        if audio_hidden_states.shape[0] != hidden_states.shape[0]:
            raise ValueError(
                f"video and audio batch sizes differ: {hidden_states.shape[0]} and {audio_hidden_states.shape[0]}"
            )


def stream_timesteps(
    timestep: Tensor | None,
    audio_timestep: Tensor | None,
    sigma: Tensor | None,
    audio_sigma: Tensor | None,
    batch_size: int,
    num_tokens: int | None,
    num_audio_tokens: int | None,
    needs_sigma: bool,
    device: torch.device,
) -> tuple[Tensor | None, Tensor | None, Tensor | None, Tensor | None]:
    """(timestep (B, 1|T_v), audio_timestep (B, 1|T_a), sigma (B,), audio_sigma (B,)), all in timestep units, for the
    streams present (num_tokens / num_audio_tokens None: that stream is absent, its entries come back None).

    Defaults: audio_timestep = timestep when that is per sample; sigma = timestep when per sample; audio_sigma = sigma.
    In an audio-only call `timestep` / `sigma` may stand for the audio stream's. `needs_sigma`: a sub-layer reads the
    step's sigma (audio<->video AdaLN, LTX-2.3's prompt AdaLN), so a per-token timestep needs it spelled out."""
    if num_tokens is None:  # audio only
        timestep, audio_timestep = None, timestep if audio_timestep is None else audio_timestep
        sigma, audio_sigma = None, sigma if audio_sigma is None else audio_sigma
        if audio_timestep is None:
            raise TypeError("an audio-only call needs audio_timestep (or timestep): (B,) or (B, T_a)")
    else:
        timestep = per_token_timestep(timestep, batch_size, num_tokens, "timestep")
        if num_audio_tokens is not None and audio_timestep is None and timestep.shape[1] != 1:
            raise ValueError("timestep is per token, so audio_timestep must be given: (B,) or (B, T_a)")
        audio_timestep = timestep if audio_timestep is None else audio_timestep
        if sigma is None and timestep.shape[1] == 1:
            sigma = timestep[:, 0]
        audio_sigma = sigma if audio_sigma is None else audio_sigma
    if num_audio_tokens is None:
        audio_timestep = audio_sigma = None
    else:
        audio_timestep = per_token_timestep(audio_timestep, batch_size, num_audio_tokens, "audio_timestep")
        if audio_sigma is None and audio_timestep.shape[1] == 1:
            audio_sigma = audio_timestep[:, 0]
    if needs_sigma:
        for present, value, name in ((num_tokens, sigma, "sigma"), (num_audio_tokens, audio_sigma, "audio_sigma")):
            if present is not None and value is None:
                raise ValueError(
                    f"the timestep is per token, so {name} must be given: the step's timestep (1000 * sigma), (B,)"
                )
        sigma = None if num_tokens is None else per_sample(sigma, batch_size, "sigma").to(device)
        audio_sigma = None if num_audio_tokens is None else per_sample(audio_sigma, batch_size, "audio_sigma").to(device)
    return timestep, audio_timestep, sigma, audio_sigma


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
