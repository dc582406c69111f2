"""LTX2AVPipeline: text (and optional images) -> video with a synchronized stereo soundtrack, in one stage.

ltx-pipelines' `TI2VidOneStagePipeline` in diffusers' shape. Reads top to bottom in the shared stages of
`denoising.py`: prompts -> contexts, noise + conditions -> latents, guided Euler -> latents, VAEs + vocoder -> media.
Defaults follow the checkpoint's model version (LTX-2: 40 steps, STG block 29; LTX-2.3: 30 steps, block 28).
"""

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import PIL.Image
import torch
from diffusers import DiffusionPipeline
from diffusers.utils import logging
from torch import Tensor

from ..hub import PipelineCardMixin, local_or_snapshot_folder
from ..models.autoencoder_kl_ltx2 import normalize_latents
from ..models.autoencoder_kl_ltx2_audio import unpack_audio_latents
from ..schedulers.scheduling_ltx2 import DISTILLED_SIGMAS, LTX2Scheduler
from .conditioning import DEFAULT_IMAGE_CRF, prepare_image, unpatchify_video
from .denoising import (
    StepCallback,
    TextContexts,
    VideoCondition,
    check_video_size,
    decode_audio,
    decode_video,
    guided_denoise,
    prepare_latents,
)
from .guidance import GuidanceScales, GuidanceSchedule
from .pipeline_output import LTX2PipelineOutput
from .prompt_enhancement import DEFAULT_SEED
from .prompt_enhancement import enhance_prompt as enhance_prompt_with_gemma
from .text_encoding import encode_prompts

logger = logging.get_logger(__name__)

# ltx-pipelines' DEFAULT_NEGATIVE_PROMPT (spec §9), kept verbatim: it is part of the reference's sampling setup, and
# results only match the reference's with the exact string.
DEFAULT_NEGATIVE_PROMPT = (
    "blurry, out of focus, overexposed, underexposed, low contrast, washed out colors, excessive noise, grainy "
    "texture, poor lighting, flickering, motion blur, distorted proportions, unnatural skin tones, deformed facial "
    "features, asymmetrical face, missing facial features, extra limbs, disfigured hands, wrong hand count, artifacts "
    "around text, inconsistent perspective, camera shake, incorrect depth of field, background too sharp, background "
    "clutter, distracting reflections, harsh shadows, inconsistent lighting direction, color banding, cartoonish "
    "rendering, 3D CGI look, unrealistic materials, uncanny valley effect, incorrect ethnicity, wrong gender, "
    "exaggerated expressions, wrong gaze direction, mismatched lip sync, silent or muted audio, distorted voice, "
    "robotic voice, echo, background noise, off-sync audio, incorrect dialogue, added dialogue, repetitive speech, "
    "jittery movement, awkward pauses, incorrect timing, unnatural transitions, inconsistent framing, tilted camera, "
    "flat lighting, inconsistent tone, cinematic oversaturation, stylized filters, or AI artifacts."
)


@dataclass(frozen=True)
class ModelVersionDefaults:
    """Sampling defaults of one model generation (ltx-pipelines' LTX_2_PARAMS / LTX_2_3_PARAMS, spec §6.2)."""

    num_inference_steps: int
    video_guidance: GuidanceScales
    audio_guidance: GuidanceScales
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT


def _preset(steps: int, stg_block: int) -> ModelVersionDefaults:
    video = GuidanceScales(cfg=3.0, stg=1.0, modality=3.0, rescale=0.7, stg_blocks=(stg_block,))
    return ModelVersionDefaults(steps, video, replace(video, cfg=7.0))


MODEL_VERSION_DEFAULTS: dict[str, ModelVersionDefaults] = {"2.0": _preset(40, 29), "2.3": _preset(30, 28)}

