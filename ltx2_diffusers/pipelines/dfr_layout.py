"""The layout arithmetic of the DFR pipeline (ltx-pipelines 1.2.0's `dfr_layout`; spec 1.2 §6.1, row `dfr_pipeline`).

Pure functions of frame counts, no tensors but the stitch:
1. The keyframe canvas: `num_frames - 1` is padded up to a multiple of a segment length S in {24, 32} (the one that
   pads least, the larger on a tie); keyframe slots sit at S, 2S, ..., the last frame (frame 0 is the causal first
   latent frame, a single pixel frame already).
2. Temporal rounds: each doubles the frame rate, N -> 2 (N - 1) + 1 frames, and splits the canvas into 2^round tiles
   that meet at shared keyframes ("seams"). Tile k > 0 reaches one segment back (its lead-in) so it denoises through
   the seam; the lead-in and the seam's latent frame are dropped when the tiles are stitched (the tile before keeps
   the seam latent). Each tile invents a keyframe slot in the middle of every segment of its window.
3. Each tile's Euler-ancestral noise is seeded seed + 1000 round + tile; the caller gets (num_frames - 1) 2^rounds + 1
   frames whatever the canvas padded.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .conditioning import VIDEO_TIME_SCALE

SEGMENT_LENGTHS = (24, 32)  # pixel frames between keyframe slots: multiples of 8, so slots sit on latent borders
TILE_LEAD_SEGMENTS = 1  # lead-in of every tile but the first, in segments
ROUND_SEED_STRIDE = 1000  # tile noise seed = seed + 1000 round + tile
MAX_TEMPORAL_ROUNDS = 2


def segment_length(content_frames: int) -> int:
    """The segment length S of SEGMENT_LENGTHS that pads `content_frames` (= num_frames - 1) the least up to a
    multiple of S; on a tie the larger one (fewer slots)."""
    if content_frames < 1:
        raise ValueError(f"content_frames must be >= 1 (num_frames >= 2), got {content_frames}")
    return min(SEGMENT_LENGTHS, key=lambda s: ((s - content_frames % s) % s, -s))


@dataclass(frozen=True)
class KeyframeCanvas:
    """The padded clip stage 1 generates: `num_frames` = N' (8k + 1), the segment length S, and the keyframe slot
    positions S, 2S, ..., N' - 1 in pixel frames."""

    num_frames: int
    segment_length: int
    slot_positions: tuple[int, ...]


