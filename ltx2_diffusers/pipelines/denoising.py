"""The stages every LTX-2 pipeline shares, written once: latents in, guided Euler denoising, latents out to media.

Data flow (spec §0, §6, §7, §9):
1. `prepare_latents`: zero video/audio latents in the patchified token layout, conditions applied
   (`apply_video_conditions`: an image replaces latent frame 0, keyframes and IC-LoRA reference videos are appended
   as extra tokens), then noise drawn in token layout, video then audio, and mixed in by each token's denoise mask,
   as ltx-core's `GaussianNoiser` does. `noised_video_state` is its video half, for stages without audio noise.
2. `denoise`: a sampler (`euler_sample`, `res2s_sample`: k-diffusion's `sample(model_x0, x, sigmas, callback)`) over
   guided x0 predictions. Every guidance pass a prediction needs (conditional, negative prompt, STG-perturbed,
   modality-isolated) runs as ONE batched transformer call (`guided_x0`); per-sample `Perturbations` masks say which
   samples are perturbed. Per-token sigmas (sigma * denoise_mask) keep conditioning tokens at their clean values.
   `transformer_x0` is the only place that knows the transformer's keyword arguments (`VideoOnlyTransformer` drops
   the audio ones for a video-only stage, `denoise_video_only`).
3. `decode_video`: latents -> pixels in [-1, 1] (audio: `decoding.decode_audio`).

Tokens: video (B, F'*H'*W', 128) in (f, h, w) order; audio (B, T_a, 8*16) with features channel-major (c, mel).
Latents between stages are "normalised" (the transformer's space); decoding un-normalises with the VAEs' statistics.

`reference` ("1.2" default, "1.0") follows ltx-core 1.2.0 or 1.0.0 where they differ (docs/pipelines.md, "Reference
versions"): conditioning and noise (`conditioning.py`), the guidance arithmetic (`guidance.py`), a frozen stream's
sigma, and the transformer's audio<->video AdaLN rule (`transformer.set_reference`, where the transformer has it).
"""

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from ..models.autoencoder_kl_ltx2 import denormalize_latents
from ..models.autoencoder_kl_ltx2_audio import audio_latent_frames, pack_audio_latents
from ..models.perturbations import Perturbations
from ..schedulers.scheduling_ltx2 import ModelX0, Sampler, SamplerStream, euler_sample, x0_from_velocity
from .conditioning import (
    VIDEO_TIME_SCALE,
    Generators,
    LatentState,
    add_noise,
    append_keyframes,
    append_reference,
    audio_latent_state,
    empty_audio_state,
    patchify_video,
    replace_frames,
    video_latent_state,
    video_positions_dtype,
)
from .guidance import GuidancePlan, GuidanceScales, GuidanceSchedule, guidance_at, plan_guidance
from .presets import DEFAULT_REFERENCE, check_reference
from .validation import check_generator as check_generator_argument

# ----------------------------------------------------------------------------------------------------------------------
# Shapes and checks


def latent_grid(height: int, width: int, num_frames: int) -> tuple[int, int, int]:
    """The video latent grid (F', H', W') of an 8k + 1-frame clip: 8x in time after the first frame, 32x in space."""
    return (num_frames - 1) // VIDEO_TIME_SCALE + 1, height // 32, width // 32


# ----------------------------------------------------------------------------------------------------------------------
# Latent state


@dataclass(frozen=True)
class VideoCondition:
    """Encoded frames that condition generation: `latent` (B or 1, 128, f, H', W'), normalised, at `frame_index`.

    frame_index: pixel frame. 0 replaces the first latent frame(s) in place (image-to-video); any other index appends
    the frames as keyframe tokens positioned at that pixel frame (spec §7.1, §7.2; 1.0.0's `combined_image_conditionings`).
    strength: 1.0 keeps the frames clean; lower values let the model change them.
    append: True appends the frames as guiding tokens at `frame_index` even when it is 0 (ltx-core's
    `VideoConditionByKeyframeIndex` for every keyframe, as the reference's keyframe interpolation pipeline does, spec
    §7.2); `condition_encoding.encode_keyframes` sets it.
    """

    latent: Tensor
    frame_index: int = 0
    strength: float = 1.0
    append: bool = False


