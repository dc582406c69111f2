"""LTX-2.5's diffusion video decoder (spec §4.2): latents -> a context volume by four deterministic neighbourhood-
attention (NA) stages, then a few Euler steps of a pixel-space diffusion transformer conditioned on that context.

Config keys, module tree and parameter names are diffusers 0.42.1's `LTX2VideoDiffusionDecoderModel`, so its folders
load here and ours load there. This file holds the network and one tile's denoising loop; the decode algorithm
(latent padding, the trailing ghost frames, the noise draw, tiling and blending) is
`pipelines.diffusion_decoding.diffusion_decode_video`, which takes normalised latents as every decoder call here does.

Tensors inside the network are channels-last, (B, T, H, W, C).
"""

import math

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn

from ..loaders.from_single_file import FromLTX2SingleFileMixin
from .embeddings import CombinedTimestepEmbedding
from .neighborhood_attention import apply_rope_3d, neighborhood_attention

NUM_MODULATION_CHUNKS = 7  # scale_msa, shift_msa, gate_msa, scale_mlp, shift_mlp, gate_mlp, gate_ctx (trap 19)
SCALE_MSA, SHIFT_MSA, SCALE_MLP, SHIFT_MLP = 0, 1, 3, 4  # the gates are folded into weights at load (trap 18)
WIDTH_BORDERS = ("replicate", "shift")  # stage-5 attention at a tile's W edges, see LTX2VideoDiffusionDecoderModel.denoise


