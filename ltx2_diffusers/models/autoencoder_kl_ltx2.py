"""LTX-2 / LTX-2.3 video VAE (spec §2): causal encoder, non-causal decoder, per-channel latent statistics, tiling.

Config and state dict = diffusers 0.42's `AutoencoderKLLTX2Video`; numerics = ltx-core 1.0.0's `VideoEncoder` /
`VideoDecoder`. As in diffusers, `encode` returns un-normalised moments and `decode` takes un-normalised latents;
the transformer sees latents normalised with `normalize_latents(latents, vae.latents_mean, vae.latents_std)`
(ltx-core folds that step into its encoder and decoder).
"""

from collections.abc import Iterator
from dataclasses import replace

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import AutoencoderMixin, DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils.accelerate_utils import apply_forward_hook
from torch import Tensor, nn

from ..hub import ModelCardMixin
from ..loaders.from_single_file import FromLTX2SingleFileMixin
from .video_vae_blocks import (
    CausalConv3d,
    CheckpointedBlocks,
    LTX2VideoDownBlock3D,
    LTX2VideoMidBlock3d,
    LTX2VideoUpBlock3d,
    embed_timestep,
    patchify,
    pixel_norm,
    timestep_embedder,
    unpatchify,
)
from .video_vae_tiling import VideoTilingConfig, tiled_decode_chunks, tiled_encode


def normalize_latents(latents: Tensor, latents_mean: Tensor, latents_std: Tensor) -> Tensor:
    """(x - mean_c) / std_c per channel; latents (B, C, F, H, W), mean/std (C,). ltx-core's `normalize`."""
    return (latents - latents_mean.view(1, -1, 1, 1, 1).to(latents)) / latents_std.view(1, -1, 1, 1, 1).to(latents)


def denormalize_latents(latents: Tensor, latents_mean: Tensor, latents_std: Tensor) -> Tensor:
    """x * std_c + mean_c per channel, the inverse of `normalize_latents`. ltx-core's `un_normalize`."""
    return latents * latents_std.view(1, -1, 1, 1, 1).to(latents) + latents_mean.view(1, -1, 1, 1, 1).to(latents)


def _as_tuple(value, length: int) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,) * length


class LTX2VideoEncoder3d(CheckpointedBlocks):
    """Causal video encoder: (B, 3, 8k+1, 32h, 32w) -> moments (B, latent_channels + 1, k+1, h, w).

    The extra channel is one log-variance shared by every latent channel (ltx-core's "uniform" log-variance).
    """

    def __init__(
        self,
        in_channels: int,
        latent_channels: int,
        block_out_channels: tuple[int, ...],
        spatio_temporal_scaling: tuple[bool, ...],
        layers_per_block: tuple[int, ...],
        downsample_type: tuple[str, ...],
        patch_size: int,
        resnet_norm_eps: float,
        is_causal: bool,
        spatial_padding_mode: str,
    ):
        super().__init__()
        self.patch_size = patch_size
        self.is_causal = is_causal
        width = latent_channels  # ltx-core: the first width is always the latent width
        self.conv_in = CausalConv3d(in_channels * patch_size**2, width, spatial_padding_mode=spatial_padding_mode)
        self.down_blocks = nn.ModuleList()
        for i, out_width in enumerate(block_out_channels):
            self.down_blocks.append(
                LTX2VideoDownBlock3D(
                    width,
                    out_width,
                    layers_per_block[i],
                    resnet_norm_eps,
                    spatio_temporal_scaling[i],
                    downsample_type[i],
                    spatial_padding_mode,
                )
            )
            width = out_width
        self.mid_block = LTX2VideoMidBlock3d(
            width, layers_per_block[-1], resnet_norm_eps, spatial_padding_mode=spatial_padding_mode
        )
        self.conv_out = CausalConv3d(width, latent_channels + 1, spatial_padding_mode=spatial_padding_mode)

    def forward(self, video: Tensor, causal: bool | None = None) -> Tensor:
        causal = self.is_causal if causal is None else causal
        x = self.conv_in(patchify(video, self.patch_size), causal=causal)
        for block in self.down_blocks:
            x = self._run(block, x, causal)
        x = self._run(self.mid_block, x, None, None, causal)
        return self.conv_out(x, causal=causal, norm_act=True)


