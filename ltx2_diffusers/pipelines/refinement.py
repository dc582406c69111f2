"""The refinement stage of the two-stage pipelines (spec §4, §9): latent upsampling (x2, or the rational x1.5),
re-noising and a short denoise at full size; the checks and stage-1 size two-stage calls share; and the LoRA adapter
switch between stages.
"""

from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
from torch import Tensor

from ..models.autoencoder_kl_ltx2_audio import unpack_audio_latents
from ..models.latent_upsampler import stage_1_size, upsample_latents
from ..schedulers.scheduling_ltx2 import Sampler, euler_sample
from .condition_encoding import Keyframes, encode_conditions
from .conditioning import Generators, LatentState, unpatchify_video
from .denoising import StepCallback, TextContexts, VideoCondition, denoise, prepare_latents
from .guidance import GuidanceScales
from .inputs import ImageInput, half_size_image
from .presets import DEFAULT_REFERENCE


def check_upsampler(upsampler: torch.nn.Module | None) -> None:
    if upsampler is None:
        raise ValueError(
            "this pipeline has no latent_upsampler, which stage 2 needs. Load a spatial upsampler (x2, or LTX-2.3's "
            "x1.5), e.g. LTX2LatentUpsamplerModel.from_single_file('ltx-2-spatial-upscaler-x2-1.0.safetensors'), and "
            "pass latent_upsampler= to the constructor or from_pretrained."
        )
    if upsampler.config.temporal_upsample or upsampler.spatial_scale <= 1.0:
        raise ValueError(
            f"the latent_upsampler scales space by {upsampler.spatial_scale} and time by "
            f"{2 if upsampler.config.temporal_upsample else 1}; the two-stage pipelines need a spatial one that "
            "enlarges (x2, or the rational x1.5): stage 1 runs at 1/scale of the output size."
        )


def two_stage_size_multiple(upsampler: torch.nn.Module | None, height: object, width: object) -> int:
    """The upsampler checked (`check_upsampler`), and the multiple of 32 p that the output sides need for its scale
    p/q (64 for x2, 96 for x1.5), for `check_call_inputs(size_multiple=...)`. For scales other than x2 an output size
    that does not divide is refused here first, with `stage_1_size`'s error naming the upsampler and the nearest
    valid sizes (x2's sizes keep `check_call_inputs`' wording)."""
    check_upsampler(upsampler)
    ratio = upsampler.spatial_ratio
    sizes_given = all(isinstance(size, int) and not isinstance(size, bool) and size > 0 for size in (height, width))
    if ratio != (2, 1) and sizes_given:
        stage_1_size(height, width, ratio)
    return 32 * ratio[0]


def stage_1_pixel_size(upsampler: torch.nn.Module, height: int, width: int) -> tuple[int, int]:
    """The (height, width) stage 1 generates at: 1/scale of the output, whose latent the upsampler maps to exactly
    the output's (half for x2, two thirds for x1.5; `stage_1_size`)."""
    return stage_1_size(height, width, upsampler.spatial_ratio)


def encode_stage_1_conditions(
    vae: torch.nn.Module,
    image: ImageInput | None,
    image_strength: float,
    keyframes: Keyframes,
    height: int,
    width: int,
    stage_1_size: tuple[int, int],
    crf: int,
    device: torch.device,
) -> list[VideoCondition]:
    """The image (frame 0) and keyframes encoded at `stage_1_size` (`stage_1_pixel_size`) for a call whose output
    is height x width: a prepared float tensor, given at the output size, is resized first (`half_size_image`);
    paths, PIL images and arrays are prepared at the stage-1 size directly (`encode_conditions`)."""
    stage_1_image = None if image is None else half_size_image(image, height, width, size=stage_1_size)
    stage_1_keyframes = half_size_keyframes(keyframes, height, width, stage_1_size)
    return encode_conditions(vae, stage_1_image, image_strength, stage_1_keyframes, *stage_1_size, crf, device)


