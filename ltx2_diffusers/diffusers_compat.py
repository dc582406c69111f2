"""diffusers' LTX-2 names and call shapes over ltx2_diffusers' pipelines and stage functions.

Code written for diffusers' `LTX2Pipeline` & co. runs with only its import lines changed (see docs/diffusers_compat.md):

| diffusers | here |
|---|---|
| `LTX2Pipeline` | `LTX2AVPipeline` (components, loading, LoRA) with diffusers' `__call__` (below) |
| `LTX2ImageToVideoPipeline` | the same, `image=` required |
| `LTX2ConditionPipeline`, `LTX2VideoCondition` | the same with `conditions=`: latent index 0 replaces the first latent frames, any other index is appended as keyframe tokens at pixel frame 8 (index - 1) + 1 (`prepare_latents`) |
| `LTX2LatentUpsamplePipeline` | `upsample_latents` (the two-stage pipelines' upsampler stage) on raw latents |
| `LTX2LatentUpsamplerModel` | `ltx2_diffusers.LTX2LatentUpsamplerModel` |
| `DISTILLED_SIGMA_VALUES`, `STAGE_2_DISTILLED_SIGMA_VALUES` | `DISTILLED_SIGMAS`, `STAGE_2_DISTILLED_SIGMAS` without their final 0 (diffusers' form) |
| `DEFAULT_NEGATIVE_PROMPT`, `T2V_DEFAULT_SYSTEM_PROMPT`, `I2V_DEFAULT_SYSTEM_PROMPT` | this package's (the reference's negative prompt; our enhancement instructions) |
| `encode_video`, `load_image`, `load_video` | `export_to_video_with_audio`, `inputs.image_to_uint8`, `inputs.video_frames` (local files only) |
| `FlowMatchEulerDiscreteScheduler` assigned to `pipe.scheduler` | converted to `LTX2Scheduler` (`as_ltx2_scheduler`) |

diffusers' `__call__` semantics kept here: `output_type="latent"` returns RAW (un-normalised) video latents
(B, 128, F', H', W') and audio latents (B, 8, T_a, 16); `latents=` / `audio_latents=` take them back (normalised
inside) as the starting point, re-noised by `noise_scale` (x = s n + (1 - s) x); their shapes give the clip's size;
`sigmas` are given without the final 0. Differences: omitted guidance keywords take this package's defaults for the
checkpoint (the reference's: diffusers' values, with STG block 29 on LTX-2 and no guidance at all with a distilled
scheduler), `num_inference_steps` alone gives the reference's shifted schedule (with a distilled scheduler: its fixed
sigmas for their step count, else diffusers' N linear sigmas), and a condition outside the clip is an error (diffusers
skips it with a warning). Every argument is checked before any encoder runs (`validation.check_call_inputs`, with
diffusers' callback tensor names), so errors use validation's wording; `allow_large=True` lets through the clips and
step counts it refuses as likely typos.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from numbers import Real
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from diffusers import DiffusionPipeline
from torch import Tensor

from .models.autoencoder_kl_ltx2 import denormalize_latents, normalize_latents
from .models.autoencoder_kl_ltx2_audio import audio_latent_frames, unpack_audio_latents
from .models.latent_upsampler import LTX2LatentUpsamplerModel, upsample_latents
from .pipelines.condition_encoding import encode_image, encode_pixels
from .pipelines.conditioning import unpatchify_video
from .pipelines.decoding import decode_frames, decode_waveform
from .pipelines.denoising import VideoCondition, denoise, latent_grid, prepare_latents
from .pipelines.inputs import image_to_uint8, video_frames, video_to_pixels
from .pipelines.pipeline_ltx2_av import LTX2AVPipeline
from .pipelines.pipeline_output import LTX2PipelineOutput
from .pipelines.pipeline_utils import (
    StepCallbacks,
    as_list,
    callback_tensor_names,
    guidance_keywords,
    needs_uncond,
    pipeline_output,
    prompt_contexts,
    resolve_guidance,
    resolve_sigmas,
)
from .pipelines.presets import DEFAULT_NEGATIVE_PROMPT, DISTILLED_SIGMAS, STAGE_2_DISTILLED_SIGMAS, sampling_preset
from .pipelines.prompt_enhancement import I2V_SYSTEM_PROMPT, T2V_SYSTEM_PROMPT
from .pipelines.prompt_enhancement import enhance_prompt as enhance_prompt_with_gemma
from .pipelines.validation import check_call_inputs, check_conditions, check_media, check_output_type, check_strength
from .schedulers.scheduling_ltx2 import as_ltx2_scheduler
from .utils.media import export_to_video_with_audio

__all__ = [
    "DEFAULT_NEGATIVE_PROMPT",
    "DISTILLED_SIGMA_VALUES",
    "I2V_DEFAULT_SYSTEM_PROMPT",
    "LTX2ConditionPipeline",
    "LTX2ImageToVideoPipeline",
    "LTX2LatentUpsamplePipeline",
    "LTX2LatentUpsamplerModel",
    "LTX2Pipeline",
    "LTX2VideoCondition",
    "STAGE_2_DISTILLED_SIGMA_VALUES",
    "T2V_DEFAULT_SYSTEM_PROMPT",
    "encode_video",
    "load_image",
    "load_video",
]

# diffusers' form: the steps' sigmas without the final 0 (its scheduler appends it)
DISTILLED_SIGMA_VALUES: list[float] = list(DISTILLED_SIGMAS[:-1])
STAGE_2_DISTILLED_SIGMA_VALUES: list[float] = list(STAGE_2_DISTILLED_SIGMAS[:-1])
T2V_DEFAULT_SYSTEM_PROMPT = T2V_SYSTEM_PROMPT
I2V_DEFAULT_SYSTEM_PROMPT = I2V_SYSTEM_PROMPT

_CALLBACK_NAMES = {"latents": "video_latents", "audio_latents": "audio_latents"}  # diffusers' -> ours (token layout)


# ----------------------------------------------------------------------------------------------------------------------
# Media helpers


def encode_video(
    video, fps: float, audio: Tensor | None, audio_sample_rate: int | None, output_path: str | Path
) -> str:
    """diffusers' `encode_video(video, fps, audio, audio_sample_rate, output_path)`: `export_to_video_with_audio`
    (H.264 + AAC). video: (F, H, W, 3) float in [0, 1] or uint8, or a list of PIL images; audio: (2, S) in [-1, 1]."""
    return export_to_video_with_audio(video, audio, audio_sample_rate, fps, output_path)


def _local_file(path: str | Path, what: str) -> str:
    if str(path).startswith(("http://", "https://")):
        raise ValueError(
            f"{what} takes a local file here, got the URL {str(path)!r}: download it first (e.g. "
            "huggingface_hub.hf_hub_download) and pass the path"
        )
    return str(path)


def load_image(image: str | Path | PIL.Image.Image) -> PIL.Image.Image:
    """diffusers' `load_image` for local files: an RGB PIL image, read by `inputs.image_to_uint8` (a PIL image too:
    alpha dropped, 16-bit grey kept grey)."""
    if not isinstance(image, PIL.Image.Image):
        image = _local_file(image, "load_image")
    return PIL.Image.fromarray(image_to_uint8(image, "image"))


def load_video(video: str | Path) -> list[PIL.Image.Image]:
    """diffusers' `load_video` for local files: the frames as a list of RGB PIL images (`inputs.video_frames`)."""
    frames, _ = video_frames(_local_file(video, "load_video"), "video")
    return [PIL.Image.fromarray(frame) for frame in frames]