@dataclass(frozen=True)
class ReferenceCondition:
    """An IC-LoRA reference video: `latent` (B or 1, 128, f, h', w'), normalised, appended as tokens of its own grid
    after the image conditions (spec §7.3, `append_reference`).

    downscale_factor: the LoRA's `reference_downscale_factor` (the reference was encoded at 1/factor of the size).
    attention_strength: None (full attention) or the weight between the reference tokens and the generated ones,
    a scalar or per reference token (f*h'*w',) / (B, f*h'*w') (spec §7.4).
    """

    latent: Tensor
    strength: float = 1.0
    downscale_factor: int = 1
    attention_strength: float | Tensor | None = None


def check_generator(generator: Generators, batch_size: int, device: torch.device) -> None:
    """One torch.Generator (the whole batch's noise from it, in the reference's order) or a list of one per sample
    (`validation.check_generator`), on the device where the latents are made."""
    check_generator_argument(generator, batch_size)
    for g in generator if isinstance(generator, list | tuple) else [generator]:
        if g is not None and torch.device(g.device).type != torch.device(device).type:
            raise ValueError(
                f"the generator is on {g.device} but the latents are made on {device}: noise is drawn where the "
                f"latents live, as the reference does. Pass torch.Generator(device={str(device)!r}).manual_seed(seed)."
            )


def _tokens_of(latents: Tensor | None, ndim: int, what: str) -> Tensor | None:
    """User latents (B, C, F', H', W') video / (B, C, T, mel) audio -> tokens (B, T, C'), or None."""
    if latents is None:
        return None
    if latents.ndim != ndim:
        layout = "(B, C, F', H', W')" if ndim == 5 else "(B, C, T_a, mel_bins)"
        raise ValueError(f"{what} must be {layout}, got shape {tuple(latents.shape)}")
    return patchify_video(latents) if ndim == 5 else pack_audio_latents(latents)


def apply_video_conditions(
    video: LatentState,
    conditions: Sequence[VideoCondition | ReferenceCondition],
    *,
    grid: tuple[int, int, int],
    fps: float,
    reference: str = DEFAULT_REFERENCE,
) -> LatentState:
    """The conditions applied to a video state on `grid` (F', H', W'), in order: a `VideoCondition` at frame 0
    replaces the first latent frame(s) (`replace_frames`), one elsewhere (or with `append`) is appended as keyframe
    tokens (`append_keyframes`), a `ReferenceCondition` appends its reference video (`append_reference`)."""
    for cond in conditions:
        if isinstance(cond, ReferenceCondition):
            video = append_reference(
                video,
                cond.latent,
                fps=fps,
                grid=grid,
                strength=cond.strength,
                downscale_factor=cond.downscale_factor,
                attention_strength=cond.attention_strength,
                reference=reference,
            )
        elif cond.frame_index == 0 and not cond.append:
            video = replace_frames(video, cond.latent, strength=cond.strength, grid=grid, reference=reference)
        else:
            video = append_keyframes(
                video,
                cond.latent,
                frame_index=cond.frame_index,
                strength=cond.strength,
                fps=fps,
                grid=grid,
                reference=reference,
            )
    return video


def noised_video_state(
    batch_size: int,
    grid: tuple[int, int, int],
    frame_rate: float,
    *,
    generator: Generators,
    device: torch.device,
    dtype: torch.dtype,
    conditions: Sequence[VideoCondition | ReferenceCondition] = (),
    num_channels: int = 128,
    noise_scale: float = 1.0,
    initial_latent: Tensor | None = None,
    noise: Tensor | None = None,
    reference: str = DEFAULT_REFERENCE,
) -> LatentState:
    """A stage's starting video state on `grid` (F', H', W'): `initial_latent` (B, C, F', H', W'), normalised (zeros
    without), the conditions applied (`apply_video_conditions`), then noised to `noise_scale` by the denoise mask
    from `generator` (`conditioning.add_noise`). Positions stay float32 under "1.2", in `dtype` under "1.0"
    (`video_positions_dtype`). noise: (B or 1, C, F', H', W'), used instead of a draw (appended condition tokens get
    zero noise)."""
    check_generator(generator, batch_size, device)
    video = video_latent_state(
        batch_size,
        *grid,
        frame_rate,
        num_channels=num_channels,
        dtype=dtype,
        device=device,
        initial_latent=None if initial_latent is None else initial_latent.to(device, dtype),
        positions_dtype=video_positions_dtype(dtype, reference),
    )
    video = apply_video_conditions(video, conditions, grid=grid, fps=frame_rate, reference=reference)
    noise = _tokens_of(noise, 5, "latents")
    if noise is not None and video.latent.shape[1] > noise.shape[1]:  # appended tokens: no noise needed
        extra = video.latent.shape[1] - noise.shape[1]
        noise = torch.cat([noise, noise.new_zeros(noise.shape[0], extra, noise.shape[2])], 1)
        noise = noise.expand(batch_size, -1, -1)
    return add_noise(video, generator, noise_scale, noise, reference)


