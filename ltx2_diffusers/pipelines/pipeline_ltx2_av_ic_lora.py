"""LTX2AVICLoRAPipeline: video + audio conditioned on reference videos through an IC-LoRA (spec §7.3, §7.4, §9).

ltx-pipelines' `ICLoraPipeline` in diffusers' shape, on the distilled checkpoint with `LTX2Scheduler.distilled()`:
1. Stage 1 at (H/2, W/2), 8 distilled steps, one positive pass per step, with the transformer's active adapters (the
   IC-LoRA, `load_ic_lora`). Conditions: images / keyframes as in the two-stage pipeline, then each reference video
   (depth, pose, edges, ...) encoded at 1/`reference_downscale_factor` of the stage-1 size and appended as tokens of
   its own grid (`ReferenceCondition`), optionally with an attention strength (a scalar, or a mask video).
2. Stage 2 as `LTX2AVTwoStagePipeline`'s (`refine_latents`) with every adapter switched off (the reference's stage-2
   model carries no LoRA) and image conditions only; `skip_stage_2=True` decodes the half-size stage-1 result instead.
One generator draws all noise in the reference's order: stage-1 video (reference tokens included), stage-1 audio,
stage-2 video, stage-2 audio.
"""

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..loaders.lora import LoRAInput, LTX2LoRA, load_lora_adapter, read_lora
from ..models.autoencoder_kl_ltx2 import normalize_latents
from ..schedulers.scheduling_ltx2 import STAGE_2_DISTILLED_SIGMAS
from ..utils.media import load_video
from .conditioning import DEFAULT_IMAGE_CRF, VIDEO_TIME_SCALE, attention_strength_from_mask, prepare_video
from .denoising import ReferenceCondition, VideoCondition
from .pipeline_ltx2_av import ImageInput, LTX2AVPipeline, _repeat_contexts
from .pipeline_ltx2_av_two_stage import LTX2AVTwoStagePipeline, _half_size, refine_latents
from .pipeline_output import LTX2PipelineOutput

VideoInput = str | Path | np.ndarray | Tensor  # a file, or (F, H, W, 3) uint8 frames


class _AdaptersOff:
    """Switches every peft adapter of the transformer off for stage 2 and back afterwards (`restore`)."""

    def __init__(self, transformer: torch.nn.Module):
        from peft.tuners.tuners_utils import BaseTunerLayer

        self.transformer = transformer
        layers = [m for m in transformer.modules() if isinstance(m, BaseTunerLayer)]
        self.was_enabled = any(not m.disable_adapters for m in layers)

    def off(self) -> None:
        if self.was_enabled:
            self.transformer.disable_adapters()

    def restore(self) -> None:
        if self.was_enabled:
            self.transformer.enable_adapters()


