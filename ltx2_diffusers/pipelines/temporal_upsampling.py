"""The temporal x2 latent upsampling stage (ltx-pipelines 1.2.0's `VideoUpsampler` with the temporal upscaler): a
clip's latent (B, C, F', H', W') becomes (B, C, 2F' - 1, H', W'), the latent of 2(N - 1) + 1 frames at twice the frame
rate. The upsampler works on raw VAE latents, so the normalised latent is un-normalised around it with the video
VAE's statistics, as for the spatial upsamplers (`models.latent_upsampler.upsample_latents`).

Used by the DFR pipeline's temporal rounds and by the two-stage pipeline's `temporal_upsample=True`
(`refine_doubled_in_time`: stage 2 of a clip doubled in time, its soundtrack kept at its own length).
"""

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..models.autoencoder_kl_ltx2_audio import unpack_audio_latents
from ..models.latent_upsampler import upsample_latents
from .conditioning import Generators, LatentState, add_noise, audio_latent_state, unpatchify_video
from .denoising import StepCallback, TextContexts, VideoCondition, denoise, noised_video_state
from .guidance import GuidanceScales
from .presets import DEFAULT_REFERENCE
from .refinement import check_refinement_latents
from .validation import check_work, estimate_work


def check_temporal_upsampler(upsampler: torch.nn.Module | None, what: str = "temporal_upsampler") -> None:
    """An `LTX2LatentUpsamplerModel` that doubles frames and keeps the size (the released
    ltx-2.5-latent-temporal-upscaler-x2), else ValueError saying what to load."""
    if upsampler is None:
        raise ValueError(
            f"this call needs a {what} and the pipeline has none. Load the temporal x2 upsampler, e.g. "
            "LTX2LatentUpsamplerModel.from_single_file('ltx-2.5-latent-temporal-upscaler-x2-bf16-1.0.safetensors'), "
            f"and pass {what}= to the constructor."
        )
    config = getattr(upsampler, "config", None)
    if config is None or not config.temporal_upsample or config.spatial_upsample:
        scales = (
            "unknown" if config is None else f"temporal={config.temporal_upsample}, spatial={config.spatial_upsample}"
        )
        raise ValueError(
            f"the {what} must upsample in time only (temporal_upsample=True, spatial_upsample=False), got {scales}: "
            "pass the temporal x2 upsampler, not a spatial one."
        )


def upsample_in_time(upsampler: torch.nn.Module, latents: Tensor, latents_mean: Tensor, latents_std: Tensor) -> Tensor:
    """Normalised video latents (B, C, F', H', W') -> (B, C, 2F' - 1, H', W'), normalised, in the latents' dtype.

    latents_mean / latents_std: the video VAE's per-channel statistics (C,). The first latent frame holds one pixel
    frame, so F' latent frames of 8(F' - 1) + 1 pixel frames become 2F' - 1 of 16(F' - 1) + 1."""
    check_temporal_upsampler(upsampler)
    if latents.ndim != 5:
        raise ValueError(f"upsample_in_time takes video latents (B, C, F', H', W'), got shape {tuple(latents.shape)}")
    upsampled = upsample_latents(upsampler, latents, latents_mean, latents_std)
    expected = (*latents.shape[:2], 2 * latents.shape[2] - 1, *latents.shape[3:])
    if tuple(upsampled.shape) != expected:
        raise ValueError(f"the temporal upsampler returned shape {tuple(upsampled.shape)}, expected {expected}")
    return upsampled.to(latents.dtype)


def check_temporal_upsample(
    temporal_upsample: object,
    upsampler: torch.nn.Module | None,
    height: int,
    width: int,
    num_frames: int,
    frame_rate: float,
    batch_size: int,
    *,
    allow_large: bool = False,
    unplanned: bool = False,
) -> None:
    """What a two-stage call with `temporal_upsample` needs before any work (sizes already checked): a bool; when
    True, a temporal-only upsampler (`check_temporal_upsampler`) that an enabled memory budget placed (`unplanned`:
    the budget's plan has none, it was added after `enable_memory_budget`), and the doubled clip within the size
    guard."""
    if not isinstance(temporal_upsample, bool):
        raise TypeError(f"temporal_upsample must be True or False, got {temporal_upsample!r}")
    if not temporal_upsample:
        return
    check_temporal_upsampler(upsampler)
    check_temporal_upsampler_planned(unplanned)
    work = estimate_work(height, width, doubled_num_frames(num_frames), 2 * frame_rate, batch_size)
    check_work(work, allow_large)


def check_temporal_upsampler_planned(unplanned: bool) -> None:
    """`unplanned`: a memory budget is enabled and its plan has no temporal_upsampler (it was added after
    `enable_memory_budget`, so it would stay where it was), else nothing to refuse."""
    if unplanned:
        raise ValueError(
            "the temporal_upsampler was added after enable_memory_budget, so the memory plan does not place it: call "
            "pipe.disable_memory_budget(to='cpu'), then pipe.enable_memory_budget(...) again"
        )