def patchify_pixels(x: Tensor, patch_size: int) -> Tensor:
    """(B, C, F, H, W) -> (B, C p p, F, H/p, W/p), channels ordered (c, w offset, h offset) as the VAE's (spec §2.2)."""
    b, c, f, h, w = x.shape
    x = x.reshape(b, c, f, h // patch_size, patch_size, w // patch_size, patch_size)
    return x.permute(0, 1, 6, 4, 2, 3, 5).reshape(b, c * patch_size**2, f, h // patch_size, w // patch_size)


def unpatchify_pixels(x: Tensor, patch_size: int) -> Tensor:
    """The inverse of `patchify_pixels`: (B, C p p, F, h, w) -> (B, C, F, h p, w p)."""
    b, cpp, f, h, w = x.shape
    x = x.reshape(b, cpp // patch_size**2, patch_size, patch_size, f, h, w)
    return x.permute(0, 1, 4, 5, 3, 6, 2).reshape(b, cpp // patch_size**2, f, h * patch_size, w * patch_size)


class NeighborhoodAttention3D(nn.Module):
    """q = RMS_head(W_q x) / sqrt(d), k = RMS_head(W_k x), both rotated by 3-axis RoPE, then na3d (trap 16, 17).

    Names are diffusers' (`to_q`, `to_k`, `to_v`, `to_out.0`, `norm_q`, `norm_k`); the original files fuse q, k, v
    into one `qkv` and call the rest `proj`, `q_norm`, `k_norm` (loaders/diffusion_decoder_keys.py)."""

    def __init__(self, dim: int, kernel_size: tuple[int, int, int], head_dim: int):
        super().__init__()
        self.heads, self.head_dim, self.kernel_size = dim // head_dim, head_dim, tuple(kernel_size)
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(dim, dim)
        self.to_v = nn.Linear(dim, dim)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim)])
        self.norm_q = nn.RMSNorm(head_dim, eps=1e-6)  # per head, unlike the DiT's norm across heads
        self.norm_k = nn.RMSNorm(head_dim, eps=1e-6)

    def forward(self, x: Tensor, replicate_width: int = 0) -> Tensor:
        """x: (B, T, H, W, dim), each of T, H, W at least its kernel size. Returns the same shape.

        replicate_width > 0 pads W with that many copies of the edge columns first and crops them after, so windows
        at the W border are centred over the copies instead of shifted inward: what ltx-pipelines' default decode
        modes (chunked_eager, chunked_compile) compute at stage 5, whose W slabs edge-replicate their outer halos."""
        if replicate_width:
            x = torch.cat([x[:, :, :, :1].expand(-1, -1, -1, replicate_width, -1), x,
                           x[:, :, :, -1:].expand(-1, -1, -1, replicate_width, -1)], dim=3)
        if any(size < k for size, k in zip(x.shape[1:4], self.kernel_size, strict=True)):
            raise ValueError(f"Neighbourhood attention got a (T, H, W) = {tuple(x.shape[1:4])} grid, smaller than its "
                             f"kernel {self.kernel_size} on some axis; decode through "
                             f"pipelines.diffusion_decoding.diffusion_decode_video, which pads small latents.")
        heads = (*x.shape[:4], self.heads, self.head_dim)  # (B, T, H, W, heads, head_dim)
        q = self.norm_q(self.to_q(x).view(heads)) * self.head_dim**-0.5
        k = self.norm_k(self.to_k(x).view(heads))
        out = neighborhood_attention(apply_rope_3d(q), apply_rope_3d(k), self.to_v(x).view(heads), self.kernel_size)
        if replicate_width:
            out = out[:, :, :, replicate_width:-replicate_width]
        return self.to_out[0](out.flatten(-2))


class SwiGLU(nn.Module):
    """w_down(silu(w_gate x) * w_up x), no biases; hidden = round_up(4 dim, 16). Runs over `TOKENS_PER_CHUNK` tokens
    at a time: pointwise over tokens, so only the peak memory changes (three hidden-width tensors per chunk, not per
    video; 18 GB in bf16 for a whole 121 x 512 x 768 stage 5 at the released widths)."""

    TOKENS_PER_CHUNK = 16384  # ltx-core's and diffusers' tile

    def __init__(self, dim: int):
        super().__init__()
        hidden = (4 * dim + 15) // 16 * 16
        self.w_up = nn.Linear(dim, hidden, bias=False)
        self.w_gate = nn.Linear(dim, hidden, bias=False)
        self.w_down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        flat = x.reshape(-1, x.shape[-1])
        if flat.shape[0] <= self.TOKENS_PER_CHUNK:
            return self.w_down(F.silu(self.w_gate(x)) * self.w_up(x))
        out = torch.empty_like(flat)
        for start in range(0, flat.shape[0], self.TOKENS_PER_CHUNK):
            chunk = flat[start:start + self.TOKENS_PER_CHUNK]
            out[start:start + self.TOKENS_PER_CHUNK] = self.w_down(F.silu(self.w_gate(chunk)) * self.w_up(chunk))
        return out.view(x.shape)


class NABlock(nn.Module):
    """Deterministic-stage block: x + NA(RMS(x)), then x + SwiGLU(RMS(x)); no timestep."""

    def __init__(self, dim: int, kernel_size: tuple[int, int, int], head_dim: int):
        super().__init__()
        self.norm1 = nn.RMSNorm(dim, eps=1e-6)
        self.attn = NeighborhoodAttention3D(dim, kernel_size, head_dim)
        self.norm2 = nn.RMSNorm(dim, eps=1e-6)
        self.mlp = SwiGLU(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class DiffusionNABlock(nn.Module):
    """Stage-5 block. With m_i = shared modulation_i + scale_shift_table[i] (ungated: gates folded at load):
    x += context_proj(ctx);  x += NA(RMS(x)(1 + m_scale_msa) + m_shift_msa);  x += SwiGLU(RMS(x)(1 + m_scale_mlp) + ...)"""

    def __init__(self, dim: int, kernel_size: tuple[int, int, int], context_channels: int, head_dim: int):
        super().__init__()
        self.context_proj = nn.Linear(context_channels, dim)
        self.scale_shift_table = nn.Parameter(torch.zeros(NUM_MODULATION_CHUNKS, dim))
        self.norm1 = nn.RMSNorm(dim, eps=1e-6)
        self.attn = NeighborhoodAttention3D(dim, kernel_size, head_dim)
        self.norm2 = nn.RMSNorm(dim, eps=1e-6)
        self.mlp = SwiGLU(dim)

    def forward(self, x: Tensor, context: Tensor, modulation: Tensor, replicate_width: int) -> Tensor:
        """x, context: (B, T, H, W, C); modulation: (B, 7, C) from the decoder's shared AdaLN; replicate_width: see
        `NeighborhoodAttention3D.forward`."""
        m = (modulation + self.scale_shift_table)[:, :, None, None, None, :]  # (B, 7, 1, 1, 1, C)
        x = x + self.context_proj(context)
        x = x + self.attn(self.norm1(x) * (1 + m[:, SCALE_MSA]) + m[:, SHIFT_MSA], replicate_width)
        return x + self.mlp(self.norm2(x) * (1 + m[:, SCALE_MLP]) + m[:, SHIFT_MLP])


class PixelShuffleUpsample(nn.Module):
    """Linear to prod(stride) * C / reduction channels, then a channels-last pixel shuffle, channel-major (c p1 p2 p3).

    A temporal stride of 2 makes a duplicate first frame: dropped on the tile that holds t = 0 (the causal 1 + 8k
    frame mapping), kept on later temporal tiles, whose first frame is interior (trap 15)."""

    def __init__(self, channels: int, stride: tuple[int, int, int], reduction: int):
        super().__init__()
        self.stride = tuple(stride)
        self.proj = nn.Linear(channels, math.prod(stride) * channels // reduction)

    def forward(self, x: Tensor, drop_leading_frame: bool) -> Tensor:
        b, t, h, w, _ = x.shape
        st, sh, sw = self.stride
        x = self.proj(x).unflatten(-1, (-1, st, sh, sw))  # (B, T, H, W, c, st, sh, sw)
        x = x.permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(b, t * st, h * sh, w * sw, -1)
        return x[:, 1:] if st == 2 and drop_leading_frame else x


class SharedAdaLN(nn.Module):
    """t_emb -> (B, 7, C): proj(silu(t_emb)), one row per modulation chunk (diffusers' `shared_adaln.proj`)."""

    def __init__(self, dim: int, t_emb_dim: int):
        super().__init__()
        self.proj = nn.Linear(t_emb_dim, NUM_MODULATION_CHUNKS * dim)

    def forward(self, t_emb: Tensor) -> Tensor:
        return self.proj(F.silu(t_emb)).unflatten(-1, (NUM_MODULATION_CHUNKS, -1))


class DiffusionDecoder3d(nn.Module):
    """The network under diffusers' `decoder.` prefix: stages 1-4 (`det_stages`, `upsamples`) and stage 5."""

    def __init__(self, latent_channels: int, out_channels: int, patch_size: int, head_dim: int,
                 stage_channels: tuple[int, ...], stage_depths: tuple[int, ...],
                 stage_kernels: tuple[tuple[int, int, int], ...], upsample_strides: tuple[tuple[int, int, int], ...],
                 upsample_channel_reductions: tuple[int, ...], stage5_kernel: tuple[int, int, int], t_emb_dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.conv_in = nn.Linear(latent_channels, stage_channels[0])
        self.det_stages = nn.ModuleList(
            nn.ModuleList(NABlock(stage_channels[s], stage_kernels[s], head_dim) for _ in range(stage_depths[s]))
            for s in range(len(upsample_strides))
        )
        self.upsamples = nn.ModuleList(
            PixelShuffleUpsample(stage_channels[s], stride, reduction)
            for s, (stride, reduction) in enumerate(zip(upsample_strides, upsample_channel_reductions, strict=True))
        )
        self.t_embedder = CombinedTimestepEmbedding(t_emb_dim)
        width = stage_channels[-1]  # the stage-5 width is the context width in diffusers' format
        self.conv_in_x_t = nn.Linear(out_channels * patch_size**2, width)
        self.shared_adaln = SharedAdaLN(width, t_emb_dim)
        self.diff_blocks = nn.ModuleList(
            DiffusionNABlock(width, stage5_kernel, width, head_dim) for _ in range(stage_depths[-1])
        )
        self.norm_out = nn.RMSNorm(width, eps=1e-6)
        self.conv_out = nn.Linear(width, out_channels * patch_size**2)

    def stages_1_to_3(self, latents: Tensor) -> Tensor:
        """Un-normalised latents (B, C, T', H', W') -> stage-4 input (B, T4, H4, W4, C4), the t = 0 frame dropped."""
        x = self.conv_in(latents.permute(0, 2, 3, 4, 1))
        for blocks, upsample in zip(self.det_stages[:-1], self.upsamples[:-1], strict=True):
            for block in blocks:
                x = block(x)
            x = upsample(x, drop_leading_frame=True)
        return x

    def stage_4(self, features: Tensor, drop_leading_frame: bool) -> Tensor:
        """Stage-4 input (a tile of it) -> stage-5 context (B, T5, H5, W5, C5), ghost frames still attached."""
        for block in self.det_stages[-1]:
            features = block(features)
        return self.upsamples[-1](features, drop_leading_frame=drop_leading_frame)

    def predict(self, context: Tensor, x_t: Tensor, t: Tensor, timestep_scale: float, replicate_width: int) -> Tensor:
        """One stage-5 pass: noised pixels x_t (B, 3, F, H, W) at time t (B,) -> the prediction, same shape.

        The timestep embedder sees t * timestep_scale (a 256-channel cos-first sinusoid, trap 19)."""
        t_emb = self.t_embedder(timestep_scale * t, x_t.dtype)
        modulation = self.shared_adaln(t_emb)  # (B, 7, C5)
        x = self.conv_in_x_t(patchify_pixels(x_t, self.patch_size).permute(0, 2, 3, 4, 1))
        for block in self.diff_blocks:
            x = block(x, context, modulation, replicate_width)
        x = self.conv_out(self.norm_out(x)).permute(0, 4, 1, 2, 3)
        return unpatchify_pixels(x, self.patch_size)


class LTX2VideoDiffusionDecoderModel(FromLTX2SingleFileMixin, ModelMixin, ConfigMixin):
    r"""LTX-2.5's diffusion video decoder: normalised video latents (B, 128, F', H', W') -> pixels
    (B, 3, 8(F'-1)+1, 32H', 32W') in [-1, 1] by `pipelines.diffusion_decoding.diffusion_decode_video`.

    It reads the same latents as the convolutional `AutoencoderKLLTX2Video` (which keeps the encoder) and carries the
    per-channel latent statistics as `latents_mean` / `latents_std` (the original files' `per_channel_statistics`).

    Args (diffusers' `LTX2VideoDiffusionDecoderModel` config, same defaults):
        out_channels: pixel channels (3). latent_channels: 128. patch_size: spatial patch of the stage-5 pixels (4).
        scaling_factor: kept for diffusers' config; LTX-2 latents have no global scale, so it must be 1.0.
        decoder_head_dim: NA head width; every stage width is a multiple of it.
        decoder_stage_channels: widths of the five stages; stage s + 1 = stage s // its upsample's channel reduction.
        decoder_stage_depths: blocks per stage (the last: stage-5 diffusion blocks).
        decoder_stage_kernels: (K_t, K_h, K_w) of the four deterministic stages.
        decoder_upsample_strides, decoder_upsample_channel_reductions: the pixel shuffle after each of stages 1-4.
        decoder_stage5_kernel: the diffusion stage's neighbourhood.
        decoder_t_emb_dim: timestep embedding width.
        decoder_timestep_scale_multiplier: t in [0, 1] is multiplied by this before the sinusoid.
        decoder_model_output_type: "v" (velocity) or "x0" (clean pixels).
        decoder_num_inference_steps: Euler steps by default (timesteps linspace(1, 1/N, N)).
        spatial_compression_ratio, temporal_compression_ratio: 32 and 8, the product of the strides (and the patch).
    """

    _no_split_modules = ["NABlock", "DiffusionNABlock"]
    _supports_gradient_checkpointing = False

    @register_to_config
    def __init__(
        self,
        out_channels: int = 3,
        latent_channels: int = 128,
        patch_size: int = 4,
        scaling_factor: float = 1.0,
        decoder_head_dim: int = 64,
        decoder_stage_channels: tuple[int, ...] = (2048, 1024, 512, 512, 256),
        decoder_stage_depths: tuple[int, ...] = (4, 6, 4, 2, 8),
        decoder_stage_kernels: tuple[tuple[int, int, int], ...] = ((3, 7, 7), (3, 7, 7), (3, 5, 5), (3, 5, 5)),
        decoder_upsample_strides: tuple[tuple[int, int, int], ...] = ((1, 2, 2), (2, 1, 1), (2, 2, 2), (2, 2, 2)),
        decoder_upsample_channel_reductions: tuple[int, ...] = (2, 2, 1, 2),
        decoder_stage5_kernel: tuple[int, int, int] = (11, 11, 11),
        decoder_t_emb_dim: int = 384,
        decoder_timestep_scale_multiplier: float = 1000.0,
        decoder_model_output_type: str = "x0",
        decoder_num_inference_steps: int = 1,
        spatial_compression_ratio: int = 32,
        temporal_compression_ratio: int = 8,
    ):
        super().__init__()
        strides = tuple(tuple(s) for s in decoder_upsample_strides)
        check_decoder_config(
            patch_size, scaling_factor, decoder_head_dim, tuple(decoder_stage_channels), tuple(decoder_stage_depths),
            tuple(tuple(k) for k in decoder_stage_kernels), strides, tuple(decoder_upsample_channel_reductions),
            decoder_model_output_type, decoder_num_inference_steps, spatial_compression_ratio,
            temporal_compression_ratio,
        )
        self.decoder = DiffusionDecoder3d(
            latent_channels, out_channels, patch_size, decoder_head_dim, tuple(decoder_stage_channels),
            tuple(decoder_stage_depths), tuple(tuple(k) for k in decoder_stage_kernels), strides,
            tuple(decoder_upsample_channel_reductions), tuple(decoder_stage5_kernel), decoder_t_emb_dim,
        )
        self.register_buffer("latents_mean", torch.zeros(latent_channels))
        self.register_buffer("latents_std", torch.ones(latent_channels))

    @property
    def trailing_ghost_latent_frames(self) -> int:
        """Copies of the last latent frame appended before stage 1 and cropped before stage 5: 2 K_t(stage 1) // 2,
        so NATTEN's inward-shifted windows at the video's end see real content (trap 15)."""
        return self.config.decoder_stage_kernels[0][0] // 2 * 2

    def denoise(self, context: Tensor, x_t: Tensor, timesteps: Tensor, width_border: str = "replicate") -> Tensor:
        """Euler from timesteps[:, 0] to 0 on one tile: context (B, T5, H5, W5, C5), x_t (B, 3, F, H, W) noise,
        timesteps (B, N) decreasing. Returns the pixels (B, 3, F, H, W) in x_t's dtype.

        Steps k < N-1: x <- x - (t_k - t_k+1) v (float32, stored in x_t's dtype); the last step ends at t = 0, or for
        an x0 model returns its prediction. An x0 prediction becomes v = (x - x0) / t (spec §4.3, trap 14).

        width_border: the stage-5 attention at the tile's W edges. "replicate" (ltx-pipelines 1.2.0's default decode
        modes: windows centred over copies of the edge columns) or "shift" (NATTEN on the whole tile, windows shifted
        inward: ltx-core's combined_compile mode and diffusers 0.42.1). They differ only within K_w // 2 tokens
        (K_w // 2 * patch_size pixels) of a W edge, and in what attention mixes in from there."""
        if width_border not in WIDTH_BORDERS:
            raise ValueError(f"width_border={width_border!r}; expected one of {WIDTH_BORDERS}.")
        pad = self.config.decoder_stage5_kernel[2] // 2 if width_border == "replicate" else 0
        scale, output_type = self.config.decoder_timestep_scale_multiplier, self.config.decoder_model_output_type

        def euler(x: Tensor, prediction: Tensor, t_now: Tensor, t_next: Tensor) -> Tensor:
            x32, t_now = x.float(), t_now.float().view(-1, 1, 1, 1, 1)
            velocity = prediction if output_type == "v" else (x32 - prediction) / t_now
            return (x32 - (t_now - t_next.float().view(-1, 1, 1, 1, 1)) * velocity).to(x.dtype)

        x = x_t
        for k in range(timesteps.shape[1] - 1):
            x = euler(x, self.decoder.predict(context, x, timesteps[:, k], scale, pad).float(), timesteps[:, k],
                      timesteps[:, k + 1])
        prediction = self.decoder.predict(context, x, timesteps[:, -1], scale, pad)
        if output_type == "x0":
            return prediction
        return euler(x, prediction.float(), timesteps[:, -1], torch.zeros_like(timesteps[:, -1]))

    def decode(self, *args, **kwargs):
        raise TypeError("LTX2VideoDiffusionDecoderModel draws noise and may tile, so it decodes through "
                        "ltx2_diffusers.pipelines.diffusion_decoding.diffusion_decode_video(decoder, normalised "
                        "latents, generator), not through vae.decode.")


def check_decoder_config(patch_size: int, scaling_factor: float, head_dim: int, channels: tuple[int, ...],
                         depths: tuple[int, ...], kernels: tuple, strides: tuple, reductions: tuple[int, ...],
                         output_type: str, num_steps: int, spatial_ratio: int, temporal_ratio: int) -> None:
    """Raise ValueError naming the key when a diffusion-decoder config cannot build a working decoder."""
    if output_type not in ("x0", "v"):
        raise ValueError(f"decoder_model_output_type={output_type!r}; expected 'v' (velocity) or 'x0' (clean pixels).")
    if num_steps < 1:
        raise ValueError(f"decoder_num_inference_steps={num_steps}; the decoder needs at least 1 Euler step.")
    if scaling_factor != 1.0:
        raise ValueError(f"scaling_factor={scaling_factor}; LTX-2 latents are normalised per channel by latents_mean "
                         f"and latents_std, with no global scale, so it must be 1.0.")
    num_stages = len(channels)
    if not (len(depths) == num_stages and len(kernels) == len(strides) == len(reductions) == num_stages - 1):
        raise ValueError(f"decoder_stage_channels and decoder_stage_depths need one entry per stage ({num_stages}), "
                         f"decoder_stage_kernels, decoder_upsample_strides and decoder_upsample_channel_reductions one "
                         f"per deterministic stage ({num_stages - 1}); got {len(depths)}, {len(kernels)}, "
                         f"{len(strides)}, {len(reductions)}.")
    for s, reduction in enumerate(reductions):
        if channels[s] // reduction != channels[s + 1]:
            raise ValueError(f"decoder_stage_channels[{s + 1}]={channels[s + 1]} must be decoder_stage_channels[{s}] "
                             f"// decoder_upsample_channel_reductions[{s}] = {channels[s] // reduction}.")
    if head_dim % 8 or any(c % head_dim for c in channels):
        raise ValueError(f"decoder_head_dim={head_dim} must be a multiple of 8 that divides every stage width "
                         f"{channels}.")
    ratio_t, ratio_h, ratio_w = (math.prod(s[axis] for s in strides) for axis in range(3))
    if (ratio_t, ratio_h * patch_size, ratio_w * patch_size) != (temporal_ratio, spatial_ratio, spatial_ratio):
        raise ValueError(f"The upsample strides {strides} and patch_size={patch_size} scale by (T, H, W) = "
                         f"{(ratio_t, ratio_h * patch_size, ratio_w * patch_size)}, but the config says "
                         f"temporal_compression_ratio={temporal_ratio}, spatial_compression_ratio={spatial_ratio}.")