def prepare_latents(
    batch_size: int,
    height: int,
    width: int,
    num_frames: int,
    frame_rate: float,
    *,
    generator: Generators,
    device: torch.device,
    dtype: torch.dtype,
    conditions: Sequence[VideoCondition | ReferenceCondition] = (),
    video_channels: int = 128,
    audio_channels: int = 8,
    audio_mel_bins: int = 16,
    noise_scale: float = 1.0,
    initial_video_latent: Tensor | None = None,
    initial_audio_latent: Tensor | None = None,
    video_noise: Tensor | None = None,
    audio_noise: Tensor | None = None,
    freeze_audio: bool = False,
    reference: str = DEFAULT_REFERENCE,
) -> tuple[LatentState, LatentState]:
    """Noised starting states: video (B, F'H'W' [+ keyframe tokens], 128) and audio (B, T_a, 8*16) tokens.

    Zeros (or the initial latents), then the conditions, then noise by the denoise masks; video first, then audio,
    from the same generator (the reference's draw order, spec §9; a list: one generator per sample). Video positions
    stay float32 under "1.2" and are rounded to `dtype` under "1.0", as each release does (`video_positions_dtype`).
    A refinement stage passes normalised `initial_video_latent` (B, C, F', H', W') and `initial_audio_latent`
    (B, C_a, T_a, mel) with `noise_scale` < 1:
    x = n * s + x0 * (1 - s) per token. Per-modality behaviour is data:
    - video_noise / audio_noise: the noise itself ((B or 1, C, F', H', W') / (B or 1, C_a, T_a, mel), the pipelines'
      `latents=` / `audio_latents=`), used instead of a draw (appended conditioning tokens get zero noise).
    - freeze_audio: the audio stays the clean `initial_audio_latent` (denoise mask 0) through every step. Its noise
      is drawn all the same and discarded: ltx-pipelines' `denoise_video_only` draws it at scale 0, and the draw moves
      the generator on for every later draw. The state is marked `frozen`.
    reference: "1.2" or "1.0", the ltx-core release whose conditioning and noiser to follow (module docstring).
    """
    check_reference(reference)
    video = noised_video_state(
        batch_size,
        latent_grid(height, width, num_frames),
        frame_rate,
        generator=generator,
        device=device,
        dtype=dtype,
        conditions=conditions,
        num_channels=video_channels,
        noise_scale=noise_scale,
        initial_latent=initial_video_latent,
        noise=video_noise,
        reference=reference,
    )
    audio = audio_latent_state(
        batch_size,
        audio_latent_frames(num_frames, frame_rate),
        num_channels=audio_channels,
        num_mel_bins=audio_mel_bins,
        dtype=dtype,
        device=device,
        initial_latent=None if initial_audio_latent is None else initial_audio_latent.to(device, dtype),
    )
    noised_audio = add_noise(audio, generator, noise_scale, _tokens_of(audio_noise, 4, "audio_latents"), reference)
    if freeze_audio:
        if initial_audio_latent is None:
            raise ValueError("freeze_audio keeps the initial audio latent clean: pass initial_audio_latent")
        return video, replace(audio, denoise_mask=torch.zeros_like(audio.denoise_mask), frozen=True)
    return video, noised_audio


# ----------------------------------------------------------------------------------------------------------------------
# Guided denoising


@dataclass(frozen=True)
class TextContexts:
    """Connector outputs for the transformer: video (B, S, D_v) and audio (B, S, D_a), positive and negative.

    The negative contexts are needed only when a classifier-free guidance scale differs from 1.
    """

    video: Tensor
    audio: Tensor
    negative_video: Tensor | None = None
    negative_audio: Tensor | None = None


