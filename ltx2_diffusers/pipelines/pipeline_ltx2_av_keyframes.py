"""LTX2AVKeyframeInterpolationPipeline: keyframe images at chosen pixel frames -> the video between them, with sound.

ltx-pipelines' `KeyframeInterpolationPipeline` (spec §4, §7.2) in diffusers' shape, the two-stage story with one
difference: EVERY keyframe, frame 0 included, is appended as guiding tokens positioned at its pixel frame
(`condition_encoding.encode_keyframes`, ltx-core's `VideoConditionByKeyframeIndex`) in both stages; nothing replaces
latent frames in place, as image-to-video does.
1. Stage 1 at (H/2, W/2) (2/3 of the output with the x1.5 upsampler): prompts -> contexts (once for both stages), the
   keyframes encoded at that size and appended, noise, guided Euler with the model version's defaults (a single unguided
   pass per step on a distilled scheduler).
2. Stage 2 (`refine_latents`): the latent upsampler (x2 or x1.5) on the stage-1 video latent, the keyframes re-encoded
   at full size and appended again, video and audio re-noised to `stage_2_sigmas[0]`, Euler on one positive pass per
   step, with the distilled LoRA switched on when `stage_2_adapter` names it.
3. The VAEs and the vocoder decode the full-size latents.
One generator draws all noise in the reference's order: stage-1 video, stage-1 audio, stage-2 video, stage-2 audio.
"""

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..models.autoencoder_kl_ltx2_audio import unpack_audio_latents
from .condition_encoding import Keyframes, encode_keyframes
from .conditioning import Generators, unpatchify_video
from .decoding import decode_frames, decode_waveform
from .denoising import denoise, latent_grid, prepare_latents
from .guidance import GuidanceScales, GuidanceSchedule
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
    half_size_keyframes,
    refine_latents,
    stage_1_pixel_size,
    two_stage_size_multiple,
)
from .text_encoding import PromptEmbeddings
from .validation import check_call_inputs, check_sigmas


def check_keyframes_given(keyframes: Keyframes, num_frames: int) -> None:
    """At least one keyframe: without any, the call is text-to-video, which the two-stage pipeline is for."""
    if len(keyframes) == 0:
        raise ValueError(
            "keyframes is empty: pass at least one (image, pixel_frame_index, strength) triple, e.g. "
            f"[(first, 0, 1.0), (last, {num_frames - 1}, 1.0)]; for text-to-video use LTX2AVTwoStagePipeline"
        )


