"""LTX2AVTwoStagePipeline: text (and optional images) -> video + stereo audio in two stages (spec §4, §9).

ltx-pipelines' `TI2VidTwoStagesPipeline` and `DistilledPipeline` in diffusers' shape:
1. Stage 1 is the one-stage pipeline (`LTX2AVPipeline.__call__`, unchanged) at (H/2, W/2), returning latents: guided
   with the model version's defaults on a dev scheduler; a single unguided pass per step on a distilled one
   (`LTX2Scheduler.distilled()`, the 8 `DISTILLED_SIGMAS`, no negative prompt).
2. `refine_latents`: the spatial x2 latent upsampler on the stage-1 video latent, then both the upsampled video and
   the stage-1 audio latent are re-noised to the first refinement sigma (noise_scale = 0.909375) and denoised with
   `STAGE_2_DISTILLED_SIGMAS` (3 Euler steps), one positive pass per step. Image conditions are re-encoded at full size.
3. The VAEs and the vocoder decode the full-resolution latents.

Stage 2 of `TI2VidTwoStagesPipeline` is the dev transformer + the distilled LoRA: load it as a peft adapter and pass
its name as `stage_2_adapter`; stage 1 then runs without that adapter (other active adapters, e.g. user LoRAs, apply
in both stages) and stage 2 with it. Without `stage_2_adapter` both stages use the same weights, which with a
distilled checkpoint and scheduler is the `DistilledPipeline`. One generator draws all noise in the reference's
order: stage-1 video, stage-1 audio, stage-2 video, stage-2 audio.
"""

import json
import os
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..models.autoencoder_kl_ltx2_audio import unpack_audio_latents
from ..models.latent_upsampler import upsample_latents
from ..schedulers.scheduling_ltx2 import STAGE_2_DISTILLED_SIGMAS
from .conditioning import DEFAULT_IMAGE_CRF, LatentState, unpatchify_video
from .denoising import (
    StepCallback,
    TextContexts,
    VideoCondition,
    check_video_size,
    guided_denoise,
    prepare_latents,
)
from .guidance import GuidanceScales, GuidanceSchedule
from .pipeline_ltx2_av import (
    COMPONENTS,
    OPTIONAL_COMPONENTS,
    ImageInput,
    LTX2AVPipeline,
    _repeat_contexts,
    resolve_scheduler,
)
from .pipeline_output import LTX2PipelineOutput

# Stage 1 runs at half size and must itself be a multiple of the video VAE's 32x spatial compression.
TWO_STAGE_SIZE_MULTIPLE = 64


def refine_latents(
    transformer: torch.nn.Module,
    latent_upsampler: torch.nn.Module,
    video_latents: Tensor,
    audio_latents: Tensor,
    contexts: TextContexts,
    *,
    latents_mean: Tensor,
    latents_std: Tensor,
    frame_rate: float,
    sigmas: Tensor,
    generator: torch.Generator | None,
    conditions: Sequence[VideoCondition] = (),
    progress_bar: Callable | None = None,
    callback: StepCallback | None = None,
) -> tuple[Tensor, Tensor]:
    """Stage 2 of the two-stage pipelines: upsample the video latent x2 in space and refine video and audio.

    video_latents: (B, C, F', H', W') normalised stage-1 video latents; audio_latents: (B, C_a, T_a, mel) normalised.
    latents_mean / latents_std: the video VAE's per-channel statistics (C,), which the upsampler works around.
    sigmas: (N + 1,) refinement schedule (`STAGE_2_DISTILLED_SIGMAS`); both latents are re-noised to sigmas[0]
    (x = n * sigmas[0] + x0 * (1 - sigmas[0]), video noise drawn before audio noise), then N Euler steps on one
    positive transformer pass each (ltx-pipelines' `simple_denoising_func`; the negative contexts are not used).
    conditions: image / keyframe latents encoded at the FULL size (B or 1, C, f, 2H', 2W').
    Returns video (B, C, F', 2H', 2W') and audio (B, C_a, T_a, mel) latents, normalised, in the transformer's dtype.
    """
    sigmas = torch.as_tensor(sigmas, dtype=torch.float32).cpu()
    video, audio, grid = upsample_and_renoise(
        latent_upsampler,
        video_latents,
        audio_latents,
        latents_mean=latents_mean,
        latents_std=latents_std,
        frame_rate=frame_rate,
        noise_scale=float(sigmas[0]),
        generator=generator,
        dtype=transformer.dtype,
        conditions=conditions,
    )
    neutral = GuidanceScales()  # cfg 1, no STG, no modality guidance: the plan runs the positive pass only
    video, audio = guided_denoise(
        transformer,
        video,
        audio,
        TextContexts(contexts.video, contexts.audio),
        sigmas,
        neutral,
        neutral,
        progress_bar=progress_bar,
        callback=callback,
    )
    audio_channels = audio_latents.shape[1]
    return unpatchify_video(video.output_tokens(), *grid), unpack_audio_latents(audio.output_tokens(), audio_channels)