def transformer_x0(
    transformer: torch.nn.Module,
    video: LatentState,
    audio: LatentState,
    video_context: Tensor,
    audio_context: Tensor,
    sigma: Tensor,
    perturbations: Perturbations | None = None,
    reference: str = DEFAULT_REFERENCE,
) -> tuple[Tensor, Tensor]:
    """x0 predictions of one transformer call: x0 = x - v * sigma * mask per token (ltx-core's `X0Model`).

    video, audio: states whose batch matches the contexts' (N, S, D). sigma: 0-dim float32, the step's noise level.
    reference "1.2": a `frozen` stream's step sigma is 0 (its prompt AdaLN and the partner's A<->V gate see 0, delta
    spec §5.2); "1.0": every stream gets the step's sigma. A transformer built with `use_keyframes_abs_pos_embedding`
    (LTX-2.5) also gets the video state's `keyframes_mask` as `video_keyframes_mask`.
    Returns video (N, T_v, C) and audio (N, T_a, C') x0 in the latents' dtype.
    """
    video_sigma, audio_sigma = video.denoise_mask * sigma, audio.denoise_mask * sigma  # (N, T, 1) float32
    scale = transformer.config.timestep_scale_multiplier  # the transformer takes timesteps = 1000 * sigma
    step_timestep = (sigma * scale).expand(video.latent.shape[0])
    frozen_timestep = torch.zeros_like(step_timestep)
    video_step = frozen_timestep if video.frozen and reference == "1.2" else step_timestep
    audio_step = frozen_timestep if audio.frozen and reference == "1.2" else step_timestep
    # LTX-2.5 (diffusers' `use_keyframes_abs_pos_embedding`): its keyframe embedding goes on the marked tokens
    keyframes = {}
    if getattr(transformer.config, "use_keyframes_abs_pos_embedding", False):
        keyframes["video_keyframes_mask"] = video.keyframes_mask
    video_velocity, audio_velocity = transformer(
        hidden_states=video.latent,
        audio_hidden_states=audio.latent,
        encoder_hidden_states=video_context,
        audio_encoder_hidden_states=audio_context,
        timestep=(video_sigma * scale).squeeze(-1),
        audio_timestep=(audio_sigma * scale).squeeze(-1),
        sigma=video_step,
        audio_sigma=audio_step,
        video_coords=video.positions,
        audio_coords=audio.positions,
        video_self_attention_mask=video.attention_mask,  # (N, T_v, T_v) weights, only with attention-strength items
        use_cross_timestep=True,  # the reference's A<->V AdaLN inputs (spec §13.6); 1.0 vs 1.2: `set_reference`
        perturbations=perturbations,
        return_dict=False,
        **keyframes,
    )
    return (
        x0_from_velocity(video.latent, video_velocity, video_sigma),
        x0_from_velocity(audio.latent, audio_velocity, audio_sigma),
    )


class VideoOnlyTransformer:
    """The audio-video transformer without audio, for `denoise`: called with an EMPTY audio stream (0 tokens,
    `conditioning.empty_audio_state`), it runs with `audio_hidden_states=None`, so each block is the video stream's
    self-attention, text cross-attention and feed-forward only (the reference's stages with `audio=None`). `config` is
    the transformer's."""

    def __init__(self, transformer: torch.nn.Module):
        self.transformer = transformer
        self.config = transformer.config

    def __call__(self, *, audio_hidden_states: Tensor, **kwargs) -> tuple[Tensor, Tensor]:
        if audio_hidden_states.shape[1] != 0:
            raise ValueError(
                f"VideoOnlyTransformer runs without audio, but got {audio_hidden_states.shape[1]} audio tokens: pass "
                "an empty audio state (`empty_audio_state`)"
            )
        for name in ("audio_encoder_hidden_states", "audio_timestep", "audio_sigma", "audio_coords"):
            kwargs.pop(name, None)
        video_velocity, _ = self.transformer(audio_hidden_states=None, **kwargs)
        return video_velocity, audio_hidden_states  # the empty audio stream's "velocity": (B, 0, C)


def _repeated(state: LatentState, plan: GuidancePlan) -> LatentState:
    return replace(
        state,
        latent=plan.repeat(state.latent),
        clean_latent=plan.repeat(state.clean_latent),
        denoise_mask=plan.repeat(state.denoise_mask),
        positions=plan.repeat(state.positions),
        attention_mask=None if state.attention_mask is None else plan.repeat(state.attention_mask),
        keyframes_mask=None if state.keyframes_mask is None else plan.repeat(state.keyframes_mask),
    )