# ----------------------------------------------------------------------------------------------------------------------
# Conditions


@dataclass(frozen=True)
class LTX2VideoCondition:
    """diffusers' condition item: an image (or a video: a list of images, (F, H, W, 3) array or tensor) at LATENT
    frame `index` (negative counts from the end: -1 is the last latent frame), kept at `strength`. `crf`: the H.264
    round trip of a single image (None: the model version's, `presets.sampling_preset(...).image_crf`, 33 for LTX-2
    and LTX-2.3; 0: none); videos are not round-tripped."""

    frames: PIL.Image.Image | list[PIL.Image.Image] | np.ndarray | Tensor | str | Path
    index: int = 0
    strength: float = 1.0
    crf: int | None = None


def _is_single_image(frames) -> bool:
    """A path, a PIL image, a one-item list or a one-frame array / tensor; other types count as one image too, for
    `validation.check_media` to refuse by name."""
    if isinstance(frames, list):
        return len(frames) == 1
    ndim = getattr(frames, "ndim", None)
    return ndim is None or ndim == 3 or (ndim == 4 and frames.shape[0] == 1)


def condition_frames(conditions: Sequence[LTX2VideoCondition], height: int, width: int, num_frames: int) -> list[int]:
    """Check diffusers' conditions before any work (`validation`'s rules for media, strengths and CRFs) and return
    each one's pixel frame: latent index i (after wrapping negatives) maps to pixel frame 0 for i = 0 (the frames
    replace the first latent frames) and 8 (i - 1) + 1 otherwise (appended as keyframe tokens there), diffusers' own
    mapping."""
    latent_frames = latent_grid(height, width, num_frames)[0]
    pixel_frames = []
    for i, condition in enumerate(conditions):
        if not isinstance(condition, LTX2VideoCondition):
            raise TypeError(f"conditions[{i}] must be an LTX2VideoCondition, got {type(condition).__name__}")
        names = {
            "image": f"conditions[{i}].frames",
            "image_strength": f"conditions[{i}].strength",
            "image_crf": f"conditions[{i}].crf",
        }
        if _is_single_image(condition.frames):
            image = condition.frames[0] if isinstance(condition.frames, list) else condition.frames
            check_conditions(image, condition.strength, image_crf=condition.crf, names=names)
        else:
            check_media(condition.frames, names["image"], what="video")
            check_strength(condition.strength, names["image_strength"])
        index = condition.index % latent_frames if condition.index < 0 else condition.index
        if index >= latent_frames:
            raise ValueError(
                f"conditions[{i}] is at latent index {condition.index}, but {num_frames} frames have only "
                f"{latent_frames} latent frames (0 to {latent_frames - 1}, or -1 for the last): lower the index or "
                "generate more frames"
            )
        pixel_frames.append(0 if index == 0 else (index - 1) * 8 + 1)
    return pixel_frames


