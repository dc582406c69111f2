"""Latent state, noise and conditioning of LTX-2 generation, in the patchified token layout (spec §6.3, §6.4, §7).

A modality is denoised as a `LatentState`: tokens (B, T, C), the clean values conditioning tokens are pulled towards,
a per-token denoise mask and RoPE positions. Conditioning edits that state before noise is drawn:
- `replace_frames`: encoded frames replace the first latent frame(s) in place (image-to-video; ltx-core's
  `VideoConditionByLatentIndex`).
- `append_keyframes`: encoded frames at any pixel frame become extra tokens at the end, with their own positions
  (`VideoConditionByKeyframeIndex`); `append_reference`: an IC-LoRA reference video (`VideoConditionByReferenceLatent`).
  Both take `attention_strength` (ltx-core's `ConditioningItemAttentionStrengthWrapper`).
A conditioning token gets denoise mask 1 - strength: its timestep is sigma · mask, the noiser mixes in noise by the mask,
and the sampler blends its x0 with the clean value by the mask, so strength 1 keeps it exactly clean.

`reference` ("1.2", the default, or "1.0") picks the ltx-core release these follow where 1.2.0 changed outputs (delta
spec §5.5-§5.8): 1.2.0 writes conditions only into `clean_latent` (the noisy `latent` keeps its value, zeros for
appended tokens), noises as two float32 lerps from `clean_latent`, and gives a single-frame keyframe the time extent of
one pixel frame. With strength 1, or at the first stage's full noise, both give the same tokens.

Image and video preparation (spec §7.6) is `inputs.py`'s.
"""

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from ..models.autoencoder_kl_ltx2_audio import pack_audio_latents
from ..models.rope import audio_positions, video_positions
from .inputs import VideoInput, video_to_pixels
from .presets import check_reference

VIDEO_TIME_SCALE = 8  # pixel frames per latent frame (after the first, which holds one)


# ----------------------------------------------------------------------------------------------------------------------
# Token layout


def patchify_video(latents: Tensor) -> Tensor:
    """(B, C, F, H, W) -> (B, F·H·W, C): one token per latent pixel, in (f, h, w) row-major order (patch size 1)."""
    if latents.ndim != 5:
        raise ValueError(f"video latents must be (B, C, F, H, W), got shape {tuple(latents.shape)}")
    return latents.flatten(2).transpose(1, 2)


def unpatchify_video(tokens: Tensor, latent_frames: int, latent_height: int, latent_width: int) -> Tensor:
    """(B, F·H·W, C) -> (B, C, F, H, W); pass only the output tokens (`LatentState.output_tokens`)."""
    if tokens.ndim != 3 or tokens.shape[1] != latent_frames * latent_height * latent_width:
        raise ValueError(
            f"expected (B, {latent_frames}*{latent_height}*{latent_width}, C) tokens, got shape {tuple(tokens.shape)}"
        )
    return tokens.transpose(1, 2).unflatten(2, (latent_frames, latent_height, latent_width))


# ----------------------------------------------------------------------------------------------------------------------
# Latent state and noise


@dataclass(frozen=True)
class LatentState:
    """The tokens of one modality while it is denoised (ltx-core's patchified `LatentState`).

    latent: (B, T, C) current sample, in the transformer's dtype.
    clean_latent: (B, T, C) the values conditioning tokens are pulled towards (the initial latent elsewhere).
    denoise_mask: (B, T, 1) float32; 1 for generated tokens, 1 - strength for conditioning tokens.
    positions: RoPE bounds, video (B, 3, T, 2) in (seconds, pixels, pixels), audio (B, 1, T, 2) in seconds.
    num_output_tokens: the leading tokens that form the output grid; appended conditioning tokens follow.
    attention_mask: (B, T, T) self-attention weights in [0, 1] (0 blocks), or None for full attention.
    frozen: the stream is held at its clean value (denoise mask 0) through every step, e.g. the input audio of
        audio-to-video; with reference "1.2" its step sigma is 0 too (delta spec §5.2).
    keyframes_mask: video (B, T, 1) float32, 1 on tokens whose latent frame holds a single pixel frame: the first
        latent frame of the generated grid, always (1.2.0's `VideoLatentTools`, trap 3); appended keyframes and
        references are never marked. LTX-2.5's transformer adds its keyframe embedding there; others ignore it.
        None for audio.
    """

    latent: Tensor
    clean_latent: Tensor
    denoise_mask: Tensor
    positions: Tensor
    num_output_tokens: int
    attention_mask: Tensor | None = None
    frozen: bool = False
    keyframes_mask: Tensor | None = None

    def output_tokens(self) -> Tensor:
        """(B, num_output_tokens, C): the sample without appended conditioning tokens."""
        return self.latent[:, : self.num_output_tokens]


