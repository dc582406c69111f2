"""The temporal x2 latent upsampling stage (ltx-pipelines 1.2.0's `VideoUpsampler` with the temporal upscaler): a
clip's latent (B, C, F', H', W') becomes (B, C, 2F' - 1, H', W'), the latent of 2(N - 1) + 1 frames at twice the frame
rate. The upsampler works on raw VAE latents, so the normalised latent is un-normalised around it with the video
VAE's statistics, as for the spatial upsamplers (`models.latent_upsampler.upsample_latents`).
"""

import torch
from torch import Tensor

from ..models.latent_upsampler import upsample_latents


def check_temporal_upsampler(upsampler: torch.nn.Module | None, what: str = "temporal_upsampler") -> None:
    """An `LTX2LatentUpsamplerModel` that doubles frames and keeps the size (the released
    ltx-2.5-latent-temporal-upscaler-x2), else ValueError saying what to load."""
    if upsampler is None:
        raise ValueError(
            f"this call needs a {what} and the pipeline has none. Load the temporal x2 upsampler, e.g. "
            "LTX2LatentUpsamplerModel.from_single_file('ltx-2.5-latent-temporal-upscaler-x2-bf16-1.0.safetensors'), "
            f"and pass {what}= to the constructor."
        )
    config = getattr(upsampler, "config", None)
    if config is None or not config.temporal_upsample or config.spatial_upsample:
        scales = (
            "unknown" if config is None else f"temporal={config.temporal_upsample}, spatial={config.spatial_upsample}"
        )
        raise ValueError(
            f"the {what} must upsample in time only (temporal_upsample=True, spatial_upsample=False), got {scales}: "
            "pass the temporal x2 upsampler, not a spatial one."
        )


def upsample_in_time(upsampler: torch.nn.Module, latents: Tensor, latents_mean: Tensor, latents_std: Tensor) -> Tensor:
    """Normalised video latents (B, C, F', H', W') -> (B, C, 2F' - 1, H', W'), normalised, in the latents' dtype.

    latents_mean / latents_std: the video VAE's per-channel statistics (C,). The first latent frame holds one pixel
    frame, so F' latent frames of 8(F' - 1) + 1 pixel frames become 2F' - 1 of 16(F' - 1) + 1."""
    check_temporal_upsampler(upsampler)
    if latents.ndim != 5:
        raise ValueError(f"upsample_in_time takes video latents (B, C, F', H', W'), got shape {tuple(latents.shape)}")
    upsampler_dtype = next(upsampler.parameters()).dtype
    upsampled = upsample_latents(upsampler, latents.to(upsampler_dtype), latents_mean, latents_std)
    expected = (*latents.shape[:2], 2 * latents.shape[2] - 1, *latents.shape[3:])
    if tuple(upsampled.shape) != expected:
        raise ValueError(f"the temporal upsampler returned shape {tuple(upsampled.shape)}, expected {expected}")
    return upsampled.to(latents.dtype)