def encode_video_conditions(
    vae: torch.nn.Module,
    conditions: Sequence[LTX2VideoCondition],
    pixel_frames: Sequence[int],
    height: int,
    width: int,
    num_frames: int,
    image_crf: int,
    device: torch.device,
) -> list[VideoCondition]:
    """diffusers' conditions, checked by `condition_frames` (which gave `pixel_frames`) -> our `VideoCondition`s
    (normalised latents at height x width). A single image goes through H.264 at its `crf` (None: `image_crf`); a
    video is cut to the longest 8k + 1 prefix that fits in the clip from its pixel frame."""
    encoded = []
    for i, (condition, pixel_frame) in enumerate(zip(conditions, pixel_frames, strict=True)):
        frames = condition.frames
        if _is_single_image(frames):
            image = frames[0] if isinstance(frames, list) else frames
            crf = image_crf if condition.crf is None else condition.crf
            latent = encode_image(vae, image, height, width, device, crf, name=f"conditions[{i}].frames")
        else:
            room = num_frames - pixel_frame
            usable = (min(len(frames), room) - 1) // 8 * 8 + 1
            pixels = video_to_pixels(frames, height, width, name=f"conditions[{i}].frames", max_frames=usable)
            latent = encode_pixels(vae, pixels.to(device))
        encoded.append(VideoCondition(latent, pixel_frame, condition.strength))
    return encoded


def _diffusers_sigmas(sigmas):
    """diffusers' sigmas (without the final 0; a final 0 is accepted too) -> ours, ending in 0. Anything that is not a
    list of numbers passes unchanged, for `validation.check_sigmas` to name."""
    values = sigmas.tolist() if hasattr(sigmas, "tolist") else sigmas
    if isinstance(values, Sequence) and values and isinstance(values[-1], Real) and float(values[-1]) != 0.0:
        return [*values, 0.0]
    return values