class LTX2VideoDecoder3d(CheckpointedBlocks):
    """Video decoder: un-normalised latents (B, C, k+1, h, w) -> pixels (B, 3, 8k+1, 32h, 32w) in about [-1, 1].

    Lists in the config are given encoder-side first (as in diffusers) and reversed here, except `upsample_type`,
    which diffusers gives in decoder order.
    """

    def __init__(
        self,
        latent_channels: int,
        out_channels: int,
        block_out_channels: tuple[int, ...],
        spatio_temporal_scaling: tuple[bool, ...],
        layers_per_block: tuple[int, ...],
        upsample_type: tuple[str, ...],
        patch_size: int,
        resnet_norm_eps: float,
        is_causal: bool,
        inject_noise: tuple[bool, ...],
        timestep_conditioning: bool,
        upsample_residual: tuple[bool, ...],
        upsample_factor: tuple[int, ...],
        spatial_padding_mode: str,
    ):
        super().__init__()
        self.patch_size = patch_size
        self.is_causal = is_causal
        widths = tuple(reversed(block_out_channels))
        scaling = tuple(reversed(spatio_temporal_scaling))
        layers = tuple(reversed(layers_per_block))
        noise = tuple(reversed(inject_noise))
        self.injects_noise = any(noise[: len(widths) + 1])  # the entries the mid and up blocks use
        residual = tuple(reversed(upsample_residual))
        factors = tuple(reversed(upsample_factor))
        width = widths[0]
        self.conv_in = CausalConv3d(latent_channels, width, spatial_padding_mode=spatial_padding_mode)
        self.mid_block = LTX2VideoMidBlock3d(
            width, layers[0], resnet_norm_eps, noise[0], timestep_conditioning, spatial_padding_mode
        )
        self.up_blocks = nn.ModuleList()
        for i in range(len(widths)):
            in_width, width = width // factors[i], widths[i] // factors[i]
            self.up_blocks.append(
                LTX2VideoUpBlock3d(
                    in_width,
                    width,
                    layers[i + 1],
                    resnet_norm_eps,
                    scaling[i],
                    upsample_type[i],
                    noise[i + 1],
                    timestep_conditioning,
                    residual[i],
                    factors[i],
                    spatial_padding_mode,
                )
            )
        self.conv_out = CausalConv3d(width, out_channels * patch_size**2, spatial_padding_mode=spatial_padding_mode)
        self.timestep_scale_multiplier = None
        self.time_embedder = None
        self.scale_shift_table = None
        if timestep_conditioning:
            self.timestep_scale_multiplier = nn.Parameter(torch.tensor(1000.0))
            self.time_embedder = timestep_embedder(width * 2)
            self.scale_shift_table = nn.Parameter(torch.zeros(2, width))  # rows: shift, scale

    def forward(
        self,
        latents: Tensor,
        timestep: Tensor | None = None,
        generator: torch.Generator | None = None,
        causal: bool | None = None,
    ) -> Tensor:
        """timestep: (B,) decode timestep as a noise level (ltx-core's default 0.05), needed only when conditioned."""
        causal = self.is_causal if causal is None else causal
        x = self.conv_in(latents, causal=causal)
        if self.timestep_scale_multiplier is not None:
            timestep = timestep * self.timestep_scale_multiplier.to(x)
        if self.gradient_checkpointing and torch.is_grad_enabled() and self.injects_noise and generator is not None:
            raise ValueError(
                "gradient checkpointing recomputes each block, and would draw its injected noise from `generator` a "
                "second time (different noise than the forward used); pass generator=None (checkpointing restores "
                "the global RNG) or call vae.disable_gradient_checkpointing()"
            )
        x = self._run(self.mid_block, x, timestep, generator, causal)
        for block in self.up_blocks:
            x = self._run(block, x, timestep, generator, causal)
        if self.time_embedder is None:
            return unpatchify(self.conv_out(x, causal=causal, norm_act=True), self.patch_size)
        temb = embed_timestep(self.time_embedder, timestep, x.shape[0], x.dtype).unflatten(1, (2, -1))
        shift, scale = (self.scale_shift_table[None, ..., None, None, None].to(x) + temb).unbind(dim=1)
        x = F.silu(pixel_norm(x) * (1 + scale) + shift)
        return unpatchify(self.conv_out(x, causal=causal), self.patch_size)


