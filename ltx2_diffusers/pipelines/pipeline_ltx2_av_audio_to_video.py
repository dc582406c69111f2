"""LTX2AVAudioToVideoPipeline: a prompt and a soundtrack -> a video that follows the soundtrack (spec §9).

ltx-pipelines 1.0.0's `A2VidPipelineTwoStage` in diffusers' shape:
1. The audio (a file, or a waveform with its sample rate) is cut to [audio_start_time, + audio_max_duration] (the
   reference CLI's default duration: the video's, num_frames / frame_rate), encoded by the audio VAE (16 kHz log-mel,
   posterior mean, normalised) and trimmed to round(num_frames / frame_rate * 25) latent frames.
2. Stage 1 at (H/2, W/2) and stage 2 (x2 latent upsampling, 3 distilled steps, optional stage-2 adapter) as in
   `LTX2AVTwoStagePipeline`, but denoising the VIDEO only: the audio is frozen (`prepare_latents(freeze_audio=True)`:
   the clean encoded latent with denoise mask 0 in both stages, which the transformer sees at sigma 0 and the sampler
   leaves unchanged). Stage 1 is guided on video with the caller's (or the model version's) video guidance; audio
   guidance is neutral, and the audio's negative-prompt slot takes the positive audio context (the reference's audio
   guider has no negative context).
3. Only the video is decoded: the returned soundtrack is the ORIGINAL input waveform (after the time window), at its
   own sample rate, as the reference returns it instead of a VAE round trip.

Noise comes from one generator in the reference's order: stage-1 video, stage-1 audio, stage-2 video, stage-2 audio.
The reference draws the audio noise too, at scale 0, so the draws are kept to keep the stage-2 video noise identical.
"""

import os
from collections.abc import Callable, Sequence
from dataclasses import replace

import torch
from torch import Tensor

from ..models.autoencoder_kl_ltx2_audio import audio_latent_frames
from .condition_encoding import Keyframes, encode_conditions
from .conditioning import Generators, unpatchify_video
from .decoding import decode_frames, decode_waveform
from .denoising import TextContexts, denoise, latent_grid, prepare_latents
from .guidance import GuidanceScales, GuidanceSchedule
from .inputs import AudioInput, ImageInput, audio_waveform
from .pipeline_base import LTX2AVTwoStagePipelineBase
from .pipeline_output import LTX2PipelineOutput
from .pipeline_utils import (
    StepCallbacks,
    as_list,
    callback_tensor_names,
    guidance_keywords,
    maybe_enhance_prompt,
    needs_uncond,
    pipeline_output,
    prompt_contexts,
    resolve_guidance,
    resolve_sigmas,
)
from .presets import DEFAULT_REFERENCE, check_reference_for, sampling_preset
from .refinement import (
    StageAdapters,
    check_adapter,
    encode_stage_1_conditions,
    refine_latents,
    stage_1_pixel_size,
    two_stage_size_multiple,
)
from .text_encoding import PromptEmbeddings
from .validation import check_call_inputs, check_media, check_sigmas


@torch.no_grad()
def encode_audio(
    audio_vae: torch.nn.Module,
    waveform: Tensor,
    sample_rate: int,
    num_frames: int,
    frame_rate: float,
    device: torch.device,
) -> Tensor:
    """(C, S) float waveform -> normalised audio latent (1, 8, round(num_frames / frame_rate * 25), 16).

    The mel spectrogram is computed from the float32 waveform and cast to the audio VAE's dtype, as ltx-core's
    `encode_audio`; the latent is trimmed to the clip. Raises ValueError when the audio is shorter than the clip.
    """
    needed = audio_latent_frames(num_frames, frame_rate)
    latent = audio_vae.encode_waveform(waveform[None].to(device, torch.float32), sample_rate)
    if latent.shape[2] < needed:
        raise ValueError(
            f"the audio is {waveform.shape[1] / sample_rate:.3f} s long ({latent.shape[2]} latent frames) but "
            f"{num_frames} frames at {frame_rate} fps need {num_frames / frame_rate:.3f} s ({needed} latent "
            "frames): pass longer audio, an earlier audio_start_time, or fewer num_frames"
        )
    return latent[:, :, :needed]


def frozen_audio_contexts(contexts: TextContexts) -> TextContexts:
    """Contexts for a pass with frozen audio: the audio's negative-prompt slot takes the positive audio context, as
    the reference's audio guider has no negative context (its audio guidance is neutral anyway)."""
    return replace(contexts, negative_audio=contexts.audio)