def half_size_keyframes(keyframes: Keyframes, height: int, width: int, stage_1_size: tuple[int, int]) -> Keyframes:
    """(image, frame, strength) keyframes of a height x width call with their images for stage 1
    (`half_size_image`: prepared float tensors resized to `stage_1_size`, other inputs passed on)."""
    return [
        (half_size_image(k, height, width, name=f"keyframes[{i}] image", size=stage_1_size), index, strength)
        for i, (k, index, strength) in enumerate(keyframes)
    ]


def check_adapter(transformer: torch.nn.Module, name: str | None, argument: str) -> None:
    if name is None:
        return
    loaded = list(getattr(transformer, "peft_config", None) or {})
    if name not in loaded:
        raise ValueError(
            f"{argument}={name!r} is not an adapter of the transformer (loaded: {loaded}). Load the distilled LoRA "
            "first, e.g. load_lora_adapter(pipe.transformer, path, adapter_name=...)."
        )


def check_refinement_latents(video_latents: Tensor, audio_latents: Tensor) -> None:
    """A refinement stage's inputs: video latents (B, C, F', H', W') and audio latents (B, C, T, mel)."""
    if video_latents.ndim != 5 or audio_latents.ndim != 4:
        raise ValueError(
            f"a refinement stage takes video latents (B, C, F', H', W') and audio latents (B, C, T, mel), got shapes "
            f"{tuple(video_latents.shape)} and {tuple(audio_latents.shape)}"
        )


