"""LTX2AVRetakePipeline: regenerate a time window [start, end) of an existing clip's video and/or audio (spec §7.5, §9).

ltx-pipelines' `RetakePipeline` in diffusers' shape:
1. The source clip (8k + 1 frames, height and width multiples of 32, its own fps) is encoded by the video VAE, and its
   audio track (if any) by the audio VAE, trimmed or zero-padded to the clip's audio length; both become the initial
   latents of one denoising stage at the source's resolution.
2. The temporal region mask (the reference's `TemporalRegionMask`) sets the denoise mask to 1 for the tokens whose
   time span overlaps [start, end) and to 0 elsewhere. Noise is mixed in by that mask, so only the window starts from
   noise; the sampler blends every x0 with the source latents by the mask, so tokens outside the window keep the
   source latents exactly. `regenerate_video=False` / `regenerate_audio=False` leave that modality untouched.
   A clip without an audio stream gets its audio generated from scratch (mask 1 everywhere).
3. Euler over the LTX-2 schedule (40 steps, the reference's default for both model versions), guided with the model
   version's defaults; with a distilled scheduler (`LTX2Scheduler.distilled()`) the 8 distilled sigmas and one
   unguided pass per step, no negative prompt (the reference's `distilled=True`).
4. The VAEs and the vocoder decode the whole clip.
"""

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import torch
from torch import Tensor

from ..models.autoencoder_kl_ltx2_audio import (
    audio_latent_frames,
    fit_audio_latent_frames,
    pack_audio_latents,
    unpack_audio_latents,
)
from ..models.rope import audio_positions, video_positions
from .condition_encoding import encode_pixels
from .conditioning import (
    Generators,
    LatentState,
    add_noise,
    audio_latent_state,
    patchify_video,
    unpatchify_video,
    video_latent_state,
    video_positions_dtype,
)
from .decoding import decode_frames, decode_waveform
from .denoising import check_generator, denoise
from .guidance import GuidanceScales, GuidanceSchedule
from .inputs import AudioInput, VideoInput, audio_waveform, video_frames, video_to_pixels
from .pipeline_base import LTX2AVPipelineBase
from .pipeline_output import LTX2PipelineOutput
from .pipeline_utils import (
    StepCallbacks,
    callback_tensor_names,
    guidance_keywords,
    maybe_enhance_prompt,
    needs_uncond,
    pipeline_output,
    prompt_contexts,
    resolve_guidance,
    resolve_sigmas,
)
from .presets import DEFAULT_REFERENCE, check_reference_for, retake_preset
from .text_encoding import PromptEmbeddings
from .validation import check_call_inputs

# ----------------------------------------------------------------------------------------------------------------------
# The temporal region mask


def temporal_region_mask(time_bounds: Tensor, start_time: float, end_time: float) -> Tensor:
    """(..., T, 2) per-token [t_start, t_end) in seconds -> (..., T, 1) float32 denoise mask: 1 where the token's span
    overlaps [start_time, end_time) (t_end > start and t_start < end), else 0 (the reference's `TemporalRegionMask`).

    A token that only partly overlaps the window (a latent frame spans 8 pixel frames) is regenerated whole.
    """
    t_start, t_end = time_bounds.unbind(-1)
    return ((t_end > start_time) & (t_start < end_time)).to(torch.float32).unsqueeze(-1)


def video_time_bounds(batch_size: int, latent_frames: int, latent_height: int, latent_width: int, fps: float) -> Tensor:
    """(B, F'H'W', 2) float32 seconds per video token: latent frame 0 covers pixel frame [0, 1), frame f >= 1 covers
    [8f - 7, 8f + 1), divided by fps. The reference computes the mask from these float32 values, not from the bf16
    RoPE positions, so a window edge on a frame boundary falls the same way."""
    positions = video_positions(batch_size, latent_frames, latent_height, latent_width, fps, dtype=torch.float32)
    return positions[:, 0]


