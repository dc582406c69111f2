"""Distributed video VAE decode: the decoder's tiles (models/video_vae_tiling.py, the reference's tiles) are spread
over the ranks round-robin, each rank decodes its own, and every tile is then broadcast from its owner in the
single-process order and blended by the very same code (`tiled_decode_chunks`), so the frames equal the
single-process decode bit for bit on every rank.

Timestep-conditioned decoders draw noise tile by tile, which would happen in another order on each rank: refused.
"""

from collections.abc import Callable, Iterator

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..models.video_vae_tiling import VideoTilingConfig, decode_tile_plan, tiled_decode_chunks


class DistributedDecode:
    """`vae.distributed_decode` for a group; `remove()` restores the single-process decode.

    While installed, clips are always decoded tiled (`vae.enable_tiling()`), whatever their size.
    """

    def __init__(self, vae: nn.Module, group: dist.ProcessGroup | None):
        if getattr(vae.config, "timestep_conditioning", False):
            raise ValueError(
                "distributed decode of a timestep-conditioned decoder: it draws noise tile by tile, so each rank would "
                "draw in another order than one process does. Decode this VAE on one rank."
            )
        self.vae, self.group = vae, group
        self.rank, self.world = dist.get_rank(group), dist.get_world_size(group)
        self.previous_tiling = vae.use_tiling
        vae.use_tiling = True
        vae.distributed_decode = self

    def remove(self) -> None:
        self.vae.distributed_decode = None
        self.vae.use_tiling = self.previous_tiling

    def _global(self, rank: int) -> int:
        return dist.get_global_rank(self.group, rank) if self.group is not None else rank

    def __call__(
        self,
        decode_tile: Callable[[Tensor], Tensor],
        latents: Tensor,
        config: VideoTilingConfig,
        scale_t: int,
        scale_s: int,
    ) -> Iterator[Tensor]:
        temporal, rows, cols = decode_tile_plan(tuple(latents.shape), config, scale_t, scale_s, latents.device)
        order = [(t, r, c) for t in temporal for r in rows for c in cols]
        own = {
            i: decode_tile(latents[:, :, t.source, r.source, c.source]).contiguous()
            for i, (t, r, c) in enumerate(order)
            if i % self.world == self.rank
        }
        # channels and dtype of a decoded tile, from the owner of tile 0
        meta = [(own[0].shape[1], own[0].dtype)] if self.rank == 0 else [None]
        dist.broadcast_object_list(meta, src=self._global(0), group=self.group)
        channels, dtype = meta[0]
        tiles = iter(enumerate(order))

        def shared_tile(_latent_tile: Tensor) -> Tensor:
            i, (t, r, c) = next(tiles)
            owner = i % self.world
            if owner == self.rank:
                tile = own.pop(i)
            else:
                size = (t.target.stop - t.target.start, r.target.stop - r.target.start, c.target.stop - c.target.start)
                tile = torch.empty((latents.shape[0], channels, *size), dtype=dtype, device=latents.device)
            dist.broadcast(tile, src=self._global(owner), group=self.group)
            return tile

        return tiled_decode_chunks(shared_tile, latents, config, scale_t, scale_s)
