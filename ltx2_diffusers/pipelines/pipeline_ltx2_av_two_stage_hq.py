"""LTX2AVTwoStageHQPipeline: the two-stage pipeline with the res_2s sampler (spec §6.5-6.6, §9).

ltx-pipelines' `TI2VidTwoStagesHQPipeline` in diffusers' shape. The story of `LTX2AVTwoStagePipeline` with
`sampler=res2s_sample` in both stages, and:
1. Stage 1 at (H/2, W/2) (2/3 of the output with the x1.5 upsampler): the LTX-2 schedule shifted by the stage-1 latent's
   real token count F'·H'·W' (the other pipelines fix it at 4096), constant guidance at the HQ defaults
   (`presets.hq_preset`: 15 steps, no STG, rescale 0.45 for video and 1.0 for audio) and the distilled LoRA at strength
   0.25.
2. Stage 2: upsample (x2 or x1.5, `refine_latents`), re-noise to `STAGE_2_DISTILLED_SIGMAS[0]`, then res_2s over
   those sigmas with one positive pass per prediction, the distilled LoRA at strength 0.5.
3. Decode as the other pipelines.

The res_2s SDE noise comes from fixed seeds (the reference never passes one), so it is the same for every user seed;
the generator draws the initial noise of both stages (stage-1 video, stage-1 audio, stage-2 video, stage-2 audio).
"""

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..models.autoencoder_kl_ltx2_audio import unpack_audio_latents
from ..schedulers.scheduling_ltx2 import ltx2_sigmas, res2s_sample
from .condition_encoding import Keyframes, encode_conditions
from .conditioning import Generators, unpatchify_video
from .decoding import decode_frames, decode_waveform
from .denoising import denoise, latent_grid, prepare_latents
from .guidance import GuidanceScales, GuidanceSchedule
from .inputs import ImageInput
from .ltx25 import auto_duration
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
from .presets import DEFAULT_REFERENCE, check_reference_for, hq_preset
from .refinement import (
    StageAdapters,
    check_adapter,
    encode_stage_1_conditions,
    refine_latents,
    stage_1_pixel_size,
    two_stage_size_multiple,
)
from .text_encoding import PromptEmbeddings
from .validation import check_call_inputs, check_number, check_sigmas