def video_positions_dtype(dtype: torch.dtype, reference: str) -> torch.dtype:
    """The dtype of a video state's positions under `reference`: ltx-core 1.2.0's `create_initial_state` keeps them
    float32, 1.0.0's rounds them to the latent `dtype` (which moves every RoPE angle of a bf16 run)."""
    return torch.float32 if check_reference(reference) == "1.2" else dtype


def video_latent_state(
    batch_size: int,
    latent_frames: int,
    latent_height: int,
    latent_width: int,
    fps: float,
    *,
    num_channels: int = 128,
    dtype: torch.dtype = torch.bfloat16,
    device: torch.device | str | None = None,
    initial_latent: Tensor | None = None,
    positions_dtype: torch.dtype | None = None,
) -> LatentState:
    """A video state before conditioning and noise (ltx-core's `VideoLatentTools.create_initial_state`).

    latent = clean_latent = `initial_latent` (B, C, F', H', W') patchified, or zeros; mask ones; positions in
    `positions_dtype` (None: `dtype`). `video_positions_dtype(dtype, reference)` gives the reference's: 1.0.0 rounds
    video positions to the latent dtype (bf16 in the pipelines, spec §13.2), 1.2.0 keeps them float32.
    """
    shape = (batch_size, num_channels, latent_frames, latent_height, latent_width)
    tokens = patchify_video(_initial_latent(initial_latent, shape, dtype, device))
    positions = video_positions(
        batch_size, latent_frames, latent_height, latent_width, fps, device=tokens.device,
        dtype=dtype if positions_dtype is None else positions_dtype,
    )  # fmt: skip
    keyframes_mask = torch.zeros(*tokens.shape[:2], 1, dtype=torch.float32, device=tokens.device)
    keyframes_mask[:, : latent_height * latent_width] = 1.0  # the causal first frame: one pixel frame
    return replace(_unconditioned_state(tokens, positions), keyframes_mask=keyframes_mask)


def audio_latent_state(
    batch_size: int,
    audio_latent_frames: int,
    *,
    num_channels: int = 8,
    num_mel_bins: int = 16,
    dtype: torch.dtype = torch.bfloat16,
    device: torch.device | str | None = None,
    initial_latent: Tensor | None = None,
) -> LatentState:
    """An audio state before noise (ltx-core's `AudioLatentTools.create_initial_state`); positions float32 seconds."""
    shape = (batch_size, num_channels, audio_latent_frames, num_mel_bins)
    tokens = pack_audio_latents(_initial_latent(initial_latent, shape, dtype, device))
    return _unconditioned_state(tokens, audio_positions(batch_size, audio_latent_frames, device=tokens.device))


def empty_audio_state(batch_size: int, num_channels: int, dtype: torch.dtype, device: torch.device) -> LatentState:
    """An audio stream of 0 tokens, for a video-only stage (`denoising.VideoOnlyTransformer`): (B, 0, C) latents,
    (B, 0, 1) mask, (B, 1, 0, 2) float32 positions."""
    return _empty_state(batch_size, num_channels, 1, dtype, torch.float32, device)