class LTX2AVKeyframeInterpolationPipeline(LTX2AVTwoStagePipelineBase):
    """Keyframes -> the video through them (+ stereo audio), at half size first, then upsampled x2 and refined.

    Components: those of `LTX2AVTwoStagePipeline` (`latent_upsampler` the spatial x2 one, or the x1.5 one). Build one
    with `LTX2AVKeyframeInterpolationPipeline(**two_stage_pipe.components)`, `from_pretrained` or `from_single_file`.
    """

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None,
        *,
        keyframes: Keyframes,
        image_crf: int | None = None,
        enhance_prompt: bool = False,
        enhance_prompt_seed: int | None = None,
        height: int | None = None,
        width: int | None = None,
        num_frames: int = 121,
        frame_rate: float = 24.0,
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
        upsampler, whose stage 1 runs at 2/3 of the output size) through the keyframes, with sound.

        keyframes: (image, pixel_frame_index, strength) triples, e.g. [(first, 0, 1.0), (last, num_frames - 1, 1.0)].
            The image is a path, PIL image, (H, W, 3) uint8 array / tensor (H.264 round-tripped at `image_crf`, None:
            the model version's, 33; 0 skips it; cover-resized and centre-cropped to each stage's size) or a float
            tensor (3, H, W) in [-1, 1] at the output size (taken as prepared; resized for stage 1). Strength 1 keeps
            the keyframe's tokens clean; every keyframe guides both stages.
        height / width: None -> the two-stage preset's 1024 x 1536.
        The other stage-1 arguments are `LTX2AVTwoStagePipeline.__call__`'s: negative_prompt, num_inference_steps,
        sigmas / timesteps, video_guidance / audio_guidance and diffusers' scalar keywords default to the model
        version's preset (`presets.sampling_preset`; a distilled scheduler: its 8 fixed sigmas, no guidance);
        `latents` / `audio_latents` are stage 1's initial noise (half size).
        stage_2_adapter: the distilled LoRA's peft adapter name: on in stage 2 only (at `stage_2_adapter_scale`, None:
            its loaded strength), the adapters' state restored afterwards. None: both stages use the transformer as is.
        stage_2_sigmas: the refinement schedule (None: `STAGE_2_DISTILLED_SIGMAS`); its first value is also the
            re-noising level.
        enhance_prompt: Gemma rewrites the first prompt, seeing the first keyframe (needs the `processor`).
        callback_on_step_end(pipe, step_index, timestep, {name: tensor}) after every step of both stages, with a running
            step index (stage 1's steps, then stage 2's); tensors in token layout ("video_latents" includes the
            appended keyframe tokens), at half size in stage 1. Returned tensors replace the named ones.
        allow_large: let clips above `validation`'s work limits through.
        reference: "1.2" (default) or "1.0", the ltx-pipelines release to follow (`LTX2AVPipeline.__call__`); with
            "1.2" a keyframe at frame k > 0 spans one pixel frame, [k, k + 1), instead of 1.0.0's [k, k + 8).
        Returns `LTX2PipelineOutput(frames, audio, audio_sample_rate)` or `(frames, audio)`; with
        output_type="latent" the full-resolution video (B, 128, F', H/32, W/32) and audio (B, 8, T_a, 16) latents.
        """
        # 1. Defaults of the model version and kind (torch-free presets), then every argument checked before any
        #    encoder runs
        preset = sampling_preset(self.model_version, self.kind, check_reference_for(self.model_version, reference))
        height = preset.two_stage_height if height is None else height
        width = preset.two_stage_width if width is None else width
        keywords = guidance_keywords(
            guidance_scale, stg_scale, modality_scale, guidance_rescale, audio_guidance_scale, audio_stg_scale,
            audio_modality_scale, audio_guidance_rescale, spatio_temporal_guidance_blocks,
        )  # fmt: skip
        size_multiple = two_stage_size_multiple(self.latent_upsampler, height, width)
        batch_size = check_call_inputs(
            prompt=prompt, negative_prompt=negative_prompt, prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds, num_videos_per_prompt=num_videos_per_prompt,
            enhance_prompt=enhance_prompt, height=height, width=width, num_frames=num_frames, frame_rate=frame_rate,
            size_multiple=size_multiple, image_crf=image_crf, keyframes=keyframes,
            num_inference_steps=num_inference_steps, sigmas=sigmas, video_guidance=video_guidance,
            audio_guidance=audio_guidance, guidance_keywords=keywords, output_type=output_type,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs, generator=generator,
            return_dict=return_dict, allow_large=allow_large,
        )  # fmt: skip
        negative_prompt = preset.negative_prompt if negative_prompt is None else negative_prompt
        prompts, negative_prompts = as_list(prompt), as_list(negative_prompt)
        image_crf = preset.image_crf if image_crf is None else image_crf
        stage_2_sigmas = preset.stage_2_sigmas if stage_2_sigmas is None else stage_2_sigmas
        video_scales, audio_scales = resolve_guidance(video_guidance, audio_guidance, preset, keywords)
        self.check_memory_budget(height, width, num_frames, batch_size, video_scales, audio_scales, frame_rate)
        names = callback_tensor_names(callback_on_step_end, callback_on_step_end_tensor_inputs)
        check_keyframes_given(keyframes, num_frames)
        check_sigmas(stage_2_sigmas, name="stage_2_sigmas")
        check_adapter(self.transformer, stage_2_adapter, "stage_2_adapter")
        sigmas = resolve_sigmas(self.scheduler, num_inference_steps, sigmas, timesteps, preset.num_inference_steps)
        stage_2_sigmas = self.scheduler.get_sigmas(sigmas=stage_2_sigmas)
        device, dtype, transformer = self._execution_device, self.transformer.dtype, self.transformer
        half = stage_1_pixel_size(self.latent_upsampler, height, width)
        callback = StepCallbacks(self, callback_on_step_end, names)

        # 2. Prompts (optionally enhanced first, seeing the first keyframe) -> contexts, once for both stages
        if prompts is not None:
            prompts = maybe_enhance_prompt(
                self, prompts, enhance_prompt, keyframes[0][0], enhance_prompt_seed, generator, device
            )
        contexts = prompt_contexts(
            self,
            prompts,
            negative_prompts,
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            needs_negative=needs_uncond(video_scales, audio_scales),
            num_videos_per_prompt=num_videos_per_prompt,
            device=device,
            dtype=dtype,
            reference=reference,
        )

        with StageAdapters(transformer) as adapters:
            # 3. Stage 1 at half size: every keyframe appended as guiding tokens, noise, guided Euler
            if stage_2_adapter is not None:
                adapters.use(adapters.others(stage_2_adapter))
            conditions = encode_keyframes(
                self.vae, half_size_keyframes(keyframes, height, width, half), *half, image_crf, device
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
                video_scales,
                audio_scales,
                progress_bar=self.progress_bar,
                callback=callback,
                reference=reference,
            )
            video_latents = unpatchify_video(video.output_tokens(), *latent_grid(*half, num_frames))
            audio_latents = unpack_audio_latents(audio.output_tokens(), self.audio_vae.config.latent_channels)

            # 4. Stage 2: upsample (x2 or x1.5), the keyframes appended again at full size, re-noise, refine with one
            #    positive pass per step (the stage-2 adapter on)
            if stage_2_adapter is not None:
                adapters.use(
                    [*adapters.others(stage_2_adapter), stage_2_adapter], {stage_2_adapter: stage_2_adapter_scale}
                )
            conditions = encode_keyframes(self.vae, keyframes, height, width, image_crf, device)
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
                progress_bar=self.progress_bar,
                callback=callback,
                reference=reference,
            )

        # 5. Latents -> frames and waveform
        frames = decode_frames(self.video_decoder, video_latents, output_type, generator)
        waveform, sample_rate = decode_waveform(self.audio_vae, self.vocoder, audio_latents, output_type, reference)
        return pipeline_output(self, frames, waveform, sample_rate, return_dict)