def keyframe_canvas(num_frames: int) -> KeyframeCanvas:
    """num_frames (8k + 1, >= 9) -> the canvas: (num_frames - 1) padded up to a multiple of `segment_length`."""
    if num_frames < 2 or (num_frames - 1) % VIDEO_TIME_SCALE != 0:
        raise ValueError(
            f"num_frames={num_frames} is not of the form 8k + 1 with k >= 1: the DFR canvas is laid out on latent "
            f"borders. Use {max(9, (num_frames - 1) // 8 * 8 + 1)} or {max(9, (num_frames - 1) // 8 * 8 + 9)}."
        )
    content = num_frames - 1
    segment = segment_length(content)
    padded = -(-content // segment) * segment
    return KeyframeCanvas(padded + 1, segment, tuple(range(segment, padded + 1, segment)))


def stage_2_request_frames(canvas: KeyframeCanvas, reference_factor: int | None) -> int:
    """Stage 2's video tokens as the frame count of a plain full-size clip with that many latent frames (what a memory
    request counts): the canvas's latent frames, one per keyframe slot, and with the detailing reference the canvas's
    latent frames again at 1/factor^2 of the tokens (rounded down, so the early check never over-refuses; the
    transformer call is checked exactly)."""
    canvas_latents = (canvas.num_frames - 1) // VIDEO_TIME_SCALE + 1
    latents = canvas_latents + len(canvas.slot_positions)
    if reference_factor is not None:
        latents += canvas_latents // reference_factor**2
    return VIDEO_TIME_SCALE * (latents - 1) + 1


def latent_index(pixel_frame: int) -> int:
    """The latent frame that ends on pixel frame `pixel_frame` (0, or a multiple of 8)."""
    if pixel_frame < 0 or pixel_frame % VIDEO_TIME_SCALE != 0:
        raise ValueError(f"pixel frame {pixel_frame} is not on a latent border (0 or a multiple of {VIDEO_TIME_SCALE})")
    return pixel_frame // VIDEO_TIME_SCALE


def output_num_frames(num_frames: int, rounds: int) -> int:
    """Frames the caller gets: (num_frames - 1) 2^rounds + 1 (each round doubles the frame rate)."""
    return (num_frames - 1) * 2**rounds + 1


def tile_noise_seed(seed: int, round_index: int, tile_index: int) -> int:
    """The seed of a tile's Euler-ancestral noise: distinct per tile, since tiles of one round share positions."""
    return seed + ROUND_SEED_STRIDE * round_index + tile_index


@dataclass(frozen=True)
class TemporalTile:
    """One window of a temporal round, in the round's pixel and latent frames.

    pixel_start / pixel_end: its first and last pixel frame (both on keyframes or frame 0). latent_start /
    latent_stop: its latent frames [start, stop). anchors: the seam keyframes inside it (frame 0 is none).
    slots: the middle of each of its segments, where it generates new keyframes. drop_latents: leading latent frames
    another tile owns (the lead-in and the seam), dropped when stitching.
    """

    pixel_start: int
    pixel_end: int
    latent_start: int
    latent_stop: int
    anchors: tuple[int, ...]
    slots: tuple[int, ...]
    drop_latents: int

    @property
    def num_frames(self) -> int:
        """Pixel frames of the tile as a clip of its own (8k + 1)."""
        return (self.latent_stop - self.latent_start - 1) * VIDEO_TIME_SCALE + 1

    def local(self, positions: Sequence[int]) -> list[int]:
        """Pixel frames of the round -> frames of the tile's own clip."""
        return [p - self.pixel_start for p in positions]


def owned_segments(num_segments: int, num_tiles: int) -> list[int]:
    """Segments each tile owns: contiguous runs, as even as possible, the longer runs first."""
    base, extra = divmod(num_segments, num_tiles)
    return [base + (1 if i < extra else 0) for i in range(num_tiles)]


def temporal_tiles(
    seams: Sequence[int], num_frames: int, num_tiles: int, lead_segments: int = TILE_LEAD_SEGMENTS
) -> list[TemporalTile]:
    """Split a round's canvas of `num_frames` at the keyframes `seams` (increasing, the last = num_frames - 1) into
    min(num_tiles, segments) tiles that own contiguous segment runs; tile k > 0 starts `lead_segments` earlier."""
    if not seams or seams[-1] != num_frames - 1:
        raise ValueError(f"the seams must end on the last frame {num_frames - 1}, got {list(seams)}")
    if num_tiles < 1 or lead_segments < 1:
        raise ValueError(f"num_tiles and lead_segments must be >= 1, got {num_tiles} and {lead_segments}")
    bounds = [0, *seams]
    for lo, hi in zip(bounds, bounds[1:]):
        if hi - lo < 2 * VIDEO_TIME_SCALE or (hi - lo) % VIDEO_TIME_SCALE != 0:
            raise ValueError(
                f"segment [{lo}, {hi}] must span a multiple of {VIDEO_TIME_SCALE} frames and at least two latent "
                f"frames (a tile's lead-in drops its first two), got seams {list(seams)}"
            )
    tiles, own_start = [], 0
    counts = owned_segments(len(seams), min(num_tiles, len(seams)))
    for index, count in enumerate(counts):
        own_stop = own_start + count
        start = own_start if index == 0 else max(0, own_start - lead_segments)
        latent_start = latent_index(bounds[start])
        # the tile before keeps the seam's latent frame (the token ending on the keyframe): drop it too
        drop = latent_index(bounds[own_start]) - latent_start + (1 if own_start > 0 else 0)
        tiles.append(
            TemporalTile(
                pixel_start=bounds[start],
                pixel_end=bounds[own_stop],
                latent_start=latent_start,
                latent_stop=latent_index(bounds[own_stop]) + 1,
                anchors=tuple(b for b in bounds[start : own_stop + 1] if b > 0),
                slots=tuple((bounds[i] + bounds[i + 1]) // 2 for i in range(start, own_stop)),
                drop_latents=drop,
            )
        )
        own_start = own_stop
    return tiles


def stitch_tiles(latents: Sequence[Tensor], tiles: Sequence[TemporalTile]) -> Tensor:
    """Tile latents (B, C, latent_stop - latent_start, H', W') -> the round's latent: each without its first
    `drop_latents` frames, concatenated in time."""
    if len(latents) != len(tiles) or not tiles:
        raise ValueError(f"got {len(latents)} tile latents for {len(tiles)} tiles")
    for latent, tile in zip(latents, tiles):
        if latent.ndim != 5 or latent.shape[2] != tile.latent_stop - tile.latent_start:
            raise ValueError(
                f"a tile latent of shape {tuple(latent.shape)} for latent frames [{tile.latent_start}, "
                f"{tile.latent_stop}): expected (B, C, {tile.latent_stop - tile.latent_start}, H', W')"
            )
    return torch.cat([latent[:, :, tile.drop_latents :] for latent, tile in zip(latents, tiles)], dim=2)


def nearest_latent_frames(positions: Sequence[int], latent_frames: int) -> list[int]:
    """The latent frame nearest each pixel frame, clamped to [0, latent_frames): where a new slot takes its start."""
    return [min(max(round(p / VIDEO_TIME_SCALE), 0), latent_frames - 1) for p in positions]