def guided_x0(
    transformer: torch.nn.Module,
    video: LatentState,
    audio: LatentState,
    contexts: TextContexts,
    sigma: Tensor,
    plan: GuidancePlan,
    video_guidance: GuidanceScales,
    audio_guidance: GuidanceScales,
    reference: str = DEFAULT_REFERENCE,
    with_uncond: bool = False,
) -> tuple[Tensor, ...]:
    """Guided video and audio x0 at `sigma`: every pass of `plan` in ONE transformer call, then per-modality guidance.

    Equal to running the passes as separate calls (ltx-pipelines' `multi_modal_guider_denoising_func`), up to kernel
    differences between batch sizes. with_uncond: also the unconditional pass's raw video and audio x0, after the
    guided ones (CFG++ steps along them).
    """
    video_x0, audio_x0 = transformer_x0(
        transformer,
        _repeated(video, plan),
        _repeated(audio, plan),
        plan.contexts(contexts.video, contexts.negative_video),
        plan.contexts(contexts.audio, contexts.negative_audio),
        sigma,
        plan.perturbations,
        reference,
    )
    guided = plan.guide(video_x0, video_guidance, reference), plan.guide(audio_x0, audio_guidance, reference)
    if not with_uncond:
        return guided
    if "uncond" not in plan.passes:
        raise ValueError(
            "the sampler (CFG++) steps along the unconditional prediction, which runs only when a guidance scale has "
            "cfg != 1: pass GuidanceScales(cfg=...) with cfg != 1"
        )
    return (*guided, video_x0[plan.samples_of("uncond")], audio_x0[plan.samples_of("uncond")])


def guided_model(
    transformer: torch.nn.Module,
    video: LatentState,
    audio: LatentState,
    contexts: TextContexts,
    video_guidance: GuidanceScales | GuidanceSchedule,
    audio_guidance: GuidanceScales | GuidanceSchedule,
    reference: str = DEFAULT_REFERENCE,
) -> ModelX0:
    """The sampler's model: model_x0((video, audio) samples, sigma) -> guided (video, audio) x0 (`guided_x0`).

    Guidance is looked up by sigma. The k-th call is prediction k: a `skip_step` prediction reuses the previous guided
    x0 without a transformer call (one prediction per step, so only the Euler sampler may skip).
    """
    batch_size, device = video.latent.shape[0], video.latent.device
    calls, last_x0 = 0, None

    def model_x0(samples: tuple[Tensor, ...], sigma: float, with_uncond: bool = False) -> tuple[Tensor, ...]:
        nonlocal calls, last_x0
        video_scales, audio_scales = guidance_at(video_guidance, sigma), guidance_at(audio_guidance, sigma)
        plan = plan_guidance(video_scales, audio_scales, calls, batch_size, device)
        calls += 1
        if plan.passes:
            step_video, step_audio = replace(video, latent=samples[0]), replace(audio, latent=samples[1])
            sigma_tensor = torch.tensor(sigma, dtype=torch.float32, device=device)
            last_x0 = guided_x0(
                transformer,
                step_video,
                step_audio,
                contexts,
                sigma_tensor,
                plan,
                video_scales,
                audio_scales,
                reference,
                with_uncond,
            )
        elif last_x0 is None:
            raise ValueError(f"step {calls - 1} reuses the previous guided prediction (skip_step) but none exists yet")
        return last_x0

    return model_x0


StepCallback = Callable[[int, float, dict[str, Tensor]], dict[str, Tensor] | None]


def _all_scales(guidance: GuidanceScales | GuidanceSchedule) -> tuple[GuidanceScales, ...]:
    return tuple(s for _, s in guidance.bins) if isinstance(guidance, GuidanceSchedule) else (guidance,)