def prepare_retake_latents(
    video_latent: Tensor,
    audio_latent: Tensor | None,
    *,
    frame_rate: float,
    start_time: float,
    end_time: float,
    regenerate_video: bool = True,
    regenerate_audio: bool = True,
    num_audio_frames: int,
    audio_channels: int = 8,
    audio_mel_bins: int = 16,
    generator: Generators,
    dtype: torch.dtype,
    video_noise: Tensor | None = None,
    audio_noise: Tensor | None = None,
    reference: str = DEFAULT_REFERENCE,
) -> tuple[LatentState, LatentState]:
    """Noised starting states of a retake: ltx-pipelines' `noise_video_state` / `noise_audio_state` with the source
    latents as initial latents and a `TemporalRegionMask` (spec §7.5).

    video_latent: (B, C, F', H', W') normalised source latent. audio_latent: (B, C_a, num_audio_frames, mel) normalised
    source latent, or None (no audio stream: the audio starts from zeros with mask 1 everywhere, generated from
    scratch, as the reference does whatever `regenerate_audio` says). A modality whose `regenerate_*` is False gets
    mask 0 everywhere (the reference's window [0, 0)). Noise: video first, then audio, mixed in by the masks;
    `video_noise` / `audio_noise` ((B or 1, C, F', H', W') / (B or 1, C_a, T_a, mel)) replace the draws. `reference`:
    the noiser's rule (`conditioning.add_noise`).
    """
    batch_size, _, latent_frames, latent_height, latent_width = video_latent.shape
    device = video_latent.device
    video = video_latent_state(
        batch_size,
        latent_frames,
        latent_height,
        latent_width,
        frame_rate,
        num_channels=video_latent.shape[1],
        dtype=dtype,
        device=device,
        positions_dtype=video_positions_dtype(dtype, reference),
        initial_latent=video_latent.to(dtype),
    )
    window = (start_time, end_time) if regenerate_video else (0.0, 0.0)
    bounds = video_time_bounds(batch_size, latent_frames, latent_height, latent_width, frame_rate).to(device)
    video_noise = None if video_noise is None else patchify_video(video_noise)
    video = replace(video, denoise_mask=temporal_region_mask(bounds, *window))
    video = add_noise(video, generator, 1.0, video_noise, reference)
    audio = audio_latent_state(
        batch_size,
        num_audio_frames,
        num_channels=audio_channels,
        num_mel_bins=audio_mel_bins,
        dtype=dtype,
        device=device,
        initial_latent=None if audio_latent is None else audio_latent.to(device, dtype),
    )
    if audio_latent is not None:
        window = (start_time, end_time) if regenerate_audio else (0.0, 0.0)
        bounds = audio_positions(batch_size, num_audio_frames, device=device)[:, 0]
        audio = replace(audio, denoise_mask=temporal_region_mask(bounds, *window))
    audio_noise = None if audio_noise is None else pack_audio_latents(audio_noise)
    return video, add_noise(audio, generator, 1.0, audio_noise, reference)


# ----------------------------------------------------------------------------------------------------------------------
# Inputs


# What the size errors call the source clip's numbers (a retake runs at the source's size)
SOURCE_NAMES = {
    "num_frames": "the source clip's frame count",
    "height": "the source clip's height",
    "width": "the source clip's width",
}


def check_window(start_time: float, end_time: float, duration: float) -> None:
    """[start_time, end_time) must be non-empty and start inside the clip [0, duration); it may run past the end."""
    if not end_time > start_time:
        raise ValueError(
            f"the retake window [{start_time}, {end_time}) s is empty: end_time must be greater than start_time"
        )
    if start_time < 0 or start_time >= duration:
        raise ValueError(
            f"the retake window starts at {start_time} s, outside the clip, which lasts {duration:.4g} s: pass a "
            f"start_time in [0, {duration:.4g})"
        )


def _has_audio_stream(path: str | Path) -> bool:
    with av.open(str(path)) as container:
        return bool(container.streams.audio)


# ----------------------------------------------------------------------------------------------------------------------