def empty_video_state(batch_size: int, num_channels: int, dtype: torch.dtype, device: torch.device) -> LatentState:
    """A video stream of 0 tokens, for an audio-only stage (text-to-audio's `AudioOnlyTransformer`): (B, 0, C)
    latents, (B, 0, 1) mask, (B, 3, 0, 2) positions in `dtype`."""
    return _empty_state(batch_size, num_channels, 3, dtype, dtype, device)


def _empty_state(
    batch_size: int, num_channels: int, num_axes: int, dtype: torch.dtype, positions_dtype: torch.dtype, device
) -> LatentState:
    tokens = torch.zeros(batch_size, 0, num_channels, dtype=dtype, device=device)
    return LatentState(
        latent=tokens,
        clean_latent=tokens,
        denoise_mask=torch.zeros(batch_size, 0, 1, dtype=torch.float32, device=device),
        positions=torch.zeros(batch_size, num_axes, 0, 2, dtype=positions_dtype, device=device),
        num_output_tokens=0,
    )


def _initial_latent(initial_latent: Tensor | None, shape: tuple[int, ...], dtype: torch.dtype, device) -> Tensor:
    """`initial_latent` checked against `shape`, or zeros of it."""
    if initial_latent is None:
        return torch.zeros(shape, dtype=dtype, device=device)
    if tuple(initial_latent.shape) != shape:
        raise ValueError(f"initial_latent has shape {tuple(initial_latent.shape)}, expected {shape}")
    return initial_latent


def _unconditioned_state(tokens: Tensor, positions: Tensor) -> LatentState:
    """Tokens (B, T, C) as a state with every token to be denoised (mask ones) and all of them in the output."""
    return LatentState(
        latent=tokens,
        clean_latent=tokens.clone(),
        denoise_mask=torch.ones(*tokens.shape[:2], 1, dtype=torch.float32, device=tokens.device),
        positions=positions,
        num_output_tokens=tokens.shape[1],
    )


Generators = torch.Generator | list[torch.Generator] | None  # one for the batch, or one per sample


def draw_noise(like: Tensor, generator: Generators) -> Tensor:
    """Standard-normal noise shaped, typed and placed like `like` (B, ...): one `torch.randn` over the whole batch
    from one generator (the reference's draw), or sample b from generator[b] (diffusers' list form)."""
    if not isinstance(generator, list):
        return torch.randn(*like.shape, device=like.device, dtype=like.dtype, generator=generator)
    if len(generator) != like.shape[0]:
        raise ValueError(f"got {len(generator)} generators for a batch of {like.shape[0]}: pass one, or one per sample")
    return torch.stack(
        [torch.randn(*like.shape[1:], device=like.device, dtype=like.dtype, generator=g) for g in generator]
    )


def generator_seed(generator: Generators) -> int:
    """The seed of a call's generator (the first of a list; the global one's without): the reference seeds later
    draws (HDR's stage-2 tiles, DFR's temporal tiles) from it."""
    first = generator[0] if isinstance(generator, list | tuple) else generator
    return first.initial_seed() if first is not None else torch.initial_seed()


def add_noise(
    state: LatentState,
    generator: Generators,
    noise_scale: float = 1.0,
    noise: Tensor | None = None,
    reference: str = "1.2",
) -> LatentState:
    """Mix noise n into the state by its denoise mask m and `noise_scale` s (ltx-core's `GaussianNoiser`).

    reference "1.2": latent <- lerp(clean_latent, lerp(latent, n, s), m) in float32, cast to the latent's dtype (delta
    spec §5.5); "1.0": latent <- n·(m·s) + latent·(1 - m·s) in the latent's dtype mixed with float32 (spec §6.3).

    n is drawn as `torch.randn` of the token tensor's shape (B, T, C), conditioning tokens included, in the latent's
    dtype and device, from `generator` (or a list, one per sample): the same generator and call order (video, then
    audio) reproduce ltx-core. `noise` (B or 1, T, C) given: used instead of a draw (the generator is not touched).
    """
    if noise is None:
        noise = draw_noise(state.latent, generator)
    elif (
        noise.ndim != 3 or noise.shape[0] not in (1, state.latent.shape[0]) or noise.shape[1:] != state.latent.shape[1:]
    ):
        raise ValueError(f"noise has shape {tuple(noise.shape)}, expected (B, T, C) = {tuple(state.latent.shape)}")
    noise = noise.to(state.latent.device, state.latent.dtype)
    if check_reference(reference) == "1.2":
        noised = torch.lerp(state.latent.float(), noise.float(), noise_scale)
        noised = torch.lerp(state.clean_latent.float(), noised, state.denoise_mask)
        return replace(state, latent=noised.to(state.latent.dtype))
    mask = state.denoise_mask * noise_scale
    return replace(state, latent=(noise * mask + state.latent * (1 - mask)).to(state.latent.dtype))


