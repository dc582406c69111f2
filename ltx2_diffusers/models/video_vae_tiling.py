"""Tiled decode and encode for the LTX-2 video VAE, with ltx-core 1.0.0's tiles, ramps and causal offsets (spec §2.6).

Same tiles and blend weights as the reference, computed without its waste: the reference builds every tile's full 5-D
blend mask on the CPU, copies it to the device and accumulates a 3-channel weight tensor beside the frames. The tile
grid is a product of per-axis intervals, so the total weight at (t, h, w) is T(t) * H(h) * W(w), a product of three
1-D sums; we divide each 1-D mask by its sum once, and a tile's contribution is its pixels times three small vectors.
Accumulation runs in float32 on the tile's device; only two temporal groups of frames are alive at a time.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor


@dataclass(frozen=True)
class VideoTilingConfig:
    """Tile sizes in pixel units. Defaults = ltx-core's `TilingConfig.default()` (512 px / 64 px, 64 / 24 frames).

    auto_min_pixels: with tiling on "auto" (the default), clips of more than this many output pixels (F * H * W) are
    tiled; the default is one full tile (64 frames of 512 x 512), so a clip that fits in one tile decodes in one call.
    """

    tile_size_pixels: int = 512
    tile_overlap_pixels: int = 64
    tile_size_frames: int = 64
    tile_overlap_frames: int = 24
    auto_min_pixels: int = 64 * 512 * 512

    def __post_init__(self):
        px, opx, fr, ofr = (
            self.tile_size_pixels,
            self.tile_overlap_pixels,
            self.tile_size_frames,
            self.tile_overlap_frames,
        )
        if px < 64 or px % 32 or opx % 32 or not 0 <= opx < px:
            raise ValueError(
                f"tile_size_pixels={px}, tile_overlap_pixels={opx}: the tile must be >= 64 and a multiple of 32, the "
                "overlap a multiple of 32 smaller than the tile (ltx-core's default is 512 / 64)."
            )
        if fr < 16 or fr % 8 or ofr % 8 or not 0 <= ofr < fr:
            raise ValueError(
                f"tile_size_frames={fr}, tile_overlap_frames={ofr}: the tile must be >= 16 and a multiple of 8, the "
                "overlap a multiple of 8 smaller than the tile (ltx-core's default is 64 / 24)."
            )


class Interval(NamedTuple):
    start: int
    end: int
    left_ramp: int
    right_ramp: int


class AxisTile(NamedTuple):
    """One tile along one axis: where it is cut from the input, where it lands in the output, its output weights."""

    source: slice
    target: slice
    weight: Tensor  # (target length,), float32


def split_symmetric(length: int, size: int, overlap: int) -> list[Interval]:
    """Tiles of `size` starting every `size - overlap`, the last one clipped to `length`; ramps on inner edges."""
    if length <= size:
        return [Interval(0, length, 0, 0)]
    count = (length + size - 2 * overlap - 1) // (size - overlap)
    starts = [i * (size - overlap) for i in range(count)]
    return [
        Interval(s, length if i == count - 1 else s + size, 0 if i == 0 else overlap, 0 if i == count - 1 else overlap)
        for i, s in enumerate(starts)
    ]


def split_latent_frames_causal(length: int, size: int, overlap: int) -> list[Interval]:
    """Decode's temporal split: every tile after the first starts one latent frame earlier, its left ramp one longer.

    The first latent frame of a tile decodes to a single pixel frame (the causal anchor), so the extra frame gives each
    later tile the context it needs (spec §2.6).
    """
    tiles = split_symmetric(length, size, overlap)
    if len(tiles) == 1:
        return tiles
    return [tiles[0]] + [Interval(t.start - 1, t.end, t.left_ramp + 1, t.right_ramp) for t in tiles[1:]]


def split_pixel_frames_causal(length: int, size: int, overlap: int) -> list[Interval]:
    """Encode's temporal split (in frames): every tile but the last takes one more frame (8k+1 frames), no right ramp."""
    tiles = split_symmetric(length, size, overlap)
    if len(tiles) == 1:
        return tiles
    last = len(tiles) - 1
    return [Interval(t.start, t.end + (i < last), t.left_ramp, 0) for i, t in enumerate(tiles)]


