"""Decoding with LTX-2.5's diffusion video decoder (spec §4.3): normalised latents -> pixels in [-1, 1].

The algorithm, in the reference's order (ltx-core 1.2.0 `DiffusionVideoDecoder._decode_pixels`):
1. Un-normalise; pad latents smaller than every stage's kernel (time: repeat the last frame; H, W: edge-replicate
   both sides), cropped off the pixels at the end.
2. Append the trailing ghost frames (copies of the last latent frame) and run stages 1-3 on the whole volume.
3. Timesteps linspace(1, 1/N, N); one `randn` of the whole (padded) pixel video in the latent dtype from the
   pipeline's generator, after diffusion drew from it (trap 14). A 1-step x0 decoder draws per tile instead.
4. Per tile of the stage-4 grid (one tile untiled): stage 4 (the t = 0 duplicate frame dropped only on the origin
   tile), the ghost frames cropped, the tile's slice of the noise, N Euler steps; tiles blend with trapezoid masks.
"""

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor

from ..models.autoencoder_kl_ltx2 import denormalize_latents
from ..models.diffusion_video_decoder import WIDTH_BORDERS, LTX2VideoDiffusionDecoderModel


@dataclass(frozen=True)
class DiffusionDecodeTiling:
    """Tile sizes and overlaps in output frames and pixels, ltx-core's `TileSizeConfig`; a size of 0 leaves that axis
    untiled. Only stages 4 and 5 run per tile. Sizes and overlaps are multiples of the stage-4 cell (2 frames, 32 px
    for the released decoder), overlaps at least the stages' receptive halo (`minimum_overlaps`)."""

    frames: int = 0
    frames_overlap: int = 0
    height: int = 0
    height_overlap: int = 0
    width: int = 0
    width_overlap: int = 0


@dataclass(frozen=True)
class _Interval:
    """[start, end) on one axis, with the lengths of the blend ramps at each side."""

    start: int
    end: int
    left_ramp: int
    right_ramp: int


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def minimum_latent_shape(config) -> tuple[int, int, int]:
    """Smallest latent (T', H', W') whose every stage sees at least its kernel (smaller latents are padded)."""
    kernels = [tuple(k) for k in config.decoder_stage_kernels] + [tuple(config.decoder_stage5_kernel)]
    cumulative, mins = (1, 1, 1), [1, 1, 1]
    for stage, kernel in enumerate(kernels):
        mins = [max(m, _ceil_div(k, c)) for m, k, c in zip(mins, kernel, cumulative, strict=True)]
        if stage < len(config.decoder_upsample_strides):
            cumulative = tuple(c * s for c, s in zip(cumulative, config.decoder_upsample_strides[stage], strict=True))
    return tuple(mins)


def _stage4_cell(config) -> tuple[int, int, int]:
    """Output frames / pixels per stage-4 grid cell: the last stride, times the patch in space."""
    st, sh, sw = config.decoder_upsample_strides[-1]
    return st, sh * config.patch_size, sw * config.patch_size


