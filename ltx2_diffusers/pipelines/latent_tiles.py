"""Overlapping tiles of a video latent grid, and their blend weights: how ltx-pipelines 1.2.0's HDR IC-LoRA pipeline
refines its full-size latent in pieces (`VideoModalityTilingHelper` over a `TileCountConfig`, spec 1.2 §6.1).

Each axis is split into `count` spans sharing `overlap` cells with their neighbours; a span's weights ramp up over its
left overlap and down over its right one, (1, ..., r) / (r + 1) and back, so overlapping weights sum to 1. A tile is
one span per axis (frames, height, width; the product in that order) with the product of the spans' weights.
"""

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Span:
    """Cells [start, stop) of one axis; `left` / `right`: how many of them are shared with the previous / next span."""

    start: int
    stop: int
    left: int = 0
    right: int = 0

    def weights(self) -> Tensor:
        """(stop - start,) float32 blend weights: i / (r + 1) up the left ramp, 1 inside, down the right ramp."""
        weights = torch.ones(self.stop - self.start)
        if self.left:
            weights[: self.left] = torch.arange(1, self.left + 1) / (self.left + 1)
        if self.right:
            weights[-self.right :] *= torch.arange(self.right, 0, -1) / (self.right + 1)
        return weights


def fit_count(size: int, count: int, overlap: int) -> tuple[int, int]:
    """(count, overlap) that an axis of `size` cells can hold: one span when it has fewer cells than `count`, else
    the overlap capped at size - count (so that each span is longer than its overlap), as the reference clamps."""
    if count <= 1 or size < count:
        return 1, 0
    return count, min(overlap, size - count)


def split_count(size: int, count: int, overlap: int) -> list[Span]:
    """`count` spans covering [0, size), neighbours sharing `overlap` cells (ltx-core's `split_by_count`): span length
    (size + overlap (count - 1)) // count, the first `remainder` spans one cell longer."""
    count, overlap = fit_count(size, count, overlap)
    if count == 1:
        return [Span(0, size)]
    length, remainder = divmod(size + overlap * (count - 1), count)
    spans, start = [], 0
    for i in range(count):
        stop = size if i == count - 1 else start + length + (1 if i < remainder else 0)
        spans.append(Span(start, stop, overlap if i else 0, overlap if i < count - 1 else 0))
        start = stop - overlap
    return spans


@dataclass(frozen=True)
class LatentTile:
    """Latent cells frames x height x width, and their (f, h, w) float32 blend weights."""

    frames: slice
    height: slice
    width: slice
    weights: Tensor

    @property
    def grid(self) -> tuple[int, int, int]:
        return tuple(s.stop - s.start for s in (self.frames, self.height, self.width))


def latent_tiles(
    grid: tuple[int, int, int], counts: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
) -> list[LatentTile]:
    """Tiles of a latent grid (F', H', W') with (count, overlap) per axis, frames slowest, width fastest."""
    per_axis = [split_count(size, count, overlap) for size, (count, overlap) in zip(grid, counts)]
    tiles = []
    for f, h, w in itertools.product(*per_axis):
        weights = f.weights()[:, None, None] * h.weights()[None, :, None] * w.weights()[None, None, :]
        tiles.append(LatentTile(slice(f.start, f.stop), slice(h.start, h.stop), slice(w.start, w.stop), weights))
    return tiles
