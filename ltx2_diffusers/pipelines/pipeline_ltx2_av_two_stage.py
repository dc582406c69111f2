"""LTX2AVTwoStagePipeline: text (and optional images) -> video + stereo audio in two stages (spec §4, §9).

ltx-pipelines' `TI2VidTwoStagesPipeline` and `DistilledPipeline` in diffusers' shape:
1. Stage 1 at (H/2, W/2): prompts -> contexts, conditions, noise, guided Euler with the model version's defaults on a
   dev scheduler; a single unguided pass per step on a distilled one (`LTX2Scheduler.distilled()`, the 8
   `DISTILLED_SIGMAS`, no negative prompt).
2. `refine_latents`: the spatial x2 latent upsampler on the stage-1 video latent, then both the upsampled video and
   the stage-1 audio latent are re-noised to the first refinement sigma (noise_scale = 0.909375) and denoised with
   `STAGE_2_DISTILLED_SIGMAS` (3 Euler steps), one positive pass per step. Image conditions are re-encoded at full size.
3. The VAEs and the vocoder decode the full-resolution latents.

With `temporal_upsample=True` (and a `temporal_upsampler` component, LTX-2.5's temporal x2 latent upscaler) stage 2
also doubles the clip in time: the spatially upsampled latent goes through `upsample_in_time` (2F' - 1 latent frames,
2(N - 1) + 1 pixel frames) and is refined positioned at 2 * frame_rate, the audio latent kept at its length; the
call returns 2(N - 1) + 1 frames to be played at 2 * frame_rate with the same soundtrack (`temporal_upsampling`).

Stage 2 of `TI2VidTwoStagesPipeline` is the dev transformer + the distilled LoRA: load it as a peft adapter and pass
its name as `stage_2_adapter`; stage 1 then runs without that adapter (other active adapters, e.g. user LoRAs, apply
in both stages) and stage 2 with it. Without `stage_2_adapter` both stages use the same weights, which with a
distilled checkpoint and scheduler is the `DistilledPipeline`. One generator draws all noise in the reference's
order: stage-1 video, stage-1 audio, stage-2 video, stage-2 audio.
"""

from collections.abc import Callable, Sequence
from functools import partial

import torch
from torch import Tensor

from ..models.autoencoder_kl_ltx2_audio import unpack_audio_latents
from .condition_encoding import Keyframes, encode_conditions
from .conditioning import Generators, unpatchify_video
from .decoding import decode_frames, decode_waveform
from .denoising import denoise, latent_grid, prepare_latents
from .guidance import GuidanceScales, GuidanceSchedule
from .inputs import ImageInput, half_size_image
from .ltx25 import auto_duration, stage_1_sampler
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
from .refinement import (  # noqa: F401  (refine_latents / upsample_and_renoise: import paths kept)
    StageAdapters,
    check_adapter,
    check_upsampler,
    half_size_keyframes,
    refine_latents,
    stage_1_pixel_size,
    two_stage_size_multiple,
    upsample_and_renoise,
)
from .temporal_upsampling import (
    check_temporal_upsample,
    doubled_num_frames,
    keyframes_in_doubled_clip,
    refine_doubled_in_time,
)
from .text_encoding import PromptEmbeddings
from .validation import check_call_inputs, check_sigmas