def denoise(
    transformer: torch.nn.Module,
    video: LatentState,
    audio: LatentState,
    contexts: TextContexts,
    sigmas: Tensor | Sequence[float],
    video_guidance: GuidanceScales | GuidanceSchedule,
    audio_guidance: GuidanceScales | GuidanceSchedule,
    *,
    sampler: Sampler = euler_sample,
    progress_bar: Callable[..., Any] | None = None,
    callback: StepCallback | None = None,
    reference: str = DEFAULT_REFERENCE,
) -> tuple[LatentState, LatentState]:
    """Denoise video and audio from sigmas[0] to sigmas[-1] with `sampler` on guided x0 predictions.

    sampler: `euler_sample` (ltx-pipelines' `euler_denoising_loop`) or `res2s_sample` (its
    `res2s_audio_video_denoising_loop`), with `multi_modal_guider_denoising_func` (neutral scales: its
    `simple_denoising_func`), every pass of a prediction in one transformer call.
    sigmas: (N + 1,) float32. video_guidance / audio_guidance: constant `GuidanceScales` or a sigma-binned
    `GuidanceSchedule`. progress_bar: a context-manager factory called as `progress_bar(total=N)` (the pipeline's).
    callback(step_index, sigma, {"video_latents": (B, T_v, C), "audio_latents": (B, T_a, C')}) after each step may
    return a dict with replacements for those tensors. reference: "1.2" or "1.0" (module docstring); a transformer
    with `set_reference` is switched to it first. Returns the final states.
    """
    check_reference(reference)
    if hasattr(transformer, "set_reference"):  # the audio<->video AdaLN rule lives in the transformer
        transformer.set_reference(reference)
    if sampler is not euler_sample and any(
        s.skip_step for g in (video_guidance, audio_guidance) for s in _all_scales(g)
    ):
        raise ValueError(
            f"skip_step needs the Euler sampler (one prediction per step); {getattr(sampler, '__name__', sampler)} "
            "makes several per step, each guided: pass GuidanceScales with skip_step=0"
        )
    sigmas = torch.as_tensor(sigmas, dtype=torch.float32).cpu()  # read as host floats: no device sync in the loop
    model_x0 = guided_model(transformer, video, audio, contexts, video_guidance, audio_guidance, reference)
    streams = [SamplerStream(s.latent, s.denoise_mask, s.clean_latent) for s in (video, audio)]
    with progress_bar(total=len(sigmas) - 1) if progress_bar is not None else nullcontext() as progress:

        def after_step(i: int, sigma: float, samples: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
            if callback is not None:
                changed = callback(i, sigma, {"video_latents": samples[0], "audio_latents": samples[1]}) or {}
                samples = (changed.get("video_latents", samples[0]), changed.get("audio_latents", samples[1]))
            if progress is not None:
                progress.update()
            return samples

        video_out, audio_out = sampler(model_x0, streams, sigmas, after_step)
    return replace(video, latent=video_out), replace(audio, latent=audio_out)


def denoise_video_only(
    transformer: torch.nn.Module,
    video: LatentState,
    contexts: TextContexts,
    sigmas: Tensor | Sequence[float],
    *,
    sampler: Sampler = euler_sample,
    progress_bar: Callable[..., Any] | None = None,
    callback: StepCallback | None = None,
    reference: str = DEFAULT_REFERENCE,
) -> LatentState:
    """A stage of the reference with `audio=None`: `sampler` over `sigmas`, one positive pass per step (its
    `SimpleDenoiser(video_context, None)`), the transformer run video-only (`VideoOnlyTransformer` on an empty audio
    stream: no audio tokens, no audio noise drawn). callback(step, sigma, {"video_latents": ...}) as `denoise`'s."""
    batch_size, device = video.latent.shape[0], video.latent.device
    no_audio = empty_audio_state(batch_size, transformer.config.audio_in_channels, video.latent.dtype, device)
    neutral = GuidanceScales()  # cfg 1, no STG, no modality guidance: the plan runs the positive pass only

    def video_callback(i: int, sigma: float, tensors: dict[str, Tensor]) -> dict[str, Tensor] | None:
        return None if callback is None else callback(i, sigma, {"video_latents": tensors["video_latents"]})

    video, _ = denoise(
        VideoOnlyTransformer(transformer), video, no_audio, contexts, sigmas, neutral, neutral, sampler=sampler,
        progress_bar=progress_bar, callback=video_callback, reference=reference,
    )  # fmt: skip
    return video


# ----------------------------------------------------------------------------------------------------------------------
# Decoding


def decode_video(vae: torch.nn.Module, latents: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Normalised video latents (B, 128, F', H', W') -> pixels (B, 3, 8(F'-1)+1, 32H', 32W') float in about [-1, 1].

    Un-normalised with the VAE's per-channel statistics, as ltx-core's decoder does inside. Tiling follows the VAE's
    own switch (`vae.enable_tiling()`). generator: only for decoders with noise injection (no released one has it).
    """
    latents = denormalize_latents(latents, vae.latents_mean, vae.latents_std).to(vae.dtype)
    return vae.decode(latents, return_dict=False, generator=generator)[0]
