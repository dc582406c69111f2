"""LTX2AVKeyframeInterpolationPipeline: keyframe images at chosen pixel frames -> the video between them, with sound.

ltx-pipelines' `KeyframeInterpolationPipeline` (spec §4, §7.2) in diffusers' shape, told as stage functions:
1. Prompts -> video and audio contexts (positive and negative in one Gemma batch), encoded once for both stages.
2. Stage 1 at (H/2, W/2): EVERY keyframe, frame 0 included, is encoded at that size and appended as guiding tokens
   positioned at its pixel frame (`append_keyframes`, ltx-core's `VideoConditionByKeyframeIndex`); nothing replaces
   latent frames in place, unlike image-to-video. Noise, then guided Euler (CFG / STG / modality guidance).
3. Stage 2 at (H, W): the x2 latent upsampler on the stage-1 video latent; the keyframes re-encoded at full size and
   appended again; video and audio re-noised to `stage_2_sigmas[0]`; Euler on one positive pass per step, with the
   distilled LoRA switched on when `stage_2_adapter` names it.
4. The VAEs and the vocoder decode the full-size latents.
One generator draws all noise in the reference's order: stage-1 video, stage-1 audio, stage-2 video, stage-2 audio.
"""

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from diffusers.utils import logging
from torch import Tensor

from ..models.autoencoder_kl_ltx2 import normalize_latents
from ..models.autoencoder_kl_ltx2_audio import audio_latent_frames, unpack_audio_latents
from ..models.latent_upsampler import upsample_latents
from ..schedulers.scheduling_ltx2 import STAGE_2_DISTILLED_SIGMAS, check_sigmas
from .conditioning import (
    DEFAULT_IMAGE_CRF,
    LatentState,
    add_noise,
    append_keyframes,
    audio_latent_state,
    prepare_image,
    unpatchify_video,
    video_latent_state,
)
from .denoising import StepCallback, TextContexts, VideoCondition, decode_audio, decode_video, guided_denoise
from .guidance import GuidanceScales, GuidanceSchedule
from .pipeline_ltx2_av import _needs_uncond, _postprocess_frames, _repeat_contexts
from .pipeline_ltx2_av_two_stage import LTX2AVTwoStagePipeline, StageAdapters
from .pipeline_output import LTX2PipelineOutput
from .prompt_enhancement import DEFAULT_SEED
from .prompt_enhancement import enhance_prompt as enhance_prompt_with_gemma
from .text_encoding import encode_prompts

logger = logging.get_logger(__name__)

KeyframeImage = str | Path | PIL.Image.Image | np.ndarray | Tensor
Keyframe = tuple[KeyframeImage, int, float]  # (image, pixel frame index, strength)
CALLBACK_TENSOR_INPUTS = ("video_latents", "audio_latents")


# ----------------------------------------------------------------------------------------------------------------------
# Stage functions (candidates for denoising.py / conditioning.py)


def check_keyframes(keyframes: Sequence[Keyframe], num_frames: int) -> None:
    """Raise naming the bad keyframe: each one is (image, pixel_frame_index, strength), the image a path, PIL image,
    (H, W, 3|4) uint8 array or tensor, the index an int in [0, num_frames - 1], the strength in [0, 1]."""
    if len(keyframes) == 0:
        raise ValueError(
            "keyframes is empty: pass at least one (image, pixel_frame_index, strength) triple, e.g. "
            f"[(first, 0, 1.0), (last, {num_frames - 1}, 1.0)]; for text-to-video use LTX2AVTwoStagePipeline"
        )
    for i, keyframe in enumerate(keyframes):
        if not isinstance(keyframe, tuple | list) or len(keyframe) != 3:
            raise TypeError(f"keyframes[{i}] must be an (image, pixel_frame_index, strength) triple, got {keyframe!r}")
        image, frame_index, strength = keyframe
        if not isinstance(image, str | Path | PIL.Image.Image | np.ndarray | Tensor):
            raise TypeError(
                f"keyframes[{i}]: the image must be a path, a PIL image, or an (H, W, 3) uint8 numpy array or tensor, "
                f"got {type(image).__name__}"
            )
        if isinstance(frame_index, bool) or not isinstance(frame_index, int):
            raise TypeError(f"keyframes[{i}]: the pixel frame index must be an int, got {frame_index!r}")
        if not 0 <= frame_index < num_frames:
            raise ValueError(
                f"keyframes[{i}]: pixel frame {frame_index} is outside the clip's {num_frames} frames; use an index "
                f"in [0, {num_frames - 1}] (the last frame is {num_frames - 1})"
            )
        if isinstance(strength, bool) or not isinstance(strength, int | float) or not 0.0 <= strength <= 1.0:
            raise ValueError(
                f"keyframes[{i}]: strength={strength!r} is outside [0, 1] (1.0 keeps the keyframe exactly, lower "
                "values let the model change it)"
            )