def minimum_overlaps(config) -> tuple[int, int]:
    """(frames, pixels): the smallest tile overlaps that cover stages 4 and 5's receptive halo (ltx-core's rule)."""
    k4, k5, stride = config.decoder_stage_kernels[-1], config.decoder_stage5_kernel, config.decoder_upsample_strides[-1]
    depth4, depth5 = config.decoder_stage_depths[-2], config.decoder_stage_depths[-1]
    halos = [(depth4 * (k4[a] // 2), _ceil_div(depth5 * (k5[a] // 2), stride[a])) for a in range(3)]
    cell = _stage4_cell(config)
    frames = _ceil_div(max(halos[0]) * cell[0], 8) * 8
    pixels = _ceil_div(max(*halos[1], *halos[2]) * cell[1], 32) * 32
    return frames, pixels


def _split_axis(length: int, size: int, overlap: int, min_size: int) -> list[_Interval]:
    """Tiles of `size` cells overlapping by `overlap` over [0, length); a short last tile grows left to `min_size`."""
    if length < min_size or length <= size:
        return [_Interval(0, length, 0, 0)]
    step = size - overlap
    count = (length + size - 2 * overlap - 1) // step
    tiles = [_Interval(i * step, i * step + size, overlap if i else 0, overlap) for i in range(count - 1)]
    tiles.append(_Interval((count - 1) * step, length, overlap, 0))
    last, previous = tiles[-1], tiles[-2]
    if last.end - last.start < min_size:
        start = last.end - min_size
        tiles[-2] = _Interval(previous.start, previous.end, previous.left_ramp, previous.end - start)
        tiles[-1] = _Interval(start, last.end, previous.end - start, 0)
    return tiles


def _to_output(interval: _Interval, scale: int, causal: bool) -> _Interval:
    """A stage-4 interval in output units: x scale; a causal x2 time axis loses the t = 0 duplicate frame, so every
    tile ends one frame early and tiles after the first start one frame early (same length as their cells x 2)."""
    start, end = interval.start * scale, interval.end * scale
    if causal and scale == 2:
        end -= 1
        start -= 1 if interval.start else 0
    return _Interval(start, end, interval.left_ramp * scale, interval.right_ramp * scale)


def trapezoid_mask(length: int, left_ramp: int, right_ramp: int) -> Tensor:
    """(length,) float32 blend weights: i / (r + 1) up the left ramp, down likewise on the right, 1 between, so the
    ramps of two tiles overlapping by r sum to 1."""
    mask = torch.ones(length)
    left_ramp, right_ramp = min(left_ramp, length), min(right_ramp, length)
    if left_ramp:
        mask[:left_ramp] *= torch.linspace(0.0, 1.0, left_ramp + 2)[1:-1]
    if right_ramp:
        mask[-right_ramp:] *= torch.linspace(1.0, 0.0, right_ramp + 2)[1:-1]
    return mask


@dataclass(frozen=True)
class _Tile:
    cells: tuple[slice, slice, slice]  # on the stage-4 grid (content, no ghost frames)
    pixels: tuple[slice, slice, slice]  # in the (padded) output video
    masks: tuple[Tensor, Tensor, Tensor]


def _tile_schedule(config, stage4_shape: tuple[int, int, int], tiling: DiffusionDecodeTiling | None) -> list[_Tile]:
    """Tiles in (time, height, width) order, time slowest."""
    cell = _stage4_cell(config)
    if tiling is None:
        whole = _Interval(0, 0, 0, 0)
        axes = [[(whole, whole)]] * 3
    else:
        min_frames, min_pixels = minimum_overlaps(config)
        k4, k5, stride = config.decoder_stage_kernels[-1], config.decoder_stage5_kernel, config.decoder_upsample_strides[-1]
        min_cells = [max(k4[a], _ceil_div(k5[a], stride[a])) for a in range(3)]
        axes = []
        settings = ((tiling.frames, tiling.frames_overlap, min_frames, "frames"),
                    (tiling.height, tiling.height_overlap, min_pixels, "height"),
                    (tiling.width, tiling.width_overlap, min_pixels, "width"))
        for axis, (size, overlap, min_overlap, name) in enumerate(settings):
            if size == 0:
                axes.append([(_Interval(0, 0, 0, 0),) * 2])
                continue
            check_tiling_axis(name, size, overlap, cell[axis], min_overlap)
            cells = _split_axis(stage4_shape[axis], max(max(2, overlap // cell[axis] + 1), size // cell[axis]),
                                overlap // cell[axis], min_cells[axis])
            axes.append([(c, _to_output(c, cell[axis], causal=axis == 0)) for c in cells])
    tiles = []
    for per_axis in itertools.product(*axes):
        untiled = [c.end == 0 for c, _ in per_axis]
        tiles.append(_Tile(
            tuple(slice(None) if u else slice(c.start, c.end) for u, (c, _) in zip(untiled, per_axis, strict=True)),
            tuple(slice(None) if u else slice(p.start, p.end) for u, (_, p) in zip(untiled, per_axis, strict=True)),
            tuple(torch.ones(1) if u else trapezoid_mask(p.end - p.start, p.left_ramp, p.right_ramp)
                  for u, (_, p) in zip(untiled, per_axis, strict=True)),
        ))
    return tiles


def check_tiling_axis(name: str, size: int, overlap: int, cell: int, min_overlap: int) -> None:
    """Raise ValueError unless a tiled axis's size and overlap fit the decoder's stage-4 grid and halo."""
    if size < 2 * cell or size % cell or overlap % cell or not 0 <= overlap < size:
        raise ValueError(f"Diffusion-decoder tiling {name}={size} with overlap {overlap}: sizes and overlaps must be "
                         f"multiples of {cell} (one stage-4 cell), the size at least {2 * cell} and larger than the "
                         f"overlap.")
    if overlap < min_overlap:
        raise ValueError(f"Diffusion-decoder tiling {name} overlap {overlap} is below {min_overlap}, the receptive "
                         f"halo of stages 4 and 5; tiles would not agree where they meet. Use at least {min_overlap}.")


def _resize(x: Tensor, dim: int, size: int, symmetric: bool) -> tuple[Tensor, int]:
    """Pad (edge copies) or crop `dim` to `size`: at the end, or split both sides (the front gets the smaller half)
    when `symmetric`. Returns the tensor and how much was added (or removed) in front."""
    length = x.shape[dim]
    before = (abs(size - length) // 2) if symmetric else 0
    if length > size:
        return x.narrow(dim, before, size), before
    if length == size:
        return x, 0
    after = size - length - before
    parts = [x.narrow(dim, 0, 1).expand(*x.shape[:dim], before, *x.shape[dim + 1:])] if before else []
    parts += [x, x.narrow(dim, length - 1, 1).expand(*x.shape[:dim], after, *x.shape[dim + 1:])]
    return torch.cat(parts, dim=dim), before


def _scale_by_masks(x: Tensor, masks: tuple[Tensor, Tensor, Tensor]) -> Tensor:
    """x (B, C, F, H, W) times the separable float32 masks of F, H and W."""
    for axis, mask in zip((2, 3, 4), masks, strict=True):
        x = x * mask.to(x.device).view([-1 if a == axis else 1 for a in range(5)])
    return x


def diffusion_decode_video(
    decoder: LTX2VideoDiffusionDecoderModel, latents: Tensor, generator: torch.Generator | None = None, *,
    num_inference_steps: int | None = None, tiling: DiffusionDecodeTiling | None = None,
    width_border: str = "replicate",
) -> Tensor:
    """Normalised latents (B, C, F', H', W') -> pixels (B, 3, 8(F'-1)+1, 32H', 32W') in about [-1, 1], in the
    decoder's dtype. `generator`: the pipeline's, after diffusion (the reference continues that stream).

    width_border: "replicate" reproduces ltx-pipelines 1.2.0's default decode (its chunked modes edge-replicate W at
    stage 5); "shift" its combined_compile mode and diffusers 0.42.1 (NATTEN's inward-shifted windows). See
    `LTX2VideoDiffusionDecoderModel.denoise`."""
    config = decoder.config
    if latents.ndim != 5 or latents.shape[1] != config.latent_channels:
        raise ValueError(f"latents of shape {tuple(latents.shape)}; the diffusion decoder takes (B, "
                         f"{config.latent_channels}, F', H', W').")
    if width_border not in WIDTH_BORDERS:
        raise ValueError(f"width_border={width_border!r}; expected one of {WIDTH_BORDERS}.")
    steps = config.decoder_num_inference_steps if num_inference_steps is None else num_inference_steps
    if steps < 1:
        raise ValueError(f"num_inference_steps={steps}; the diffusion decoder needs at least 1 step.")
    net, dtype, device = decoder.decoder, decoder.dtype, latents.device
    ratio_t, ratio_s = config.temporal_compression_ratio, config.spatial_compression_ratio
    content = (ratio_t * (latents.shape[2] - 1) + 1, ratio_s * latents.shape[3], ratio_s * latents.shape[4])

    # 1. Un-normalise, pad up to the smallest latent every stage can attend over
    z = denormalize_latents(latents.to(dtype), decoder.latents_mean, decoder.latents_std)
    min_t, min_h, min_w = minimum_latent_shape(config)
    z, _ = _resize(z, 2, max(min_t, z.shape[2]), symmetric=False)
    z, pad_h = _resize(z, 3, max(min_h, z.shape[3]), symmetric=True)
    z, pad_w = _resize(z, 4, max(min_w, z.shape[4]), symmetric=True)
    video_shape = (z.shape[0], config.out_channels, ratio_t * (z.shape[2] - 1) + 1, ratio_s * z.shape[3],
                   ratio_s * z.shape[4])

    # 2. Ghost frames, stages 1-3 on the whole volume; the tile schedule on the stage-4 grid of the content
    ghosts = decoder.trailing_ghost_latent_frames
    features = net.stages_1_to_3(_resize(z, 2, z.shape[2] + ghosts, symmetric=False)[0])
    stage4_frames = z.shape[2]
    for stride in config.decoder_upsample_strides[:-1]:
        stage4_frames = stage4_frames * stride[0] - (1 if stride[0] == 2 else 0)
    tiles = _tile_schedule(config, (stage4_frames, *features.shape[2:4]), tiling)

    # 3. Timesteps and the noise of the whole video
    timesteps = torch.linspace(1.0, 1.0 / steps, steps).to(device)[None].expand(z.shape[0], -1)
    draw_per_tile = steps == 1 and config.decoder_model_output_type == "x0"
    noise_device = generator.device if generator is not None else device
    noise = None if draw_per_tile else torch.randn(
        video_shape, dtype=dtype, generator=generator, device=noise_device).to(device)

    # 4. Tiles, blended group by group along time (the reference's order of float additions)
    complementary = all(_complementary(tiles, axis, video_shape[axis + 2]) for axis in range(3))
    accumulate = torch.float16 if dtype == torch.bfloat16 else dtype
    video = torch.zeros(video_shape, dtype=accumulate, device=device)
    weights = None if complementary else torch.zeros_like(video)
    stride_t = config.decoder_upsample_strides[-1][0]
    for _, group in itertools.groupby(tiles, key=lambda tile: (tile.pixels[0].start, tile.pixels[0].stop)):
        group = list(group)
        frames = slice(*group[0].pixels[0].indices(video_shape[2])[:2])
        buffer = torch.zeros((*video_shape[:2], frames.stop - frames.start, *video_shape[3:]), dtype=accumulate,
                             device=device)
        group_weights = None if complementary else torch.zeros_like(buffer)
        for tile in group:
            t0, t1, _ = tile.cells[0].indices(stage4_frames)
            origin, trailing = t0 == 0, t1 == stage4_frames
            cells = (slice(t0, features.shape[1] if trailing else t1), tile.cells[1], tile.cells[2])
            cell_h = len(range(*tile.cells[1].indices(features.shape[2])))
            cell_w = len(range(*tile.cells[2].indices(features.shape[3])))
            context = net.stage_4(features[:, cells[0], cells[1], cells[2]], drop_leading_frame=origin)
            canvas_t = (t1 - t0) * stride_t - (1 if origin and stride_t == 2 else 0)
            if trailing:  # crop the ghost frames, keeping at least the stage-5 kernel
                canvas_t = max(canvas_t, config.decoder_stage5_kernel[0])
                kept = max(context.shape[1] - ghosts * ratio_t, 1)
                context = context[:, :min(context.shape[1], max(kept, config.decoder_stage5_kernel[0]))]
            canvas = (canvas_t, *(c * s * config.patch_size for c, s in zip(
                (cell_h, cell_w), config.decoder_upsample_strides[-1][1:], strict=True)))
            tile_shape = [len(range(*p.indices(n))) for p, n in zip(tile.pixels, video_shape[2:], strict=True)]
            if noise is None:
                x_t = torch.randn((*video_shape[:2], *canvas), dtype=dtype, generator=generator,
                                  device=noise_device).to(device)
            else:  # the tile's slice, edge-extended to its stage-5 canvas as the latents were padded
                x_t = noise[:, :, tile.pixels[0], tile.pixels[1], tile.pixels[2]]
                for dim, size in zip((2, 3, 4), canvas, strict=True):
                    x_t = _resize(x_t, dim, size, symmetric=dim != 2)[0]
            pixels = decoder.denoise(context, x_t, timesteps, width_border)
            for dim, size in zip((2, 3, 4), tile_shape, strict=True):
                pixels = _resize(pixels, dim, size, symmetric=dim != 2)[0]
            local = (slice(None), slice(None), slice(0, tile_shape[0]) if tile.pixels[0] == slice(None) else
                     slice(tile.pixels[0].start - frames.start, tile.pixels[0].stop - frames.start),
                     tile.pixels[1], tile.pixels[2])
            buffer[local] += _scale_by_masks(pixels.to(accumulate), tile.masks)
            if group_weights is not None:
                group_weights[local] += _scale_by_masks(torch.ones_like(pixels, dtype=accumulate), tile.masks)
        video[:, :, frames] += buffer
        if weights is not None:
            weights[:, :, frames] += group_weights

    # 5. Crop the padding; divide by the blend weights where the masks do not sum to 1
    crop = (slice(None), slice(None), slice(0, content[0]), slice(pad_h * ratio_s, pad_h * ratio_s + content[1]),
            slice(pad_w * ratio_s, pad_w * ratio_s + content[2]))
    out = video[crop].to(dtype)
    if weights is not None:
        out = out / weights[crop].clamp(min=max(1e-8, torch.finfo(weights.dtype).tiny))
    return out.to(dtype)


def _complementary(tiles: list[_Tile], axis: int, length: int) -> bool:
    """Whether the distinct 1-D masks of `axis` sum to 1 everywhere (then no weight buffer is needed)."""
    total = torch.zeros(length)
    for pixels, mask in {(t.pixels[axis].start, t.pixels[axis].stop): t.masks[axis] for t in tiles}.items():
        total[slice(*pixels)] += mask
    return bool(torch.allclose(total, torch.ones(length), atol=1e-5, rtol=0.0))


__all__ = ["DiffusionDecodeTiling", "diffusion_decode_video", "minimum_latent_shape", "minimum_overlaps",
           "trapezoid_mask"]
