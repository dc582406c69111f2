"""LTX2AVICLoRAPipeline: video + audio conditioned on reference videos through an IC-LoRA (spec §7.3, §7.4, §9).

ltx-pipelines' `ICLoraPipeline` in diffusers' shape, on the distilled checkpoint with `LTX2Scheduler.distilled()`:
1. Stage 1 at (H/2, W/2) (2/3 of the output with the x1.5 upsampler), 8 distilled steps, one positive pass per step,
   with the transformer's active adapters (the IC-LoRA, `load_ic_lora`). Conditions: images / keyframes as in the
   two-stage pipeline, then each reference video (depth, pose, edges, ...) encoded at 1/`reference_downscale_factor` of
   the stage-1 size and appended as tokens of its own grid (`ReferenceCondition`), optionally with an attention strength
   (a scalar, or a mask video).
2. Stage 2 as `LTX2AVTwoStagePipeline`'s (`refine_latents`) with every adapter switched off (the reference's stage-2
   model carries no LoRA) and image conditions only; `skip_stage_2=True` decodes the half-size stage-1 result instead.
One generator draws all noise in the reference's order: stage-1 video (reference tokens included), stage-1 audio,
stage-2 video, stage-2 audio.
"""

import warnings
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..loaders.lora import LoRAInput, LTX2LoRA, load_lora_adapter, read_lora
from ..models.autoencoder_kl_ltx2_audio import unpack_audio_latents
from .condition_encoding import (
    Keyframes,
    check_reference_size,
    encode_conditions,
    encode_reference_video,
    encode_references,
)
from .conditioning import Generators, unpatchify_video
from .decoding import decode_frames, decode_waveform
from .denoising import denoise, latent_grid, prepare_latents
from .guidance import GuidanceScales, GuidanceSchedule
from .inputs import ImageInput, VideoInput
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
    encode_stage_1_conditions,
    refine_latents,
    stage_1_pixel_size,
    two_stage_size_multiple,
)
from .text_encoding import PromptEmbeddings
from .validation import check_call_inputs, check_int, check_media, check_sigmas, check_strength


def check_reference_inputs(attention_strength, attention_mask, reference_videos, factor) -> None:
    """The IC-LoRA's own arguments: (video, strength) reference pairs, the attention strength, its mask, the factor."""
    check_strength(attention_strength, "conditioning_attention_strength")
    if not isinstance(reference_videos, list | tuple):
        raise TypeError(f"reference_videos must be a list of (video, strength) pairs, got {type(reference_videos)}")
    for i, pair in enumerate(reference_videos):
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise ValueError(f"reference_videos[{i}] must be a (video, strength) pair, got {pair!r:.80}")
        check_media(pair[0], f"reference_videos[{i}]", what="video")
        check_strength(pair[1], f"reference_videos[{i}] strength")
    if attention_mask is not None and not reference_videos:
        raise ValueError("conditioning_attention_mask was given without reference_videos: pass the reference video")
    check_int(factor, "reference_downscale_factor")


