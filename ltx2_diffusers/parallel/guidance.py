"""Guidance parallel: the passes of one guided step (conditional, unconditional, STG, modality isolation) are already
one batch in the pipelines (pipelines/guidance.py); here that batch is split over the ranks of a group, each rank runs
its samples, and the velocities are gathered before the guidance sum, so every rank continues with the whole batch.

Hooks on the transformer's forward, nothing in the model or the pipelines changes: every tensor argument whose first
dimension is the batch is cut (hidden states, contexts, timesteps, sigmas, positions, masks, the per-sample masks of
`Perturbations`), outputs are gathered in rank order. A rank left without samples (a batch smaller than the group)
runs the last sample again and drops its output, so that every rank takes part in every collective.
"""

from dataclasses import fields, is_dataclass, replace

import torch.distributed as dist
from torch import Tensor, nn

from .comm import gather_pieces, split_sizes


class GuidanceParallel:
    """Installs (and `remove()`s) the batch split on a transformer's forward."""

    def __init__(self, transformer: nn.Module, group: dist.ProcessGroup | None):
        self.group = group
        self.rank, self.world = dist.get_rank(group), dist.get_world_size(group)
        self.sizes: list[int] | None = None
        self.handles = [
            transformer.register_forward_pre_hook(self._split, with_kwargs=True),
            transformer.register_forward_hook(self._gather, with_kwargs=True),
        ]

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def _cut(self, value, batch: int):
        if isinstance(value, Tensor) and value.ndim > 0 and value.shape[0] == batch:
            start = sum(self.sizes[: self.rank])
            # a rank without samples of its own runs the last sample again and drops its output
            return value[start : start + self.sizes[self.rank]] if self.sizes[self.rank] else value[-1:]
        if is_dataclass(value) and not isinstance(value, type):
            return replace(value, **{f.name: self._cut(getattr(value, f.name), batch) for f in fields(value)})
        return value

    def _split(self, module, args, kwargs):
        hidden_states = args[0] if args else kwargs["hidden_states"]
        batch = hidden_states.shape[0]
        self.sizes = split_sizes(batch, self.world)
        args = tuple(self._cut(a, batch) for a in args)
        kwargs = {name: self._cut(value, batch) for name, value in kwargs.items()}
        return args, kwargs

    def _gather_one(self, x: Tensor | None) -> Tensor | None:
        if x is None:
            return None
        if not self.sizes[self.rank]:
            x = x[:0]
        return gather_pieces(x, 0, self.sizes, self.group)

    def _gather(self, module, args, kwargs, output):
        if isinstance(output, tuple):
            return tuple(self._gather_one(x) for x in output)
        output.sample = self._gather_one(output.sample)
        output.audio_sample = self._gather_one(output.audio_sample)
        return output