class LTX2AVTwoStagePipeline(LTX2AVTwoStagePipelineBase):
    """Text/image -> video + stereo audio, generated at half size, upsampled x2 in latent space and refined.

    Components: those of `LTX2AVPipeline` plus `latent_upsampler` (`LTX2LatentUpsamplerModel`, the spatial x2 one,
    or LTX-2.3's x1.5: stage 1 then runs at 2/3 of the output size) and the optional `temporal_upsampler` (the
    temporal x2 `LTX2LatentUpsamplerModel`, used only by calls with `temporal_upsample=True`; saved and loaded as the
    `temporal_upsampler/` folder).
    Build from a one-stage pipeline with `LTX2AVTwoStagePipeline(**pipe.components, latent_upsampler=upsampler)`.
    """

    model_cpu_offload_seq = (
        "text_encoder->connectors->duration_head->transformer->latent_upsampler->temporal_upsampler->vae->"
        "diffusion_decoder->audio_vae->vocoder"
    )
    _optional_components = [*LTX2AVTwoStagePipelineBase._optional_components, "temporal_upsampler"]

    def __init__(
        self, scheduler, vae, audio_vae, text_encoder, tokenizer, connectors, transformer, vocoder,
        latent_upsampler=None, temporal_upsampler=None, processor=None, diffusion_decoder=None, duration_head=None,
    ):  # fmt: skip
        super().__init__(
            scheduler, vae, audio_vae, text_encoder, tokenizer, connectors, transformer, vocoder, latent_upsampler,
            processor, diffusion_decoder, duration_head,
        )  # fmt: skip
        self.register_modules(temporal_upsampler=temporal_upsampler)

    @property
    def components(self) -> dict:
        """diffusers' `components`, without `temporal_upsampler` while it is None: the other two-stage pipelines take
        no temporal upsampler and are built with `Pipeline(**two_stage.components)`; with one set they refuse it
        (TypeError), as they would not use it."""
        components = super().components
        if components.get("temporal_upsampler") is None:
            components.pop("temporal_upsampler", None)
        return components

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None,
        *,
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
        min_seconds: float | None = None,
        max_seconds: float | None = None,
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
        stage_2_adapter: str | None = None,
        stage_2_adapter_scale: float | None = None,
        stage_2_sigmas: Sequence[float] | None = None,
        temporal_upsample: bool = False,
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
        """Generate `num_frames` frames of `height` x `width` video (multiples of 64; 96 with the x1.5
        upsampler) with a stereo soundtrack.

        Stage-1 arguments are `LTX2AVPipeline.__call__`'s (applied at height/2 x width/2; a float image tensor is
        given at the full size and resized for stage 1; `latents` / `audio_latents` are stage 1's initial noise).
        Their defaults are `presets.sampling_preset(model_version, kind)`: with a distilled scheduler (`fixed_sigmas`)
        no guidance (a single pass, no negative prompt), as the reference's `DistilledPipeline`.
        stage_2_adapter: a peft adapter of the transformer (the distilled LoRA, `load_lora_adapter`) for stage 2
            only: stage 1 runs with the other active adapters (none -> adapters disabled), stage 2 with those plus this
            one, at `stage_2_adapter_scale` (None: the strength it was loaded with). Adapters, their enabled state
            and scales are restored after the call. None: both stages use the transformer as it is.
        stage_2_sigmas: the refinement schedule (None: the preset's `STAGE_2_DISTILLED_SIGMAS`); its first value is
            also the re-noising level.
        temporal_upsample: True doubles the clip in time in stage 2 with the `temporal_upsampler` component: stage 1
            makes `num_frames` frames at `frame_rate`, stage 2 refines 2(num_frames - 1) + 1 frames positioned at
            2 * frame_rate, and the call returns those frames, to be played at 2 * frame_rate, with the soundtrack
            of the undoubled clip (the audio latent keeps its length). An image or keyframe at pixel frame k
            conditions stage 1 at k and stage 2 at 2k (the same time). The size guard (`allow_large`) sees the
            doubled clip.
        height / width: None -> the preset's 1024 x 1536 (twice its stage-1 size).
        num_frames / min_seconds / max_seconds: as `LTX2AVPipeline` (None predicts the length with a duration_head).
        Stage 1 samples with the preset's sampler: Euler, or for LTX-2.5 distilled Euler-ancestral seeded with the
        generator's seed + 10000 (the reference's DistilledPipeline).
        callback_on_step_end: called after every step of both stages with a running step index (stage 1's steps,
            then stage 2's); the latents are at half size in stage 1.
        Returns `LTX2PipelineOutput(frames, audio, audio_sample_rate)` or `(frames, audio)`; with
        output_type="latent" the full-resolution video (B, 128, F', H/32, W/32) (2F' - 1 latent frames with
        temporal_upsample) and audio (B, 8, T_a, 16) latents.
        """
        # 1. Defaults of the model version and kind (torch-free presets), then every argument checked before any
        #    encoder runs
        preset = sampling_preset(self.model_version, self.kind, check_reference_for(self.model_version, reference))
        height = preset.two_stage_height if height is None else height
        width = preset.two_stage_width if width is None else width
        frame_rate = preset.frame_rate if frame_rate is None else frame_rate
        duration = auto_duration(
            self, num_frames, frame_rate, min_seconds, max_seconds, latents=latents, audio_latents=audio_latents
        )
        num_frames = (preset.num_frames if duration is None else duration.longest) if num_frames is None else num_frames
        keywords = guidance_keywords(
            guidance_scale, stg_scale, modality_scale, guidance_rescale, audio_guidance_scale, audio_stg_scale,
            audio_modality_scale, audio_guidance_rescale, spatio_temporal_guidance_blocks,
        )  # fmt: skip
        size_multiple = two_stage_size_multiple(self.latent_upsampler, height, width)
        batch_size = check_call_inputs(
            prompt=prompt, negative_prompt=negative_prompt, prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds, num_videos_per_prompt=num_videos_per_prompt,
            enhance_prompt=enhance_prompt, height=height, width=width, num_frames=num_frames, frame_rate=frame_rate,
            size_multiple=size_multiple, image=image, image_strength=image_strength, image_crf=image_crf,
            keyframes=keyframes,
            num_inference_steps=num_inference_steps, sigmas=sigmas, video_guidance=video_guidance,
            audio_guidance=audio_guidance, guidance_keywords=keywords, output_type=output_type,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs, generator=generator,
            return_dict=return_dict, allow_large=allow_large,
        )  # fmt: skip
        check_sigmas(stage_2_sigmas, name="stage_2_sigmas")
        check_adapter(self.transformer, stage_2_adapter, "stage_2_adapter")
        budget = self._memory_placement
        check_temporal_upsample(
            temporal_upsample, self.temporal_upsampler, height, width, num_frames, frame_rate, batch_size,
            allow_large=allow_large, unplanned=budget is not None and budget.plan.sizes.temporal_upsampler == 0,
        )  # fmt: skip
        negative_prompt = preset.negative_prompt if negative_prompt is None else negative_prompt
        prompts, negative_prompts = as_list(prompt), as_list(negative_prompt)
        image_crf = preset.image_crf if image_crf is None else image_crf
        video_guidance, audio_guidance = resolve_guidance(video_guidance, audio_guidance, preset, keywords)
        output_frames, output_rate = (
            (doubled_num_frames(num_frames), 2 * frame_rate) if temporal_upsample else (num_frames, frame_rate)
        )
        self.check_memory_budget(height, width, output_frames, batch_size, video_guidance, audio_guidance, output_rate)
        sigmas = resolve_sigmas(self.scheduler, num_inference_steps, sigmas, timesteps, preset.num_inference_steps)
        stage_2_sigmas = self.scheduler.get_sigmas(
            sigmas=preset.stage_2_sigmas if stage_2_sigmas is None else stage_2_sigmas
        )
        names = callback_tensor_names(callback_on_step_end, callback_on_step_end_tensor_inputs)
        device, dtype, transformer = self._execution_device, self.transformer.dtype, self.transformer
        half = stage_1_pixel_size(self.latent_upsampler, height, width)
        callback = StepCallbacks(self, callback_on_step_end, names)

        # 2. Prompts (optionally enhanced first) -> contexts, once for both stages
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
            needs_negative=needs_uncond(video_guidance, audio_guidance),
            num_videos_per_prompt=num_videos_per_prompt,
            device=device,
            dtype=dtype,
            reference=reference,
        )
        if duration is not None:  # LTX-2.5: the clip length from the prompt (checked above for the longest)
            num_frames = duration.predict(self, contexts.video, contexts.audio)

        with StageAdapters(transformer) as adapters:
            # 3. Stage 1 at half size: conditions, noise, guided Euler (without the stage-2 adapter)
            if stage_2_adapter is not None:
                adapters.use(adapters.others(stage_2_adapter))
            half_image = None if image is None else half_size_image(image, height, width, size=half)
            half_keyframes = half_size_keyframes(keyframes, height, width, half)
            conditions = encode_conditions(
                self.vae, half_image, image_strength, half_keyframes, *half, image_crf, device
            )
            video, audio = prepare_latents(
                batch_size,
                *half,
                num_frames,
                frame_rate,
                generator=generator,
                device=device,
                dtype=dtype,
                conditions=conditions,
                **self.latent_layout,
                video_noise=latents,
                audio_noise=audio_latents,
                reference=reference,
            )
            video, audio = denoise(
                transformer,
                video,
                audio,
                contexts,
                sigmas,
                video_guidance,
                audio_guidance,
                progress_bar=self.progress_bar,
                callback=callback,
                reference=reference,
                sampler=stage_1_sampler(preset, generator),
            )
            video_latents = unpatchify_video(video.output_tokens(), *latent_grid(*half, num_frames))
            audio_latents = unpack_audio_latents(audio.output_tokens(), self.audio_vae.config.latent_channels)

            # 4. Stage 2: upsample x2 (and x2 in time with temporal_upsample), re-noise, refine with one positive pass
            #    per step (the distilled adapter on)
            if stage_2_adapter is not None:
                adapters.use(
                    [*adapters.others(stage_2_adapter), stage_2_adapter], {stage_2_adapter: stage_2_adapter_scale}
                )
            if temporal_upsample:  # the clip doubled in time as well: an image at frame k conditions frame 2k
                keyframes = keyframes_in_doubled_clip(keyframes)
            conditions = encode_conditions(self.vae, image, image_strength, keyframes, height, width, image_crf, device)
            refine = (
                partial(refine_doubled_in_time, temporal_upsampler=self.temporal_upsampler)
                if temporal_upsample
                else refine_latents
            )
            video_latents, audio_latents = refine(
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
                progress_bar=self.progress_bar,
                callback=callback,
                reference=reference,
            )

        # 5. Latents -> frames and waveform
        frames = decode_frames(self.video_decoder, video_latents, output_type, generator)
        waveform, sample_rate = decode_waveform(self.audio_vae, self.vocoder, audio_latents, output_type, reference)
        return pipeline_output(self, frames, waveform, sample_rate, return_dict)