class LTX2AVTwoStageHQPipeline(LTX2AVTwoStagePipelineBase):
    """Text/image -> video + stereo audio in two res_2s stages (ltx-pipelines' `TI2VidTwoStagesHQPipeline`).

    Components: those of `LTX2AVTwoStagePipeline`. Build with `LTX2AVTwoStageHQPipeline(**two_stage_pipe.components)`; load the distilled LoRA as a peft
    adapter (`load_lora_adapter(pipe.transformer, path, adapter_name="distilled")`) and pass
    `distilled_adapter="distilled"`.
    """

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
        distilled_adapter: str | None = None,
        stage_1_adapter_scale: float | None = None,
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
        """Generate `num_frames` frames of `height` x `width` video (multiples of 64; 96 with the x1.5
        upsampler, whose stage 1 runs at 2/3 of the output size) with a stereo soundtrack.

        Defaults (None) come from `presets.hq_preset(model_version)`: 1088 x 1920, 15 steps, the adapter scales
        0.25 / 0.5, `STAGE_2_DISTILLED_SIGMAS`.
        num_inference_steps: stage-1 res_2s steps; the schedule is shifted by the stage-1 token count
            F'·(H/64)·(W/64) (F'·(H/48)·(W/48) with the x1.5 upsampler; `ltx2_sigmas(steps, num_tokens)` with the
            scheduler's shifts). sigmas / timesteps: an explicit schedule instead (see `LTX2AVPipeline.__call__`).
        video_guidance / audio_guidance (or diffusers' scalar keywords): stage-1 guidance, default the reference's HQ
            parameters. `skip_step` is not supported (res_2s makes two guided predictions per step).
        distilled_adapter: a peft adapter of the transformer (the distilled LoRA, `load_lora_adapter`), active at
            `stage_1_adapter_scale` in stage 1 and `stage_2_adapter_scale` in stage 2, on top of the other active
            adapters; adapters, their enabled state and scales are restored afterwards. None: the transformer as is.
        stage_2_sigmas: the refinement schedule; its first value is also the re-noising level.
        The other arguments (prompts and their embeddings, images, generator, latents, callback, output) are
        `LTX2AVTwoStagePipeline.__call__`'s. Returns `LTX2PipelineOutput(frames, audio, audio_sample_rate)` or
        `(frames, audio)`; with output_type="latent" the full-resolution video (B, 128, F', H/32, W/32) and audio
        (B, 8, T_a, 16) latents.
        """
        # 1. The HQ defaults (torch-free presets), then every argument checked before any encoder runs
        preset = hq_preset(self.model_version, check_reference_for(self.model_version, reference))
        height = preset.two_stage_height if height is None else height
        width = preset.two_stage_width if width is None else width
        frame_rate = preset.frame_rate if frame_rate is None else frame_rate
        duration = auto_duration(
            self, num_frames, frame_rate, min_seconds, max_seconds, latents=latents, audio_latents=audio_latents
        )  # LTX-2.5 with a duration head: num_frames=None predicts it (`LTX2AVPipeline`)
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
        stage_1_adapter_scale = preset.stage_1_adapter_scale if stage_1_adapter_scale is None else stage_1_adapter_scale
        stage_2_adapter_scale = preset.stage_2_adapter_scale if stage_2_adapter_scale is None else stage_2_adapter_scale
        check_number(stage_1_adapter_scale, "stage_1_adapter_scale")
        check_number(stage_2_adapter_scale, "stage_2_adapter_scale")
        check_adapter(self.transformer, distilled_adapter, "distilled_adapter")
        negative_prompt = preset.negative_prompt if negative_prompt is None else negative_prompt
        prompts, negative_prompts = as_list(prompt), as_list(negative_prompt)
        image_crf = preset.image_crf if image_crf is None else image_crf
        video_guidance, audio_guidance = resolve_guidance(video_guidance, audio_guidance, preset, keywords)
        self.check_memory_budget(height, width, num_frames, batch_size, video_guidance, audio_guidance, frame_rate)
        num_inference_steps = preset.num_inference_steps if num_inference_steps is None else num_inference_steps
        half = stage_1_pixel_size(self.latent_upsampler, height, width)
        grid = latent_grid(*half, num_frames)
        shifted = sigmas is None and timesteps is None  # the HQ shift: the stage-1 latent's real token count

        def shifted_sigmas(grid: tuple[int, int, int]):
            cfg, num_tokens = self.scheduler.config, grid[0] * grid[1] * grid[2]
            return ltx2_sigmas(num_inference_steps, num_tokens, cfg.base_shift, cfg.max_shift, cfg.shift_terminal)

        sigmas = resolve_sigmas(
            self.scheduler, None, shifted_sigmas(grid) if shifted else sigmas, timesteps, num_inference_steps
        )
        stage_2_sigmas = self.scheduler.get_sigmas(
            sigmas=preset.stage_2_sigmas if stage_2_sigmas is None else stage_2_sigmas
        )
        names = callback_tensor_names(callback_on_step_end, callback_on_step_end_tensor_inputs)
        device, dtype, transformer = self._execution_device, self.transformer.dtype, self.transformer
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
        if duration is not None:  # LTX-2.5: the predicted length, and the HQ shift for its token count
            num_frames = duration.predict(self, contexts.video, contexts.audio)
            grid = latent_grid(*half, num_frames)
            if shifted:
                sigmas = resolve_sigmas(self.scheduler, None, shifted_sigmas(grid), None, num_inference_steps)

        with StageAdapters(transformer) as adapters:
            # 3. Stage 1 at half size: conditions, noise, guided res_2s (the distilled adapter at its stage-1 scale)
            others = adapters.others(distilled_adapter)
            if distilled_adapter is not None:
                adapters.use([*others, distilled_adapter], {distilled_adapter: stage_1_adapter_scale})
            conditions = encode_stage_1_conditions(
                self.vae, image, image_strength, keyframes, height, width, half, image_crf, device
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
                sampler=res2s_sample,
                progress_bar=self.progress_bar,
                callback=callback,
                reference=reference,
            )
            video_latents = unpatchify_video(video.output_tokens(), *grid)
            audio_latents = unpack_audio_latents(audio.output_tokens(), self.audio_vae.config.latent_channels)

            # 4. Stage 2: upsample (x2 or x1.5), re-noise, res_2s with one positive pass per prediction
            if distilled_adapter is not None:
                adapters.use([*others, distilled_adapter], {distilled_adapter: stage_2_adapter_scale})
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
                sampler=res2s_sample,
                progress_bar=self.progress_bar,
                callback=callback,
                reference=reference,
            )

        # 5. Latents -> frames and waveform
        frames = decode_frames(self.video_decoder, video_latents, output_type, generator)
        waveform, sample_rate = decode_waveform(self.audio_vae, self.vocoder, audio_latents, output_type, reference)
        return pipeline_output(self, frames, waveform, sample_rate, return_dict)
