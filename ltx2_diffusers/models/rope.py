"""Rotary position embeddings of LTX-2: token positions, frequency grid, cos/sin tables and their application.

Positions are [start, end) bounds per axis in physical units (spec §1.6): video tokens in (seconds, pixels, pixels),
audio tokens in seconds. RoPE uses the midpoint of each bound, divided by a per-axis normaliser (`max_pos`, 20 s and
2048 px for the released models) and mapped to [-1, 1] by `2u - 1`.

Precision (spec §13.2): ltx-core builds video positions in float32 and then casts them to the latent dtype (bf16 in
its pipelines), so midpoint, normalisation and `2u - 1` run in bf16 for video tokens. That cast belongs to whoever
builds the positions for a generation run: `video_positions(..., dtype=latent_dtype)` here, called by the pipeline
(or by the transformer itself when it is given only a latent shape). `rope_cos_sin` computes in the dtype of the
positions it is given and never casts them, because appended keyframe/reference tokens are float32 in the reference
and `torch.cat` promotes the whole position tensor to float32 when they are present. Audio positions stay float32.
"""

import math

import torch
from torch import Tensor

ROPE_TYPES = ("split", "interleaved")


def video_positions(
    batch_size: int,
    latent_frames: int,
    latent_height: int,
    latent_width: int,
    fps: float,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    scale_factors: tuple[int, int, int] = (8, 32, 32),
    causal_offset: int = 1,
) -> Tensor:
    """[start, end) bounds of every video token, shape (B, 3, T, 2), T = F * H * W in (f, h, w) order.

    Axis 0 is time in seconds, axes 1 and 2 are pixels. Latent bounds [i, i + 1) are scaled by the VAE factors
    (8, 32, 32); the causal VAE encodes pixel frame 0 alone, so the time bounds are shifted by `causal_offset - 8` and
    clamped at 0: latent frame 0 covers pixel frame [0, 1), frame f >= 1 covers [8f - 7, 8f + 1). Time is divided by
    `fps` in float32, then the whole tensor is cast to `dtype` (pass the latent dtype to reproduce the reference's
    bf16 positions). Same layout as diffusers' `video_coords`.
    """
    if min(batch_size, latent_frames, latent_height, latent_width) < 1:
        raise ValueError(
            f"video_positions needs positive sizes, got batch_size={batch_size}, latent_frames={latent_frames}, "
            f"latent_height={latent_height}, latent_width={latent_width}"
        )
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    grid = torch.meshgrid(
        torch.arange(latent_frames, device=device),
        torch.arange(latent_height, device=device),
        torch.arange(latent_width, device=device),
        indexing="ij",
    )
    starts = torch.stack(grid).flatten(1)  # (3, T) integer latent indices
    bounds = torch.stack([starts, starts + 1], dim=-1)  # (3, T, 2)
    pixels = bounds * torch.tensor(scale_factors, device=bounds.device).view(3, 1, 1)
    # Integer arithmetic up to here, as in the reference: every value is exact before the division by fps.
    pixels[0] = (pixels[0] + causal_offset - scale_factors[0]).clamp(min=0)
    positions = pixels.float()
    positions[0] = positions[0] / fps
    return positions.to(dtype).unsqueeze(0).repeat(batch_size, 1, 1, 1)


def audio_positions(
    batch_size: int,
    audio_latent_frames: int,
    *,
    device: torch.device | str | None = None,
    shift: int = 0,
    sample_rate: int = 16000,
    hop_length: int = 160,
    downsample_factor: int = 4,
    causal_offset: int = 1,
) -> Tensor:
    """[start, end) bounds in seconds of every audio token, shape (B, 1, T, 2), float32.

    Latent frame i covers mel frames [4i + 1 - 4, 4(i + 1) + 1 - 4) clamped at 0 (the audio VAE is causal too), and a
    mel frame lasts hop_length / sample_rate = 10 ms. `shift` offsets the latent indices (a window into a longer
    track). Same layout as diffusers' `audio_coords`.
    """
    if batch_size < 1 or audio_latent_frames < 1:
        raise ValueError(
            f"audio_positions needs positive sizes, got batch_size={batch_size}, "
            f"audio_latent_frames={audio_latent_frames}"
        )

    def seconds(first: int) -> Tensor:
        latent = torch.arange(first, first + audio_latent_frames, dtype=torch.float32, device=device)
        mel = (latent * downsample_factor + causal_offset - downsample_factor).clip(min=0)
        return mel * hop_length / sample_rate

    bounds = torch.stack([seconds(shift), seconds(shift + 1)], dim=-1)  # (T, 2)
    return bounds.unsqueeze(0).unsqueeze(0).repeat(batch_size, 1, 1, 1)


def rope_frequencies(theta: float, num_axes: int, dim: int, *, double_precision: bool = True) -> Tensor:
    """f_k = theta^(k / (n - 1)) * pi / 2 for k < n = dim // (2 * num_axes), float32, shape (n,).

    `double_precision` (the released models' "float64" frequencies_precision) builds the grid in float64 before the
    cast to float32; otherwise it is built in float32, as ltx-core does for configs without that key.
    """
    count = dim // (2 * num_axes)
    dtype = torch.float64 if double_precision else torch.float32
    return (theta ** torch.linspace(0.0, 1.0, count, dtype=dtype) * math.pi / 2).to(torch.float32)