# Distilled checkpoints (a scheduler with fixed sigmas, `LTX2Scheduler.distilled()`): ltx-pipelines' DistilledPipeline
# encodes only the prompt and denoises with `simple_denoising_func` (distilled.py), one conditional pass per step:
# no CFG, STG, modality guidance or rescale, for either modality. The step count comes from the scheduler's sigmas.
DISTILLED_DEFAULTS = ModelVersionDefaults(len(DISTILLED_SIGMAS) - 1, GuidanceScales(), GuidanceScales())


def model_version(transformer_config) -> str:
    """ "2.3" for LTX-2.3 transformers (gated attention, prompt projections in the connectors), else "2.0"."""
    return "2.3" if transformer_config.gated_attn or not transformer_config.use_prompt_embeddings else "2.0"


def _needs_uncond(guidance: GuidanceScales | GuidanceSchedule) -> bool:
    if isinstance(guidance, GuidanceSchedule):
        return any(scales.needs_uncond for _, scales in guidance.bins)
    return guidance.needs_uncond


ImageInput = PIL.Image.Image | np.ndarray | Tensor


def _image_to_pixels(image: ImageInput, height: int, width: int, crf: int) -> Tensor:
    """An image -> (1, 3, 1, H, W) float in [-1, 1] for the video VAE.

    Paths, PIL images and (H, W, 3) uint8 arrays go through the reference's preparation (`prepare_image`: optional
    H.264 round trip at `crf`, cover resize, centre crop). A float tensor (3, H, W) or (1, 3, H, W) in [-1, 1] is
    taken as already prepared and must have the video's size.
    """
    if isinstance(image, Tensor) and image.is_floating_point():
        pixels = image if image.ndim == 4 else image.unsqueeze(0)
        if pixels.ndim != 4 or pixels.shape[:2] != (1, 3):
            raise ValueError(f"a float image tensor must be (3, H, W) or (1, 3, H, W), got {tuple(image.shape)}")
        if tuple(pixels.shape[-2:]) != (height, width):
            raise ValueError(
                f"image is {pixels.shape[-2]}x{pixels.shape[-1]} (HxW) but the video is {height}x{width}: pass an "
                "image tensor of the video's size, or a PIL image / path (resized and centre-cropped for you)"
            )
        return pixels.unsqueeze(2)
    return prepare_image(image, height, width, crf=crf)