def clear_conditioning(state: LatentState) -> LatentState:
    """Drop appended conditioning tokens and the attention mask; mask back to ones (ltx-core's `clear_conditioning`)."""
    n = state.num_output_tokens
    return LatentState(
        latent=state.latent[:, :n],
        clean_latent=state.clean_latent[:, :n],
        denoise_mask=torch.ones_like(state.denoise_mask[:, :n]),
        positions=state.positions[:, :, :n],
        num_output_tokens=n,
        frozen=state.frozen,
        keyframes_mask=None if state.keyframes_mask is None else state.keyframes_mask[:, :n],
    )


# ----------------------------------------------------------------------------------------------------------------------
# Conditioning items


def _check_strength(strength: float) -> None:
    if not isinstance(strength, int | float) or not 0.0 <= strength <= 1.0:
        raise ValueError(
            f"strength={strength!r} is outside [0, 1]: 1.0 keeps the conditioning frames clean, 0.0 lets the model "
            "replace them entirely."
        )


def _condition_tokens(state: LatentState, latent: Tensor, grid: tuple[int, int, int], what: str) -> Tensor:
    """Check a (B or 1, C, f, H', W') condition latent against the state and return its (B, f·H'·W', C) tokens."""
    if latent.ndim != 5:
        raise ValueError(f"{what}: the condition latent must be (B, C, f, H', W'), got shape {tuple(latent.shape)}")
    batch, _, channels = state.latent.shape
    if math.prod(grid) != state.num_output_tokens:
        raise ValueError(f"{what}: grid={grid} has {math.prod(grid)} tokens, the state {state.num_output_tokens}")
    if latent.shape[0] not in (1, batch) or latent.shape[1] != channels:
        raise ValueError(
            f"{what}: the condition latent has batch {latent.shape[0]} and {latent.shape[1]} channels, the video "
            f"state batch {batch} and {channels} channels"
        )
    return patchify_video(latent).to(state.latent.dtype).expand(batch, -1, -1)


def _check_video_size(latent: Tensor, grid: tuple[int, int, int], what: str) -> None:
    """Images and keyframes take the video's (H', W'); only reference videos (`append_reference`) may differ."""
    if tuple(latent.shape[-2:]) != grid[1:]:
        raise ValueError(
            f"{what}: the condition latent is {tuple(latent.shape[-2:])} (H', W'), the video {grid[1:]}. Encode the "
            "image at the video's height and width (inputs.image_to_pixels resizes and crops it)."
        )


def replace_frames(
    state: LatentState,
    latent: Tensor,
    *,
    strength: float,
    grid: tuple[int, int, int],
    latent_index: int = 0,
    reference: str = "1.2",
) -> LatentState:
    """Encoded frames replace latent frames [latent_index, latent_index + f) in place (`VideoConditionByLatentIndex`).

    state: the video state (output tokens first). latent: (B or 1, C, f, H', W') normalised VAE latent of the image /
    frames, same H', W' as the video. grid: the video's latent (F', H', W'). The replaced tokens get
    clean_latent = the condition (reference "1.0": latent too), denoise_mask = 1 - strength; positions are unchanged.
    Image-to-video uses latent_index 0 with the encoded first frame.
    """
    _check_strength(strength)
    check_reference(reference)
    tokens = _condition_tokens(state, latent, grid, "replace_frames")
    _check_video_size(latent, grid, "replace_frames")
    num_frames, height, width = grid
    if not 0 <= latent_index or latent_index + latent.shape[2] > num_frames:
        raise ValueError(
            f"replace_frames: latent frames [{latent_index}, {latent_index + latent.shape[2]}) are outside the "
            f"video's {num_frames} latent frames"
        )
    start = latent_index * height * width
    stop = start + tokens.shape[1]
    latent_tokens, clean, mask = state.latent.clone(), state.clean_latent.clone(), state.denoise_mask.clone()
    if reference == "1.0":  # 1.2.0 leaves the noisy latent (zeros, or the upsampled stage-1 latent) as it is
        latent_tokens[:, start:stop] = tokens
    clean[:, start:stop] = tokens
    mask[:, start:stop] = 1.0 - strength
    return replace(state, latent=latent_tokens, clean_latent=clean, denoise_mask=mask)