class LTX2AVAudioToVideoPipeline(LTX2AVTwoStagePipelineBase):
    """Prompt + audio -> video that follows the audio, in two stages (ltx-pipelines' `A2VidPipelineTwoStage`).

    Components: those of `LTX2AVTwoStagePipeline` (the vocoder is not used: the input audio is returned as it is).
    """

    def encode_audio(
        self, waveform: Tensor, sample_rate: int, num_frames: int, frame_rate: float, device: torch.device
    ) -> Tensor:
        """(C, S) float waveform -> normalised audio latent (1, 8, T_a, 16) (`encode_audio`)."""
        return encode_audio(self.audio_vae, waveform, sample_rate, num_frames, frame_rate, device)

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        audio: AudioInput | None = None,
        negative_prompt: str | list[str] | None = None,
        *,
        audio_sample_rate: int | None = None,
        audio_start_time: float = 0.0,
        audio_max_duration: float | None = None,
        image: ImageInput | None = None,
        image_strength: float = 1.0,
        image_crf: int | None = None,
        keyframes: Keyframes = (),
        enhance_prompt: bool = False,
        enhance_prompt_seed: int | None = None,
        height: int | None = None,
        width: int | None = None,
        num_frames: int | None = None,
        frame_rate: float | None = None,
        num_inference_steps: int | None = None,
        sigmas: Sequence[float] | None = None,
        timesteps: Sequence[float] | None = None,
        video_guidance: GuidanceScales | GuidanceSchedule | None = None,
        guidance_scale: float | None = None,
        stg_scale: float | None = None,
        modality_scale: float | None = None,
        guidance_rescale: float | None = None,
        spatio_temporal_guidance_blocks: Sequence[int] | None = None,
        stage_2_adapter: str | None = None,
        stage_2_adapter_scale: float | None = None,
        stage_2_sigmas: Sequence[float] | None = None,
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
        """Generate `num_frames` frames of `height` x `width` video (multiples of 64) that follow `audio`.

        audio: a file path (its first audio stream) or a waveform (C, S) / (1, C, S) / (S,), C = 1 or 2, float in
            [-1, 1] or int16 / int32 PCM, with `audio_sample_rate` (`inputs.audio_waveform`). The window [audio_start_time, audio_start_time + audio_max_duration] seconds is
            used (None: the video's duration, the reference CLI's default); it must cover the clip.
        audio_latents: the soundtrack already encoded, (1 or B, 8, T_a, 16) normalised, instead of encoding `audio`
            (which is then still what the output returns, when given; else the output audio is these latents
            decoded by the vocoder).
        The other arguments are `LTX2AVTwoStagePipeline.__call__`'s; there is no audio guidance (the audio is not
        denoised). video_guidance None: the model version's video defaults (CFG, STG, modality guidance, rescale).
        Returns `LTX2PipelineOutput(frames, audio, audio_sample_rate)` or `(frames, audio)`: `audio` is the input
        window (B, C, S) float32 at its own sample rate. With output_type="latent": the full-size video latents
        (B, 128, F', H/32, W/32) and the encoded audio latents (B, 8, T_a, 16).
        """
        # 1. Defaults of the model version and kind (torch-free presets), then every argument checked before any
        #    encoder runs
        preset = sampling_preset(self.model_version, self.kind, check_reference_for(self.model_version, reference))
        height = preset.two_stage_height if height is None else height
        width = preset.two_stage_width if width is None else width
        num_frames = preset.num_frames if num_frames is None else num_frames
        frame_rate = preset.frame_rate if frame_rate is None else frame_rate
        keywords = guidance_keywords(
            guidance_scale, stg_scale, modality_scale, guidance_rescale,
            spatio_temporal_guidance_blocks=spatio_temporal_guidance_blocks,
        )  # fmt: skip
        size_multiple = two_stage_size_multiple(self.latent_upsampler, height, width)
        batch_size = check_call_inputs(
            prompt=prompt, negative_prompt=negative_prompt, prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds, num_videos_per_prompt=num_videos_per_prompt,
            enhance_prompt=enhance_prompt, height=height, width=width, num_frames=num_frames, frame_rate=frame_rate,
            size_multiple=size_multiple, image=image, image_strength=image_strength, image_crf=image_crf, keyframes=keyframes,
            num_inference_steps=num_inference_steps, sigmas=sigmas, video_guidance=video_guidance,
            guidance_keywords=keywords, output_type=output_type, callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs, generator=generator,
            return_dict=return_dict, allow_large=allow_large,
        )  # fmt: skip
        if audio is None and audio_latents is None:
            raise ValueError("pass the soundtrack as audio= (a file path or a waveform), or encoded as audio_latents=")
        if isinstance(audio, str | os.PathLike):  # waveforms are checked where they are cut (step 2)
            check_media(audio, "audio", what="audio")
        check_sigmas(stage_2_sigmas, name="stage_2_sigmas")
        check_adapter(self.transformer, stage_2_adapter, "stage_2_adapter")
        negative_prompt = preset.negative_prompt if negative_prompt is None else negative_prompt
        prompts, negative_prompts = as_list(prompt), as_list(negative_prompt)
        image_crf = preset.image_crf if image_crf is None else image_crf
        video_guidance, _ = resolve_guidance(video_guidance, None, preset, keywords)
        self.check_memory_budget(height, width, num_frames, batch_size, video_guidance, None, frame_rate)
        audio_guidance = GuidanceScales()  # the audio is not denoised
        sigmas = resolve_sigmas(self.scheduler, num_inference_steps, sigmas, timesteps, preset.num_inference_steps)
        stage_2_sigmas = self.scheduler.get_sigmas(
            sigmas=preset.stage_2_sigmas if stage_2_sigmas is None else stage_2_sigmas
        )
        names = callback_tensor_names(callback_on_step_end, callback_on_step_end_tensor_inputs)
        device, dtype, transformer = self._execution_device, self.transformer.dtype, self.transformer
        half = stage_1_pixel_size(self.latent_upsampler, height, width)
        callback = StepCallbacks(self, callback_on_step_end, names)

        # 2. The audio window -> waveform (returned as it is) and normalised audio latent
        waveform = sample_rate = None
        if audio is not None:
            duration = num_frames / frame_rate if audio_max_duration is None else audio_max_duration
            waveform, sample_rate = audio_waveform(
                audio, audio_sample_rate, start_time=audio_start_time, max_duration=duration
            )
            waveform = waveform.float()
        if audio_latents is None:
            audio_latents = self.encode_audio(waveform, sample_rate, num_frames, frame_rate, device)
        audio_latents = audio_latents.to(device, dtype).expand(batch_size, -1, -1, -1)

        # 3. Prompts (optionally enhanced first) -> contexts (negatives only for classifier-free guidance of the video)
        if prompts is not None:
            first_image = image if image is not None else (keyframes[0][0] if keyframes else None)
            prompts = maybe_enhance_prompt(
                self, prompts, enhance_prompt, first_image, enhance_prompt_seed, generator, device
            )
        contexts = prompt_contexts(
            self,
            prompts,
            negative_prompts,
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            needs_negative=needs_uncond(video_guidance),
            num_videos_per_prompt=num_videos_per_prompt,
            device=device,
            dtype=dtype,
            reference=reference,
        )

        with StageAdapters(transformer) as adapters:
            # 4. Stage 1 at half size: guided video denoising next to the frozen audio
            if stage_2_adapter is not None:
                adapters.use(adapters.others(stage_2_adapter))
            conditions = encode_stage_1_conditions(
                self.vae, image, image_strength, keyframes, height, width, half, image_crf, device
            )
            video, frozen_audio = prepare_latents(
                batch_size,
                *half,
                num_frames,
                frame_rate,
                generator=generator,
                device=device,
                dtype=dtype,
                conditions=conditions,
                video_channels=transformer.config.in_channels,
                audio_channels=audio_latents.shape[1],
                audio_mel_bins=audio_latents.shape[3],
                initial_audio_latent=audio_latents,
                freeze_audio=True,
                video_noise=latents,
                reference=reference,
            )
            video, _ = denoise(
                transformer,
                video,
                frozen_audio,
                frozen_audio_contexts(contexts),
                sigmas,
                video_guidance,
                audio_guidance,
                progress_bar=self.progress_bar,
                callback=callback,
                reference=reference,
            )
            video_latents = unpatchify_video(video.output_tokens(), *latent_grid(*half, num_frames))

            # 5. Stage 2: upsample x2, re-noise the video to sigmas[0], refine with one positive pass per step
            if stage_2_adapter is not None:
                adapters.use(
                    [*adapters.others(stage_2_adapter), stage_2_adapter], {stage_2_adapter: stage_2_adapter_scale}
                )
            conditions = encode_conditions(self.vae, image, image_strength, keyframes, height, width, image_crf, device)
            video_latents, audio_latents = refine_latents(
                transformer,
                self.latent_upsampler,
                video_latents,
                audio_latents,
                contexts,
                latents_mean=self.vae.latents_mean,
                latents_std=self.vae.latents_std,
                frame_rate=frame_rate,
                sigmas=stage_2_sigmas,
                generator=generator,
                conditions=conditions,
                freeze_audio=True,
                progress_bar=self.progress_bar,
                callback=callback,
                reference=reference,
            )

        # 6. Latents -> frames; the soundtrack is the input audio (or, given only as latents, those decoded)
        frames = decode_frames(self.video_decoder, video_latents, output_type, generator)
        if output_type == "latent":
            waveform, sample_rate = audio_latents, None
        elif waveform is not None:
            waveform = waveform[None].expand(video_latents.shape[0], -1, -1).clone()
        else:
            waveform, sample_rate = decode_waveform(self.audio_vae, self.vocoder, audio_latents, output_type, reference)
        return pipeline_output(self, frames, waveform, sample_rate, return_dict)