def upsample_and_renoise(
    latent_upsampler: torch.nn.Module,
    video_latents: Tensor,
    audio_latents: Tensor,
    *,
    latents_mean: Tensor,
    latents_std: Tensor,
    frame_rate: float,
    noise_scale: float,
    generator: torch.Generator | None,
    dtype: torch.dtype,
    conditions: Sequence[VideoCondition] = (),
) -> tuple[LatentState, LatentState, tuple[int, int, int]]:
    """The start of every refinement stage: x2 upsample of the video latents, then video and audio states re-noised
    to `noise_scale` (video noise drawn before audio noise) with the full-size `conditions`.
    Returns the video and audio states and the upsampled latent grid (F', 2H', 2W')."""
    if video_latents.ndim != 5 or audio_latents.ndim != 4:
        raise ValueError(
            f"a refinement stage takes video latents (B, C, F', H', W') and audio latents (B, C, T, mel), got shapes "
            f"{tuple(video_latents.shape)} and {tuple(audio_latents.shape)}"
        )
    upsampler_dtype = next(latent_upsampler.parameters()).dtype
    upsampled = upsample_latents(latent_upsampler, video_latents.to(upsampler_dtype), latents_mean, latents_std)
    batch_size, channels, latent_frames, latent_height, latent_width = upsampled.shape
    video, audio = prepare_latents(
        batch_size,
        latent_height * 32,
        latent_width * 32,
        (latent_frames - 1) * 8 + 1,
        frame_rate,
        generator=generator,
        device=video_latents.device,
        dtype=dtype,
        conditions=conditions,
        video_channels=channels,
        audio_channels=audio_latents.shape[1],
        audio_mel_bins=audio_latents.shape[3],
        noise_scale=noise_scale,
        initial_video_latent=upsampled,
        initial_audio_latent=audio_latents,
    )
    return video, audio, (latent_frames, latent_height, latent_width)


class StageAdapters:
    """Switches the transformer's peft adapters between the stages, and back afterwards (`restore`).

    Stage 1: the adapters active at call time except `name` (none -> adapters disabled); stage 2: those plus `name`,
    at `scale` if given (else at the strength it was loaded with). This is the reference's stage-2 model: the stage-1
    model (checkpoint + the user's LoRAs) + the distilled LoRA.
    """

    def __init__(self, transformer: torch.nn.Module, name: str, scale: float | None = None):
        from peft.tuners.lora import LoraLayer
        from peft.tuners.tuners_utils import BaseTunerLayer

        tuner_layers = [m for m in transformer.modules() if isinstance(m, BaseTunerLayer)]
        active = transformer.active_adapters()
        self.transformer, self.name, self.scale = transformer, name, scale
        self.was_enabled = any(not m.disable_adapters for m in tuner_layers)
        self.active = [active] if isinstance(active, str) else list(active)
        self.others = [a for a in self.active if a != name] if self.was_enabled else []
        self.layers = [m for m in tuner_layers if isinstance(m, LoraLayer) and name in m.scaling]
        self.scalings = [m.scaling[name] for m in self.layers]

    def stage_1(self) -> None:
        if self.others:
            self.transformer.set_adapter(self.others)
            self.transformer.enable_adapters()
        else:
            self.transformer.disable_adapters()

    def stage_2(self) -> None:
        self.transformer.set_adapter([*self.others, self.name])
        if self.scale is not None:
            for layer in self.layers:
                layer.set_scale(self.name, self.scale)
        self.transformer.enable_adapters()

    def restore(self) -> None:
        for layer, scaling in zip(self.layers, self.scalings):
            layer.scaling[self.name] = scaling
        self.transformer.set_adapter(self.active)
        if self.was_enabled:
            self.transformer.enable_adapters()
        else:
            self.transformer.disable_adapters()