def keyframe_positions(
    batch_size: int,
    latent_frames: int,
    latent_height: int,
    latent_width: int,
    frame_index: int,
    fps: float,
    reference: str = "1.2",
) -> Tensor:
    """(B, 3, f·H'·W', 2) float32 positions of keyframe tokens placed at pixel frame `frame_index` (spec §7.2).

    The keyframe's own grid in pixels, the causal shift only when frame_index == 0, then + frame_index on the time axis
    and / fps. Reference "1.0": a single image at frame k > 0 covers [k, k + 8) / fps (spec §13.16); "1.2": a
    single-frame keyframe (f = 1) covers one pixel frame, [k, k + 1) / fps (delta spec §5.8, trap 9).
    """
    # fps=1 keeps pixel frames (exact in float32) so the offset is added before the division, as the reference does.
    causal_offset = 1 if frame_index == 0 else VIDEO_TIME_SCALE  # offset 8 = no causal shift
    positions = video_positions(
        batch_size, latent_frames, latent_height, latent_width, 1.0, causal_offset=causal_offset, dtype=torch.float32
    )
    positions[:, 0] += frame_index
    if check_reference(reference) == "1.2" and latent_frames == 1:
        positions[:, 0, :, 1] = positions[:, 0, :, 0] + 1
    positions[:, 0] /= fps
    return positions


def _append(
    state: LatentState, tokens: Tensor, positions: Tensor, strength: float, attention_strength, reference: str
) -> LatentState:
    # The reference builds the new tokens' mask in the condition latent's dtype (bf16 in its pipelines) before the
    # concatenation promotes it to float32: 1 - strength is rounded to bf16 (e.g. 0.3 -> 0.30078125).
    mask = torch.full((*tokens.shape[:2], 1), 1.0 - strength, dtype=tokens.dtype, device=tokens.device)
    # 1.2.0 leaves zeros in the noisy latent; 1.0.0 puts the condition there too
    placeholders = tokens if check_reference(reference) == "1.0" else torch.zeros_like(tokens)
    return LatentState(
        latent=torch.cat([state.latent, placeholders], dim=1),
        clean_latent=torch.cat([state.clean_latent, tokens], dim=1),
        denoise_mask=torch.cat([state.denoise_mask, mask], dim=1),
        positions=torch.cat([state.positions, positions.to(state.positions.device)], dim=2),
        num_output_tokens=state.num_output_tokens,
        attention_mask=grow_attention_mask(state, tokens.shape[1], attention_strength, dtype=tokens.dtype),
        frozen=state.frozen,
        keyframes_mask=None
        if state.keyframes_mask is None
        else torch.cat([state.keyframes_mask, state.keyframes_mask.new_zeros(*tokens.shape[:2], 1)], dim=1),
    )