# ----------------------------------------------------------------------------------------------------------------------
# Pipelines


class _DiffusersCallback:
    """diffusers' tensor names ("latents", "audio_latents") onto ours, both ways, around a user callback."""

    def __init__(self, callback: Callable):
        self.callback = callback

    def __call__(self, pipe, step_index: int, timestep: float, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
        theirs = {name: tensors[ours] for name, ours in _CALLBACK_NAMES.items() if ours in tensors}
        changed = self.callback(pipe, step_index, timestep, theirs) or {}
        return {_CALLBACK_NAMES[name]: value for name, value in changed.items() if name in _CALLBACK_NAMES}


class LTX2Pipeline(LTX2AVPipeline):
    """diffusers' `LTX2Pipeline` call over `LTX2AVPipeline`'s components and stage functions (module docstring).

    Assigning a diffusers `FlowMatchEulerDiscreteScheduler` to `pipe.scheduler` converts it to `LTX2Scheduler`.
    """

    _noise_scale_default = 0.0  # diffusers' LTX2Pipeline: latents are used as given unless noise_scale says otherwise

    def __setattr__(self, name, value):
        if name == "scheduler" and value is not None:
            value = as_ltx2_scheduler(value)
        super().__setattr__(name, value)

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None,
        *,
        image=None,
        conditions: Sequence[LTX2VideoCondition] | LTX2VideoCondition | None = None,
        height: int | None = None,
        width: int | None = None,
        num_frames: int | None = None,
        frame_rate: float | None = None,
        num_inference_steps: int | None = None,
        sigmas: Sequence[float] | None = None,
        timesteps: Sequence[float] | None = None,
        guidance_scale: float | None = None,
        stg_scale: float | None = None,
        modality_scale: float | None = None,
        guidance_rescale: float | None = None,
        audio_guidance_scale: float | None = None,
        audio_stg_scale: float | None = None,
        audio_modality_scale: float | None = None,
        audio_guidance_rescale: float | None = None,
        spatio_temporal_guidance_blocks: Sequence[int] | None = None,
        noise_scale: float | None = None,
        num_videos_per_prompt: int = 1,
        generator=None,
        latents: Tensor | None = None,
        audio_latents: Tensor | None = None,
        prompt_embeds=None,
        negative_prompt_embeds=None,
        use_cross_timestep: bool = True,
        system_prompt: str | None = None,
        enable_prompt_enhancement: bool = False,
        prompt_max_new_tokens: int | None = None,
        prompt_enhancement_seed: int = 10,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        allow_large: bool = False,
    ) -> LTX2PipelineOutput | tuple:
        """diffusers' `LTX2Pipeline.__call__` (its `LTX2ImageToVideoPipeline` with `image`, `LTX2ConditionPipeline`
        with `conditions`), run as `LTX2AVPipeline`'s story.

        height / width / num_frames / frame_rate: None -> from `latents` when given, else the model version's
            preset (`presets.sampling_preset`): 512 x 768, 121 frames at 24 fps.
        sigmas: diffusers' form, without the final 0 (a final 0 is accepted too).
        latents / audio_latents: RAW latents (what `output_type="latent"` returns), given together; the start of the
            denoise after re-noising by `noise_scale` (None: 0.0, the condition pipeline: sigmas[0] when sigmas are
            given, else 1.0). Without them noise is drawn.
        enable_prompt_enhancement: Gemma rewrites every prompt with `system_prompt` (required, as diffusers requires
            it for LTX-2 / LTX-2.3) seeded by `prompt_enhancement_seed`; with `image` Gemma sees it (`processor`).
        use_cross_timestep: must be True (the reference's audio-video AdaLN; this package always uses it).
        callback_on_step_end_tensor_inputs: diffusers' names, "latents" and "audio_latents" (a `PipelineCallback`
            brings its own).
        allow_large: not diffusers'; lets through what `validation.check_work` refuses as likely typos (clips above
            524,288 video tokens per sample or 64 GiB of decoded frames, more than 1000 steps).
        Returns `LTX2PipelineOutput(frames, audio, audio_sample_rate)` or `(frames, audio)`; "latent": raw latents.
        """
        # 1. Check inputs and resolve defaults (diffusers' forms -> ours): the model version's preset, then every
        #    argument checked (validation) before any encoder runs
        if use_cross_timestep is not True:
            raise ValueError(
                "use_cross_timestep=False is not supported: this package's transformer call always reads the partner "
                "modality's sigma in the audio-video AdaLN, as the reference (ltx-core 1.0.0) does. Drop the argument."
            )
        if (latents is None) != (audio_latents is None):
            raise ValueError(
                "pass latents and audio_latents together (both from the same output_type='latent' call), or neither: "
                "one modality re-noised from given latents and the other drawn fresh is not supported"
            )
        if conditions is not None and image is not None:
            raise ValueError("pass image (the first frame) or conditions, not both")
        conditions = [conditions] if isinstance(conditions, LTX2VideoCondition) else list(conditions or ())
        if latents is not None:
            height, width, num_frames = self._size_from_latents(latents, height, width, num_frames)
        preset = sampling_preset(self.model_version, self.kind)
        height, width = preset.height if height is None else height, preset.width if width is None else width
        num_frames = preset.num_frames if num_frames is None else num_frames
        frame_rate = preset.frame_rate if frame_rate is None else frame_rate
        sigmas = _diffusers_sigmas(sigmas)
        keywords = guidance_keywords(
            guidance_scale, stg_scale, modality_scale, guidance_rescale, audio_guidance_scale, audio_stg_scale,
            audio_modality_scale, audio_guidance_rescale, spatio_temporal_guidance_blocks,
        )  # fmt: skip
        batch_size = check_call_inputs(
            prompt=prompt, negative_prompt=negative_prompt, prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds, num_videos_per_prompt=num_videos_per_prompt,
            enhance_prompt=enable_prompt_enhancement, height=height, width=width, num_frames=num_frames,
            frame_rate=frame_rate, size_multiple=32, image=image, num_inference_steps=num_inference_steps,
            sigmas=sigmas, guidance_keywords=keywords, output_type=output_type,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            callback_tensor_inputs=tuple(_CALLBACK_NAMES), generator=generator, return_dict=return_dict,
            allow_large=allow_large,
        )  # fmt: skip
        pixel_frames = condition_frames(conditions, height, width, num_frames)
        self._check_audio_latents(audio_latents, num_frames, frame_rate)
        if enable_prompt_enhancement:
            self._check_enhancement(system_prompt)
        prompts = as_list(prompt)
        negative_prompts = as_list(preset.negative_prompt if negative_prompt is None else negative_prompt)
        names = callback_tensor_names(callback_on_step_end, callback_on_step_end_tensor_inputs)
        names = [_CALLBACK_NAMES[name] for name in names]  # diffusers' -> ours
        callback = None if callback_on_step_end is None else _DiffusersCallback(callback_on_step_end)
        video_guidance, audio_guidance = resolve_guidance(None, None, preset, keywords)
        fixed = self.scheduler.config.fixed_sigmas
        if (
            sigmas is None
            and timesteps is None
            and fixed is not None
            and num_inference_steps not in (None, len(fixed) - 1)
        ):
            # diffusers runs N steps of a distilled repo's scheduler (no shift): N linear sigmas from 1
            sigmas = [*np.linspace(1.0, 1.0 / num_inference_steps, num_inference_steps).tolist(), 0.0]
        sigmas = resolve_sigmas(self.scheduler, num_inference_steps, sigmas, timesteps, preset.num_inference_steps)
        if noise_scale is None:
            noise_scale = self._noise_scale_default if self._noise_scale_default is not None else float(sigmas[0])
        if not 0.0 <= noise_scale <= 1.0:
            raise ValueError(f"noise_scale must lie in [0, 1] (the share of fresh noise), got {noise_scale}")
        device, dtype = self._execution_device, self.transformer.dtype

        # 2. Prompts (optionally enhanced first) -> video and audio contexts
        if enable_prompt_enhancement and prompts is not None:
            prompts = self._enhance(prompts, system_prompt, image, prompt_enhancement_seed, prompt_max_new_tokens)
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
        )

        # 3. Image / conditions -> condition latents
        if image is not None:
            conditions, pixel_frames = [LTX2VideoCondition(frames=image, index=0, strength=1.0)], [0]
        encoded = encode_video_conditions(
            self.vae, conditions, pixel_frames, height, width, num_frames, preset.image_crf, device
        )

        # 4. Starting states: given raw latents normalised and re-noised by noise_scale, else noise
        initial_video = initial_audio = None
        if latents is not None:
            initial_video = normalize_latents(
                latents.to(device, torch.float32), self.vae.latents_mean, self.vae.latents_std
            )
            initial_audio = self.audio_vae.normalize_latents(audio_latents.to(device, self.audio_vae.dtype))
            initial_video = initial_video.expand(batch_size, -1, -1, -1, -1)
            initial_audio = initial_audio.expand(batch_size, -1, -1, -1)
        video, audio = prepare_latents(
            batch_size,
            height,
            width,
            num_frames,
            frame_rate,
            generator=generator,
            device=device,
            dtype=dtype,
            conditions=encoded,
            **self.latent_layout,
            noise_scale=noise_scale if latents is not None else 1.0,
            initial_video_latent=initial_video,
            initial_audio_latent=initial_audio,
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
            callback=StepCallbacks(self, callback, names),
        )

        # 6. Latents -> frames and waveform (or diffusers' raw latents)
        video_latents = unpatchify_video(video.output_tokens(), *latent_grid(height, width, num_frames))
        audio_latents = unpack_audio_latents(audio.output_tokens(), self.audio_vae.config.latent_channels)
        if output_type == "latent":
            raw_video = denormalize_latents(video_latents, self.vae.latents_mean, self.vae.latents_std)
            raw_audio = self.audio_vae.denormalize_latents(audio_latents.to(self.audio_vae.dtype))
            return pipeline_output(self, raw_video, raw_audio, None, return_dict)
        frames = decode_frames(self.vae, video_latents, output_type, generator)
        waveform, sample_rate = decode_waveform(self.audio_vae, self.vocoder, audio_latents, output_type)
        return pipeline_output(self, frames, waveform, sample_rate, return_dict)

    # Helpers of __call__ --------------------------------------------------------------------------------------------

    def _size_from_latents(self, latents: Tensor, height, width, num_frames) -> tuple[int, int, int]:
        """diffusers infers the clip's size from 5-D latents; a size also given must agree with them."""
        if latents.ndim != 5:
            raise ValueError(
                f"latents must be raw video latents (B, C, F', H', W') as output_type='latent' returns them, got shape "
                f"{tuple(latents.shape)}"
            )
        frames, rows, cols = latents.shape[2:]
        inferred = {"height": rows * 32, "width": cols * 32, "num_frames": (frames - 1) * 8 + 1}
        for name, given in (("height", height), ("width", width), ("num_frames", num_frames)):
            if given is not None and given != inferred[name]:
                raise ValueError(
                    f"{name}={given} disagrees with latents of shape {tuple(latents.shape)}, which give "
                    f"{name}={inferred[name]}: drop {name} or pass latents of that size"
                )
        return inferred["height"], inferred["width"], inferred["num_frames"]

    def _check_audio_latents(self, audio: Tensor | None, num_frames: int, frame_rate: float) -> None:
        expected = audio_latent_frames(num_frames, frame_rate)
        if audio is not None and (audio.ndim != 4 or audio.shape[2] != expected):
            raise ValueError(
                f"audio_latents of shape {tuple(audio.shape)} do not fit {num_frames} frames at {frame_rate} fps, "
                f"which need (B, 8, {expected}, 16): pass the audio latents of the same call as latents, and its "
                "frame_rate"
            )

    def _check_enhancement(self, system_prompt: str | None) -> None:
        if system_prompt is None:
            raise ValueError(
                "enable_prompt_enhancement needs system_prompt= (as diffusers requires for LTX-2 / LTX-2.3), e.g. "
                "T2V_DEFAULT_SYSTEM_PROMPT, or I2V_DEFAULT_SYSTEM_PROMPT with an image"
            )
        if self.text_encoder is None:
            raise ValueError("enable_prompt_enhancement needs the pipeline's text_encoder (Gemma), which is None")

    def _enhance(self, prompts, system_prompt, image, seed: int, max_new_tokens: int | None) -> list[str]:
        options = {} if max_new_tokens is None else {"max_new_tokens": max_new_tokens}
        return [
            enhance_prompt_with_gemma(
                self.text_encoder,
                self.tokenizer,
                text,
                image=image,
                processor=self.processor,
                seed=seed,
                system_prompt=system_prompt,
                device=self._execution_device,
                **options,
            )
            for text in prompts
        ]


