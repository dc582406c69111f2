"""Latent upsamplers of LTX-2 / LTX-2.3 (spec §4): x2 or x1.5 in space, or x2 in time, between pipeline stages.

A convolutional network on un-normalised video latents: a 3x3(x3) conv to `mid_channels`, residual blocks, the
upsampling layer, residual blocks, a conv back to the latent channels. The upsampling layer is one of
- x2 in space: per frame, Conv2d to 4x the channels, then pixel shuffle (2, 2) (`upsampler.0`);
- rational s = p/q in space (x1.5 = 3/2, also 3/4, 2/1, 4/1): per frame, Conv2d to p^2x the channels, pixel shuffle
  (p, p), then a fixed 5x5 binomial blur with stride q (`upsampler.conv`, `upsampler.blur_down.kernel`);
- x2 in time: Conv3d to 2x the channels, shuffle in time, drop the first frame (F -> 2F - 1: latent frame 0 holds one
  pixel frame, every later one 8);
- x2 in space and time: Conv3d to 8x the channels, 3-D shuffle, drop the first frame.
Config keys and parameter names are those of diffusers' in-tree `LTX2LatentUpsamplerModel`; the upsampler files of
the original release use the same parameter names with no prefix.
"""

import math

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn

from ..hub import ModelCardMixin
from ..loaders.from_single_file import FromLTX2SingleFileMixin

# spatial scale -> (p, q): up by p with a pixel shuffle, down by q with the blur (the reference's supported scales)
RATIONAL_SCALES: dict[float, tuple[int, int]] = {0.75: (3, 4), 1.5: (3, 2), 2.0: (2, 1), 4.0: (4, 1)}
GROUP_NORM_GROUPS = 32


def pixel_shuffle(x: Tensor, factors: tuple[int, ...]) -> Tensor:
    """Move channel factors into the leading axes after the channels, as einops does it.

    (B, C * p1 * ... * pn, d1, ..., dn, *rest) -> (B, C, d1 * p1, ..., dn * pn, *rest); the channel index is
    c * (p1 * ... * pn) + (i1 * p2 + i2) * p3 + ... ("b (c p1 p2) h w -> b c (h p1) (w p2)" for n = 2).
    """
    n = len(factors)
    batch, _, *sizes = x.shape
    x = x.unflatten(1, (-1, *factors))  # (B, C, p1..pn, d1..dn, *rest)
    order = [0, 1]
    for axis in range(n):
        order += [2 + n + axis, 2 + axis]  # d_i then p_i
    order += list(range(2 + 2 * n, 2 + n + len(sizes)))
    upsampled = [size * factor for size, factor in zip(sizes[:n], factors)]
    return x.permute(order).reshape(batch, -1, *upsampled, *sizes[n:])


def binomial_kernel(size: int = 5) -> Tensor:
    """(1, 1, size, size) outer product of the binomial row (1, 4, 6, 4, 1 for size 5), normalised to sum 1."""
    row = torch.tensor([math.comb(size - 1, k) for k in range(size)], dtype=torch.float32)
    kernel = row[:, None] * row[None, :]
    return (kernel / kernel.sum())[None, None]


def per_frame(fn, x: Tensor) -> Tensor:
    """Apply a 2-D `fn` to every frame of (B, C, F, H, W)."""
    batch, _, frames = x.shape[:3]
    out = fn(x.transpose(1, 2).flatten(0, 1))  # (B * F, C, H, W)
    return out.unflatten(0, (batch, frames)).transpose(1, 2)