def append_keyframes(
    state: LatentState,
    latent: Tensor,
    *,
    frame_index: int,
    strength: float,
    fps: float,
    grid: tuple[int, int, int],
    attention_strength: float | Tensor | None = None,
    reference: str = "1.2",
) -> LatentState:
    """Append encoded frames as keyframe tokens at pixel frame `frame_index` (`VideoConditionByKeyframeIndex`).

    latent: (B or 1, C, f, H', W') normalised VAE latent of an image (f = 1) or a short clip (8(f - 1) + 1 frames),
    same H', W' as the video. grid: the video's latent (F', H', W'). New tokens: clean_latent = the condition, latent =
    zeros (reference "1.0": the condition), denoise_mask = 1 - strength, positions `keyframe_positions`.
    attention_strength: None (full attention, or the
    existing mask padded with ones), or the weight between the new tokens and the generated ones (scalar, (M,), (1, M)
    or (B, M)); see `grow_attention_mask`.
    """
    _check_strength(strength)
    tokens = _condition_tokens(state, latent, grid, "append_keyframes")
    _check_video_size(latent, grid, "append_keyframes")
    num_frames = grid[0]
    num_pixel_frames = VIDEO_TIME_SCALE * (num_frames - 1) + 1
    keyframe_pixel_frames = VIDEO_TIME_SCALE * (latent.shape[2] - 1) + 1
    if not isinstance(frame_index, int) or frame_index < 0 or frame_index + keyframe_pixel_frames > num_pixel_frames:
        raise ValueError(
            f"append_keyframes: frame_index={frame_index!r} with {keyframe_pixel_frames} keyframe frame(s) does not "
            f"fit in the video's {num_pixel_frames} frames; use a frame index in [0, "
            f"{num_pixel_frames - keyframe_pixel_frames}]"
        )
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    positions = keyframe_positions(tokens.shape[0], *latent.shape[2:], frame_index, fps, reference)
    return _append(state, tokens, positions, strength, attention_strength, reference)


def append_reference(
    state: LatentState,
    latent: Tensor,
    *,
    fps: float,
    grid: tuple[int, int, int],
    strength: float = 1.0,
    downscale_factor: int = 1,
    attention_strength: float | Tensor | None = None,
    reference: str = "1.2",
) -> LatentState:
    """Append an IC-LoRA reference video's tokens (`VideoConditionByReferenceLatent`, spec §7.3).

    latent: (B or 1, C, f, h', w') normalised reference latent, possibly at 1/downscale_factor of the video's size.
    Positions: its own grid with the causal shift, time / fps, space x downscale_factor (the LoRA's
    `reference_downscale_factor`) so it lines up with the target grid. Noisy-latent placeholders as `append_keyframes`.
    """
    _check_strength(strength)
    tokens = _condition_tokens(state, latent, grid, "append_reference")
    if not isinstance(downscale_factor, int) or downscale_factor < 1:
        raise ValueError(f"downscale_factor must be a positive int, got {downscale_factor!r}")
    positions = video_positions(tokens.shape[0], *latent.shape[2:], fps, dtype=torch.float32)
    if downscale_factor != 1:
        positions[:, 1:] *= downscale_factor
    return _append(state, tokens, positions, strength, attention_strength, reference)


def grow_attention_mask(
    state: LatentState, num_new_tokens: int, attention_strength: float | Tensor | None, dtype: torch.dtype
) -> Tensor | None:
    """The (B, N + M, N + M) self-attention weights after appending M tokens to the N of `state` (spec §7.4, §7.5).

    Blocks: old x old = the existing mask (ones if none); new x new = 1; generated (the first num_output_tokens) <->
    new = attention_strength per new token; earlier conditioning tokens <-> new = 0. With attention_strength None:
    None when there is no mask yet (full attention everywhere), else the new rows/columns get full weight (1).
    The transformer turns the weights into log(w) biases (w = 0 blocks attention).
    """
    batch, num_existing = state.latent.shape[:2]
    device = state.latent.device
    if attention_strength is None:
        if state.attention_mask is None:
            return None
        cross = torch.ones(batch, num_new_tokens, dtype=dtype, device=device)
    else:
        cross = _cross_weights(attention_strength, batch, num_new_tokens, dtype, device)
    num_noisy, total = state.num_output_tokens, num_existing + num_new_tokens
    mask = torch.zeros(batch, total, total, dtype=dtype, device=device)
    mask[:, :num_existing, :num_existing] = 1.0 if state.attention_mask is None else state.attention_mask
    mask[:, num_existing:, num_existing:] = 1.0
    mask[:, :num_noisy, num_existing:] = cross.unsqueeze(1)
    mask[:, num_existing:, :num_noisy] = cross.unsqueeze(2)
    return mask