def _image_for_enhancement(image: ImageInput) -> ImageInput:
    """The conditioning image as prompt enhancement takes it: a float tensor in [-1, 1] ((3, H, W) or (1, 3, H, W),
    the pipeline's prepared form) becomes (H, W, 3) uint8; paths, PIL images and uint8 arrays pass unchanged."""
    if isinstance(image, Tensor) and image.is_floating_point():
        pixels = image[0] if image.ndim == 4 else image
        return ((pixels.float().cpu() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0)
    return image


def _repeat_contexts(contexts: TextContexts, times: int) -> TextContexts:
    """Each prompt's contexts `times` times in a row (B -> B * times), for num_videos_per_prompt."""

    def repeat(context: Tensor | None) -> Tensor | None:
        return None if context is None else context.repeat_interleave(times, dim=0)

    return TextContexts(
        repeat(contexts.video), repeat(contexts.audio), repeat(contexts.negative_video), repeat(contexts.negative_audio)
    )


def _postprocess_frames(video: Tensor, output_type: str):
    """(B, 3, F, H, W) in [-1, 1] -> "pt" (B, F, 3, H, W) / "np" (B, F, H, W, 3) float32 in [0, 1] / "pil" lists."""
    if output_type == "pil":
        # ltx-core's decode_video converts in the decoder's output dtype (bf16 in the reference's runs) and truncates
        # (spec §13.11): the same expression in the same dtype gives the reference's uint8 frames exactly
        uint8 = (((video + 1.0) / 2.0).clamp(0.0, 1.0) * 255.0).to(torch.uint8)
        return [[PIL.Image.fromarray(frame) for frame in clip] for clip in uint8.permute(0, 2, 3, 4, 1).cpu().numpy()]
    frames = ((video.float() + 1.0) / 2.0).clamp(0.0, 1.0)
    if output_type == "pt":
        return frames.permute(0, 2, 1, 3, 4)
    return frames.permute(0, 2, 3, 4, 1).cpu().numpy()


COMPONENTS = ("scheduler", "vae", "audio_vae", "text_encoder", "tokenizer", "connectors", "transformer", "vocoder")
OPTIONAL_COMPONENTS = ("processor",)  # a Gemma3Processor: only image-to-video prompt enhancement needs it


def kind_from_repo_name(name_or_path: str | os.PathLike) -> str:
    """ "distilled" when a repo id or folder name says so (`diffusers/LTX-2.3-Distilled-Diffusers`), else "dev".

    Needed for diffusers-layout repos, whose scheduler config cannot tell: diffusers' converter writes the distilled
    one as "no shift, no terminal", which is also FlowMatchEulerDiscreteScheduler's default.
    """
    return "distilled" if "distilled" in os.path.basename(os.path.normpath(os.fspath(name_or_path))).lower() else "dev"


def scheduler_for_kind(kind: str) -> LTX2Scheduler:
    """The reference's schedule: "dev" (shifted, 40/30 steps by model version) or "distilled" (the 8 fixed sigmas)."""
    if kind not in ("dev", "distilled"):
        raise ValueError(f"kind={kind!r}: expected 'dev' or 'distilled'")
    return LTX2Scheduler.distilled() if kind == "distilled" else LTX2Scheduler()


def resolve_scheduler(folder: str, index: dict, name_or_path: str | os.PathLike, kind: str | None) -> LTX2Scheduler:
    """The scheduler for a pipeline folder: `kind` when given; else the folder's own LTX2Scheduler; else (diffusers'
    FlowMatchEulerDiscreteScheduler, which shifts by token count where the reference does not) the reference's
    schedule for the kind the repo id or folder name says."""
    if kind is not None:
        return scheduler_for_kind(kind)
    if index.get("scheduler", [None, None])[1] == "LTX2Scheduler":
        return LTX2Scheduler.from_pretrained(folder, subfolder="scheduler")
    return scheduler_for_kind(kind_from_repo_name(name_or_path))


class LTX2AVPipeline(PipelineCardMixin, DiffusionPipeline):
    """Text/image -> video + stereo audio with LTX-2 or LTX-2.3, one stage (ltx-pipelines' one-stage pipeline).

    Components keep diffusers' LTX2Pipeline names: `transformer`, `vae`, `audio_vae`, `vocoder`, `connectors`,
    `text_encoder` (Gemma-3), `tokenizer`, `scheduler` (`LTX2Scheduler`), and the optional `processor`
    (`Gemma3Processor`), which only image-to-video prompt enhancement uses.
    """

    model_cpu_offload_seq = "text_encoder->connectors->transformer->vae->audio_vae->vocoder"
    _callback_tensor_inputs = ["video_latents", "audio_latents"]
    _optional_components = list(OPTIONAL_COMPONENTS)

    def __init__(
        self, scheduler, vae, audio_vae, text_encoder, tokenizer, connectors, transformer, vocoder, processor=None
    ):
        super().__init__()
        if not isinstance(scheduler, LTX2Scheduler):
            raise TypeError(
                f"scheduler must be an LTX2Scheduler (the reference's schedule and x0 Euler steps), got "
                f"{type(scheduler).__name__}. Use LTX2Scheduler() or LTX2Scheduler.distilled()."
            )
        self.register_modules(
            scheduler=scheduler,
            vae=vae,
            audio_vae=audio_vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            connectors=connectors,
            transformer=transformer,
            vocoder=vocoder,
            processor=processor,
        )

    def register_modules(self, **kwargs):
        super().register_modules(**kwargs)
        # diffusers records a component from an outside package under its module path; record our package name, which
        # `DiffusionPipeline.from_pretrained` resolves through ltx2_diffusers' public table.
        for name in kwargs:
            library, class_name = self.config[name] if name in self.config else (None, None)
            if library is not None and library.startswith("ltx2_diffusers."):
                self.register_to_config(**{name: ("ltx2_diffusers", class_name)})

    # ------------------------------------------------------------------------------------------------------------------
    # Loading

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, *, kind: str | None = None, **kwargs
    ) -> "LTX2AVPipeline":
        """Load a diffusers-layout folder or Hub repo, building OUR classes for the LTX-2 components whether its
        model_index.json names diffusers' classes (e.g. `Lightricks/LTX-2`) or ours. A diffusers scheduler is replaced
        by `LTX2Scheduler` with the reference's schedule for `kind` ("dev" or "distilled"; None: the folder's own
        LTX2Scheduler, else "distilled" when the repo id or folder name says so, else "dev"); an explicit `kind`
        overrides a saved scheduler. Other kwargs go to `DiffusionPipeline.from_pretrained`."""
        import ltx2_diffusers

        # Only this pipeline's folders: Hub repos such as Lightricks/LTX-2 also hold the original single files.
        folder = local_or_snapshot_folder(
            pretrained_model_name_or_path,
            ["model_index.json", "README.md", *(f"{name}/*" for name in COMPONENTS + OPTIONAL_COMPONENTS)],
            revision=kwargs.get("revision"),
            cache_dir=kwargs.get("cache_dir"),
            token=kwargs.get("token"),
            local_files_only=kwargs.get("local_files_only", False),
        )
        with open(os.path.join(folder, "model_index.json")) as f:
            index = json.load(f)
        # diffusers 0.42 renamed torch_dtype to dtype and warns on the old name; both are accepted here, without the
        # warning, and handed on as dtype
        dtype, torch_dtype = kwargs.pop("dtype", None), kwargs.pop("torch_dtype", None)
        if dtype is not None and torch_dtype is not None:
            raise ValueError("pass dtype or torch_dtype (its older name), not both")
        dtype = torch_dtype if dtype is None else dtype
        if dtype is not None:
            kwargs["dtype"] = dtype
        for name in ("transformer", "vae", "audio_vae", "connectors", "vocoder"):
            if name in kwargs or name not in index or index[name][1] is None:
                continue
            class_name = index[name][1]
            if class_name not in ltx2_diffusers.__all__:
                raise ValueError(
                    f"model_index.json names {index[name]} for {name!r}; LTX2AVPipeline loads {name} into one of "
                    f"ltx2_diffusers' classes, and {class_name!r} is not one of them. Pass {name}= explicitly."
                )
            component_class = getattr(ltx2_diffusers, class_name)
            kwargs[name] = component_class.from_pretrained(folder, subfolder=name, dtype=dtype)
        if "scheduler" not in kwargs:
            kwargs["scheduler"] = resolve_scheduler(folder, index, pretrained_model_name_or_path, kind)
        return super().from_pretrained(folder, **kwargs)

    @classmethod
    def from_single_file(
        cls,
        path: str | os.PathLike,
        *,
        text_encoder=None,
        tokenizer=None,
        processor=None,
        kind: str | None = None,
        torch_dtype: torch.dtype | None = None,
    ) -> "LTX2AVPipeline":
        """The pipeline from a Lightricks single file (`ltx-2-19b-dev.safetensors`, `ltx-2.3-22b-*.safetensors`):
        every model it holds, through the converter's key maps and the file's metadata configs, loaded strictly.
        The file holds no Gemma: pass `text_encoder` / `tokenizer` (and `processor` for image prompt enhancement)
        objects. `kind` ("dev" or "distilled") picks the scheduler when the file name does not say."""
        from ..loaders.single_file import pipeline_from_single_file

        return pipeline_from_single_file(
            path,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            processor=processor,
            kind=kind,
            torch_dtype=torch_dtype,
            pipeline_class=cls,
        )

    # ------------------------------------------------------------------------------------------------------------------
    # Switches

    def enable_vae_tiling(self) -> None:
        """Decode the video in overlapping tiles (less memory for long or large clips)."""
        self.vae.enable_tiling()

    def disable_vae_tiling(self) -> None:
        self.vae.disable_tiling()

    @property
    def model_version(self) -> str:
        return model_version(self.transformer.config)

    @property
    def sampling_defaults(self) -> ModelVersionDefaults:
        """What `__call__` uses for None arguments: `DISTILLED_DEFAULTS` with a distilled (fixed-sigma) scheduler,
        else the model version's `MODEL_VERSION_DEFAULTS`."""
        if self.scheduler.config.fixed_sigmas is not None:
            return DISTILLED_DEFAULTS
        return MODEL_VERSION_DEFAULTS[self.model_version]

    @property
    def audio_sample_rate(self) -> int:
        return int(self.vocoder.config.output_sampling_rate)

    # ------------------------------------------------------------------------------------------------------------------
    # Stages

    def encode_prompts(
        self, prompts: list[str], negative_prompts: list[str] | None, device: torch.device, dtype: torch.dtype
    ) -> TextContexts:
        """Prompts (and negative prompts) -> connector contexts, all in one Gemma batch."""
        texts = prompts + (negative_prompts or [])
        embeds = encode_prompts(self.text_encoder, self.tokenizer, self.connectors, texts, device=device, dtype=dtype)
        video, audio, n = embeds.video_context, embeds.audio_context, len(prompts)
        if negative_prompts is None:
            return TextContexts(video, audio)
        return TextContexts(video[:n], audio[:n], video[n:], audio[n:])

    @torch.no_grad()
    def encode_image(
        self, image: ImageInput, height: int, width: int, device: torch.device, crf: int = DEFAULT_IMAGE_CRF
    ) -> Tensor:
        """An image -> normalised video latent (1, 128, 1, H/32, W/32), as the transformer sees latents."""
        pixels = _image_to_pixels(image, height, width, crf).to(device, self.vae.dtype)
        latent = self.vae.encode(pixels).latent_dist.mode()  # the posterior mean, as ltx-core's encoder returns
        return normalize_latents(latent, self.vae.latents_mean, self.vae.latents_std)

    def check_inputs(self, prompts, negative_prompts, height, width, num_frames, frame_rate, strengths, output_type):
        if len(prompts) == 0:
            raise ValueError("prompt is an empty list: pass at least one prompt")
        if not all(isinstance(p, str) for p in prompts):
            raise TypeError(f"prompt must be a string or a list of strings, got {prompts!r}")
        if negative_prompts is not None and len(negative_prompts) not in (1, len(prompts)):
            raise ValueError(
                f"got {len(negative_prompts)} negative prompts for {len(prompts)} prompts: pass one, or one per prompt"
            )
        check_video_size(height, width, num_frames)
        if frame_rate <= 0:
            raise ValueError(f"frame_rate must be positive, got {frame_rate}")
        for strength in strengths:
            if not 0.0 <= strength <= 1.0:
                raise ValueError(
                    f"conditioning strength {strength} is outside [0, 1] (1 keeps the image, 0 ignores it); a "
                    "negative strength would push the frame away from the image"
                )
        if output_type not in ("pil", "np", "pt", "latent"):
            raise ValueError(f"output_type must be one of 'pil', 'np', 'pt', 'latent', got {output_type!r}")

    # ------------------------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        negative_prompt: str | list[str] | None = None,
        *,
        image: ImageInput | None = None,
        image_strength: float = 1.0,
        image_crf: int = DEFAULT_IMAGE_CRF,
        keyframes: Sequence[tuple[ImageInput, int, float]] = (),
        enhance_prompt: bool = False,
        enhance_prompt_seed: int | None = None,
        height: int = 512,
        width: int = 768,
        num_frames: int = 121,
        frame_rate: float = 24.0,
        num_inference_steps: int | None = None,
        sigmas: Sequence[float] | None = None,
        video_guidance: GuidanceScales | GuidanceSchedule | None = None,
        audio_guidance: GuidanceScales | GuidanceSchedule | None = None,
        num_videos_per_prompt: int = 1,
        generator: torch.Generator | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("video_latents",),
    ) -> LTX2PipelineOutput | tuple:
        """Generate `num_frames` frames of `height` x `width` video with a stereo soundtrack.

        prompt: one prompt or a list (one clip each, times `num_videos_per_prompt`).
        negative_prompt: None -> the model version's default (the reference's); "" for an empty one.
        image: conditions pixel frame 0 (image-to-video) at `image_strength` (1 keeps it exactly). A path, PIL image or
            uint8 array is H.264 round-tripped at `image_crf` (the reference's 33; 0 skips it), cover-resized and
            centre-cropped; a float tensor in [-1, 1] must already be height x width.
        keyframes: (image, pixel_frame_index, strength) triples, appended as keyframe tokens at those frames.
        enhance_prompt: let Gemma rewrite the FIRST prompt into a detailed description before encoding (the
            reference's opt-in `--enhance-prompt`); with an `image` (else the first keyframe's) Gemma sees it, which
            needs the pipeline's `processor` (a `Gemma3Processor`). Sampled, so it changes with the seed.
        enhance_prompt_seed: the enhancement's sampling seed; None -> the generator's seed (`initial_seed()`, as the
            reference passes its pipeline seed), or 10 without a generator.
        num_inference_steps / video_guidance / audio_guidance: None -> the model version's defaults; with a distilled
            scheduler (fixed sigmas) no guidance at all, one conditional pass per step, as the reference's
            distilled pipeline.
        sigmas: an explicit schedule (e.g. the distilled one) instead of `num_inference_steps`.
        callback_on_step_end(pipe, step_index, timestep, {name: tensor}) -> dict of replacements, diffusers' convention,
        with tensor names from `callback_on_step_end_tensor_inputs` ("video_latents", "audio_latents": token layout).
        Returns `LTX2PipelineOutput(frames, audio, audio_sample_rate)` or `(frames, audio)`.
        """
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        defaults = self.sampling_defaults
        if negative_prompt is None:
            negative_prompt = defaults.negative_prompt
        negative_prompts = [negative_prompt] if isinstance(negative_prompt, str) else list(negative_prompt)
        strengths = [image_strength] * (image is not None) + [k[2] for k in keyframes]
        self.check_inputs(prompts, negative_prompts, height, width, num_frames, frame_rate, strengths, output_type)
        if len(negative_prompts) == 1:
            negative_prompts = negative_prompts * len(prompts)
        for name in callback_on_step_end_tensor_inputs:
            if name not in self._callback_tensor_inputs:
                raise ValueError(f"callback tensor {name!r} is not one of {self._callback_tensor_inputs}")
        video_guidance = defaults.video_guidance if video_guidance is None else video_guidance
        audio_guidance = defaults.audio_guidance if audio_guidance is None else audio_guidance
        device, dtype = self._execution_device, self.transformer.dtype

        # 0. Optional prompt enhancement: the reference rewrites only the first prompt, seeded by the pipeline seed
        if enhance_prompt:
            if enhance_prompt_seed is None:
                enhance_prompt_seed = DEFAULT_SEED if generator is None else generator.initial_seed()
            first_image = image if image is not None else (keyframes[0][0] if keyframes else None)
            prompts[0] = enhance_prompt_with_gemma(
                self.text_encoder,
                self.tokenizer,
                prompts[0],
                image=None if first_image is None else _image_for_enhancement(first_image),
                processor=self.processor,
                seed=enhance_prompt_seed,
                device=device,
            )
            logger.info(f"enhanced prompt: {prompts[0]}")

        # 1. Prompts -> video and audio contexts (positive and negative in one Gemma batch)
        needs_negative = _needs_uncond(video_guidance) or _needs_uncond(audio_guidance)
        contexts = self.encode_prompts(prompts, negative_prompts if needs_negative else None, device, dtype)
        contexts = _repeat_contexts(contexts, num_videos_per_prompt)
        batch_size = len(prompts) * num_videos_per_prompt

        # 2. Conditions, noise, token positions, denoise masks
        # (a keyframe's frame_index is checked against the clip when it is appended)
        conditions = self._encode_conditions(image, image_strength, keyframes, height, width, image_crf)
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
            video_channels=self.transformer.config.in_channels,
            audio_channels=self.audio_vae.config.latent_channels,
            audio_mel_bins=self.transformer.config.audio_in_channels // self.audio_vae.config.latent_channels,
        )

        # 3. Denoise: every guidance pass of a step in one batched transformer call
        if num_inference_steps is None and sigmas is None and self.scheduler.config.fixed_sigmas is None:
            num_inference_steps = defaults.num_inference_steps  # a distilled scheduler brings its own sigmas
        self.scheduler.set_timesteps(num_inference_steps, sigmas=sigmas)
        callback = self._step_callback(callback_on_step_end, callback_on_step_end_tensor_inputs)
        video, audio = guided_denoise(
            self.transformer,
            video,
            audio,
            contexts,
            self.scheduler.sigmas,
            video_guidance,
            audio_guidance,
            progress_bar=self.progress_bar,
            callback=callback,
        )

        # 4. Latents -> frames and waveform
        grid = ((num_frames - 1) // 8 + 1, height // 32, width // 32)
        video_latents = unpatchify_video(video.output_tokens(), *grid)
        audio_latents = unpack_audio_latents(audio.output_tokens(), self.audio_vae.config.latent_channels)
        return self._decode_outputs(video_latents, audio_latents, output_type, generator, return_dict)

    def _step_callback(
        self, callback_on_step_end: Callable | None, tensor_names: Sequence[str], offset: int = 0
    ) -> StepCallback | None:
        """diffusers' `callback_on_step_end(pipe, step_index, timestep, {name: tensor})` as the denoising loop's
        callback; `offset` carries the step count on through a second stage."""
        if callback_on_step_end is None:
            return None

        def callback(step_index: int, sigma: float, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
            chosen = {name: tensors[name] for name in tensor_names}
            return callback_on_step_end(self, offset + step_index, sigma * 1000.0, chosen) or {}

        return callback

    def _encode_conditions(
        self,
        image: ImageInput | None,
        image_strength: float,
        keyframes: Sequence[tuple[ImageInput, int, float]],
        height: int,
        width: int,
        crf: int,
    ) -> list[VideoCondition]:
        """The image at frame 0 and the keyframes, encoded at height x width."""
        device, conditions = self._execution_device, []
        if image is not None:
            conditions.append(VideoCondition(self.encode_image(image, height, width, device, crf), 0, image_strength))
        for key_image, frame_index, strength in keyframes:
            latent = self.encode_image(key_image, height, width, device, crf)
            conditions.append(VideoCondition(latent, frame_index, strength))
        return conditions

    def _decode_outputs(
        self,
        video_latents: Tensor,
        audio_latents: Tensor,
        output_type: str,
        generator: torch.Generator | None,
        return_dict: bool,
    ) -> LTX2PipelineOutput | tuple:
        """The last stage of every pipeline: normalised latents -> frames (by `output_type`) and stereo waveform."""
        if output_type == "latent":
            frames, waveform, sample_rate = video_latents, audio_latents, None
        else:
            frames = _postprocess_frames(decode_video(self.vae, video_latents, generator), output_type)
            waveform, sample_rate = decode_audio(self.audio_vae, self.vocoder, audio_latents), self.audio_sample_rate
        self.maybe_free_model_hooks()
        if not return_dict:
            return frames, waveform
        return LTX2PipelineOutput(frames=frames, audio=waveform, audio_sample_rate=sample_rate)