class LTX2AVRetakePipeline(LTX2AVPipelineBase):
    """Regenerate [start_time, end_time) of a clip's video and/or audio from a prompt (ltx-pipelines' RetakePipeline).

    Same components as `LTX2AVPipeline` (and the same saving / loading); only `__call__` differs. A folder saved by
    either pipeline loads into the other with `LTX2AVRetakePipeline.from_pretrained(folder)`.
    """

    @torch.no_grad()
    def encode_source_video(self, frames: np.ndarray, device: torch.device) -> Tensor:
        """(F, H, W, 3) uint8 -> normalised video latent (1, 128, F', H/32, W/32): ltx-pipelines'
        `load_video_conditioning` at the source size (pixels in [-1, 1]) and the encoder's posterior mean."""
        return encode_pixels(self.vae, video_to_pixels(frames, name="video").to(device))

    @torch.no_grad()
    def encode_source_audio(
        self, waveform: Tensor | np.ndarray, sample_rate: int, num_audio_frames: int, dtype: torch.dtype
    ) -> Tensor:
        """A waveform (any form `inputs.audio_waveform` takes) -> normalised audio latent (1, 8, num_audio_frames, 16),
        trimmed or zero-padded as the reference does. The waveform is first rounded to `dtype`, as the reference hands
        it to its encoder."""
        waveform, sample_rate = audio_waveform(waveform, sample_rate, name="audio")
        latent = self.audio_vae.encode_waveform(waveform[None].to(dtype), sample_rate)
        return fit_audio_latent_frames(latent, num_audio_frames)

    @torch.no_grad()
    def __call__(
        self,
        video: VideoInput,
        prompt: str | None = None,
        start_time: float | None = None,
        end_time: float | None = None,
        *,
        negative_prompt: str | None = None,
        frame_rate: float | None = None,
        audio: AudioInput | None = None,
        audio_sample_rate: int | None = None,
        regenerate_video: bool = True,
        regenerate_audio: bool = True,
        enhance_prompt: bool = False,
        enhance_prompt_seed: int | None = None,
        num_inference_steps: int | None = None,
        sigmas: Sequence[float] | None = None,
        timesteps: Sequence[float] | None = None,
        video_guidance: GuidanceScales | GuidanceSchedule | None = None,
        audio_guidance: GuidanceScales | GuidanceSchedule | None = None,
        guidance_scale: float | None = None,
        stg_scale: float | None = None,
        modality_scale: float | None = None,
        guidance_rescale: float | None = None,
        audio_guidance_scale: float | None = None,
        audio_stg_scale: float | None = None,
        audio_modality_scale: float | None = None,
        audio_guidance_rescale: float | None = None,
        spatio_temporal_guidance_blocks: Sequence[int] | None = None,
        num_videos_per_prompt: int = 1,
        generator: Generators = None,
        latents: Tensor | None = None,
        audio_latents: Tensor | None = None,
        prompt_embeds: PromptEmbeddings | None = None,
        negative_prompt_embeds: PromptEmbeddings | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("video_latents",),
        allow_large: bool = False,
        reference: str = DEFAULT_REFERENCE,
    ) -> LTX2PipelineOutput | tuple:
        """Regenerate [start_time, end_time) seconds of `video` (and its audio) to match `prompt`.

        video: a file path (frames, fps and the first audio stream are read from it), or (F, H, W, 3) uint8 frames
            (array, tensor or PIL images) with `frame_rate` and optionally `audio` (C, S) at `audio_sample_rate`.
            F must be 8k + 1, H and W multiples of 32; the retake runs at that size.
        prompt: one string (a retake edits one clip), or `prompt_embeds` of one prompt. `num_videos_per_prompt`
            retakes of the same clip come back as a batch.
        start_time / end_time: the window in seconds; it must start inside the clip and may run past its end. Latent
            frames (8 pixel frames each) and audio latent frames (40 ms) that overlap it are regenerated whole.
        negative_prompt: None -> "" (the reference's retake default); guided runs only.
        frame_rate: the clip's fps; None -> the file's. Token times are frame / fps, as in the reference.
        regenerate_video / regenerate_audio: False keeps that modality's source latents everywhere. A source without
            audio always gets new audio, generated over the whole clip.
        num_inference_steps / sigmas / video_guidance / audio_guidance: None -> 40 steps and the model version's
            guidance; with a distilled scheduler its 8 sigmas and no guidance (one pass per step). diffusers'
            scalar guidance keywords and `timesteps` as in `LTX2AVPipeline.__call__`.
        latents / audio_latents: the noise inside the window instead of a draw ((B or 1, 128, F', H/32, W/32) and
            (B or 1, 8, T_a, 16)).
        reference: "1.2" (default) or "1.0", the ltx-pipelines release to follow (`LTX2AVPipeline.__call__`).
        Returns `LTX2PipelineOutput(frames, audio, audio_sample_rate)` (the whole clip) or `(frames, audio)`.
        """
        # 1. The source clip read (`inputs`), the defaults of the model version and kind (the retake's presets), then
        #    every argument checked before any encoder runs
        if start_time is None or end_time is None:
            raise ValueError("pass start_time and end_time: the window to regenerate, in seconds")
        frames, file_fps = video_frames(video, name="video")
        if file_fps is not None:  # a file: its fps and its own audio stream
            frame_rate = file_fps if frame_rate is None else frame_rate
            if audio is not None or audio_sample_rate is not None:
                raise ValueError(
                    "pass audio / audio_sample_rate only with frames; a file's own audio stream is read from the file"
                )
            if _has_audio_stream(video):
                audio, audio_sample_rate = audio_waveform(video, name="video")
        else:
            if frame_rate is None:
                raise ValueError("frame_rate is needed with frames (the window and token times are in seconds)")
            if audio is not None and audio_sample_rate is None:
                raise ValueError("audio_sample_rate is needed with audio")
            if audio is not None:
                audio, audio_sample_rate = audio_waveform(audio, audio_sample_rate, name="audio")
        if prompt is not None and not isinstance(prompt, str):
            raise TypeError(f"prompt must be one string (a retake edits one clip), got {type(prompt).__name__}")
        num_frames, height, width = frames.shape[:3]
        keywords = guidance_keywords(
            guidance_scale, stg_scale, modality_scale, guidance_rescale, audio_guidance_scale, audio_stg_scale,
            audio_modality_scale, audio_guidance_rescale, spatio_temporal_guidance_blocks,
        )  # fmt: skip
        batch_size = check_call_inputs(
            prompt=prompt, negative_prompt=negative_prompt, prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds, num_videos_per_prompt=num_videos_per_prompt,
            enhance_prompt=enhance_prompt, height=height, width=width, num_frames=num_frames, frame_rate=frame_rate,
            size_multiple=32, num_inference_steps=num_inference_steps, sigmas=sigmas, video_guidance=video_guidance,
            audio_guidance=audio_guidance, guidance_keywords=keywords, output_type=output_type,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs, generator=generator,
            return_dict=return_dict, allow_large=allow_large, names=SOURCE_NAMES,
        )  # fmt: skip
        if batch_size != num_videos_per_prompt:
            raise ValueError("a retake edits one clip: pass prompt_embeds of one prompt")
        check_window(start_time, end_time, num_frames / frame_rate)
        if not regenerate_video and not regenerate_audio and audio is not None:
            raise ValueError(
                "regenerate_video and regenerate_audio are both False, so nothing would change: set one of them"
            )
        preset = retake_preset(self.model_version, self.kind, check_reference_for(self.model_version, reference))
        negative_prompt = preset.negative_prompt if negative_prompt is None else negative_prompt
        prompts = None if prompt is None else [prompt]
        video_guidance, audio_guidance = resolve_guidance(video_guidance, audio_guidance, preset, keywords)
        self.check_memory_budget(height, width, num_frames, batch_size, video_guidance, audio_guidance, frame_rate)
        sigmas = resolve_sigmas(self.scheduler, num_inference_steps, sigmas, timesteps, preset.num_inference_steps)
        names = callback_tensor_names(callback_on_step_end, callback_on_step_end_tensor_inputs)
        device, dtype = self._execution_device, self.transformer.dtype
        check_generator(generator, batch_size, device)

        # 2. Source -> initial latents (one clip, repeated for num_videos_per_prompt)
        video_latent = self.encode_source_video(frames, device).expand(batch_size, -1, -1, -1, -1)
        num_audio_frames = audio_latent_frames(num_frames, frame_rate)
        audio_latent = None
        if audio is not None:
            audio_latent = self.encode_source_audio(audio, audio_sample_rate, num_audio_frames, dtype)
            audio_latent = audio_latent.expand(batch_size, -1, -1, -1)

        # 3. Prompt (optionally enhanced first) -> contexts (the negative one only when a guidance scale needs it)
        if prompts is not None:
            prompts = maybe_enhance_prompt(self, prompts, enhance_prompt, None, enhance_prompt_seed, generator, device)
        contexts = prompt_contexts(
            self,
            prompts,
            [negative_prompt],
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            needs_negative=needs_uncond(video_guidance, audio_guidance),
            num_videos_per_prompt=num_videos_per_prompt,
            device=device,
            dtype=dtype,
            reference=reference,
        )

        # 4. Noise inside the window only
        video_state, audio_state = prepare_retake_latents(
            video_latent,
            audio_latent,
            frame_rate=frame_rate,
            start_time=start_time,
            end_time=end_time,
            regenerate_video=regenerate_video,
            regenerate_audio=regenerate_audio,
            num_audio_frames=num_audio_frames,
            audio_channels=self.audio_vae.config.latent_channels,
            audio_mel_bins=self.transformer.config.audio_in_channels // self.audio_vae.config.latent_channels,
            generator=generator,
            dtype=dtype,
            video_noise=latents,
            audio_noise=audio_latents,
            reference=reference,
        )

        # 5. Denoise: Euler; tokens outside the window keep the source latents (denoise mask 0)
        video_state, audio_state = denoise(
            self.transformer,
            video_state,
            audio_state,
            contexts,
            sigmas,
            video_guidance,
            audio_guidance,
            progress_bar=self.progress_bar,
            callback=StepCallbacks(self, callback_on_step_end, names),
            reference=reference,
        )

        # 6. Latents -> the whole clip
        video_latents = unpatchify_video(video_state.output_tokens(), *video_latent.shape[2:])
        audio_latents = unpack_audio_latents(audio_state.output_tokens(), self.audio_vae.config.latent_channels)
        frames = decode_frames(self.video_decoder, video_latents, output_type, generator)
        waveform, sample_rate = decode_waveform(self.audio_vae, self.vocoder, audio_latents, output_type, reference)
        return pipeline_output(self, frames, waveform, sample_rate, return_dict)