def _cross_weights(strength: float | Tensor, batch: int, num_new: int, dtype: torch.dtype, device) -> Tensor:
    """Scalar, (M,), (1, M) or (B, M) attention weights -> (B, M)."""
    if isinstance(strength, Tensor) and strength.ndim == 0:
        strength = float(strength)
    if isinstance(strength, int | float):
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"attention_strength={strength} is outside [0, 1] (0 blocks attention, 1 is full)")
        return torch.full((batch, num_new), float(strength), dtype=dtype, device=device)
    weights = strength.to(device=device, dtype=dtype)
    if weights.ndim == 1 and weights.shape[0] == num_new:
        return weights.unsqueeze(0).expand(batch, -1)
    if weights.ndim == 2 and weights.shape[1] == num_new and weights.shape[0] in (1, batch):
        return weights.expand(batch, -1)
    raise ValueError(
        f"attention_strength has shape {tuple(strength.shape)}; expected a scalar, ({num_new},), (1, {num_new}) or "
        f"({batch}, {num_new}) for {num_new} new tokens and batch {batch}"
    )


# ----------------------------------------------------------------------------------------------------------------------
# IC-LoRA attention masks


def mask_from_frames(frames: VideoInput, height: int, width: int, dtype: torch.dtype = torch.bfloat16) -> Tensor:
    """A mask video (any form `inputs.video_frames` takes) -> (1, 1, F, height, width) weights in [0, 1]: frames
    prepared as for conditioning (`inputs.video_to_pixels`), cast to `dtype` (bf16 in ltx-pipelines' IC-LoRA
    pipeline), grey = channel mean, mapped from [-1, 1] to [0, 1]."""
    pixels = video_to_pixels(frames, height, width, name="conditioning_attention_mask").to(dtype)
    return ((pixels.mean(dim=1, keepdim=True) + 1.0) / 2.0).clamp(0.0, 1.0)


def attention_strength_from_mask(mask: Tensor, grid: tuple[int, int, int]) -> Tensor:
    """A pixel-space (B, 1, F, H, W) weight video -> (B, f·h·w) per-token `attention_strength` for a latent grid
    (f, h, w) (the IC-LoRA pipeline's `_downsample_mask_to_latent`, spec §7.4).

    Area interpolation per frame to (h, w); the first frame kept (the causal VAE encodes it alone); the other frames
    averaged in groups of (F - 1) / (f - 1); flattened in token order (f, h, w). Multiply by a strength if wanted.
    """
    if mask.ndim != 5 or mask.shape[1] != 1:
        raise ValueError(f"mask must be (B, 1, F, H, W), got shape {tuple(mask.shape)}")
    batch, _, num_pixel_frames = mask.shape[:3]
    latent_frames, latent_height, latent_width = grid
    frames = mask.transpose(1, 2).flatten(0, 1)  # (B·F, 1, H, W)
    small = F.interpolate(frames, size=(latent_height, latent_width), mode="area")
    small = small.unflatten(0, (batch, num_pixel_frames)).squeeze(2)  # (B, F, h, w)
    if num_pixel_frames > 1 and latent_frames > 1:
        if (num_pixel_frames - 1) % (latent_frames - 1) != 0:
            raise ValueError(
                f"mask has {num_pixel_frames} frames, which do not map onto {latent_frames} latent frames: "
                f"(frames - 1) must be a multiple of {latent_frames - 1}"
            )
        group = (num_pixel_frames - 1) // (latent_frames - 1)
        rest = small[:, 1:].unflatten(1, (latent_frames - 1, group)).mean(dim=2)
        small = torch.cat([small[:, :1], rest], dim=1)
    else:
        small = small[:, :1]
    return small.flatten(1)
