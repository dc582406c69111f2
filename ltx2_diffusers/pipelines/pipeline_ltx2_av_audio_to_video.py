"""LTX2AVAudioToVideoPipeline: a prompt and a soundtrack -> a video that follows the soundtrack (spec §9).

ltx-pipelines 1.0.0's `A2VidPipelineTwoStage` in diffusers' shape:
1. The audio (a file, or a waveform with its sample rate) is cut to [audio_start_time, + audio_max_duration] (the
   reference CLI's default duration: the video's, num_frames / frame_rate), encoded by the audio VAE (16 kHz log-mel,
   posterior mean, normalised) and trimmed to round(num_frames / frame_rate * 25) latent frames.
2. Stage 1 at (H/2, W/2) and stage 2 (x2 latent upsampling, 3 distilled steps, optional stage-2 adapter) as in
   `LTX2AVTwoStagePipeline`, but denoising the VIDEO only: the audio tokens are the clean encoded latent with denoise
   mask 0 in both stages (the transformer sees them at sigma 0 and the Euler step leaves them unchanged). Stage 1 is
   guided on video with the caller's (or the model version's) video guidance; audio guidance is neutral.
3. Only the video is decoded: the returned soundtrack is the ORIGINAL input waveform (after the time window), at its
   own sample rate, as the reference returns it instead of a VAE round trip.

Noise comes from one generator in the reference's order: stage-1 video, stage-1 audio, stage-2 video, stage-2 audio.
The reference draws the audio noise too, at scale 0 (`denoise_video_only`), so the draws are kept to keep the stage-2
video noise identical.
"""

import os
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import torch
from torch import Tensor

from ..models.autoencoder_kl_ltx2_audio import audio_latent_frames, unpack_audio_latents
from ..models.latent_upsampler import upsample_latents
from ..schedulers.scheduling_ltx2 import STAGE_2_DISTILLED_SIGMAS
from ..utils.media import load_audio
from .conditioning import DEFAULT_IMAGE_CRF, LatentState, unpatchify_video
from .denoising import StepCallback, TextContexts, VideoCondition, decode_video, guided_denoise, prepare_latents
from .guidance import GuidanceScales, GuidanceSchedule
from .pipeline_ltx2_av import ImageInput, _needs_uncond, _postprocess_frames, _repeat_contexts
from .pipeline_ltx2_av_two_stage import LTX2AVTwoStagePipeline, StageAdapters, _half_size
from .pipeline_output import LTX2PipelineOutput

AudioInput = str | os.PathLike | Tensor | np.ndarray


def prepare_audio_conditioned_latents(
    audio_latents: Tensor,
    height: int,
    width: int,
    num_frames: int,
    frame_rate: float,
    *,
    batch_size: int,
    generator: torch.Generator | None,
    device: torch.device,
    dtype: torch.dtype,
    conditions: Sequence[VideoCondition] = (),
    video_channels: int = 128,
    noise_scale: float = 1.0,
    initial_video_latent: Tensor | None = None,
) -> tuple[LatentState, LatentState]:
    """Starting states of a video-only denoising pass: noised video tokens and CLEAN audio tokens with mask 0.

    audio_latents: (1 or B, C_a, T_a, mel) normalised, T_a = `audio_latent_frames(num_frames, frame_rate)`.
    Video as `prepare_latents` (zeros or `initial_video_latent`, conditions, noise at `noise_scale`). The audio noise
    is drawn and discarded: ltx-pipelines' `denoise_video_only` draws it at scale 0, and the draw moves the generator
    on for every later draw. Returns video (B, T_v, C) and audio (B, T_a, C_a * mel) states.
    """
    if audio_latents.ndim != 4 or audio_latents.shape[0] not in (1, batch_size):
        raise ValueError(
            f"audio_latents must be (1 or {batch_size}, channels, frames, mel_bins), got {tuple(audio_latents.shape)}"
        )
    audio_latents = audio_latents.expand(batch_size, -1, -1, -1)
    video, noised_audio = prepare_latents(
        batch_size,
        height,
        width,
        num_frames,
        frame_rate,
        generator=generator,
        device=device,
        dtype=dtype,
        conditions=conditions,
        video_channels=video_channels,
        audio_channels=audio_latents.shape[1],
        audio_mel_bins=audio_latents.shape[3],
        noise_scale=noise_scale,
        initial_video_latent=initial_video_latent,
        initial_audio_latent=audio_latents,
    )
    # clean_latent holds the initial audio tokens; mask 0 keeps them clean through every step
    audio = replace(
        noised_audio,
        latent=noised_audio.clean_latent.clone(),
        denoise_mask=torch.zeros_like(noised_audio.denoise_mask),
    )
    return video, audio