class LTX2AVICLoRAPipeline(LTX2AVTwoStagePipelineBase):
    """Text + reference videos (+ optional images) -> video + stereo audio with an IC-LoRA, in two stages.

    Components: those of `LTX2AVTwoStagePipeline`. Use the distilled checkpoint and scheduler, and load the IC-LoRA
    with `load_ic_lora` (it records the file's `reference_downscale_factor` with the adapter).
    """

    @property
    def reference_downscale_factor(self) -> int:
        """The `reference_downscale_factor` of the IC-LoRAs still loaded in the transformer (1 when none declares
        one): a factor goes with its adapter, so deleting the adapter drops it."""
        loaded = set(getattr(self.transformer, "peft_config", None) or {})
        factors = {f for name, f in getattr(self, "_ic_lora_factors", {}).items() if name in loaded and f != 1}
        return factors.pop() if factors else 1

    def load_ic_lora(self, lora: LoRAInput, adapter_name: str = "ic_lora", strength: float = 1.0) -> str:
        """Load an IC-LoRA file as a peft adapter of the transformer (`load_lora_adapter`) and record its metadata's
        `reference_downscale_factor` with the adapter. Two IC-LoRAs with different factors >1 cannot be combined (as
        in the reference). Returns the adapter name."""
        lora = lora if isinstance(lora, LTX2LoRA) else read_lora(lora)  # a path or a state dict
        factor, current = lora.reference_downscale_factor, self.reference_downscale_factor
        if factor != 1 and current not in (1, factor):
            raise ValueError(
                f"this IC-LoRA has reference_downscale_factor={factor}, but one loaded before has {current}: LoRAs "
                "expecting different reference sizes cannot be combined"
            )
        name = load_lora_adapter(self.transformer, lora, adapter_name, strength, connectors=self.connectors)
        self._ic_lora_factors = {**getattr(self, "_ic_lora_factors", {}), name: factor}
        return name

    @torch.no_grad()
    def encode_reference_video(self, video: VideoInput, height: int, width: int, max_frames: int) -> Tensor:
        """A reference video -> normalised latent (1, 128, f, height/32, width/32) (`encode_reference_video`)."""
        return encode_reference_video(self.vae, video, height, width, max_frames, self._execution_device)

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None,
        *,
        reference_videos: Sequence[tuple[VideoInput, float]] = (),
        conditioning_attention_strength: float = 1.0,
        conditioning_attention_mask: Tensor | None = None,
        reference_downscale_factor: int | None = None,
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
        skip_stage_2: bool = False,
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
        upsampler, whose stage 1 runs at 2/3 of the output size) guided by reference videos.

        reference_videos: (video, strength) pairs; a video is any form `inputs.video_frames` reads (at most
            `num_frames` are used; 8k + 1 of them), resized to the stage-1 size / `reference_downscale_factor`.
            strength 1 keeps the reference tokens clean.
        conditioning_attention_strength: in [0, 1], how strongly the generated tokens attend to the reference ones
            (0 ignores the reference). With `conditioning_attention_mask` (B or 1, 1, F, H, W) weights in [0, 1] over
            the reference video's frames (e.g. `mask_from_frames(frames, height // 2, width // 2)`, the stage-1 size;
            2/3 of the output with the x1.5 upsampler), the mask is reduced to the reference's latent grid
            (`attention_strength_from_mask`) and multiplied by it.
        reference_downscale_factor: None -> the one `load_ic_lora` read from the LoRA file (1 if none).
        skip_stage_2: return the stage-1 result at height/2 x width/2, decoded (whatever the upsampler's scale: it is
            then not used; height and width must be multiples of 64).
        Stage-1 guidance defaults to the scheduler's kind (distilled: none, one pass per step), as
        `LTX2AVTwoStagePipeline`; the other arguments are its call's (the images condition both stages).
        Returns `LTX2PipelineOutput(frames, audio, audio_sample_rate)` or `(frames, audio)`.
        """
        # 1. Defaults of the model version and kind (torch-free presets), then every argument checked before any
        #    encoder runs
        preset = sampling_preset(self.model_version, self.kind, check_reference_for(self.model_version, reference))
        height = preset.two_stage_height if height is None else height
        width = preset.two_stage_width if width is None else width
        num_frames = preset.num_frames if num_frames is None else num_frames
        frame_rate = preset.frame_rate if frame_rate is None else frame_rate
        keywords = guidance_keywords(
            guidance_scale, stg_scale, modality_scale, guidance_rescale, audio_guidance_scale, audio_stg_scale,
            audio_modality_scale, audio_guidance_rescale, spatio_temporal_guidance_blocks,
        )  # fmt: skip
        size_multiple = 64 if skip_stage_2 else two_stage_size_multiple(self.latent_upsampler, height, width)
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
        factor = self.reference_downscale_factor if reference_downscale_factor is None else reference_downscale_factor
        check_reference_inputs(conditioning_attention_strength, conditioning_attention_mask, reference_videos, factor)
        if reference_videos and not getattr(self.transformer, "peft_config", None):
            warnings.warn(  # not an error: the reference mechanics run (and are tested) without one
                "reference_videos are given but no LoRA is loaded in the transformer: it is the IC-LoRA that teaches the "
                "model to follow reference videos. Load one with pipe.load_ic_lora(path).",
                UserWarning,
                stacklevel=2,
            )
        negative_prompt = preset.negative_prompt if negative_prompt is None else negative_prompt
        prompts, negative_prompts = as_list(prompt), as_list(negative_prompt)
        image_crf = preset.image_crf if image_crf is None else image_crf
        video_guidance, audio_guidance = resolve_guidance(video_guidance, audio_guidance, preset, keywords)
        self.check_memory_budget(height, width, num_frames, batch_size, video_guidance, audio_guidance, frame_rate)
        sigmas = resolve_sigmas(self.scheduler, num_inference_steps, sigmas, timesteps, preset.num_inference_steps)
        stage_2_sigmas = self.scheduler.get_sigmas(
            sigmas=preset.stage_2_sigmas if stage_2_sigmas is None else stage_2_sigmas
        )
        names = callback_tensor_names(callback_on_step_end, callback_on_step_end_tensor_inputs)
        device, dtype, transformer = self._execution_device, self.transformer.dtype, self.transformer
        half = (height // 2, width // 2) if skip_stage_2 else stage_1_pixel_size(self.latent_upsampler, height, width)
        check_reference_size(*half, factor)  # here, before the text encoder runs
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

        # 3. Stage-1 conditions: the images at half size, then the reference videos at half size / factor
        conditions = encode_stage_1_conditions(
            self.vae, image, image_strength, keyframes, height, width, half, image_crf, device
        )
        conditions += encode_references(
            self.vae,
            reference_videos,
            *half,
            num_frames,
            factor,
            float(conditioning_attention_strength),
            conditioning_attention_mask,
            device,
        )

        # 4. Stage 1 at half size with the IC-LoRA: noise, then Euler
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
        )
        video_latents = unpatchify_video(video.output_tokens(), *latent_grid(*half, num_frames))
        audio_latents = unpack_audio_latents(audio.output_tokens(), self.audio_vae.config.latent_channels)

        # 5. Stage 2: upsample (x2 or x1.5) and refine without any LoRA, conditioned on the images only (at full size)
        if not skip_stage_2:
            with StageAdapters(transformer) as adapters:
                adapters.use([])
                conditions = encode_conditions(
                    self.vae, image, image_strength, keyframes, height, width, image_crf, device
                )
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

        # 6. Latents -> frames and waveform
        frames = decode_frames(self.video_decoder, video_latents, output_type, generator)
        waveform, sample_rate = decode_waveform(self.audio_vae, self.vocoder, audio_latents, output_type, reference)
        return pipeline_output(self, frames, waveform, sample_rate, return_dict)