def trapezoid_mask(length: int, left_ramp: int, right_ramp: int, left_starts_at_zero: bool = False) -> Tensor:
    """Ones with linear ramps: fade-in linspace(0,1,n+2)[1:-1] (or linspace(0,1,n+1)[:-1] from 0), fade-out mirrored."""
    left_ramp, right_ramp = max(0, min(left_ramp, length)), max(0, min(right_ramp, length))
    mask = torch.ones(length)
    if left_ramp > 0:
        fade_in = torch.linspace(0.0, 1.0, left_ramp + (1 if left_starts_at_zero else 2))[:-1]
        mask[:left_ramp] *= fade_in if left_starts_at_zero else fade_in[1:]
    if right_ramp > 0:
        mask[-right_ramp:] *= torch.linspace(1.0, 0.0, right_ramp + 2)[1:-1]
    return mask.clamp_(0, 1)


def rectangle_mask(length: int, left_zeros: int, right_zeros: int) -> Tensor:
    """Ones, with the first `left_zeros` and last `right_zeros` entries set to 0 (tiled encode drops seam latents)."""
    mask = torch.ones(length)
    if left_zeros > 0:
        mask[:left_zeros] = 0
    if right_zeros > 0:
        mask[-right_zeros:] = 0
    return mask


def _normalise(tiles: list[tuple[slice, slice, Tensor]], length: int, device: torch.device) -> list[AxisTile]:
    """Divide each tile's 1-D weights by the summed weight of all tiles at each output position."""
    total = torch.zeros(length)
    for _, target, weight in tiles:
        total[target] += weight
    total = total.clamp(min=1e-8)
    return [AxisTile(source, target, (weight / total[target]).to(device)) for source, target, weight in tiles]


def decode_tile_plan(
    latent_shape: tuple[int, ...], config: VideoTilingConfig, scale_t: int, scale_s: int, device: torch.device
) -> tuple[list[AxisTile], list[AxisTile], list[AxisTile]]:
    """(temporal, height, width) tiles of a latent (B, C, F, H, W), targets in output frames / pixels."""
    _, _, frames, height, width = latent_shape
    long_side = max(height, width)
    size, overlap = config.tile_size_pixels // scale_s, config.tile_overlap_pixels // scale_s
    spatial = []
    for length in (height, width):
        # the shorter axis gets proportionally shorter tiles (ltx-core's VideoDecoder._prepare_tiles)
        axis_size = max(max(2, overlap + 1), round(size * length / long_side))
        tiles = []
        for t in split_symmetric(length, axis_size, overlap):
            target = slice(t.start * scale_s, t.end * scale_s)
            weight = trapezoid_mask((t.end - t.start) * scale_s, t.left_ramp * scale_s, t.right_ramp * scale_s)
            tiles.append((slice(t.start, t.end), target, weight))
        spatial.append(_normalise(tiles, length * scale_s, device))
    temporal = []
    num_frames = (frames - 1) * scale_t + 1
    size_t, overlap_t = config.tile_size_frames // scale_t, config.tile_overlap_frames // scale_t
    for t in split_latent_frames_causal(frames, size_t, overlap_t):
        target = slice(t.start * scale_t, 1 + (t.end - 1) * scale_t)
        left = 0 if t.left_ramp == 0 else 1 + (t.left_ramp - 1) * scale_t
        weight = trapezoid_mask(target.stop - target.start, left, t.right_ramp * scale_t, left_starts_at_zero=True)
        temporal.append((slice(t.start, t.end), target, weight))
    return _normalise(temporal, num_frames, device), spatial[0], spatial[1]


