"""Layers of the LTX-2 video VAE (spec §2.2-§2.4), with diffusers' parameter names.

Numerics follow ltx-core 1.0.0; module and parameter names follow diffusers 0.42's `autoencoder_kl_ltx2.py`, so a
diffusers-layout state dict loads strictly. Every causal conv wraps an inner `nn.Conv3d` named `conv`, hence the doubled
`.conv.conv.` in checkpoint keys.
"""

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import PixArtAlphaCombinedTimestepSizeEmbeddings
from torch import Tensor, nn

UPSAMPLE_STRIDES = {"spatial": (1, 2, 2), "temporal": (2, 1, 1), "spatiotemporal": (2, 2, 2)}
DOWNSAMPLE_STRIDES = {"spatial": (1, 2, 2), "temporal": (2, 1, 1), "spatiotemporal": (2, 2, 2), "conv": (2, 2, 2)}


def pixel_norm_scale(x: Tensor, eps: float = 1e-8) -> Tensor:
    """1 / sqrt(mean_c(x^2) + eps) over the channel axis (dim 1), shape (B, 1, F, H, W), in x's dtype.

    The sum of squares is accumulated in float32 in one read of x (no x^2 tensor). eps 1e-8 as in the video VAE
    (spec §13.9).
    """
    sum_sq = torch.linalg.vector_norm(x, dim=1, keepdim=True, dtype=torch.float32).square()
    return torch.rsqrt(sum_sq / x.shape[1] + eps).to(x.dtype)


def pixel_norm(x: Tensor, eps: float = 1e-8) -> Tensor:
    """x / sqrt(mean_c(x^2) + eps) over the channel axis: ltx-core's PixelNorm."""
    return x * pixel_norm_scale(x, eps)