def _half_size(image: ImageInput, height: int, width: int) -> ImageInput:
    """A prepared float image tensor (full size, [-1, 1]) resized to the stage-1 size; other inputs pass unchanged
    (paths, PIL images and uint8 arrays are resized and cropped per stage, as the reference loads them per stage)."""
    if not (isinstance(image, Tensor) and image.is_floating_point()):
        return image
    pixels = image if image.ndim == 4 else image.unsqueeze(0)
    if pixels.ndim != 4 or tuple(pixels.shape[-2:]) != (height, width):
        raise ValueError(
            f"a float image tensor must be (3, H, W) or (1, 3, H, W) at the output size {height}x{width} (HxW), got "
            f"{tuple(image.shape)}: pass a PIL image or path to have it resized and cropped for you"
        )
    # antialiased bilinear, like the PIL resize the reference applies when it loads an image at the stage-1 size
    half = F.interpolate(pixels.float(), size=(height // 2, width // 2), mode="bilinear", antialias=True)
    return half.to(pixels.dtype) if image.ndim == 4 else half[0].to(pixels.dtype)


class LTX2AVTwoStagePipeline(LTX2AVPipeline):
    """Text/image -> video + stereo audio, generated at half size, upsampled x2 in latent space and refined.

    Components: those of `LTX2AVPipeline` plus `latent_upsampler` (`LTX2LatentUpsamplerModel`, the spatial x2 one).
    Build from a one-stage pipeline with `LTX2AVTwoStagePipeline(**pipe.components, latent_upsampler=upsampler)`.
    """

    model_cpu_offload_seq = "text_encoder->connectors->transformer->latent_upsampler->vae->audio_vae->vocoder"
    _optional_components = [*OPTIONAL_COMPONENTS, "latent_upsampler"]  # None is refused when called, with the fix

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
            scheduler, vae, audio_vae, text_encoder, tokenizer, connectors, transformer, vocoder, processor
        )
        self.register_modules(latent_upsampler=latent_upsampler)
        self._stage_1_contexts: TextContexts | None = None

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, *, kind: str | None = None, **kwargs
    ) -> "LTX2AVTwoStagePipeline":
        """`LTX2AVPipeline.from_pretrained` plus the `latent_upsampler/` folder, loaded into our
        `LTX2LatentUpsamplerModel` whether model_index.json names diffusers' class, ours, or none (diffusers' LTX-2
        repos hold the folder without listing it). Without the folder, pass `latent_upsampler=`."""
        from ..models.latent_upsampler import LTX2LatentUpsamplerModel

        folder = str(pretrained_model_name_or_path)
        if not os.path.isdir(folder):
            from huggingface_hub import snapshot_download

            names = (*COMPONENTS, *OPTIONAL_COMPONENTS, "latent_upsampler")
            folder = snapshot_download(
                folder,
                allow_patterns=["model_index.json", *(f"{name}/*" for name in names)],
                revision=kwargs.get("revision"),
                cache_dir=kwargs.get("cache_dir"),
                token=kwargs.get("token"),
            )
        with open(os.path.join(folder, "model_index.json")) as f:
            index = json.load(f)
        # diffusers-layout repos (e.g. Lightricks/LTX-2) keep the upsampler in `latent_upsampler/` without naming it
        # in model_index.json (diffusers loads it with a separate pipeline): load it from there too
        in_index = index.get("latent_upsampler", [None, None])[1] is not None
        in_folder = os.path.isfile(os.path.join(folder, "latent_upsampler", "config.json"))
        if "latent_upsampler" not in kwargs and (in_index or in_folder):
            dtype = kwargs.get("dtype", kwargs.get("torch_dtype"))  # LTX2AVPipeline.from_pretrained takes either name
            kwargs["latent_upsampler"] = LTX2LatentUpsamplerModel.from_pretrained(
                folder, subfolder="latent_upsampler", dtype=dtype
            )
        if "scheduler" not in kwargs:  # resolved here: the repo id, which may name the kind, is gone after download
            kwargs["scheduler"] = resolve_scheduler(folder, index, pretrained_model_name_or_path, kind)
        return super().from_pretrained(folder, **kwargs)

    @classmethod
    def from_single_file(
        cls,
        path: str | os.PathLike,
        *,
        latent_upsampler: str | os.PathLike | torch.nn.Module | None = None,
        torch_dtype: torch.dtype | None = None,
        **kwargs,
    ) -> "LTX2AVTwoStagePipeline":
        """`LTX2AVPipeline.from_single_file` (the Lightricks checkpoint; `text_encoder`, `tokenizer`, `processor`,
        `kind` as there) plus the upsampler: a model, or the path of its own single file
        (e.g. `ltx-2-spatial-upscaler-x2-1.0.safetensors`)."""
        from ..models.latent_upsampler import LTX2LatentUpsamplerModel

        pipe = super().from_single_file(path, torch_dtype=torch_dtype, **kwargs)
        if isinstance(latent_upsampler, str | os.PathLike):
            latent_upsampler = LTX2LatentUpsamplerModel.from_single_file(latent_upsampler, torch_dtype=torch_dtype)
        if latent_upsampler is not None:
            pipe.register_modules(latent_upsampler=latent_upsampler)
        return pipe

    def encode_prompts(
        self, prompts: list[str], negative_prompts: list[str] | None, device: torch.device, dtype: torch.dtype
    ) -> TextContexts:
        # Stage 1 (the one-stage __call__) encodes the prompts, after any prompt enhancement; stage 2 reuses its
        # positive contexts instead of running Gemma again, as the reference encodes once.
        contexts = super().encode_prompts(prompts, negative_prompts, device, dtype)
        self._stage_1_contexts = contexts
        return contexts

    def check_two_stage_inputs(self, height: int, width: int, num_frames: int, output_type: str, adapter: str | None):
        for name, value in (("height", height), ("width", width)):
            if value < TWO_STAGE_SIZE_MULTIPLE or value % TWO_STAGE_SIZE_MULTIPLE != 0:
                lower = max(TWO_STAGE_SIZE_MULTIPLE, value // TWO_STAGE_SIZE_MULTIPLE * TWO_STAGE_SIZE_MULTIPLE)
                raise ValueError(
                    f"{name}={value} is not a positive multiple of {TWO_STAGE_SIZE_MULTIPLE}: the two-stage pipeline "
                    f"generates at {name}/2 first, which the video VAE's 32x compression must divide. Use {lower} or "
                    f"{lower + TWO_STAGE_SIZE_MULTIPLE}."
                )
        check_video_size(height, width, num_frames)
        if output_type not in ("pil", "np", "pt", "latent"):
            raise ValueError(f"output_type must be one of 'pil', 'np', 'pt', 'latent', got {output_type!r}")
        upsampler = self.latent_upsampler
        if upsampler is None:
            raise ValueError(
                "this pipeline has no latent_upsampler, which stage 2 needs. Load the spatial x2 upsampler, e.g. "
                "LTX2LatentUpsamplerModel.from_single_file('ltx-2-spatial-upscaler-x2-1.0.safetensors'), and pass "
                "latent_upsampler= to the constructor or from_pretrained."
            )
        if upsampler.config.temporal_upsample or upsampler.spatial_scale != 2.0:
            raise ValueError(
                f"the latent_upsampler scales space by {upsampler.spatial_scale} and time by "
                f"{2 if upsampler.config.temporal_upsample else 1}; the two-stage pipeline needs the spatial x2 one "
                "(stage 1 runs at exactly half the output size)."
            )
        if adapter is not None:
            loaded = list(getattr(self.transformer, "peft_config", None) or {})
            if adapter not in loaded:
                raise ValueError(
                    f"stage_2_adapter={adapter!r} is not an adapter of the transformer (loaded: {loaded}). Load the "
                    "distilled LoRA first, e.g. load_lora_adapter(pipe.transformer, path, adapter_name=...)."
                )

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
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("video_latents",),
    ) -> LTX2PipelineOutput | tuple:
        """Generate `num_frames` frames of `height` x `width` video (multiples of 64) with a stereo soundtrack.

        Stage-1 arguments are `LTX2AVPipeline.__call__`'s (applied at height/2 x width/2; a float image tensor is
        given at the full size and resized for stage 1). Their defaults are `sampling_defaults`: with a distilled
        scheduler (`fixed_sigmas`) no guidance (a single pass, no negative prompt), as the reference's
        `DistilledPipeline`.
        stage_2_adapter: a peft adapter of the transformer (the distilled LoRA, `load_lora_adapter`) for stage 2
            only: stage 1 runs with the other active adapters (none -> adapters disabled), stage 2 with those plus this
            one, at `stage_2_adapter_scale` (None: the strength it was loaded with). Adapters, their enabled state
            and scales are restored after the call. None: both stages use the transformer as it is.
        stage_2_sigmas: the refinement schedule; its first value is also the re-noising level.
        callback_on_step_end: called after every step of both stages with a running step index (stage 1's steps,
            then stage 2's); the latents are at half size in stage 1.
        Returns `LTX2PipelineOutput(frames, audio, audio_sample_rate)` or `(frames, audio)`; with
        output_type="latent" the full-resolution video (B, 128, F', H/32, W/32) and audio (B, 8, T_a, 16) latents.
        """
        self.check_two_stage_inputs(height, width, num_frames, output_type, stage_2_adapter)
        names = list(callback_on_step_end_tensor_inputs)
        transformer = self.transformer
        adapters = (
            None if stage_2_adapter is None else StageAdapters(transformer, stage_2_adapter, stage_2_adapter_scale)
        )
        try:
            # 1. Stage 1: the one-stage pipeline at half size (prompts, conditions, noise, guided denoising)
            if adapters is not None:
                adapters.stage_1()
            self._stage_1_contexts = None
            video_latents, audio_latents = super().__call__(
                prompt,
                negative_prompt,
                image=None if image is None else _half_size(image, height, width),
                image_strength=image_strength,
                image_crf=image_crf,
                keyframes=[(_half_size(k, height, width), index, s) for k, index, s in keyframes],
                enhance_prompt=enhance_prompt,
                enhance_prompt_seed=enhance_prompt_seed,
                height=height // 2,
                width=width // 2,
                num_frames=num_frames,
                frame_rate=frame_rate,
                num_inference_steps=num_inference_steps,
                sigmas=sigmas,
                video_guidance=video_guidance,
                audio_guidance=audio_guidance,
                num_videos_per_prompt=num_videos_per_prompt,
                generator=generator,
                output_type="latent",
                return_dict=False,
                callback_on_step_end=callback_on_step_end,
                callback_on_step_end_tensor_inputs=names,
            )
            contexts = _repeat_contexts(self._stage_1_contexts, num_videos_per_prompt)
            self._stage_1_contexts = None

            # 2. Stage 2: upsample x2, re-noise, refine with one positive pass per step (the distilled adapter on)
            if adapters is not None:
                adapters.stage_2()
            conditions = self._encode_conditions(image, image_strength, keyframes, height, width, image_crf)
            offset = self.scheduler.num_inference_steps  # stage 1's steps: the callback's index runs on
            self.scheduler.set_timesteps(sigmas=stage_2_sigmas)
            callback = self._step_callback(callback_on_step_end, names, offset)
            video_latents, audio_latents = refine_latents(
                transformer,
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
                callback=callback,
            )
        finally:
            if adapters is not None:
                adapters.restore()

        # 3. Latents -> frames and waveform
        return self._decode_outputs(video_latents, audio_latents, output_type, generator, return_dict)
