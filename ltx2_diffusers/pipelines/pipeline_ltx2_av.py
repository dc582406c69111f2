"""LTX2AVPipeline: text (and optional images) -> video with a synchronized stereo soundtrack, in one stage.

ltx-pipelines' `TI2VidOneStagePipeline` in diffusers' shape, as a story over the shared stages: prompts -> contexts,
images -> condition latents, noise + conditions -> latents, guided Euler -> latents, VAEs + vocoder -> media.
Defaults follow the checkpoint's model version (LTX-2: 40 steps, STG block 29; LTX-2.3: 30 steps, block 28).
"""

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..models.autoencoder_kl_ltx2_audio import unpack_audio_latents
from .condition_encoding import Keyframes, encode_conditions
from .conditioning import Generators, unpatchify_video
from .decoding import decode_frames, decode_waveform
from .denoising import denoise, latent_grid, prepare_latents
from .guidance import GuidanceScales, GuidanceSchedule
from .inputs import ImageInput
from .ltx25 import auto_duration, stage_1_sampler
from .pipeline_base import LTX2AVPipelineBase
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
from .presets import DEFAULT_NEGATIVE_PROMPT, DEFAULT_REFERENCE, check_reference_for, sampling_preset
from .text_encoding import PromptEmbeddings
from .validation import check_call_inputs

__all__ = ["DEFAULT_NEGATIVE_PROMPT", "LTX2AVPipeline"]  # DEFAULT_NEGATIVE_PROMPT: importable from its old home (it lives in presets)