def space_to_depth(x: Tensor, stride: tuple[int, int, int]) -> Tensor:
    """(B, C, F*p1, H*p2, W*p3) -> (B, C*p1*p2*p3, F, H, W), channel order (c, p1, p2, p3)."""
    p1, p2, p3 = stride
    b, c, f, h, w = x.shape
    x = x.reshape(b, c, f // p1, p1, h // p2, p2, w // p3, p3)
    return x.permute(0, 1, 3, 5, 7, 2, 4, 6).reshape(b, c * p1 * p2 * p3, f // p1, h // p2, w // p3)


def depth_to_space(x: Tensor, stride: tuple[int, int, int]) -> Tensor:
    """(B, C*p1*p2*p3, F, H, W) -> (B, C, F*p1, H*p2, W*p3), the inverse of `space_to_depth`."""
    p1, p2, p3 = stride
    b, c, f, h, w = x.shape
    x = x.reshape(b, c // (p1 * p2 * p3), p1, p2, p3, f, h, w)
    return x.permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(b, c // (p1 * p2 * p3), f * p1, h * p2, w * p3)


def patchify(video: Tensor, patch_size: int) -> Tensor:
    """(B, C, F, H*p, W*p) -> (B, C*p*p, F, H, W), channel order (c, w-offset, h-offset) (spec §2.3, §13.10)."""
    b, c, f, h, w = video.shape
    p = patch_size
    x = video.reshape(b, c, f, h // p, p, w // p, p)
    return x.permute(0, 1, 6, 4, 2, 3, 5).reshape(b, c * p * p, f, h // p, w // p)


def unpatchify(x: Tensor, patch_size: int) -> Tensor:
    """(B, C*p*p, F, H, W) -> (B, C, F, H*p, W*p), the inverse of `patchify`."""
    b, cpp, f, h, w = x.shape
    p = patch_size
    x = x.reshape(b, cpp // (p * p), p, p, f, h, w)  # (c, w-offset r, h-offset q)
    return x.permute(0, 1, 4, 5, 3, 6, 2).reshape(b, cpp // (p * p), f, h * p, w * p)


def pad_video(
    x: Tensor, front: int, back: int, spatial_mode: str, norm_act: bool = False, channels_last: bool | None = None
) -> Tensor:
    """Repeat the first frame `front` times and the last `back` times; pad H and W by 1 unless `spatial_mode` is zeros.

    One copy into one buffer (in x's memory format), where the reference concatenates frames and then lets nn.Conv3d
    pad space in a second copy; the values are the same. With norm_act, SiLU(pixel_norm(x)) is what gets padded,
    computed straight into the buffer (padding commutes with elementwise ops, so this is the reference's order).
    channels_last: layout of the result (None: x's layout); the conv's weight layout, so cuDNN converts nothing.
    x: (B, C, F, H, W) -> (B, C, front + F + back, H', W').
    """
    b, c, f, h, w = x.shape
    s = 0 if spatial_mode == "zeros" else 1
    if s and (h < 2 or w < 2):
        raise ValueError(f"{spatial_mode} padding needs at least 2x2 latents per tile, got {h}x{w}")
    if channels_last is None:
        channels_last = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last_3d)
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    shape = (b, c, front + f + back, h + 2 * s, w + 2 * s)
    out = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=fmt)
    body = out[:, :, front : front + f]
    if norm_act:
        scaled_silu_into(x, body[:, :, :, s : s + h, s : s + w])
    else:
        body[:, :, :, s : s + h, s : s + w] = x
    if s:
        rows, cols = {
            "reflect": ((1, h - 2), (2, w - 1)),
            "replicate": ((0, h - 1), (1, w)),
            "circular": ((h - 1, 0), (w, 1)),
        }[spatial_mode]
        body[:, :, :, 0, 1 : 1 + w] = body[:, :, :, rows[0] + 1, 1 : 1 + w]  # body row r + 1 holds input row r
        body[:, :, :, h + 1, 1 : 1 + w] = body[:, :, :, rows[1] + 1, 1 : 1 + w]
        body[:, :, :, :, 0] = body[:, :, :, :, cols[0]]  # columns last: the corners come from the padded rows
        body[:, :, :, :, w + 1] = body[:, :, :, :, cols[1]]
    if front:
        out[:, :, :front] = out[:, :, front : front + 1]
    if back:
        out[:, :, front + f :] = out[:, :, front + f - 1 : front + f]
    return out


class CausalConv3d(nn.Module):
    """3x3x3 conv whose time axis is padded by repeating edge frames; the spatial padding mode is configurable.

    causal=True puts two copies of the first frame in front (the encoder); causal=False one copy of the first frame in
    front and one of the last frame behind (the released decoders). Spatial padding is 1 on each side.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int | tuple[int, int, int] = 1,
        spatial_padding_mode: str = "zeros",
    ):
        super().__init__()
        if spatial_padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ValueError(
                f"spatial_padding_mode={spatial_padding_mode!r} is not a torch padding mode; use 'zeros' or 'reflect' "
                "(the modes of the released LTX-2 / LTX-2.3 VAEs)."
            )
        if kernel_size != 3:
            raise ValueError(f"kernel_size={kernel_size}: the LTX-2 video VAE only uses 3x3x3 causal convs")
        self.spatial_padding_mode = spatial_padding_mode
        # padding_mode is recorded for reference; forward pads itself and calls F.conv3d with the weights
        self.conv = nn.Conv3d(
            in_channels, out_channels, kernel_size, stride=stride, padding=(0, 1, 1), padding_mode=spatial_padding_mode
        )

    def forward(self, x: Tensor, causal: bool = True, norm_act: bool = False) -> Tensor:
        """x: (B, C_in, F, H, W) -> (B, C_out, F', H', W'); with stride 1, F' = F, H' = H, W' = W.

        norm_act: convolve SiLU(pixel_norm(x)) instead of x (the pre-activation of every resnet conv), fused into
        the padding copy.
        """
        front, back = (2, 0) if causal else (1, 1)
        weight = self.conv.weight  # vae.to(memory_format=torch.channels_last_3d) puts the convs in NDHWC
        channels_last = not weight.is_contiguous() and weight.is_contiguous(memory_format=torch.channels_last_3d)
        x = pad_video(x, front, back, self.spatial_padding_mode, norm_act, channels_last)
        zeros = self.spatial_padding_mode == "zeros"  # zero padding is left to the conv kernel: no copy
        return F.conv3d(x, self.conv.weight, self.conv.bias, self.conv.stride, (0, 1, 1) if zeros else 0)


def timestep_embedder(dim: int) -> nn.Module:
    # sinusoidal(256) -> Linear -> SiLU -> Linear, names time_proj / timestep_embedder.linear_{1,2} in both codebases
    return PixArtAlphaCombinedTimestepSizeEmbeddings(dim, 0)


def embed_timestep(embedder: nn.Module, timestep: Tensor, batch_size: int, dtype: torch.dtype) -> Tensor:
    """(B,) scaled timesteps -> (B, D, 1, 1, 1) embeddings in `dtype`."""
    emb = embedder(timestep.flatten(), resolution=None, aspect_ratio=None, batch_size=batch_size, hidden_dtype=dtype)
    return emb.view(batch_size, -1, 1, 1, 1)


class ResnetBlock3d(nn.Module):
    """norm1 -> [AdaLN] -> SiLU -> conv1 -> [noise] -> norm2 -> [AdaLN] -> SiLU -> conv2 -> [noise], plus shortcut.

    Norms are parameter-free pixel norms. When the width changes, the shortcut is GroupNorm(1 group) then a 1x1x1 conv:
    ltx-core normalises over (C, F, H, W) together; diffusers' in-tree class uses a per-position LayerNorm here (same
    parameter names and shapes), and we follow the reference. No released config changes width inside a resnet.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        eps: float = 1e-6,
        inject_noise: bool = False,
        timestep_conditioning: bool = False,
        spatial_padding_mode: str = "zeros",
    ):
        super().__init__()
        out_channels = out_channels or in_channels
        self.conv1 = CausalConv3d(in_channels, out_channels, spatial_padding_mode=spatial_padding_mode)
        self.conv2 = CausalConv3d(out_channels, out_channels, spatial_padding_mode=spatial_padding_mode)
        self.norm3 = None
        self.conv_shortcut = None
        if in_channels != out_channels:
            self.norm3 = nn.GroupNorm(1, in_channels, eps=eps, affine=True)
            self.conv_shortcut = nn.Conv3d(in_channels, out_channels, kernel_size=1)
        self.per_channel_scale1 = None
        self.per_channel_scale2 = None
        if inject_noise:  # both (in_channels, 1, 1), as in both codebases
            self.per_channel_scale1 = nn.Parameter(torch.zeros(in_channels, 1, 1))
            self.per_channel_scale2 = nn.Parameter(torch.zeros(in_channels, 1, 1))
        self.scale_shift_table = None
        if timestep_conditioning:  # rows: shift1, scale1, shift2, scale2
            self.scale_shift_table = nn.Parameter(torch.zeros(4, in_channels))

    @staticmethod
    def _add_spatial_noise(h: Tensor, scale: Tensor, generator: torch.Generator | None) -> Tensor:
        # One (H, W) draw per call, shared by batch, frames and channels (scaled per channel), like StyleGAN's noise.
        noise = torch.randn(h.shape[-2:], generator=generator, device=h.device, dtype=h.dtype)
        return h + (noise[None] * scale.to(h.dtype))[None, :, None]

    def forward(
        self, x: Tensor, temb: Tensor | None = None, generator: torch.Generator | None = None, causal: bool = True
    ) -> Tensor:
        """x: (B, C_in, F, H, W) -> (B, C_out, F, H, W); temb: (B, 4*C_in, 1, 1, 1) when timestep-conditioned."""
        if self.scale_shift_table is None:
            h = self.conv1(x, causal=causal, norm_act=True)
        else:
            ada = self.scale_shift_table[None, ..., None, None, None].to(x) + temb.unflatten(1, (4, -1))
            shift1, scale1, shift2, scale2 = ada.unbind(dim=1)
            h = self.conv1(F.silu(pixel_norm(x) * (1 + scale1) + shift1), causal=causal)
        if self.per_channel_scale1 is not None:
            h = self._add_spatial_noise(h, self.per_channel_scale1, generator)
        if self.scale_shift_table is None:
            h = self.conv2(h, causal=causal, norm_act=True)
        else:
            h = self.conv2(F.silu(pixel_norm(h) * (1 + scale2) + shift2), causal=causal)
        if self.per_channel_scale2 is not None:
            h = self._add_spatial_noise(h, self.per_channel_scale2, generator)
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(self.norm3(x))
        return h.add_(x)  # h is this block's own tensor; x + h in the reference (same sum)


class Downsampler3d(nn.Module):
    """Space-to-depth downsampling with a conv main path and a channel-averaged skip path (`compress_*_res`)."""

    def __init__(
        self, in_channels: int, out_channels: int, stride: tuple[int, int, int], spatial_padding_mode: str = "zeros"
    ):
        super().__init__()
        self.stride = stride
        factor = stride[0] * stride[1] * stride[2]
        if (in_channels * factor) % out_channels or out_channels % factor:
            raise ValueError(
                f"Downsampler3d: out_channels={out_channels} must divide in_channels*{factor}={in_channels * factor} "
                f"and be a multiple of {factor}; fix block_out_channels."
            )
        self.group_size = in_channels * factor // out_channels
        self.conv = CausalConv3d(in_channels, out_channels // factor, spatial_padding_mode=spatial_padding_mode)

    def forward(self, x: Tensor, causal: bool = True) -> Tensor:
        """(B, C_in, F, H, W) -> (B, C_out, F', H/s, W/s); with temporal stride 2, F = 8k+1 becomes (F+1)/2."""
        if self.stride[0] == 2:  # 8k+1 frames -> even: repeat frame 0
            x = torch.cat([x[:, :, :1], x], dim=2)
        skip = space_to_depth(x, self.stride)
        skip = skip.unflatten(1, (-1, self.group_size)).mean(dim=2)
        return space_to_depth(self.conv(x, causal=causal), self.stride) + skip


class Upsampler3d(nn.Module):
    """Depth-to-space upsampling (`compress_*` in the decoder); drops the first frame after temporal upsampling."""

    def __init__(
        self,
        in_channels: int,
        stride: tuple[int, int, int],
        residual: bool = False,
        upscale_factor: int = 1,
        spatial_padding_mode: str = "zeros",
    ):
        super().__init__()
        self.stride = stride
        self.residual = residual
        self.upscale_factor = upscale_factor
        factor = stride[0] * stride[1] * stride[2]
        self.conv = CausalConv3d(
            in_channels, in_channels * factor // upscale_factor, spatial_padding_mode=spatial_padding_mode
        )

    def forward(self, x: Tensor, causal: bool = True) -> Tensor:
        """(B, C, F, H, W) -> (B, C / upscale_factor, s_t*F - (s_t-1), s*H, s*W)."""
        drop = self.stride[0] - 1
        out = depth_to_space(self.conv(x, causal=causal), self.stride)[:, :, drop:]
        if self.residual:  # depth-to-space of the input, tiled over the output channels (broadcast, not repeated)
            repeats = self.stride[0] * self.stride[1] * self.stride[2] // self.upscale_factor
            out.unflatten(1, (repeats, -1)).add_(depth_to_space(x, self.stride)[:, None, :, drop:])
        return out


class CheckpointedBlocks(nn.Module):
    """Runs its sub-blocks through activation checkpointing once `ModelMixin.enable_gradient_checkpointing()` has set
    `gradient_checkpointing`: the encoder and decoder per block, each block per resnet, as diffusers' classes do."""

    def __init__(self):
        super().__init__()
        self.gradient_checkpointing = False

    def _run(self, block: nn.Module, *args) -> Tensor:
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return self._gradient_checkpointing_func(block, *args)
        return block(*args)


class LTX2VideoDownBlock3D(CheckpointedBlocks):
    """`resnets` at constant width, then one downsampler (diffusers' class of the same name)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_layers: int,
        resnet_eps: float = 1e-6,
        spatio_temporal_scale: bool = True,
        downsample_type: str = "spatiotemporal",
        spatial_padding_mode: str = "zeros",
    ):
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock3d(in_channels, eps=resnet_eps, spatial_padding_mode=spatial_padding_mode)
            for _ in range(num_layers)
        )
        self.downsamplers = None
        if spatio_temporal_scale:
            if downsample_type not in DOWNSAMPLE_STRIDES:
                raise ValueError(f"downsample_type={downsample_type!r}: expected one of {sorted(DOWNSAMPLE_STRIDES)}")
            if downsample_type == "conv":  # plain strided conv (`compress_all` in ltx-core), width unchanged
                down = CausalConv3d(in_channels, in_channels, stride=2, spatial_padding_mode=spatial_padding_mode)
            else:
                down = Downsampler3d(
                    in_channels, out_channels, DOWNSAMPLE_STRIDES[downsample_type], spatial_padding_mode
                )
            self.downsamplers = nn.ModuleList([down])

    def forward(self, x: Tensor, causal: bool = True) -> Tensor:
        for resnet in self.resnets:
            x = self._run(resnet, x, None, None, causal)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x, causal=causal)
        return x


class LTX2VideoMidBlock3d(CheckpointedBlocks):
    """`resnets` at constant width sharing one optional time embedding (ltx-core's `UNetMidBlock3D`, `res_x`)."""

    def __init__(
        self,
        in_channels: int,
        num_layers: int,
        resnet_eps: float = 1e-6,
        inject_noise: bool = False,
        timestep_conditioning: bool = False,
        spatial_padding_mode: str = "zeros",
    ):
        super().__init__()
        self.time_embedder = timestep_embedder(in_channels * 4) if timestep_conditioning else None
        self.resnets = nn.ModuleList(
            ResnetBlock3d(
                in_channels,
                eps=resnet_eps,
                inject_noise=inject_noise,
                timestep_conditioning=timestep_conditioning,
                spatial_padding_mode=spatial_padding_mode,
            )
            for _ in range(num_layers)
        )

    def forward(
        self,
        x: Tensor,
        timestep: Tensor | None = None,
        generator: torch.Generator | None = None,
        causal: bool = True,
    ) -> Tensor:
        """timestep: (B,) already multiplied by the decoder's `timestep_scale_multiplier`."""
        temb = None
        if self.time_embedder is not None:
            temb = embed_timestep(self.time_embedder, timestep, x.shape[0], x.dtype)
        for resnet in self.resnets:
            x = self._run(resnet, x, temb, generator, causal)
        return x


class LTX2VideoUpBlock3d(LTX2VideoMidBlock3d):
    """One upsampler, then `resnets` (diffusers' class of the same name).

    In ltx-core terms: a `compress_*` block followed by a `res_x` block; the time embedding belongs to the `res_x`.
    diffusers would add a `conv_in` resnet when the block's nominal input and output widths differ, but that resnet is
    built for a width its input never has, so no working config has one; we reject such configs.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_layers: int,
        resnet_eps: float = 1e-6,
        spatio_temporal_scale: bool = True,
        upsample_type: str = "spatiotemporal",
        inject_noise: bool = False,
        timestep_conditioning: bool = False,
        upsample_residual: bool = False,
        upscale_factor: int = 1,
        spatial_padding_mode: str = "zeros",
    ):
        if in_channels != out_channels:
            raise ValueError(
                f"decoder up block with input width {in_channels} and output width {out_channels}: the widths must "
                "chain as decoder_block_out_channels[i] // upsample_factor[i] (see the released configs)."
            )
        super().__init__(
            out_channels, num_layers, resnet_eps, inject_noise, timestep_conditioning, spatial_padding_mode
        )
        self.upsamplers = None
        if spatio_temporal_scale:
            if upsample_type not in UPSAMPLE_STRIDES:
                raise ValueError(f"upsample_type={upsample_type!r}: expected one of {sorted(UPSAMPLE_STRIDES)}")
            upsampler = Upsampler3d(
                out_channels * upscale_factor,
                UPSAMPLE_STRIDES[upsample_type],
                residual=upsample_residual,
                upscale_factor=upscale_factor,
                spatial_padding_mode=spatial_padding_mode,
            )
            self.upsamplers = nn.ModuleList([upsampler])

    def forward(
        self,
        x: Tensor,
        timestep: Tensor | None = None,
        generator: torch.Generator | None = None,
        causal: bool = True,
    ) -> Tensor:
        if self.upsamplers is not None:
            x = self.upsamplers[0](x, causal=causal)
        return super().forward(x, timestep, generator, causal)


# ---- fused pre-activation on CUDA -------------------------------------------------------------------------------------

try:  # Triton ships with CUDA builds of torch; CPU runs take the eager path
    import triton
    import triton.language as tl
except ImportError:
    triton = None

if triton is not None:

    @triton.jit
    def _scaled_silu_kernel(
        x_ptr, s_ptr, out_ptr, n, NC, NF, NH, NW,
        xb, xc, xf, xh, xw, sb, sf, sh, sw, ob, oc, of, oh, ow,
        CHANNELS_INNER: tl.constexpr, BLOCK: tl.constexpr,
    ):  # fmt: skip
        # out[b, c, f, h, w] = silu(x * s[b, 0, f, h, w]) in float32, walking the output's memory order
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        if CHANNELS_INNER:
            c = offs % NC
            t = offs // NC
            w = t % NW
            t = t // NW
            h = t % NH
            t = t // NH
            f = t % NF
            b = t // NF
        else:
            w = offs % NW
            t = offs // NW
            h = t % NH
            t = t // NH
            f = t % NF
            t = t // NF
            c = t % NC
            b = t // NC
        b, c, f, h, w = b.to(tl.int64), c.to(tl.int64), f.to(tl.int64), h.to(tl.int64), w.to(tl.int64)
        x = tl.load(x_ptr + b * xb + c * xc + f * xf + h * xh + w * xw, mask=mask).to(tl.float32)
        s = tl.load(s_ptr + b * sb + f * sf + h * sh + w * sw, mask=mask)
        y = x * s
        y = y / (1.0 + tl.exp(-y))
        tl.store(out_ptr + b * ob + c * oc + f * of + h * oh + w * ow, y.to(out_ptr.dtype.element_ty), mask=mask)


def scaled_silu_into(x: Tensor, out: Tensor) -> None:
    """out[...] = SiLU(pixel_norm(x)), out a view of the padded conv input (any strides).

    On CUDA one Triton pass (float32 math, one rounding) instead of eager's multiply then in-place SiLU (two passes
    over the output); elsewhere the eager ops.
    """
    n = x.numel()
    if torch.is_grad_enabled() and x.requires_grad:  # training through the VAE: out= ops have no autograd
        out.copy_(F.silu(x * pixel_norm_scale(x)))
        return
    if triton is None or not x.is_cuda or n >= 2**31:
        torch.mul(x, pixel_norm_scale(x), out=out)
        F.silu(out, inplace=True)
        return
    sum_sq = torch.linalg.vector_norm(x, dim=1, keepdim=True, dtype=torch.float32).square_()
    scale = torch.rsqrt(sum_sq / x.shape[1] + 1e-8)  # (B, 1, F, H, W) float32
    channels_inner = out.stride(1) == 1 and x.shape[1] > 1
    block = 1024
    _scaled_silu_kernel[(triton.cdiv(n, block),)](
        x, scale, out, n, *x.shape[1:], *x.stride(), scale.stride(0), *scale.stride()[2:], *out.stride(),
        CHANNELS_INNER=channels_inner, BLOCK=block,
    )  # fmt: skip
