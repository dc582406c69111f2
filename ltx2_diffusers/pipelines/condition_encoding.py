"""Condition encoding, a stage of every LTX-2 pipeline: images, keyframes and reference videos -> normalised latents.

Pixels come from `inputs.image_to_pixels` / `video_to_pixels` (the reference's preparation); a float tensor in
[-1, 1] is taken as already prepared. The video VAE's posterior mean is normalised with its per-channel statistics,
as ltx-core's encoder returns it.
"""

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import Tensor

from ..models.autoencoder_kl_ltx2 import normalize_latents
from .conditioning import attention_strength_from_mask
from .denoising import ReferenceCondition, VideoCondition
from .inputs import ImageInput, VideoInput, image_to_pixels, video_to_pixels
from .presets import DEFAULT_IMAGE_CRF
from .validation import check_frame_count

Keyframes = Sequence[tuple[ImageInput, int, float]]  # (image, pixel frame index, strength)


@torch.no_grad()
def encode_pixels(vae: torch.nn.Module, pixels: Tensor) -> Tensor:
    """(1, 3, F, H, W) pixels in [-1, 1] -> normalised latent (1, 128, F', H/32, W/32): the posterior mean."""
    latent = vae.encode(pixels.to(vae.dtype)).latent_dist.mode()
    return normalize_latents(latent, vae.latents_mean, vae.latents_std)


def encode_image(
    vae: torch.nn.Module,
    image: ImageInput,
    height: int,
    width: int,
    device: torch.device,
    crf: int = DEFAULT_IMAGE_CRF,
    name: str = "image",
) -> Tensor:
    """An image -> normalised video latent (1, 128, 1, H/32, W/32), as the transformer sees latents (`name`: the
    argument's name in errors)."""
    return encode_pixels(vae, image_to_pixels(image, height, width, crf, name=name).to(device))


def encode_conditions(
    vae: torch.nn.Module,
    image: ImageInput | None,
    image_strength: float,
    keyframes: Keyframes,
    height: int,
    width: int,
    crf: int,
    device: torch.device,
) -> list[VideoCondition]:
    """The image at frame 0 and the (image, frame, strength) keyframes, encoded at height x width."""
    conditions = []
    if image is not None:
        conditions.append(VideoCondition(encode_image(vae, image, height, width, device, crf), 0, image_strength))
    for i, (key_image, frame_index, strength) in enumerate(keyframes):
        latent = encode_image(vae, key_image, height, width, device, crf, name=f"keyframes[{i}] image")
        conditions.append(VideoCondition(latent, frame_index, strength))
    return conditions


def encode_keyframes(
    vae: torch.nn.Module, keyframes: Keyframes, height: int, width: int, crf: int, device: torch.device
) -> list[VideoCondition]:
    """The (image, frame, strength) keyframes of keyframe interpolation, encoded at height x width, EVERY one, frame 0
    included, to be appended as guiding tokens at its pixel frame (`VideoCondition.append`), as the reference's
    `KeyframeInterpolationPipeline` conditions each stage (spec §7.2); `encode_conditions` replaces frame 0 instead."""
    return [replace(c, append=True) for c in encode_conditions(vae, None, 1.0, keyframes, height, width, crf, device)]


def encode_reference_video(
    vae: torch.nn.Module,
    video: VideoInput,
    height: int,
    width: int,
    max_frames: int,
    device: torch.device,
    name: str = "reference video",
) -> Tensor:
    """An IC-LoRA reference video -> normalised latent (1, 128, f, height/32, width/32): at most `max_frames` frames
    from the start, each cover-resized and centre-cropped to height x width (no H.264 round trip), as the reference's
    `load_video_conditioning` (`inputs.video_to_pixels`). A float tensor (1, 3, F, height, width) in [-1, 1] is taken
    as prepared."""
    pixels = video_to_pixels(video, height, width, name=name, max_frames=max_frames)
    check_frame_count(pixels.shape[2], f"{name}'s frame count (at most {max_frames} frames are used)")
    return encode_pixels(vae, pixels.to(device))


def check_reference_size(height: int, width: int, factor: int, stage: str = "stage-1") -> None:
    """Reference videos are encoded at the stage's size / `factor`, which must be a multiple of 32 (the video VAE's
    compression): the pipelines call this with their stage sizes before any model runs."""
    if height % factor or width % factor or (height // factor) % 32 or (width // factor) % 32:
        raise ValueError(
            f"the {stage} size {height}x{width} divided by reference_downscale_factor={factor} must be a multiple "
            f"of 32 (the video VAE's compression), got {height / factor:g}x{width / factor:g}: pick an output size "
            f"whose {stage} size is a multiple of {32 * factor}"
        )


def encode_references(
    vae: torch.nn.Module,
    reference_videos: Sequence[tuple[VideoInput, float]],
    height: int,
    width: int,
    num_frames: int,
    factor: int,
    attention_strength: float,
    attention_mask: Tensor | None,
    device: torch.device,
) -> list[ReferenceCondition]:
    """(video, strength) reference videos encoded at (height/factor, width/factor): the generated size over the
    IC-LoRA's `reference_downscale_factor`, with their attention strength (a scalar, or a mask video reduced to the
    reference's latent grid and multiplied by it)."""
    check_reference_size(height, width, factor)
    ref_height, ref_width = height // factor, width // factor
    conditions = []
    for i, (video, strength) in enumerate(reference_videos):
        name = f"reference_videos[{i}]"
        latent = encode_reference_video(vae, video, ref_height, ref_width, num_frames, device, name)
        if attention_mask is not None:
            weights = attention_strength_from_mask(attention_mask, tuple(latent.shape[2:])) * attention_strength
        else:
            weights = attention_strength if attention_strength < 1.0 else None
        conditions.append(ReferenceCondition(latent, strength, factor, weights))
    return conditions