class LTX2AVPipeline(LTX2AVPipelineBase):
    """Text/image -> video + stereo audio with LTX-2 or LTX-2.3, one stage (ltx-pipelines' one-stage pipeline).

    Components keep diffusers' LTX2Pipeline names: `transformer`, `vae`, `audio_vae`, `vocoder`, `connectors`,
    `text_encoder` (Gemma-3), `tokenizer`, `scheduler` (`LTX2Scheduler`), and the optional `processor`
    (`Gemma3Processor`), which only image-to-video prompt enhancement uses.
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
        """Generate `num_frames` frames of `height` x `width` video with a stereo soundtrack.

        prompt: one prompt or a list (one clip each, times `num_videos_per_prompt`); or `prompt_embeds` from
            `pipe.encode_prompt(...)` instead (then the text encoder may be None).
        negative_prompt: None -> the model version's default (the reference's); "" for an empty one. Or
            `negative_prompt_embeds`. Only encoded when a classifier-free guidance scale != 1.
        image: conditions pixel frame 0 (image-to-video) at `image_strength` (1 keeps it exactly). A path, PIL image or
            array is H.264 round-tripped at `image_crf` (None: the model version's, the reference's 33; 0 skips it),
            cover-resized and centre-cropped; a float tensor in [-1, 1] must already be height x width. Any form
            `inputs.image_to_uint8` reads (16-bit PNGs keep their grey levels).
        keyframes: (image, pixel_frame_index, strength) triples, appended as keyframe tokens at those frames.
        height / width / num_frames / frame_rate: None -> the preset's 512 x 768, 121 frames at 24 fps; height and
            width multiples of 32, num_frames 8k + 1. With a `duration_head` (LTX-2.5), num_frames=None predicts the
            clip length from the first prompt (`pipelines.ltx25`), within [min_seconds, max_seconds] (None: 1 and 20).
        enhance_prompt: let Gemma rewrite the FIRST prompt into a detailed description before encoding (the
            reference's opt-in `--enhance-prompt`); with an `image` (else the first keyframe's) Gemma sees it, which
            needs the pipeline's `processor` (a `Gemma3Processor`). Sampled, so it changes with the seed.
        enhance_prompt_seed: the enhancement's sampling seed; None -> the generator's seed (`initial_seed()`, as the
            reference passes its pipeline seed), or 10 without a generator.
        num_inference_steps / video_guidance / audio_guidance: None -> the model version's defaults; with a distilled
            scheduler (fixed sigmas) no guidance at all, one conditional pass per step, as the reference's
            distilled pipeline.
        guidance_scale, stg_scale, modality_scale, guidance_rescale (+ `audio_` variants),
            spatio_temporal_guidance_blocks: diffusers' scalar form, applied to the defaults' `GuidanceScales`
            (cfg, stg, modality, rescale, stg_blocks); not together with video_guidance / audio_guidance.
        sigmas: an explicit schedule ending in 0 (e.g. `DISTILLED_SIGMAS`); or diffusers' `timesteps` (1000 * sigma
            per step, no final 0). With num_inference_steps, the counts must agree.
        generator: one torch.Generator (all noise from it, in the reference's order) or one per video.
        latents / audio_latents: the initial noise instead of a draw, (B or 1, 128, F', H/32, W/32) and
            (B or 1, 8, T_a, 16) normalised latents.
        callback_on_step_end(pipe, step_index, timestep, {name: tensor}) -> dict of replacements, diffusers' convention,
        with tensor names from `callback_on_step_end_tensor_inputs` ("video_latents", "audio_latents": token layout).
        allow_large: let through clips above 524,288 video tokens per sample or 64 GiB of decoded frames, and more
            than 1000 steps (refused by default as likely typos; `validation.check_work`).
        reference: "1.2" (default) follows ltx-core / ltx-pipelines 1.2.0, "1.0" reproduces 1.0.0 bit for bit (its
            guidance arithmetic, noiser, conditioning, tokenization, default negative prompt and the transformer's
            audio<->video AdaLN rule; docs/pipelines.md, "Reference versions"). LTX-2.5 runs with "1.2" only.
        Every argument is checked (`validation.check_call_inputs`) before any encoder runs.
        Returns `LTX2PipelineOutput(frames, audio, audio_sample_rate)` or `(frames, audio)`; with output_type="latent"
        the video (B, 128, F', H/32, W/32) and audio (B, 8, T_a, 16) latents.
        """
        # 1. Defaults of the model version and kind (torch-free presets), then every argument checked before any
        #    encoder runs
        preset = sampling_preset(self.model_version, self.kind, check_reference_for(self.model_version, reference))
        height, width = preset.height if height is None else height, preset.width if width is None else width
        frame_rate = preset.frame_rate if frame_rate is None else frame_rate
        duration = auto_duration(
            self, num_frames, frame_rate, min_seconds, max_seconds, latents=latents, audio_latents=audio_latents
        )
        num_frames = (preset.num_frames if duration is None else duration.longest) if num_frames is None else num_frames
        keywords = guidance_keywords(
            guidance_scale, stg_scale, modality_scale, guidance_rescale, audio_guidance_scale, audio_stg_scale,
            audio_modality_scale, audio_guidance_rescale, spatio_temporal_guidance_blocks,
        )  # fmt: skip
        batch_size = check_call_inputs(
            prompt=prompt, negative_prompt=negative_prompt, prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds, num_videos_per_prompt=num_videos_per_prompt,
            enhance_prompt=enhance_prompt, height=height, width=width, num_frames=num_frames, frame_rate=frame_rate,
            size_multiple=32, image=image, image_strength=image_strength, image_crf=image_crf, keyframes=keyframes,
            num_inference_steps=num_inference_steps, sigmas=sigmas, video_guidance=video_guidance,
            audio_guidance=audio_guidance, guidance_keywords=keywords, output_type=output_type,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs, generator=generator,
            return_dict=return_dict, allow_large=allow_large,
        )  # fmt: skip
        negative_prompt = preset.negative_prompt if negative_prompt is None else negative_prompt
        prompts, negative_prompts = as_list(prompt), as_list(negative_prompt)
        image_crf = preset.image_crf if image_crf is None else image_crf
        video_guidance, audio_guidance = resolve_guidance(video_guidance, audio_guidance, preset, keywords)
        self.check_memory_budget(height, width, num_frames, batch_size, video_guidance, audio_guidance, frame_rate)
        sigmas = resolve_sigmas(self.scheduler, num_inference_steps, sigmas, timesteps, preset.num_inference_steps)
        names = callback_tensor_names(callback_on_step_end, callback_on_step_end_tensor_inputs)
        device, dtype = self._execution_device, self.transformer.dtype

        # 2. Prompts (optionally enhanced first) -> video and audio contexts, positive and negative in one Gemma batch
        first_image = image if image is not None else (keyframes[0][0] if keyframes else None)
        if prompts is not None:
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

        # 3. Images -> condition latents
        conditions = encode_conditions(self.vae, image, image_strength, keyframes, height, width, image_crf, device)

        # 4. Noise, token positions, denoise masks
        video, audio = prepare_latents(
            batch_size,
            height,
            width,
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

        # 5. Denoise: Euler, every guidance pass of a step in one batched transformer call
        video, audio = denoise(
            self.transformer,
            video,
            audio,
            contexts,
            sigmas,
            video_guidance,
            audio_guidance,
            progress_bar=self.progress_bar,
            callback=StepCallbacks(self, callback_on_step_end, names),
            reference=reference,
            sampler=stage_1_sampler(preset, generator),
        )

        # 6. Latents -> frames and waveform
        video_latents = unpatchify_video(video.output_tokens(), *latent_grid(height, width, num_frames))
        audio_latents = unpack_audio_latents(audio.output_tokens(), self.audio_vae.config.latent_channels)
        frames = decode_frames(self.video_decoder, video_latents, output_type, generator)
        waveform, sample_rate = decode_waveform(self.audio_vae, self.vocoder, audio_latents, output_type, reference)
        return pipeline_output(self, frames, waveform, sample_rate, return_dict)