def denoise_video_only(
    transformer: torch.nn.Module,
    audio_latents: Tensor,
    contexts: TextContexts,
    sigmas: Tensor,
    video_guidance: GuidanceScales | GuidanceSchedule,
    *,
    height: int,
    width: int,
    num_frames: int,
    frame_rate: float,
    generator: torch.Generator | None,
    conditions: Sequence[VideoCondition] = (),
    noise_scale: float = 1.0,
    initial_video_latent: Tensor | None = None,
    progress_bar: Callable | None = None,
    callback: StepCallback | None = None,
) -> tuple[Tensor, Tensor]:
    """Denoise the video of a clip whose audio is given: ltx-pipelines' `denoise_video_only` with its Euler loop.

    audio_latents: (1 or B, C_a, T_a, mel) normalised; contexts: (B, S, D) connector outputs, negatives needed when
    `video_guidance` runs classifier-free guidance. Audio guidance is neutral (ltx-core's default
    `MultiModalGuiderParams`); its negative-prompt pass takes the POSITIVE audio context, as the reference's audio
    guider has no negative context. sigmas: (N + 1,) float32; stage 2 passes `noise_scale` = sigmas[0] and the
    upsampled `initial_video_latent` (B, C, F', H', W').
    Returns video latents (B, C, F', H/32, W/32) and the audio latents (B, C_a, T_a, mel), unchanged, both normalised.
    """
    batch_size, device, dtype = contexts.video.shape[0], contexts.video.device, transformer.dtype
    video, audio = prepare_audio_conditioned_latents(
        audio_latents,
        height,
        width,
        num_frames,
        frame_rate,
        batch_size=batch_size,
        generator=generator,
        device=device,
        dtype=dtype,
        conditions=conditions,
        video_channels=transformer.config.in_channels,
        noise_scale=noise_scale,
        initial_video_latent=initial_video_latent,
    )
    contexts = replace(contexts, negative_audio=contexts.audio)
    video, audio = guided_denoise(
        transformer,
        video,
        audio,
        contexts,
        torch.as_tensor(sigmas, dtype=torch.float32),
        video_guidance,
        GuidanceScales(),
        progress_bar=progress_bar,
        callback=callback,
    )
    grid = ((num_frames - 1) // 8 + 1, height // 32, width // 32)
    return (
        unpatchify_video(video.output_tokens(), *grid),
        unpack_audio_latents(audio.output_tokens(), audio_latents.shape[1]),
    )


def _cut_waveform(
    audio: AudioInput, sample_rate: int | None, start_time: float, max_duration: float
) -> tuple[Tensor, int]:
    """The input audio -> ((C, S) float32 waveform of the window, sample rate)."""
    if start_time < 0 or max_duration <= 0:
        raise ValueError(
            f"need audio_start_time >= 0 and audio_max_duration > 0, got {start_time} and {max_duration} (seconds)"
        )
    if isinstance(audio, str | os.PathLike):
        return load_audio(audio, start_time, max_duration)
    if not isinstance(audio, Tensor | np.ndarray):
        raise TypeError(f"audio must be a file path or a (channels, samples) waveform, got {type(audio).__name__}")
    if sample_rate is None:
        raise ValueError("a waveform needs its audio_sample_rate (Hz), e.g. audio_sample_rate=48000")
    if not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"audio_sample_rate must be a positive int (Hz), got {sample_rate!r}")
    waveform = torch.as_tensor(audio)
    if waveform.ndim == 3 and waveform.shape[0] == 1:
        waveform = waveform[0]
    if waveform.ndim != 2 or waveform.shape[0] not in (1, 2) or not waveform.is_floating_point():
        raise ValueError(
            f"audio must be a float (channels, samples) or (1, channels, samples) waveform in [-1, 1] with 1 or 2 "
            f"channels, got {tuple(waveform.shape)} {waveform.dtype}; a (samples, channels) array needs .T"
        )
    start = round(start_time * sample_rate)
    waveform = waveform[:, start : start + round(max_duration * sample_rate)]
    if waveform.shape[1] == 0:
        raise ValueError(f"no audio samples after audio_start_time={start_time} s")
    return waveform.float(), sample_rate