class AutoencoderKLLTX2Video(FromLTX2SingleFileMixin, ModelCardMixin, ModelMixin, AutoencoderMixin, ConfigMixin):
    r"""The LTX-2 video VAE: (B, 3, 8k+1, 32h, 32w) pixels in [-1, 1] <-> (B, 128, k+1, h, w) latents.

    Config keys, meanings and defaults are diffusers' (the released LTX-2 19B VAE, except `decoder_causal`, whose
    default is diffusers' True; the released config sets False). Lists are given encoder-side first; the decoder
    reverses `decoder_block_out_channels`, `decoder_layers_per_block`, `decoder_spatio_temporal_scaling`,
    `decoder_inject_noise`, `upsample_residual`, `upsample_factor`, and reads `upsample_type` in decoder order.

    Every config diffusers' class accepts builds the same network here, with the same state dict and outputs:
    per-block lists may be longer than the blocks need, and are read as diffusers reads them (encoder lists and
    `upsample_type` from the front, the reversed decoder lists from the back, the encoder's mid block from
    `layers_per_block[-1]`). Too-short lists raise a ValueError naming the list and the count it needs.

    One deliberate difference: when the config leaves `spatial_compression_ratio` / `temporal_compression_ratio` unset,
    we derive them from the blocks that resample (spatial: `patch_size` times 2 per resampling block whose
    `downsample_type` is not "temporal"; temporal: 2 per block that is not "spatial"). diffusers counts every True in
    `spatio_temporal_scaling` for both axes, which overstates them whenever a block resamples one axis only (its own
    test config gets 16 / 16 for a network that compresses 8 / 8). The network and its outputs are the same; only these
    two attributes, which size tiles and check inputs, differ. Released configs set both explicitly (32, 8).

    Gradient checkpointing (`enable_gradient_checkpointing()`) checkpoints each encoder and decoder block and, inside
    each block, each resnet (diffusers' module set).

    Args:
        in_channels, out_channels: pixel channels (3).
        latent_channels: latent width (128); the encoder's first width is also this value.
        block_out_channels: encoder width after each down block.
        down_block_types: "LTX2VideoDownBlock3D" per down block (the only kind).
        decoder_block_out_channels: decoder widths, encoder-side first (LTX-2: 256, 512, 1024).
        layers_per_block: resnets per encoder down block, then the mid block (the last entry).
        decoder_layers_per_block: resnets of the decoder's mid block and up blocks, encoder-side first.
        spatio_temporal_scaling / decoder_spatio_temporal_scaling: whether each block resamples.
        decoder_inject_noise: per decoder block (mid block last), whether its resnets add scaled spatial noise.
        downsample_type: "spatial", "temporal", "spatiotemporal" (space-to-depth) or "conv" (strided conv) per block.
        upsample_type: "spatial", "temporal" or "spatiotemporal" per up block, in decoder order.
        upsample_residual: per up block, whether depth-to-space of the input is added to the upsampled output.
        upsample_factor: per up block, the width reduction of the upsampler.
        timestep_conditioning: decoder AdaLN on the decode timestep (off in the released configs).
        patch_size, patch_size_t: pixel space-to-depth before the encoder (4, 1; only patch_size_t = 1 exists).
        resnet_norm_eps: eps of the shortcut GroupNorm when a resnet changes width.
        scaling_factor: kept for diffusers compatibility; ltx-core ignores it (1.0).
        encoder_causal, decoder_causal: temporal padding of every conv (True: 2 copies of frame 0 in front).
        encoder_spatial_padding_mode, decoder_spatial_padding_mode: "zeros" or "reflect" (LTX-2: zeros / reflect).
        spatial_compression_ratio, temporal_compression_ratio: 32 and 8 (derived when None).
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        latent_channels: int = 128,
        block_out_channels: tuple[int, ...] = (256, 512, 1024, 2048),
        down_block_types: tuple[str, ...] = ("LTX2VideoDownBlock3D",) * 4,
        decoder_block_out_channels: tuple[int, ...] = (256, 512, 1024),
        layers_per_block: tuple[int, ...] = (4, 6, 6, 2, 2),
        decoder_layers_per_block: tuple[int, ...] = (5, 5, 5, 5),
        spatio_temporal_scaling: bool | tuple[bool, ...] = (True, True, True, True),
        decoder_spatio_temporal_scaling: bool | tuple[bool, ...] = (True, True, True),
        decoder_inject_noise: bool | tuple[bool, ...] = (False, False, False, False),
        downsample_type: tuple[str, ...] = ("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
        upsample_type: tuple[str, ...] = ("spatiotemporal", "spatiotemporal", "spatiotemporal"),
        upsample_residual: bool | tuple[bool, ...] = (True, True, True),
        upsample_factor: tuple[int, ...] = (2, 2, 2),
        timestep_conditioning: bool = False,
        patch_size: int = 4,
        patch_size_t: int = 1,
        resnet_norm_eps: float = 1e-6,
        scaling_factor: float = 1.0,
        encoder_causal: bool = True,
        decoder_causal: bool = True,
        encoder_spatial_padding_mode: str = "zeros",
        decoder_spatial_padding_mode: str = "reflect",
        spatial_compression_ratio: int | None = None,
        temporal_compression_ratio: int | None = None,
    ) -> None:
        super().__init__()
        num_down, num_up = len(block_out_channels), len(decoder_block_out_channels)
        spatio_temporal_scaling = _as_tuple(spatio_temporal_scaling, num_down)
        decoder_spatio_temporal_scaling = _as_tuple(decoder_spatio_temporal_scaling, num_up)
        decoder_inject_noise = _as_tuple(decoder_inject_noise, num_up + 1)
        upsample_residual = _as_tuple(upsample_residual, num_up)
        if patch_size_t != 1:
            raise ValueError(f"patch_size_t={patch_size_t}: only 1 exists in LTX-2 checkpoints (and in ltx-core)")
        if any(t != "LTX2VideoDownBlock3D" for t in down_block_types):
            raise ValueError(f"down_block_types={down_block_types}: only 'LTX2VideoDownBlock3D' is defined")
        # Minimum lengths. Longer lists are accepted and read as diffusers reads them: encoder lists and upsample_type
        # from the front, the mid block's resnet count from layers_per_block[-1], the other decoder lists reversed
        # (so from the back). With exactly num_down entries the mid block repeats the last down block's count.
        down, up, mid_up = "one per down block", "one per up block", "the mid block's, then one per up block"
        needed = {
            "layers_per_block": (layers_per_block, max(num_down, 1), down + " (the last also serves the mid block)"),
            "down_block_types": (down_block_types, num_down, down),
            "spatio_temporal_scaling": (spatio_temporal_scaling, num_down, down),
            "downsample_type": (downsample_type, num_down, down),
            "decoder_layers_per_block": (decoder_layers_per_block, num_up + 1, mid_up),
            "decoder_spatio_temporal_scaling": (decoder_spatio_temporal_scaling, num_up, up),
            "decoder_inject_noise": (decoder_inject_noise, num_up + 1, mid_up),
            "upsample_type": (upsample_type, num_up, up),
            "upsample_residual": (upsample_residual, num_up, up),
            "upsample_factor": (upsample_factor, num_up, up),
        }
        for name, (values, minimum, what) in needed.items():
            if len(values) < minimum:
                raise ValueError(
                    f"{name} has {len(values)} entries, needs at least {minimum} ({what}; block_out_channels gives "
                    f"{num_down} down blocks, decoder_block_out_channels {num_up} up blocks). Give {minimum} entries."
                )
        self.encoder = LTX2VideoEncoder3d(
            in_channels,
            latent_channels,
            tuple(block_out_channels),
            spatio_temporal_scaling,
            tuple(layers_per_block),
            tuple(downsample_type),
            patch_size,
            resnet_norm_eps,
            encoder_causal,
            encoder_spatial_padding_mode,
        )
        self.decoder = LTX2VideoDecoder3d(
            latent_channels,
            out_channels,
            tuple(decoder_block_out_channels),
            decoder_spatio_temporal_scaling,
            tuple(decoder_layers_per_block),
            tuple(upsample_type),
            patch_size,
            resnet_norm_eps,
            decoder_causal,
            decoder_inject_noise,
            timestep_conditioning,
            upsample_residual,
            tuple(upsample_factor),
            decoder_spatial_padding_mode,
        )
        # ltx-core's per_channel_statistics "mean-of-means" / "std-of-means"
        self.register_buffer("latents_mean", torch.zeros(latent_channels), persistent=True)
        self.register_buffer("latents_std", torch.ones(latent_channels), persistent=True)
        # From the blocks that really resample (diffusers counts every True in spatio_temporal_scaling for both axes).
        used = list(zip(downsample_type[:num_down], spatio_temporal_scaling[:num_down]))
        self.spatial_compression_ratio = spatial_compression_ratio or patch_size * 2 ** sum(
            "temporal" != t for t, s in used if s
        )
        self.temporal_compression_ratio = temporal_compression_ratio or 2 ** sum("spatial" != t for t, s in used if s)
        self.use_slicing = False
        self.use_tiling: bool | None = None  # None: tile clips larger than tiling.auto_min_pixels
        self.distributed_decode = None
        self.tiling = VideoTilingConfig()

    # ---- tiling switches -------------------------------------------------------------------------------------------

    def enable_tiling(
        self,
        tile_size_pixels: int | None = None,
        tile_overlap_pixels: int | None = None,
        tile_size_frames: int | None = None,
        tile_overlap_frames: int | None = None,
    ) -> None:
        """Always tile (encode and decode), optionally with other tile sizes than ltx-core's 512/64 px, 64/24 frames."""
        changes = {
            "tile_size_pixels": tile_size_pixels,
            "tile_overlap_pixels": tile_overlap_pixels,
            "tile_size_frames": tile_size_frames,
            "tile_overlap_frames": tile_overlap_frames,
        }
        self.tiling = replace(self.tiling, **{k: v for k, v in changes.items() if v is not None})
        self.use_tiling = True

    def disable_tiling(self) -> None:
        """Never tile: one decoder call per clip (fastest, most memory)."""
        self.use_tiling = False

    def enable_auto_tiling(self, min_pixels: int | None = None) -> None:
        """The default: tile clips of more than `min_pixels` output pixels (F * H * W), decode smaller ones whole."""
        if min_pixels is not None:
            self.tiling = replace(self.tiling, auto_min_pixels=min_pixels)
        self.use_tiling = None

    def _tiles(self, num_frames: int, height: int, width: int) -> bool:
        if self.use_tiling is None:
            return num_frames * height * width > self.tiling.auto_min_pixels
        return self.use_tiling

    # ---- input checks ----------------------------------------------------------------------------------------------

    def _check_video(self, video: Tensor) -> None:
        s, t = self.spatial_compression_ratio, self.temporal_compression_ratio
        if video.ndim != 5:
            raise ValueError(
                f"video must be (B, C, F, H, W), got shape {tuple(video.shape)}; add a frame axis for images"
            )
        _, channels, frames, height, width = video.shape
        if channels != self.config.in_channels:
            raise ValueError(
                f"video has {channels} channels, the VAE expects {self.config.in_channels} (RGB in [-1, 1], channels "
                "on axis 1: permute (B, F, H, W, C) input with .permute(0, 4, 1, 2, 3))"
            )
        if (frames - 1) % t:
            below = max(1, (frames - 1) // t * t + 1)
            raise ValueError(
                f"video has {frames} frames, not of the form {t}*k + 1, which the causal encoder needs (the first "
                f"latent frame holds 1 frame, each later one {t}). Crop to {below} frames (video[:, :, :{below}]) or "
                f"pad to {below + t}."
            )
        if height % s or width % s:
            raise ValueError(
                f"video is {height}x{width} pixels; height and width must be multiples of {s}. Resize or crop to "
                f"{height // s * s}x{width // s * s} (or pad to {-(-height // s) * s}x{-(-width // s) * s})."
            )

    def _check_latents(self, latents: Tensor) -> None:
        if latents.ndim != 5 or latents.shape[1] != self.config.latent_channels:
            raise ValueError(
                f"latents must be (B, {self.config.latent_channels}, F, H, W), got shape {tuple(latents.shape)}; "
                "unpack transformer tokens (B, F*H*W, C) with .unflatten(1, (F, H, W)).permute(0, 4, 1, 2, 3)"
            )

    def _check_timestep(self, temb: Tensor | None) -> None:
        if self.config.timestep_conditioning and temb is None:
            raise ValueError(
                "this VAE's decoder is timestep-conditioned: pass temb=torch.full((B,), 0.05), the decode timestep "
                "ltx-core uses (and mix 2.5% noise into the normalised latents first, as its decoder does)"
            )
        if not self.config.timestep_conditioning and temb is not None:
            raise ValueError("temb was given but timestep_conditioning is False in this VAE's config; drop temb")

    # ---- encode ----------------------------------------------------------------------------------------------------

    def _encode_moments(self, video: Tensor, causal: bool | None) -> Tensor:
        """(B, 3, F, H, W) -> (B, C + 1, F', H', W'): C means and one shared log-variance, un-normalised."""
        _, _, frames, height, width = video.shape
        if self._tiles(frames, height, width):
            return tiled_encode(
                lambda tile: self.encoder(tile, causal),
                video,
                self.tiling,
                self.temporal_compression_ratio,
                self.spatial_compression_ratio,
            )
        return self.encoder(video, causal)

    # apply_forward_hook: model CPU offload moves the VAE to the GPU when these, not forward(), are called
    @apply_forward_hook
    def encode(
        self, x: Tensor, causal: bool | None = None, return_dict: bool = True
    ) -> AutoencoderKLOutput | tuple[DiagonalGaussianDistribution]:
        """Encode (B, 3, 8k+1, 32h, 32w) pixels in [-1, 1] into a diagonal Gaussian over un-normalised latents.

        `.latent_dist.mode()` (the mean) is what ltx-core's encoder returns before normalisation; ltx-core never samples.
        Frame counts that are not 8k+1 and sizes that are not multiples of 32 raise a ValueError (ltx-core crops frames
        with a warning; we make the caller choose).
        """
        self._check_video(x)
        if self.use_slicing and x.shape[0] > 1:
            moments = torch.cat([self._encode_moments(clip, causal) for clip in x.split(1)])
        else:
            moments = self._encode_moments(x, causal)
        # diffusers' layout: C means, then the shared log-variance repeated C times
        logvar = moments[:, -1:]
        posterior = DiagonalGaussianDistribution(torch.cat([moments[:, :-1], logvar.expand_as(moments[:, :-1])], 1))
        return AutoencoderKLOutput(latent_dist=posterior) if return_dict else (posterior,)

    # ---- decode ----------------------------------------------------------------------------------------------------

    @apply_forward_hook
    def decode_stream(
        self,
        z: Tensor,
        temb: Tensor | None = None,
        causal: bool | None = None,
        generator: torch.Generator | None = None,
    ) -> Iterator[Tensor]:
        """Yield decoded frames (B, 3, T_i, H, W) in temporal chunks whose concatenation along axis 2 is the clip.

        Always tiled (with `self.tiling`), chunked where ltx-core's `tiled_decode` yields: a long clip never exists as
        one float tensor. z: un-normalised latents (B, C, F', H', W'); temb: (B,) decode timestep when conditioned.
        """
        self._check_latents(z)  # checked here, not at the first next()
        self._check_timestep(temb)
        return self._copied_chunks(z, temb, causal, generator)

    def _copied_chunks(self, z: Tensor, temb: Tensor | None, causal: bool | None, generator) -> Iterator[Tensor]:
        for chunk in self._tiled_chunks(z, temb, causal, generator):
            # a copy: while the caller holds a chunk, the float32 group buffer it came from can be freed
            copied = chunk.to(z.dtype, copy=True)
            del chunk
            yield copied

    def _tiled_chunks(self, z: Tensor, temb: Tensor | None, causal: bool | None, generator) -> Iterator[Tensor]:
        """float32 chunks (views of the accumulation buffers)."""
        # ltx2_diffusers.parallel.decode sets `distributed_decode`: the same tiles, spread over ranks, blended alike
        tile_chunks = tiled_decode_chunks if self.distributed_decode is None else self.distributed_decode
        return tile_chunks(
            lambda tile: self.decoder(tile, temb, generator, causal),
            z,
            self.tiling,
            self.temporal_compression_ratio,
            self.spatial_compression_ratio,
        )

    def _decode_one(self, z: Tensor, temb: Tensor | None, causal: bool | None, generator) -> Tensor:
        frames = (z.shape[2] - 1) * self.temporal_compression_ratio + 1
        height, width = z.shape[3] * self.spatial_compression_ratio, z.shape[4] * self.spatial_compression_ratio
        if not self._tiles(frames, height, width):
            return self.decoder(z, temb, generator, causal)
        out, start = None, 0
        for chunk in self._tiled_chunks(z, temb, causal, generator):
            if out is None:  # written chunk by chunk, cast on the way: no concatenation, no cast copy
                out = z.new_empty((chunk.shape[0], chunk.shape[1], frames, height, width))
            out[:, :, start : start + chunk.shape[2]] = chunk
            start += chunk.shape[2]
            del chunk  # a view of a float32 group buffer: let it go before the next group is decoded
        return out

    @apply_forward_hook
    def decode(
        self,
        z: Tensor,
        temb: Tensor | None = None,
        causal: bool | None = None,
        return_dict: bool = True,
        generator: torch.Generator | None = None,
    ) -> DecoderOutput | tuple[Tensor]:
        """Decode un-normalised latents (B, C, F', H', W') into pixels (B, 3, 8(F'-1)+1, 32H', 32W') in about [-1, 1].

        Tiled when `use_tiling` is True, or when it is None (the default) and the clip has more than
        `tiling.auto_min_pixels` output pixels. temb: (B,) decode timestep, only for timestep-conditioned decoders.
        generator: for decoders with noise injection.
        """
        self._check_latents(z)
        self._check_timestep(temb)
        if self.use_slicing and z.shape[0] > 1:
            tembs = temb.split(1) if temb is not None else [None] * z.shape[0]
            video = torch.cat([self._decode_one(zi, ti, causal, generator) for zi, ti in zip(z.split(1), tembs)])
        else:
            video = self._decode_one(z, temb, causal, generator)
        return DecoderOutput(sample=video) if return_dict else (video,)

    def forward(
        self,
        sample: Tensor,
        temb: Tensor | None = None,
        sample_posterior: bool = False,
        encoder_causal: bool | None = None,
        decoder_causal: bool | None = None,
        return_dict: bool = True,
        generator: torch.Generator | None = None,
    ) -> DecoderOutput | tuple[Tensor]:
        """Encode then decode (the posterior mean unless `sample_posterior`)."""
        posterior = self.encode(sample, causal=encoder_causal).latent_dist
        z = posterior.sample(generator=generator) if sample_posterior else posterior.mode()
        return self.decode(z, temb, causal=decoder_causal, return_dict=return_dict, generator=generator)