def check_generator(generator: torch.Generator | None, device: torch.device) -> None:
    """One torch.Generator (or None) on the device type the latents are made on: both stages draw their noise from it,
    where the latents live, in the reference's order."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be one torch.Generator (both stages draw their noise from it in the reference's order), "
            f"got {type(generator).__name__}"
        )
    if generator is not None and torch.device(generator.device).type != torch.device(device).type:
        raise ValueError(
            f"the generator is on {generator.device} but the latents are made on {device}: noise is drawn where the "
            f"latents live, as the reference does. Pass torch.Generator(device={str(device)!r}).manual_seed(seed)."
        )


@torch.no_grad()
def encode_keyframes(
    vae: torch.nn.Module,
    keyframes: Sequence[Keyframe],
    height: int,
    width: int,
    *,
    device: torch.device,
    crf: int = DEFAULT_IMAGE_CRF,
) -> list[VideoCondition]:
    """Each keyframe image -> a `VideoCondition` (1, 128, 1, H/32, W/32) normalised latent at its frame and strength.

    The image is prepared at height x width as the reference loads it (`prepare_image`: H.264 round trip at `crf`,
    cover resize, centre crop), encoded to the posterior mean and normalised with the VAE's statistics. Each stage
    calls this at its own size (the reference's `image_conditionings_by_adding_guiding_latent`).
    """
    conditions = []
    for image, frame_index, strength in keyframes:
        pixels = prepare_image(image, height, width, crf=crf).to(device, vae.dtype)  # (1, 3, 1, H, W)
        latent = vae.encode(pixels).latent_dist.mode()
        latent = normalize_latents(latent, vae.latents_mean, vae.latents_std)
        conditions.append(VideoCondition(latent, frame_index, strength))
    return conditions


def prepare_keyframe_latents(
    batch_size: int,
    height: int,
    width: int,
    num_frames: int,
    frame_rate: float,
    keyframes: Sequence[VideoCondition],
    *,
    generator: torch.Generator | None,
    device: torch.device,
    dtype: torch.dtype,
    video_channels: int = 128,
    audio_channels: int = 8,
    audio_mel_bins: int = 16,
    noise_scale: float = 1.0,
    initial_video_latent: Tensor | None = None,
    initial_audio_latent: Tensor | None = None,
) -> tuple[LatentState, LatentState]:
    """`prepare_latents` with EVERY keyframe appended as guiding tokens at its pixel frame, frame 0 included
    (`prepare_latents` replaces latent frame 0 in place for a frame-0 condition, as image-to-video does; the
    reference's keyframe pipeline appends it, with the causal position shift, spec §7.2).

    Video (B, F'H'W' + keyframe tokens, C) and audio (B, T_a, C_a * mel) states: zeros (or the initial normalised
    latents (B, C, F', H', W') / (B, C_a, T_a, mel)), keyframes appended in order, then noise by the denoise masks at
    `noise_scale`, video drawn before audio from `generator` (the reference's order, spec §9).
    """
    grid = ((num_frames - 1) // 8 + 1, height // 32, width // 32)
    video = video_latent_state(
        batch_size,
        *grid,
        frame_rate,
        num_channels=video_channels,
        dtype=dtype,
        device=device,
        initial_latent=None if initial_video_latent is None else initial_video_latent.to(device, dtype),
    )
    for key in keyframes:
        video = append_keyframes(
            video, key.latent.to(device), frame_index=key.frame_index, strength=key.strength, fps=frame_rate, grid=grid
        )
    video = add_noise(video, generator, noise_scale)
    audio = audio_latent_state(
        batch_size,
        audio_latent_frames(num_frames, frame_rate),
        num_channels=audio_channels,
        num_mel_bins=audio_mel_bins,
        dtype=dtype,
        device=device,
        initial_latent=None if initial_audio_latent is None else initial_audio_latent.to(device, dtype),
    )
    return video, add_noise(audio, generator, noise_scale)


def output_latents(
    video: LatentState, audio: LatentState, grid: tuple[int, int, int], audio_channels: int
) -> tuple[Tensor, Tensor]:
    """Denoised states -> video (B, C, F', H', W') and audio (B, C_a, T_a, mel) latents, appended tokens dropped."""
    return unpatchify_video(video.output_tokens(), *grid), unpack_audio_latents(audio.output_tokens(), audio_channels)


# ----------------------------------------------------------------------------------------------------------------------


class LTX2AVKeyframeInterpolationPipeline(LTX2AVTwoStagePipeline):
    """Keyframes -> the video through them (+ stereo audio), at half size first, then upsampled x2 and refined.

    Components and loading are `LTX2AVTwoStagePipeline`'s (its `__call__` is not used): build one with
    `LTX2AVKeyframeInterpolationPipeline(**two_stage_pipe.components)` or its `from_pretrained` / `from_single_file`.
    """

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        negative_prompt: str | list[str] | None = None,
        *,
        keyframes: Sequence[Keyframe],
        image_crf: int = DEFAULT_IMAGE_CRF,
        enhance_prompt: bool = False,
        enhance_prompt_seed: int | None = None,
        height: int = 1024,
        width: int = 1536,
        num_frames: int = 121,
        frame_rate: float = 24.0,
        num_inference_steps: int | None = None,
        sigmas: Sequence[float] | None = None,
        video_guidance: GuidanceScales | GuidanceSchedule | None = None,
        audio_guidance: GuidanceScales | GuidanceSchedule | None = None,
        stage_2_adapter: str | None = None,
        stage_2_adapter_scale: float | None = None,
        stage_2_sigmas: Sequence[float] = STAGE_2_DISTILLED_SIGMAS,
        num_videos_per_prompt: int = 1,
        generator: torch.Generator | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("video_latents",),
    ) -> LTX2PipelineOutput | tuple:
        """Generate `num_frames` frames of `height` x `width` video (multiples of 64) through the keyframes, with sound.

        keyframes: (image, pixel_frame_index, strength) triples, e.g. [(first, 0, 1.0), (last, num_frames - 1, 1.0)].
            The image is a path, PIL image or (H, W, 3) uint8 array / tensor; it is H.264 round-tripped at `image_crf`
            (the reference's 33; 0 skips it), cover-resized and centre-cropped to each stage's size. Strength 1 keeps
            the keyframe's tokens clean; every keyframe guides both stages.
        negative_prompt: None -> the model version's default (the reference's).
        num_inference_steps / sigmas / video_guidance / audio_guidance: stage 1's, as `LTX2AVPipeline`; None -> the
            model version's defaults.
        stage_2_adapter: the distilled LoRA's peft adapter name: on in stage 2 only (at `stage_2_adapter_scale`, None:
            its loaded strength), the adapters' state restored afterwards. None: both stages use the transformer as is.
        stage_2_sigmas: the refinement schedule; its first value is also the re-noising level.
        enhance_prompt: Gemma rewrites the first prompt, seeing the first keyframe (needs the `processor`).
        generator: one torch.Generator on the execution device, drawing all noise of both stages.
        callback_on_step_end(pipe, step_index, timestep, {name: tensor}) after every step of both stages, with a running
            step index (stage 1's steps, then stage 2's); tensors in token layout ("video_latents" includes the
            appended keyframe tokens), at half size in stage 1. Returned tensors replace the named ones.
        output_type: "np" (B, F, H, W, 3) / "pt" (B, F, 3, H, W) floats in [0, 1], "pil", or "latent" (normalised video
            (B, 128, F', H/32, W/32) and audio (B, 8, T_a, 16) latents).
        Returns `LTX2PipelineOutput(frames, audio, audio_sample_rate)` or `(frames, audio)`.
        """
        # 1. Check inputs (before any model runs)
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        defaults = self.sampling_defaults
        negative_prompt = defaults.negative_prompt if negative_prompt is None else negative_prompt
        negative_prompts = [negative_prompt] if isinstance(negative_prompt, str) else list(negative_prompt)
        check_keyframes(keyframes, num_frames)
        self.check_inputs(prompts, negative_prompts, height, width, num_frames, frame_rate, [], output_type)
        self.check_two_stage_inputs(height, width, num_frames, output_type, stage_2_adapter)
        tensor_names = list(callback_on_step_end_tensor_inputs)
        for name in tensor_names:
            if name not in CALLBACK_TENSOR_INPUTS:
                raise ValueError(f"callback tensor {name!r} is not one of {list(CALLBACK_TENSOR_INPUTS)}")
        device = self._execution_device
        check_generator(generator, device)
        check_sigmas(stage_2_sigmas)
        if len(negative_prompts) == 1:
            negative_prompts = negative_prompts * len(prompts)
        video_guidance = defaults.video_guidance if video_guidance is None else video_guidance
        audio_guidance = defaults.audio_guidance if audio_guidance is None else audio_guidance
        dtype, transformer = self.transformer.dtype, self.transformer
        batch_size = len(prompts) * num_videos_per_prompt
        audio_channels = self.audio_vae.config.latent_channels
        channels = {
            "video_channels": transformer.config.in_channels,
            "audio_channels": audio_channels,
            "audio_mel_bins": transformer.config.audio_in_channels // audio_channels,
        }

        # 2. Optional prompt enhancement (the first prompt, seeing the first keyframe), then the prompt contexts
        if enhance_prompt:
            if enhance_prompt_seed is None:
                enhance_prompt_seed = DEFAULT_SEED if generator is None else generator.initial_seed()
            prompts[0] = enhance_prompt_with_gemma(
                self.text_encoder,
                self.tokenizer,
                prompts[0],
                image=keyframes[0][0],
                processor=self.processor,
                seed=enhance_prompt_seed,
                device=device,
            )
            logger.info(f"enhanced prompt: {prompts[0]}")
        # the negative prompts only where a guidance term needs them (no guidance with a distilled scheduler)
        needs_negative = _needs_uncond(video_guidance) or _needs_uncond(audio_guidance)
        texts = prompts + (negative_prompts if needs_negative else [])
        embeds = encode_prompts(self.text_encoder, self.tokenizer, self.connectors, texts, device=device, dtype=dtype)
        positive, negative = embeds[: len(prompts)], embeds[len(prompts) :] if needs_negative else None
        contexts = TextContexts(
            positive.video_context,
            positive.audio_context,
            None if negative is None else negative.video_context,
            None if negative is None else negative.audio_context,
        )
        contexts = _repeat_contexts(contexts, num_videos_per_prompt)

        # 3. Stage-1 sigmas, the callback with a step index running through both stages, the stage-2 adapter
        self.scheduler.set_timesteps(
            defaults.num_inference_steps if num_inference_steps is None and sigmas is None else num_inference_steps,
            sigmas=sigmas,
        )
        stage_1_sigmas = self.scheduler.sigmas.clone()
        stage_2_sigmas = torch.as_tensor(stage_2_sigmas, dtype=torch.float32)
        num_stage_1_steps = len(stage_1_sigmas) - 1
        adapters = StageAdapters(transformer, stage_2_adapter, stage_2_adapter_scale) if stage_2_adapter else None
        try:
            # 4. Stage 1 at half size: keyframes appended, noise, guided Euler
            if adapters is not None:
                adapters.stage_1()
            half_height, half_width = height // 2, width // 2
            conditions = encode_keyframes(self.vae, keyframes, half_height, half_width, device=device, crf=image_crf)
            video, audio = prepare_keyframe_latents(
                batch_size, half_height, half_width, num_frames, frame_rate, conditions, generator=generator,
                device=device, dtype=dtype, **channels,
            )  # fmt: skip
            video, audio = guided_denoise(
                transformer, video, audio, contexts, stage_1_sigmas, video_guidance, audio_guidance,
                progress_bar=self.progress_bar,
                callback=self._keyframe_callback(callback_on_step_end, tensor_names, 0),
            )  # fmt: skip
            grid = ((num_frames - 1) // 8 + 1, half_height // 32, half_width // 32)
            video_latents, audio_latents = output_latents(video, audio, grid, audio_channels)

            # 5. Stage 2 at full size: x2 upsample, keyframes appended again, re-noise, one positive pass per step
            if adapters is not None:
                adapters.stage_2()
            upsampler_dtype = next(self.latent_upsampler.parameters()).dtype
            upsampled = upsample_latents(
                self.latent_upsampler, video_latents.to(upsampler_dtype), self.vae.latents_mean, self.vae.latents_std
            )
            conditions = encode_keyframes(self.vae, keyframes, height, width, device=device, crf=image_crf)
            video, audio = prepare_keyframe_latents(
                batch_size, height, width, num_frames, frame_rate, conditions, generator=generator, device=device,
                dtype=dtype, noise_scale=float(stage_2_sigmas[0]), initial_video_latent=upsampled,
                initial_audio_latent=audio_latents, **channels,
            )  # fmt: skip
            neutral = GuidanceScales()  # cfg 1, no STG or modality term: the positive pass only
            video, audio = guided_denoise(
                transformer, video, audio, TextContexts(contexts.video, contexts.audio), stage_2_sigmas, neutral,
                neutral, progress_bar=self.progress_bar,
                callback=self._keyframe_callback(callback_on_step_end, tensor_names, num_stage_1_steps),
            )  # fmt: skip
            grid = ((num_frames - 1) // 8 + 1, height // 32, width // 32)
            video_latents, audio_latents = output_latents(video, audio, grid, audio_channels)
        finally:
            if adapters is not None:
                adapters.restore()

        # 6. Latents -> frames and waveform
        if output_type == "latent":
            frames, waveform, sample_rate = video_latents, audio_latents, None
        else:
            frames = _postprocess_frames(decode_video(self.vae, video_latents, generator), output_type)
            waveform, sample_rate = decode_audio(self.audio_vae, self.vocoder, audio_latents), self.audio_sample_rate
        self.maybe_free_model_hooks()
        if not return_dict:
            return frames, waveform
        return LTX2PipelineOutput(frames=frames, audio=waveform, audio_sample_rate=sample_rate)

    def _keyframe_callback(
        self, callback_on_step_end: Callable | None, tensor_names: Sequence[str], offset: int
    ) -> StepCallback | None:
        """diffusers' `callback_on_step_end(pipe, step_index, timestep, {name: tensor})` as a denoising loop's callback,
        the step index shifted by `offset` (stage 1's step count in stage 2)."""
        if callback_on_step_end is None:
            return None

        def callback(step_index: int, sigma: float, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
            chosen = {name: tensors[name] for name in tensor_names}
            return callback_on_step_end(self, offset + step_index, sigma * 1000.0, chosen) or {}

        return callback