class LTX2AVICLoRAPipeline(LTX2AVTwoStagePipeline):
    """Text + reference videos (+ optional images) -> video + stereo audio with an IC-LoRA, in two stages.

    Components: those of `LTX2AVTwoStagePipeline`. Use the distilled checkpoint and scheduler, and load the IC-LoRA
    with `load_ic_lora` (it records the file's `reference_downscale_factor`).
    """

    def __init__(
        self,
        scheduler,
        vae,
        audio_vae,
        text_encoder,
        tokenizer,
        connectors,
        transformer,
        vocoder,
        latent_upsampler=None,
        processor=None,
    ):
        super().__init__(
            scheduler,
            vae,
            audio_vae,
            text_encoder,
            tokenizer,
            connectors,
            transformer,
            vocoder,
            latent_upsampler,
            processor,
        )
        self._reference_downscale_factor = 1
        self._stage_1_references: list[ReferenceCondition] | None = None

    @property
    def reference_downscale_factor(self) -> int:
        """The loaded IC-LoRAs' `reference_downscale_factor` (1 when none declares one)."""
        return self._reference_downscale_factor

    def load_ic_lora(self, lora: LoRAInput, adapter_name: str = "ic_lora", strength: float = 1.0) -> str:
        """Load an IC-LoRA file as a peft adapter of the transformer (`load_lora_adapter`) and keep its metadata's
        `reference_downscale_factor`. Two IC-LoRAs with different factors >1 cannot be combined (as in the reference).
        Returns the adapter name."""
        lora = lora if isinstance(lora, LTX2LoRA) else read_lora(lora)  # a path or a state dict
        factor = lora.reference_downscale_factor
        if factor != 1 and self._reference_downscale_factor not in (1, factor):
            raise ValueError(
                f"this IC-LoRA has reference_downscale_factor={factor}, but one loaded before has "
                f"{self._reference_downscale_factor}: LoRAs expecting different reference sizes cannot be combined"
            )
        name = load_lora_adapter(self.transformer, lora, adapter_name, strength)
        if factor != 1:
            self._reference_downscale_factor = factor
        return name

    def encode_reference_video(self, video: VideoInput, height: int, width: int, max_frames: int) -> Tensor:
        """A reference video -> normalised latent (1, 128, f, height/32, width/32): at most `max_frames` frames from
        the start, each cover-resized and centre-cropped to height x width (no H.264 round trip), as the reference's
        `load_video_conditioning`. A float tensor (1, 3, F, height, width) in [-1, 1] is taken as prepared."""
        if isinstance(video, str | Path):
            video, _ = load_video(video, max_frames=max_frames)
        if isinstance(video, Tensor) and video.is_floating_point():
            if video.ndim != 5 or video.shape[:2] != (1, 3) or tuple(video.shape[-2:]) != (height, width):
                raise ValueError(
                    f"a float reference video must be (1, 3, F, {height}, {width}) in [-1, 1] (the reference size: "
                    f"stage-1 size / reference_downscale_factor), got {tuple(video.shape)}; pass uint8 (F, H, W, 3) "
                    "frames to have them resized and cropped for you"
                )
            pixels = video[:, :, :max_frames]
        else:
            pixels = prepare_video(video[:max_frames], height, width)
        num_frames = pixels.shape[2]
        if (num_frames - 1) % VIDEO_TIME_SCALE != 0:
            usable = (num_frames - 1) // VIDEO_TIME_SCALE * VIDEO_TIME_SCALE + 1
            raise ValueError(
                f"the reference video has {num_frames} frames (after capping at num_frames={max_frames}); the video "
                f"VAE needs 8k + 1 frames: trim it to {usable} frames"
            )
        pixels = pixels.to(self._execution_device, self.vae.dtype)
        latent = self.vae.encode(pixels).latent_dist.mode()
        return normalize_latents(latent, self.vae.latents_mean, self.vae.latents_std)

    def _reference_conditions(
        self,
        reference_videos: Sequence[tuple[VideoInput, float]],
        height: int,
        width: int,
        num_frames: int,
        factor: int,
        attention_strength: float,
        attention_mask: Tensor | None,
    ) -> list[ReferenceCondition]:
        """The reference videos encoded at (height/factor, width/factor) (the stage-1 size over the factor)."""
        ref_height, ref_width = height // factor, width // factor
        if height % factor or width % factor or ref_height % 32 or ref_width % 32:
            raise ValueError(
                f"the stage-1 size {height}x{width} divided by reference_downscale_factor={factor} must be a multiple "
                f"of 32 (the video VAE's compression), got {height / factor:g}x{width / factor:g}: pick a size whose "
                f"half is a multiple of {32 * factor}"
            )
        conditions = []
        for video, strength in reference_videos:
            latent = self.encode_reference_video(video, ref_height, ref_width, num_frames)
            if attention_mask is not None:
                weights = attention_strength_from_mask(attention_mask, tuple(latent.shape[2:])) * attention_strength
            else:
                weights = attention_strength if attention_strength < 1.0 else None
            conditions.append(ReferenceCondition(latent, strength, factor, weights))
        return conditions

    def _encode_conditions(
        self,
        image: ImageInput | None,
        image_strength: float,
        keyframes: Sequence[tuple[ImageInput, int, float]],
        height: int,
        width: int,
        crf: int,
    ) -> list[VideoCondition | ReferenceCondition]:
        # The one-stage __call__ (stage 1) asks for its conditions here: the reference videos follow the images.
        conditions = super()._encode_conditions(image, image_strength, keyframes, height, width, crf)
        return conditions + (self._stage_1_references or [])

    # ------------------------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        negative_prompt: str | list[str] | None = None,
        *,
        reference_videos: Sequence[tuple[VideoInput, float]] = (),
        conditioning_attention_strength: float = 1.0,
        conditioning_attention_mask: Tensor | None = None,
        reference_downscale_factor: int | None = None,
        image: ImageInput | None = None,
        image_strength: float = 1.0,
        image_crf: int = DEFAULT_IMAGE_CRF,
        keyframes: Sequence[tuple[ImageInput, int, float]] = (),
        enhance_prompt: bool = False,
        enhance_prompt_seed: int | None = None,
        height: int = 1024,
        width: int = 1536,
        num_frames: int = 121,
        frame_rate: float = 24.0,
        sigmas: Sequence[float] | None = None,
        skip_stage_2: bool = False,
        stage_2_sigmas: Sequence[float] = STAGE_2_DISTILLED_SIGMAS,
        num_videos_per_prompt: int = 1,
        generator: torch.Generator | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("video_latents",),
    ) -> LTX2PipelineOutput | tuple:
        """Generate `num_frames` frames of `height` x `width` video (multiples of 64) guided by reference videos.

        reference_videos: (video, strength) pairs; a video is a file path or (F, H, W, 3) uint8 frames (at most
            `num_frames` are used; 8k + 1 of them), resized to the stage-1 size / `reference_downscale_factor`.
            strength 1 keeps the reference tokens clean.
        conditioning_attention_strength: in [0, 1], how strongly the generated tokens attend to the reference ones
            (0 ignores the reference). With `conditioning_attention_mask` (B or 1, 1, F, H, W) weights in [0, 1] over
            the reference video's frames (e.g. `mask_from_frames(frames, height // 2, width // 2)`), the mask is
            reduced to the reference's latent grid (`attention_strength_from_mask`) and multiplied by it.
        reference_downscale_factor: None -> the one `load_ic_lora` read from the LoRA file (1 if none).
        image / keyframes / prompts / sigmas: as `LTX2AVTwoStagePipeline.__call__` (the images condition both stages).
        skip_stage_2: return the stage-1 result at height/2 x width/2, decoded; the upsampler is then not used.
        Returns `LTX2PipelineOutput(frames, audio, audio_sample_rate)` or `(frames, audio)`.
        """
        if skip_stage_2:
            # only the sizes and output type matter; stage 1 checks the rest
            for name, value in (("height", height), ("width", width)):
                if value % 64 != 0 or value < 64:
                    raise ValueError(f"{name}={value} is not a positive multiple of 64 (stage 1 runs at {name}/2)")
            if output_type not in ("pil", "np", "pt", "latent"):
                raise ValueError(f"output_type must be one of 'pil', 'np', 'pt', 'latent', got {output_type!r}")
        else:
            self.check_two_stage_inputs(height, width, num_frames, output_type, None)
        if not isinstance(conditioning_attention_strength, int | float) or not (
            0.0 <= conditioning_attention_strength <= 1.0
        ):
            raise ValueError(
                f"conditioning_attention_strength must be in [0, 1] (0 ignores the reference videos, 1 is full "
                f"attention), got {conditioning_attention_strength!r}"
            )
        if conditioning_attention_mask is not None and not reference_videos:
            raise ValueError("conditioning_attention_mask was given without reference_videos: pass the reference video")
        factor = self._reference_downscale_factor if reference_downscale_factor is None else reference_downscale_factor
        if not isinstance(factor, int) or factor < 1:
            raise ValueError(f"reference_downscale_factor must be a whole number >= 1, got {factor!r}")
        half_height, half_width = height // 2, width // 2
        names = list(callback_on_step_end_tensor_inputs)
        adapters = _AdaptersOff(self.transformer)
        try:
            # 1. Stage 1: the one-stage pipeline at half size with the IC-LoRA, references appended after the images
            self._stage_1_references = self._reference_conditions(
                reference_videos,
                half_height,
                half_width,
                num_frames,
                factor,
                float(conditioning_attention_strength),
                conditioning_attention_mask,
            )
            self._stage_1_contexts = None
            video_latents, audio_latents = LTX2AVPipeline.__call__(
                self,
                prompt,
                negative_prompt,
                image=None if image is None else _half_size(image, height, width),
                image_strength=image_strength,
                image_crf=image_crf,
                keyframes=[(_half_size(k, height, width), index, s) for k, index, s in keyframes],
                enhance_prompt=enhance_prompt,
                enhance_prompt_seed=enhance_prompt_seed,
                height=half_height,
                width=half_width,
                num_frames=num_frames,
                frame_rate=frame_rate,
                sigmas=sigmas,
                num_videos_per_prompt=num_videos_per_prompt,
                generator=generator,
                output_type="latent",
                return_dict=False,
                callback_on_step_end=callback_on_step_end,
                callback_on_step_end_tensor_inputs=names,
            )
            self._stage_1_references = None
            contexts = _repeat_contexts(self._stage_1_contexts, num_videos_per_prompt)
            self._stage_1_contexts = None
            if skip_stage_2:
                return self._decode_outputs(video_latents, audio_latents, output_type, generator, return_dict)

            # 2. Stage 2: upsample x2 and refine without any LoRA, conditioned on the images only (at full size)
            adapters.off()
            conditions = self._encode_conditions(image, image_strength, keyframes, height, width, image_crf)
            offset = self.scheduler.num_inference_steps
            self.scheduler.set_timesteps(sigmas=stage_2_sigmas)
            video_latents, audio_latents = refine_latents(
                self.transformer,
                self.latent_upsampler,
                video_latents,
                audio_latents,
                contexts,
                latents_mean=self.vae.latents_mean,
                latents_std=self.vae.latents_std,
                frame_rate=frame_rate,
                sigmas=self.scheduler.sigmas,
                generator=generator,
                conditions=conditions,
                progress_bar=self.progress_bar,
                callback=self._step_callback(callback_on_step_end, names, offset),
            )
        finally:
            self._stage_1_references = None
            adapters.restore()

        # 3. Latents -> frames and waveform
        return self._decode_outputs(video_latents, audio_latents, output_type, generator, return_dict)