def rope_cos_sin(
    positions: Tensor,
    dim: int,
    num_heads: int,
    max_pos: tuple[float, ...] | list[float],
    *,
    theta: float = 10000.0,
    rope_type: str = "split",
    double_precision: bool = True,
    dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor]:
    """cos and sin tables for tokens at `positions`, per head: (B, H, T, dim / (2H)) "split", (B, H, T, dim / H)
    "interleaved".

    positions: (B, A, T, 2) [start, end) bounds (the midpoint is used) or (B, A, T) points, A axes. Angles are
    f_k * (2 p_a / max_pos[a] - 1), laid out frequency-major, axis-minor (index A*k + a); the few entries that do not
    fill `dim` are identity rotations (cos 1, sin 0) placed first. Arithmetic on the positions stays in their dtype
    (see the module docstring); the tables are computed in float32 and returned in `dtype` (default float32).
    """
    if rope_type not in ROPE_TYPES:
        raise ValueError(f"rope_type must be one of {ROPE_TYPES}, got {rope_type!r}")
    num_axes = positions.shape[1]
    if len(max_pos) != num_axes:
        raise ValueError(f"positions have {num_axes} axes but max_pos has {len(max_pos)} entries: {list(max_pos)}")
    if dim % num_heads != 0 or (dim // num_heads) % 2 != 0:
        raise ValueError(f"RoPE dim {dim} must split into {num_heads} heads of even size")
    if positions.ndim == 4:
        positions = (positions[..., 0] + positions[..., 1]) / 2.0
    fractions = torch.stack([positions[:, a] / max_pos[a] for a in range(num_axes)], dim=-1)  # (B, T, A)
    freqs = rope_frequencies(theta, num_axes, dim, double_precision=double_precision).to(positions.device)
    angles = (freqs * (fractions.unsqueeze(-1) * 2 - 1)).transpose(-1, -2).flatten(2)  # (B, T, n*A), float32
    batch, tokens = angles.shape[:2]
    cos, sin = angles.cos(), angles.sin()
    if rope_type == "interleaved":
        cos, sin = cos.repeat_interleave(2, dim=-1), sin.repeat_interleave(2, dim=-1)
    pad = (dim // 2 if rope_type == "split" else dim) - cos.shape[-1]
    if pad > 0:
        cos = torch.cat([cos.new_ones(batch, tokens, pad), cos], dim=-1)
        sin = torch.cat([sin.new_zeros(batch, tokens, pad), sin], dim=-1)
    # Per-head tables: a head owns a contiguous slice of the inner dim in both layouts.
    cos = cos.unflatten(-1, (num_heads, -1)).transpose(1, 2)
    sin = sin.unflatten(-1, (num_heads, -1)).transpose(1, 2)
    dtype = torch.float32 if dtype is None else dtype
    return cos.to(dtype), sin.to(dtype)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor, rope_type: str = "split") -> Tensor:
    """Rotate the head vectors x: (B, H, T, d) by the tables of `rope_cos_sin` (computed in x's dtype).

    "split" rotates pairs (x[i], x[i + d/2]); "interleaved" rotates adjacent pairs (x[2j], x[2j + 1]).
    """
    if rope_type == "split":
        x1, x2 = x.chunk(2, dim=-1)
        # addcmul rounds once per output, as ltx-core does: same bf16 numbers, not just the same formula
        return torch.cat([torch.addcmul(x1 * cos, -sin, x2), torch.addcmul(x2 * cos, sin, x1)], dim=-1)
    even, odd = x.unflatten(-1, (-1, 2)).unbind(-1)
    rotated = torch.stack([-odd, even], dim=-1).flatten(-2)
    return x * cos + rotated * sin


class VideoCoordinates:
    """`transformer.rope` for diffusers' pipelines, which call `transformer.rope.prepare_video_coords(...)`.

    Holds no weights. Returns positions in `dtype`, the transformer's dtype: like the reference (bf16 positions in a
    bf16 run), unlike diffusers (float32), whose bf16 RoPE therefore differs from the reference by O(1) in the output.
    """

    def __init__(self, scale_factors: tuple[int, int, int], causal_offset: int, dtype: torch.dtype = torch.float32):
        self.scale_factors = tuple(scale_factors)
        self.causal_offset = causal_offset
        self.dtype = dtype

    def prepare_video_coords(
        self,
        batch_size: int,
        num_frames: int,
        height: int,
        width: int,
        device: torch.device | str | None = None,
        fps: float = 24.0,
    ) -> Tensor:
        return video_positions(
            batch_size,
            num_frames,
            height,
            width,
            fps,
            device=device,
            dtype=self.dtype,
            scale_factors=self.scale_factors,
            causal_offset=self.causal_offset,
        )


class AudioCoordinates:
    """`transformer.audio_rope` for diffusers' pipelines (`prepare_audio_coords(...)`); holds no weights."""

    def __init__(self, sample_rate: int, hop_length: int, downsample_factor: int, causal_offset: int):
        self.sample_rate = sample_rate
        self.hop_length = hop_length
        self.downsample_factor = downsample_factor
        self.causal_offset = causal_offset

    def prepare_audio_coords(
        self, batch_size: int, num_frames: int, device: torch.device | str | None = None, shift: int = 0
    ) -> Tensor:
        return audio_positions(
            batch_size,
            num_frames,
            device=device,
            shift=shift,
            sample_rate=self.sample_rate,
            hop_length=self.hop_length,
            downsample_factor=self.downsample_factor,
            causal_offset=self.causal_offset,
        )