def doubled_num_frames(num_frames: int) -> int:
    """Pixel frames of an N-frame clip doubled in time: 2(N - 1) + 1 (one new frame between every two)."""
    return 2 * (num_frames - 1) + 1


def keyframes_in_doubled_clip(keyframes: Sequence[tuple[object, int, float]]) -> list[tuple[object, int, float]]:
    """(image, frame, strength) keyframes of an N-frame clip at their frames of the doubled clip: pixel frame k is
    frame 2k there (the same time, k / fps = 2k / 2fps), so frame N - 1 lands on the doubled clip's last, 2N - 2."""
    return [(image, 2 * frame, strength) for image, frame, strength in keyframes]


def doubled_clip_states(
    video_latents: Tensor,
    audio_latents: Tensor,
    *,
    frame_rate: float,
    noise_scale: float,
    generator: Generators,
    dtype: torch.dtype,
    conditions: Sequence[VideoCondition] = (),
    reference: str = DEFAULT_REFERENCE,
) -> tuple[LatentState, LatentState]:
    """The re-noised states of a refinement stage over a clip doubled in time (`prepare_latents` for a refinement,
    except that the audio keeps its own length: 2N - 1 frames at 2 fps last half a frame less than N at fps, which can
    round to one audio latent frame less).

    video_latents: (B, C, F'', H', W') the doubled latent, positioned at `frame_rate` (the doubled rate), with the
    `conditions` (frame indices of the doubled clip; frame 0 replaces the first latent frame, others are appended as
    keyframe tokens); audio_latents: (B or 1, C_a, T_a, mel) as they are. Both are noised to `noise_scale` from
    `generator`, video noise first."""
    batch_size, channels, latent_frames, latent_height, latent_width = video_latents.shape
    grid, device = (latent_frames, latent_height, latent_width), video_latents.device
    video = noised_video_state(
        batch_size, grid, frame_rate, generator=generator, device=device, dtype=dtype, conditions=conditions,
        num_channels=channels, noise_scale=noise_scale, initial_latent=video_latents, reference=reference,
    )  # fmt: skip
    audio = audio_latent_state(
        batch_size, audio_latents.shape[2], num_channels=audio_latents.shape[1], num_mel_bins=audio_latents.shape[3],
        dtype=dtype, device=device, initial_latent=audio_latents.to(device, dtype).expand(batch_size, -1, -1, -1),
    )  # fmt: skip
    return video, add_noise(audio, generator, noise_scale, reference=reference)


def refine_doubled_in_time(
    transformer: torch.nn.Module,
    latent_upsampler: torch.nn.Module,
    video_latents: Tensor,
    audio_latents: Tensor,
    contexts: TextContexts,
    *,
    temporal_upsampler: torch.nn.Module,
    latents_mean: Tensor,
    latents_std: Tensor,
    frame_rate: float,
    sigmas: Tensor | Sequence[float],
    generator: Generators,
    conditions: Sequence[VideoCondition] = (),
    progress_bar: Callable | None = None,
    callback: StepCallback | None = None,
    reference: str = DEFAULT_REFERENCE,
) -> tuple[Tensor, Tensor]:
    """Stage 2 of the two-stage pipeline with `temporal_upsample=True`: `refine_latents` on a clip doubled in time.

    video_latents: (B, C, F', H', W') normalised stage-1 latents of N = 8(F' - 1) + 1 frames at `frame_rate`;
    audio_latents: (B, C_a, T_a, mel). The video latent is upsampled in space (x2 or x1.5), then in time
    (`upsample_in_time`: 2F' - 1 latent frames, 2(N - 1) + 1 pixel frames), positioned at 2 * frame_rate; the audio
    keeps its T_a latent frames (same duration). Both are re-noised to sigmas[0] (video noise first) and denoised
    with Euler over one positive pass per step, as `refine_latents`. conditions: encoded at the full size, frame
    indices of the DOUBLED clip (`keyframes_in_doubled_clip`). Returns video (B, C, 2F' - 1, s H', s W') and audio
    (B, C_a, T_a, mel) latents, normalised, in the transformer's dtype."""
    check_refinement_latents(video_latents, audio_latents)
    sigmas = torch.as_tensor(sigmas, dtype=torch.float32).cpu()
    enlarged = upsample_latents(latent_upsampler, video_latents, latents_mean, latents_std)
    doubled = upsample_in_time(temporal_upsampler, enlarged, latents_mean, latents_std)
    video, audio = doubled_clip_states(
        doubled, audio_latents, frame_rate=2 * frame_rate, noise_scale=float(sigmas[0]), generator=generator,
        dtype=transformer.dtype, conditions=conditions, reference=reference,
    )  # fmt: skip
    neutral = GuidanceScales()  # cfg 1, no STG, no modality guidance: the positive pass only
    video, audio = denoise(
        transformer, video, audio, TextContexts(contexts.video, contexts.audio), sigmas, neutral, neutral,
        progress_bar=progress_bar, callback=callback, reference=reference,
    )  # fmt: skip
    return (
        unpatchify_video(video.output_tokens(), *doubled.shape[2:]),
        unpack_audio_latents(audio.output_tokens(), audio_latents.shape[1]),
    )