class BlurDownsample(nn.Module):
    """Anti-aliased downsampling of (N, C, H, W) by an integer stride: depthwise binomial blur, then stride."""

    def __init__(self, stride: int, kernel_size: int = 5):
        super().__init__()
        self.stride = stride
        # Persistent, as in the reference and diffusers: the released x1.5 file and diffusers folders carry it.
        self.register_buffer("kernel", binomial_kernel(kernel_size))

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1:  # the blur is only there to anti-alias a stride; without one the reference skips it
            return x
        channels, size = x.shape[1], self.kernel.shape[-1]
        weight = self.kernel.to(x.dtype).expand(channels, 1, size, size)
        return F.conv2d(x, weight, stride=self.stride, padding=size // 2, groups=channels)


class SpatialRationalResampler(nn.Module):
    """Spatial scale p/q on (N, C, H, W): Conv2d to p^2 C channels, pixel shuffle (p, p), blur with stride q."""

    def __init__(self, mid_channels: int, scale: float):
        super().__init__()
        self.num, self.den = RATIONAL_SCALES[float(scale)]
        self.conv = nn.Conv2d(mid_channels, self.num**2 * mid_channels, kernel_size=3, padding=1)
        self.blur_down = BlurDownsample(stride=self.den)

    def forward(self, x: Tensor) -> Tensor:
        return self.blur_down(pixel_shuffle(self.conv(x), (self.num, self.num)))


class LTX2UpsamplerResBlock(nn.Module):
    """x -> SiLU(x + GN(conv(SiLU(GN(conv(x)))))), with 32-group GroupNorms."""

    def __init__(self, channels: int, dims: int):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        self.conv1 = conv(channels, channels, kernel_size=3, padding=1)
        self.norm1 = nn.GroupNorm(GROUP_NORM_GROUPS, channels)
        self.conv2 = conv(channels, channels, kernel_size=3, padding=1)
        self.norm2 = nn.GroupNorm(GROUP_NORM_GROUPS, channels)

    def forward(self, x: Tensor) -> Tensor:
        h = F.silu(self.norm1(self.conv1(x)))
        return F.silu(x + self.norm2(self.conv2(h)))


class LTX2LatentUpsamplerModel(FromLTX2SingleFileMixin, ModelCardMixin, ModelMixin, ConfigMixin):
    """Upsamples video latents between stages (x2/x1.5 in space or x2 in time). Config = diffusers' class's.

    Args:
        in_channels: latent channels (128).
        mid_channels: width of the network (1024 for the released spatial upsamplers, 512 for the temporal one).
        num_blocks_per_stage: residual blocks before and after the upsampling layer (4).
        dims: 3 = Conv3d everywhere except the per-frame spatial upsampling layer (released models); 2 = every layer
            runs per frame.
        spatial_upsample, temporal_upsample: what to upsample; both True is the joint x2 x2 x2 variant.
        rational_spatial_scale: spatial scale of the rational resampler, one of 0.75, 1.5, 2.0, 4.0.
        use_rational_resampler: spatial upsampling through the rational resampler (`upsampler.conv`, the blur
            kernel) rather than the plain x2 pixel shuffle (`upsampler.0`). Only read when only `spatial_upsample`
            is set, as in the reference.
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 128,
        mid_channels: int = 1024,
        num_blocks_per_stage: int = 4,
        dims: int = 3,
        spatial_upsample: bool = True,
        temporal_upsample: bool = False,
        rational_spatial_scale: float = 2.0,
        use_rational_resampler: bool = True,
    ):
        super().__init__()
        if not (spatial_upsample or temporal_upsample):
            raise ValueError(
                "spatial_upsample and temporal_upsample are both False, so the model would do nothing; the "
                "checkpoint's config.json should set one of them."
            )
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 (per-frame convolutions) or 3 (Conv3d), got {dims}")
        if temporal_upsample and dims != 3:
            raise ValueError("temporal_upsample needs dims=3: a per-frame (dims=2) network cannot mix frames.")
        if mid_channels % GROUP_NORM_GROUPS != 0:
            raise ValueError(
                f"mid_channels={mid_channels} must be a multiple of the {GROUP_NORM_GROUPS} GroupNorm groups"
            )
        rational = spatial_upsample and not temporal_upsample and use_rational_resampler
        if rational and float(rational_spatial_scale) not in RATIONAL_SCALES:
            raise ValueError(
                f"rational_spatial_scale={rational_spatial_scale} is not supported; use one of "
                f"{sorted(RATIONAL_SCALES)}."
            )
        if spatial_upsample and not temporal_upsample and not use_rational_resampler and rational_spatial_scale != 2:
            raise ValueError(
                f"rational_spatial_scale={rational_spatial_scale} needs use_rational_resampler=True; the plain pixel "
                f"shuffle upsampler always scales by 2."
            )

        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        self.initial_conv = conv(in_channels, mid_channels, kernel_size=3, padding=1)
        self.initial_norm = nn.GroupNorm(GROUP_NORM_GROUPS, mid_channels)
        self.res_blocks = nn.ModuleList(LTX2UpsamplerResBlock(mid_channels, dims) for _ in range(num_blocks_per_stage))
        if temporal_upsample:  # x2 in time, and x2 in space too when spatial_upsample is set
            self.shuffle_factors = (2, 2, 2) if spatial_upsample else (2,)
            out_channels = math.prod(self.shuffle_factors) * mid_channels
            self.upsampler = nn.ModuleList([nn.Conv3d(mid_channels, out_channels, kernel_size=3, padding=1)])
        elif rational:
            self.upsampler = SpatialRationalResampler(mid_channels, rational_spatial_scale)
        else:
            self.shuffle_factors = (2, 2)
            self.upsampler = nn.ModuleList([nn.Conv2d(mid_channels, 4 * mid_channels, kernel_size=3, padding=1)])
        self.post_upsample_res_blocks = nn.ModuleList(
            LTX2UpsamplerResBlock(mid_channels, dims) for _ in range(num_blocks_per_stage)
        )
        self.final_conv = conv(mid_channels, in_channels, kernel_size=3, padding=1)

    @property
    def spatial_scale(self) -> float:
        """Factor applied to height and width (1.0 for the temporal-only upsampler)."""
        num, den = self.spatial_ratio
        return num / den

    @property
    def spatial_ratio(self) -> tuple[int, int]:
        """The spatial scale as (p, q) = scale p/q: (2, 1) for x2, (3, 2) for x1.5, (1, 1) for the temporal-only one."""
        if not self.config.spatial_upsample:
            return 1, 1
        if isinstance(self.upsampler, SpatialRationalResampler):
            return self.upsampler.num, self.upsampler.den
        return 2, 1

    def _upsample(self, x: Tensor) -> Tensor:
        if isinstance(self.upsampler, SpatialRationalResampler):
            return self.upsampler(x) if x.ndim == 4 else per_frame(self.upsampler, x)
        if self.config.temporal_upsample:
            # The first latent frame holds a single pixel frame, so its first upsampled copy has no pixel frame.
            return pixel_shuffle(self.upsampler[0](x), self.shuffle_factors)[:, :, 1:]

        def spatial(frames: Tensor) -> Tensor:
            return pixel_shuffle(self.upsampler[0](frames), self.shuffle_factors)

        return spatial(x) if x.ndim == 4 else per_frame(spatial, x)

    def _network(self, x: Tensor) -> Tensor:
        x = F.silu(self.initial_norm(self.initial_conv(x)))
        for block in self.res_blocks:
            x = block(x)
        x = self._upsample(x)
        for block in self.post_upsample_res_blocks:
            x = block(x)
        return self.final_conv(x)

    def forward(self, hidden_states: Tensor) -> Tensor:
        """(B, C, F, H, W) un-normalised latents -> (B, C, F, s*H, s*W) at spatial scale s, (B, C, 2F-1, H, W) in time.

        Un-normalise with the video VAE's statistics first and normalise the result again (`upsample_latents`).
        """
        if hidden_states.ndim != 5 or hidden_states.shape[1] != self.config.in_channels:
            raise ValueError(
                f"Expected video latents (B, {self.config.in_channels}, F, H, W), got shape "
                f"{tuple(hidden_states.shape)}."
            )
        if self.config.dims == 2:
            return per_frame(self._network, hidden_states)
        return self._network(hidden_states)


def upsample_latents(
    upsampler: LTX2LatentUpsamplerModel, latents: Tensor, latents_mean: Tensor, latents_std: Tensor
) -> Tensor:
    """Normalised video latents (B, C, F, H, W) -> upsampled normalised latents, as the reference's `upsample_video`.

    The upsampler works on raw VAE latents: x * std + mean before, (x - mean) / std after, with the video VAE's
    per-channel `latents_mean`/`latents_std` (C,). The latents are cast to the upsampler's dtype first; the result
    is in that dtype.
    """
    latents = latents.to(next(upsampler.parameters()).dtype)
    mean = latents_mean.view(1, -1, 1, 1, 1).to(latents)
    std = latents_std.view(1, -1, 1, 1, 1).to(latents)
    upsampled = upsampler(latents * std + mean)
    return (upsampled - mean) / std


def stage_1_size(height: int, width: int, spatial_ratio: tuple[int, int] = (2, 1)) -> tuple[int, int]:
    """The pixel size stage 1 of a two-stage run generates at, for a spatial upsampler of scale p/q: (q/p) x the
    output size, e.g. half of it for x2, two thirds for x1.5.

    Each output side must be a multiple of 32 p (64 for x2, 96 for x1.5): its latent side p k then comes from a stage-1
    latent side q k, which the upsampler maps to exactly p k (the rational resampler gives ceil(p n / q) for n
    latent pixels, exact only for n a multiple of q). Raises ValueError naming the nearest valid sizes otherwise.
    """
    num, den = spatial_ratio
    if num <= den:
        raise ValueError(f"a two-stage run needs an upsampler that enlarges (scale > 1), got {num}/{den}")
    multiple = 32 * num
    for name, size in (("height", height), ("width", width)):
        if size % multiple != 0:
            lower = max(multiple, size // multiple * multiple)
            raise ValueError(
                f"{name}={size} is not a multiple of {multiple}: with a x{num / den:g} latent upsampler stage 1 runs "
                f"at {den}/{num} of the output size, whose latent must upsample to exactly the output's (32 pixels "
                f"per latent pixel). Use {lower} or {lower + multiple}."
            )
    return height * den // num, width * den // num