class LTX2AVAudioToVideoPipeline(LTX2AVTwoStagePipeline):
    """Prompt + audio -> video that follows the audio, in two stages (ltx-pipelines' `A2VidPipelineTwoStage`).

    Components: those of `LTX2AVTwoStagePipeline` (the vocoder is not used: the input audio is returned as it is).
    """

    @torch.no_grad()
    def encode_audio(
        self, waveform: Tensor, sample_rate: int, num_frames: int, frame_rate: float, device: torch.device
    ) -> Tensor:
        """(C, S) float waveform -> normalised audio latent (1, 8, round(num_frames / frame_rate * 25), 16).

        The mel spectrogram is computed from the float32 waveform and cast to the audio VAE's dtype, as ltx-core's
        `encode_audio`; the latent is trimmed to the clip. Raises ValueError when the audio is shorter than the clip.
        """
        needed = audio_latent_frames(num_frames, frame_rate)
        latent = self.audio_vae.encode_waveform(waveform[None].to(device, torch.float32), sample_rate)
        if latent.shape[2] < needed:
            raise ValueError(
                f"the audio is {waveform.shape[1] / sample_rate:.3f} s long ({latent.shape[2]} latent frames) but "
                f"{num_frames} frames at {frame_rate} fps need {num_frames / frame_rate:.3f} s ({needed} latent "
                "frames): pass longer audio, an earlier audio_start_time, or fewer num_frames"
            )
        return latent[:, :, :needed]

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        audio: AudioInput,
        negative_prompt: str | list[str] | None = None,
        *,
        audio_sample_rate: int | None = None,
        audio_start_time: float = 0.0,
        audio_max_duration: float | None = None,
        image: ImageInput | None = None,
        image_strength: float = 1.0,
        image_crf: int = DEFAULT_IMAGE_CRF,
        keyframes: Sequence[tuple[ImageInput, int, float]] = (),
        height: int = 1024,
        width: int = 1536,
        num_frames: int = 121,
        frame_rate: float = 24.0,
        num_inference_steps: int | None = None,
        sigmas: Sequence[float] | None = None,
        video_guidance: GuidanceScales | GuidanceSchedule | None = None,
        stage_2_adapter: str | None = None,
        stage_2_adapter_scale: float | None = None,
        stage_2_sigmas: Sequence[float] = STAGE_2_DISTILLED_SIGMAS,
        num_videos_per_prompt: int = 1,
        generator: torch.Generator | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("video_latents",),
    ) -> LTX2PipelineOutput | tuple:
        """Generate `num_frames` frames of `height` x `width` video (multiples of 64) that follow `audio`.

        audio: a file path (its first audio stream) or a float waveform (C, S) / (1, C, S), C = 1 or 2, in [-1, 1],
            with `audio_sample_rate`. The window [audio_start_time, audio_start_time + audio_max_duration] seconds is
            used (None: the video's duration, the reference CLI's default); it must cover the clip.
        The other arguments are `LTX2AVTwoStagePipeline.__call__`'s; there is no audio guidance (the audio is not
        denoised). video_guidance None: the model version's video defaults (CFG, STG, modality guidance, rescale).
        Returns `LTX2PipelineOutput(frames, audio, audio_sample_rate)` or `(frames, audio)`: `audio` is the input
        window (B, C, S) float32 at its own sample rate. With output_type="latent": the full-size video latents
        (B, 128, F', H/32, W/32) and the encoded audio latents (B, 8, T_a, 16).
        """
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        defaults = self.sampling_defaults
        if negative_prompt is None:
            negative_prompt = defaults.negative_prompt
        negative_prompts = [negative_prompt] if isinstance(negative_prompt, str) else list(negative_prompt)
        strengths = [image_strength] * (image is not None) + [k[2] for k in keyframes]
        self.check_inputs(prompts, negative_prompts, height, width, num_frames, frame_rate, strengths, output_type)
        self.check_two_stage_inputs(height, width, num_frames, output_type, stage_2_adapter)
        names = list(callback_on_step_end_tensor_inputs)
        for name in names:
            if name not in self._callback_tensor_inputs:
                raise ValueError(f"callback tensor {name!r} is not one of {self._callback_tensor_inputs}")
        if len(negative_prompts) == 1:
            negative_prompts = negative_prompts * len(prompts)
        video_guidance = defaults.video_guidance if video_guidance is None else video_guidance
        device, dtype = self._execution_device, self.transformer.dtype

        # 1. The audio window -> waveform (returned as it is) and normalised audio latent
        duration = num_frames / frame_rate if audio_max_duration is None else audio_max_duration
        waveform, sample_rate = _cut_waveform(audio, audio_sample_rate, audio_start_time, duration)
        audio_latents = self.encode_audio(waveform, sample_rate, num_frames, frame_rate, device)

        # 2. Prompts -> contexts (negatives only for classifier-free guidance of the video)
        needs_negative = _needs_uncond(video_guidance)
        contexts = self.encode_prompts(prompts, negative_prompts if needs_negative else None, device, dtype)
        contexts = _repeat_contexts(contexts, num_videos_per_prompt)
        self._stage_1_contexts = None

        adapters = None
        if stage_2_adapter is not None:
            adapters = StageAdapters(self.transformer, stage_2_adapter, stage_2_adapter_scale)
        try:
            # 3. Stage 1 at half size: guided video denoising next to the clean audio
            if adapters is not None:
                adapters.stage_1()
            half = (height // 2, width // 2)
            conditions = self._encode_conditions(
                None if image is None else _half_size(image, height, width),
                image_strength,
                [(_half_size(k, height, width), index, s) for k, index, s in keyframes],
                *half,
                image_crf,
            )
            if num_inference_steps is None and sigmas is None and self.scheduler.config.fixed_sigmas is None:
                num_inference_steps = defaults.num_inference_steps
            self.scheduler.set_timesteps(num_inference_steps, sigmas=sigmas)
            common = dict(num_frames=num_frames, frame_rate=frame_rate, generator=generator)
            video_latents, _ = denoise_video_only(
                self.transformer,
                audio_latents,
                contexts,
                self.scheduler.sigmas,
                video_guidance,
                height=half[0],
                width=half[1],
                conditions=conditions,
                progress_bar=self.progress_bar,
                callback=self._step_callback(callback_on_step_end, names, 0),
                **common,
            )
            offset = self.scheduler.num_inference_steps

            # 4. Stage 2: upsample x2, re-noise the video to sigmas[0], refine with one positive pass per step
            if adapters is not None:
                adapters.stage_2()
            conditions = self._encode_conditions(image, image_strength, keyframes, height, width, image_crf)
            self.scheduler.set_timesteps(sigmas=stage_2_sigmas)
            stage_2 = self.scheduler.sigmas
            upsampler_dtype = next(self.latent_upsampler.parameters()).dtype
            upsampled = upsample_latents(
                self.latent_upsampler, video_latents.to(upsampler_dtype), self.vae.latents_mean, self.vae.latents_std
            )
            video_latents, audio_latents = denoise_video_only(
                self.transformer,
                audio_latents,
                TextContexts(contexts.video, contexts.audio),
                stage_2,
                GuidanceScales(),
                height=height,
                width=width,
                conditions=conditions,
                noise_scale=float(stage_2[0]),
                initial_video_latent=upsampled,
                progress_bar=self.progress_bar,
                callback=self._step_callback(callback_on_step_end, names, offset),
                **common,
            )
        finally:
            if adapters is not None:
                adapters.restore()

        # 5. Latents -> frames; the soundtrack is the input audio
        batch_size = video_latents.shape[0]
        if output_type == "latent":
            frames, waveform, sample_rate = video_latents, audio_latents, None
        else:
            frames = _postprocess_frames(decode_video(self.vae, video_latents, generator), output_type)
            waveform = waveform[None].expand(batch_size, -1, -1).clone()
        self.maybe_free_model_hooks()
        if not return_dict:
            return frames, waveform
        return LTX2PipelineOutput(frames=frames, audio=waveform, audio_sample_rate=sample_rate)