def upsample_and_renoise(
    latent_upsampler: torch.nn.Module,
    video_latents: Tensor,
    audio_latents: Tensor,
    *,
    latents_mean: Tensor,
    latents_std: Tensor,
    frame_rate: float,
    noise_scale: float,
    generator: Generators,
    dtype: torch.dtype,
    conditions: Sequence[VideoCondition] = (),
    freeze_audio: bool = False,
    reference: str = DEFAULT_REFERENCE,
) -> tuple[LatentState, LatentState, tuple[int, int, int]]:
    """The start of every refinement stage: the video latents upsampled in space by the upsampler's scale s (x2 or
    x1.5), then video and audio states re-noised to `noise_scale` (video noise drawn before audio noise) with the
    full-size `conditions` (`freeze_audio`: the audio stays clean, see `prepare_latents`). Returns the video and audio
    states and the upsampled latent grid (F', s H', s W')."""
    check_refinement_latents(video_latents, audio_latents)
    upsampled = upsample_latents(latent_upsampler, video_latents, latents_mean, latents_std)
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
        initial_audio_latent=audio_latents.expand(batch_size, -1, -1, -1),
        freeze_audio=freeze_audio,
        reference=reference,
    )
    return video, audio, (latent_frames, latent_height, latent_width)


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
    sigmas: Tensor | Sequence[float],
    generator: Generators,
    conditions: Sequence[VideoCondition] = (),
    sampler: Sampler = euler_sample,
    freeze_audio: bool = False,
    progress_bar: Callable | None = None,
    callback: StepCallback | None = None,
    reference: str = DEFAULT_REFERENCE,
) -> tuple[Tensor, Tensor]:
    """Stage 2 of the two-stage pipelines: upsample the video latent in space (x2, or x1.5) and refine video and audio.

    video_latents: (B, C, F', H', W') normalised stage-1 video latents; audio_latents: (B, C_a, T_a, mel) normalised.
    latents_mean / latents_std: the video VAE's per-channel statistics (C,), which the upsampler works around.
    sigmas: (N + 1,) refinement schedule (`STAGE_2_DISTILLED_SIGMAS`); both latents are re-noised to sigmas[0]
    (x = n * sigmas[0] + x0 * (1 - sigmas[0]), video noise drawn before audio noise), then `sampler` (Euler; res_2s in
    the HQ pipeline) over one positive transformer pass per prediction (ltx-pipelines' `simple_denoising_func`; the
    negative contexts are not used). conditions: image / keyframe latents encoded at the FULL size.
    freeze_audio: the audio latents pass through unchanged (audio-to-video).
    reference: "1.2" or "1.0", the ltx-core release to follow (`denoising` module docstring).
    Returns video (B, C, F', s H', s W') (s the upsampler's scale) and audio (B, C_a, T_a, mel) latents, normalised,
    in the transformer's dtype.
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
        freeze_audio=freeze_audio,
        reference=reference,
    )
    positive = TextContexts(contexts.video, contexts.audio)
    neutral = GuidanceScales()  # cfg 1, no STG, no modality guidance: the plan runs the positive pass only
    video, audio = denoise(
        transformer,
        video,
        audio,
        positive,
        sigmas,
        neutral,
        neutral,
        sampler=sampler,
        progress_bar=progress_bar,
        callback=callback,
        reference=reference,
    )
    audio_channels = audio_latents.shape[1]
    return unpatchify_video(video.output_tokens(), *grid), unpack_audio_latents(audio.output_tokens(), audio_channels)


class StageAdapters:
    """The transformer's peft adapters per stage, and back to how they were afterwards: a context manager.

    `active` holds the adapters active when the call began (empty when adapters were disabled or none are loaded).
    `use(names, scales)` activates exactly `names` (none: adapters disabled) with optional LoRA scales per adapter.
    On exit every adapter's scale, the active set and the enabled state are restored.
    Two-stage: stage 1 `use(others)`, stage 2 `use(others + [distilled], {distilled: scale})`; HQ: the distilled
    adapter in both, at 0.25 and 0.5; IC-LoRA: stage 1 as is, stage 2 `use([])`.
    A transformer whose adapters were all deleted (`delete_adapters`) keeps peft's layers but has no `peft_config`:
    its layers compute the base model, so it counts as one without adapters.
    """

    def __init__(self, transformer: torch.nn.Module):
        from peft.tuners.lora import LoraLayer
        from peft.tuners.tuners_utils import BaseTunerLayer

        self.transformer = transformer
        self.available = list(getattr(transformer, "peft_config", None) or {})  # the adapters loaded now
        tuner_layers = [m for m in transformer.modules() if isinstance(m, BaseTunerLayer)] if self.available else []
        self.was_enabled = any(not m.disable_adapters for m in tuner_layers)
        active = transformer.active_adapters() if tuner_layers else []
        self.loaded = [active] if isinstance(active, str) else list(active)
        self.active = self.loaded if self.was_enabled else []
        self.lora_layers = [m for m in tuner_layers if isinstance(m, LoraLayer)]
        self.scalings = [dict(m.scaling) for m in self.lora_layers]

    def others(self, name: str | None) -> list[str]:
        """The adapters active at call time except `name`."""
        return [a for a in self.active if a != name]

    def use(self, names: Iterable[str], scales: Mapping[str, float | None] | None = None) -> None:
        names = list(names)
        unknown = [name for name in names if name not in self.available]
        if unknown:
            raise ValueError(
                f"adapters {unknown} are not loaded in the transformer (loaded: {self.available}); load them first, "
                "e.g. load_lora_adapter(pipe.transformer, path, adapter_name=...)"
            )
        if not names:
            if self.lora_layers or self.was_enabled:
                self.transformer.disable_adapters()
            return
        self.transformer.set_adapter(names)
        for name, scale in (scales or {}).items():
            if scale is not None:
                for layer in self.lora_layers:
                    if name in layer.scaling:
                        layer.set_scale(name, scale)
        self.transformer.enable_adapters()

    def __enter__(self) -> "StageAdapters":
        return self

    def __exit__(self, *exc) -> None:
        for layer, scalings in zip(self.lora_layers, self.scalings):
            layer.scaling.update(scalings)
        if not self.lora_layers and not self.was_enabled:
            return
        if self.loaded:
            self.transformer.set_adapter(self.loaded)
        if self.was_enabled:
            self.transformer.enable_adapters()
        else:
            self.transformer.disable_adapters()
