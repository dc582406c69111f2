"""Sharded fit: the transformer's blocks (and the Gemma text encoder's layers) are split over the ranks with PyTorch's
FSDP2 (`torch.distributed.fsdp.fully_shard`): every rank keeps 1/P of each block's weights and gathers one block at a
time for its forward, so P cards of 24 GB hold what one cannot. The gathered weights are the original tensors, so
outputs equal the unsharded model's bit for bit (tests/test_parallel.py).

Combine it with context or guidance parallel so that the ranks do not compute the same thing P times. Sharding is
not undone by `remove()`: load the pipeline again to get whole weights back.
"""

import torch
import torch.distributed as dist
from torch import nn


def _mesh(group: dist.ProcessGroup | None, device_type: str):
    from torch.distributed.device_mesh import DeviceMesh

    ranks = dist.get_process_group_ranks(group) if group is not None else list(range(dist.get_world_size()))
    return DeviceMesh(device_type, torch.tensor(ranks))


def layer_lists(module: nn.Module) -> list[nn.ModuleList]:
    """The repeated layers worth sharding one by one: transformer blocks, Gemma decoder layers."""
    lists = []
    for name in ("transformer_blocks", "layers"):
        for submodule in module.modules():
            candidate = getattr(submodule, name, None)
            if isinstance(candidate, nn.ModuleList) and len(candidate) > 1:
                lists.append(candidate)
    return lists


class ShardedWeights:
    """Shards `modules` over a group; each module's repeated layers are sharded unit by unit, the rest as one unit."""

    def __init__(self, modules: list[nn.Module], group: dist.ProcessGroup | None, device_type: str):
        from torch.distributed.fsdp import fully_shard

        mesh = _mesh(group, device_type)
        for module in modules:
            for layers in layer_lists(module):
                for layer in layers:
                    fully_shard(layer, mesh=mesh, reshard_after_forward=True)
            fully_shard(module, mesh=mesh, reshard_after_forward=True)
        self.modules = modules

    def remove(self) -> None:
        """Sharding stays (see the module docstring)."""
