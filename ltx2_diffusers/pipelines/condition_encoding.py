"""Condition encoding, a stage of every LTX-2 pipeline: images, keyframes and reference videos -> normalised latents.

Pixels come from `conditioning.prepare_image` / `prepare_video` (the reference's preparation); a float tensor in
[-1, 1] is taken as already prepared. The video VAE's posterior mean is normalised with its per-channel statistics,
as ltx-core's encoder returns it.
"""

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from torch import Tensor

from ..models.autoencoder_kl_ltx2 import normalize_latents
from ..utils.media import load_video
from .conditioning import DEFAULT_IMAGE_CRF, attention_strength_from_mask, prepare_image, prepare_video
from .denoising import ReferenceCondition, VideoCondition, check_num_frames

ImageInput = PIL.Image.Image | np.ndarray | Tensor | str | Path
VideoInput = str | Path | np.ndarray | Tensor  # a file, or (F, H, W, 3) uint8 frames
Keyframes = Sequence[tuple[ImageInput, int, float]]  # (image, pixel frame index, strength)

__all__ = ["DEFAULT_IMAGE_CRF", "ImageInput", "Keyframes", "VideoInput"]


def check_strengths(strengths: Sequence[float]) -> None:
    for strength in strengths:
        if not 0.0 <= strength <= 1.0:
            raise ValueError(
                f"conditioning strength {strength} is outside [0, 1] (1 keeps the image, 0 ignores it); a "
                "negative strength would push the frame away from the image"
            )


def image_to_pixels(image: ImageInput, height: int, width: int, crf: int) -> Tensor:
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


def image_for_enhancement(image: ImageInput) -> ImageInput:
    """The conditioning image as prompt enhancement takes it: a float tensor in [-1, 1] ((3, H, W) or (1, 3, H, W),
    the pipeline's prepared form) becomes (H, W, 3) uint8; paths, PIL images and uint8 arrays pass unchanged."""
    if isinstance(image, Tensor) and image.is_floating_point():
        pixels = image[0] if image.ndim == 4 else image
        return ((pixels.float().cpu() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0)
    return image


def half_size(image: ImageInput, height: int, width: int) -> ImageInput:
    """For a two-stage pipeline's stage 1: a prepared float image tensor (full size, [-1, 1]) resized to half size;
    other inputs pass unchanged (paths, PIL images and uint8 arrays are resized and cropped per stage, as the
    reference loads them per stage)."""
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


@torch.no_grad()
def encode_pixels(vae: torch.nn.Module, pixels: Tensor) -> Tensor:
    """(1, 3, F, H, W) pixels in [-1, 1] -> normalised latent (1, 128, F', H/32, W/32): the posterior mean."""
    latent = vae.encode(pixels.to(vae.dtype)).latent_dist.mode()
    return normalize_latents(latent, vae.latents_mean, vae.latents_std)


def encode_image(
    vae: torch.nn.Module, image: ImageInput, height: int, width: int, device: torch.device, crf: int = DEFAULT_IMAGE_CRF
) -> Tensor:
    """An image -> normalised video latent (1, 128, 1, H/32, W/32), as the transformer sees latents."""
    return encode_pixels(vae, image_to_pixels(image, height, width, crf).to(device))


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
    for key_image, frame_index, strength in keyframes:
        conditions.append(
            VideoCondition(encode_image(vae, key_image, height, width, device, crf), frame_index, strength)
        )
    return conditions


def encode_keyframes(
    vae: torch.nn.Module, keyframes: Keyframes, height: int, width: int, crf: int, device: torch.device
) -> list[VideoCondition]:
    """The (image, frame, strength) keyframes of keyframe interpolation, encoded at height x width, EVERY one, frame 0
    included, to be appended as guiding tokens at its pixel frame (`VideoCondition.append`), as the reference's
    `KeyframeInterpolationPipeline` conditions each stage (spec §7.2); `encode_conditions` replaces frame 0 instead."""
    return [replace(c, append=True) for c in encode_conditions(vae, None, 1.0, keyframes, height, width, crf, device)]


def encode_reference_video(
    vae: torch.nn.Module, video: VideoInput, height: int, width: int, max_frames: int, device: torch.device
) -> Tensor:
    """An IC-LoRA reference video -> normalised latent (1, 128, f, height/32, width/32): at most `max_frames` frames
    from the start, each cover-resized and centre-cropped to height x width (no H.264 round trip), as the reference's
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
    check_num_frames(num_frames, f"the reference video has {num_frames} frames (after capping at {max_frames}), which")
    return encode_pixels(vae, pixels.to(device))


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
    ref_height, ref_width = height // factor, width // factor
    if height % factor or width % factor or ref_height % 32 or ref_width % 32:
        raise ValueError(
            f"the stage-1 size {height}x{width} divided by reference_downscale_factor={factor} must be a multiple "
            f"of 32 (the video VAE's compression), got {height / factor:g}x{width / factor:g}: pick a size whose "
            f"half is a multiple of {32 * factor}"
        )
    conditions = []
    for video, strength in reference_videos:
        latent = encode_reference_video(vae, video, ref_height, ref_width, num_frames, device)
        if attention_mask is not None:
            weights = attention_strength_from_mask(attention_mask, tuple(latent.shape[2:])) * attention_strength
        else:
            weights = attention_strength if attention_strength < 1.0 else None
        conditions.append(ReferenceCondition(latent, strength, factor, weights))
    return conditions