class LTX2ImageToVideoPipeline(LTX2Pipeline):
    """diffusers' `LTX2ImageToVideoPipeline`: `LTX2Pipeline` with `image=` (frame 0, strength 1) required."""

    def __call__(self, image=None, prompt=None, negative_prompt=None, **kwargs):
        if image is None:
            raise ValueError(
                "LTX2ImageToVideoPipeline needs image= (the first frame); for text-to-video use LTX2Pipeline"
            )
        return super().__call__(prompt, negative_prompt, image=image, **kwargs)


class LTX2ConditionPipeline(LTX2Pipeline):
    """diffusers' `LTX2ConditionPipeline`: `LTX2Pipeline` with `conditions=` (`LTX2VideoCondition`s); given latents
    are re-noised to `sigmas[0]` unless `noise_scale` says otherwise, as diffusers' condition pipeline does."""

    _noise_scale_default = None  # sigmas[0]


class LTX2LatentUpsamplePipeline(DiffusionPipeline):
    """diffusers' `LTX2LatentUpsamplePipeline(vae, latent_upsampler)` for latents: the two-stage pipelines' upsampler
    stage (`upsample_latents`) on raw video latents (B, 128, F', H', W') -> (B, 128, F', 2H', 2W').

    `output_type="latent"` returns raw latents (for `LTX2Pipeline(latents=...)`); "pil" / "np" / "pt" decode them.
    Only `latents=` input: encoding a pixel `video=` and diffusers' AdaIN / tone mapping options are not offered."""

    model_cpu_offload_seq = "vae->latent_upsampler"

    def __init__(self, vae, latent_upsampler):
        super().__init__()
        self.register_modules(vae=vae, latent_upsampler=latent_upsampler)

    @torch.no_grad()
    def __call__(
        self,
        latents: Tensor | None = None,
        latents_normalized: bool = False,
        generator=None,
        output_type: str = "pil",
        return_dict: bool = True,
    ) -> LTX2PipelineOutput | tuple:
        """latents: video latents (B, 128, F', H', W'), raw (`latents_normalized=False`, what `LTX2Pipeline`'s
        output_type="latent" returns) or normalised. Returns `(video,)` or `LTX2PipelineOutput(frames=video)`."""
        if latents is None or latents.ndim != 5:
            raise ValueError(
                "LTX2LatentUpsamplePipeline takes latents= (B, C, F', H', W'), the video latents of an "
                f"output_type='latent' call; got {None if latents is None else tuple(latents.shape)}"
            )
        check_output_type(output_type)
        mean, std = self.vae.latents_mean, self.vae.latents_std
        device = self._execution_device
        normalized = latents.to(device, torch.float32)
        if not latents_normalized:
            normalized = normalize_latents(normalized, mean, std)
        upsampled = upsample_latents(self.latent_upsampler, normalized, mean, std)
        if output_type == "latent":
            video = upsampled if latents_normalized else denormalize_latents(upsampled, mean, std)
        else:
            video = decode_frames(self.vae, upsampled, output_type, generator)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (video,)
        return LTX2PipelineOutput(frames=video, audio=None, audio_sample_rate=None)