def tiled_decode_chunks(
    decode_tile: Callable[[Tensor], Tensor], latents: Tensor, config: VideoTilingConfig, scale_t: int, scale_s: int
) -> Iterator[Tensor]:
    """Yield (B, C_out, T_i, H, W) float32 chunks of decoded frames whose concatenation is the clip.

    Chunk boundaries are ltx-core's: each chunk ends where the next temporal tile starts. At most two temporal
    groups of float32 frames are alive at once; a chunk is a view of one of them (cast it, or copy it out).
    """
    temporal, rows, cols = decode_tile_plan(tuple(latents.shape), config, scale_t, scale_s, latents.device)
    height, width = rows[-1].target.stop, cols[-1].target.stop
    previous, previous_start = None, 0
    for t in temporal:
        group = None  # (B, C_out, frames of this temporal tile, H, W), float32
        for r in rows:
            for c in cols:
                tile = decode_tile(latents[:, :, t.source, r.source, c.source])
                expected = (
                    t.target.stop - t.target.start,
                    r.target.stop - r.target.start,
                    c.target.stop - c.target.start,
                )
                if tuple(tile.shape[2:]) != expected:
                    raise ValueError(f"a decoded tile has shape {tuple(tile.shape)}, expected (..., {expected})")
                if group is None:
                    group = tile.new_zeros(
                        (tile.shape[0], tile.shape[1], expected[0], height, width), dtype=torch.float32
                    )
                weight = t.weight[:, None, None] * r.weight[None, :, None] * c.weight[None, None, :]
                group[:, :, :, r.target, c.target].addcmul_(tile, weight)
                del tile
        if previous is not None:
            done = t.target.start - previous_start  # frames no later tile reaches
            group[:, :, : previous.shape[2] - done] += previous[:, :, done:]
            yield previous[:, :, :done]
        previous, previous_start = group, t.target.start
    yield previous


def tiled_encode(
    encode_tile: Callable[[Tensor], Tensor], video: Tensor, config: VideoTilingConfig, scale_t: int, scale_s: int
) -> Tensor:
    """Encode (B, 3, F, H, W) tile by tile with ltx-core's `tiled_encode` tiles; returns the averaged moments.

    Overlapping latents are averaged with 0/1 masks: at a spatial seam the right tile drops overlap/32 - 1 latents and
    the left tile 1; in time, every tile but the last gets one extra frame and a later tile drops the latents that
    its left overlap covers.
    """
    if config.tile_overlap_pixels < 2 * scale_s or config.tile_overlap_frames < 2 * scale_t:
        raise ValueError(
            f"tiled encode needs tile_overlap_pixels >= {2 * scale_s} and tile_overlap_frames >= {2 * scale_t} "
            f"(got {config.tile_overlap_pixels}, {config.tile_overlap_frames}): each seam drops latents whose "
            "receptive field touches a tile border. Raise the overlaps with enable_tiling(...)."
        )
    _, _, frames, height, width = video.shape
    spatial = []
    for length in (height, width):
        tiles = []
        for t in split_symmetric(length, config.tile_size_pixels, config.tile_overlap_pixels):
            target = slice(t.start // scale_s, t.end // scale_s)
            left, right = max(0, t.left_ramp // scale_s - 1), 0 if t.right_ramp == 0 else 1
            tiles.append((slice(t.start, t.end), target, rectangle_mask(target.stop - target.start, left, right)))
        spatial.append(_normalise(tiles, length // scale_s, video.device))
    tiles = []
    for t in split_pixel_frames_causal(frames, config.tile_size_frames, config.tile_overlap_frames):
        target = slice(t.start // scale_t, (t.end - 1) // scale_t + 1)
        left = 0 if t.left_ramp == 0 else 1 + (t.left_ramp - 1) // scale_t
        tiles.append((slice(t.start, t.end), target, rectangle_mask(target.stop - target.start, left, 0)))
    temporal = _normalise(tiles, (frames - 1) // scale_t + 1, video.device)
    out = None
    for t in temporal:
        for r in spatial[0]:
            for c in spatial[1]:
                moments = encode_tile(video[:, :, t.source, r.source, c.source])
                if out is None:
                    shape = (
                        moments.shape[0],
                        moments.shape[1],
                        temporal[-1].target.stop,
                        *(s[-1].target.stop for s in spatial),
                    )
                    out = moments.new_zeros(shape, dtype=torch.float32)
                weight = t.weight[:, None, None] * r.weight[None, :, None] * c.weight[None, None, :]
                out[:, :, t.target, r.target, c.target].addcmul_(moments, weight)
    return out.to(video.dtype)
