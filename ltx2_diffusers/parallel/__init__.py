"""Several processes on one generation, on torch.distributed (gloo on CPU, NCCL on CUDA): context parallel over the
video and audio tokens (`context.py`), guidance parallel over the passes of a guided step (`guidance.py`) and the
video VAE's tiles spread over the ranks (`decode.py`), and the weights sharded over the ranks (`sharding.py`).

    torchrun --nproc_per_node 4 my_script.py      # in the script:
    torch.distributed.init_process_group()
    pipe.enable_parallelism(context_degree=2, guidance_degree=2)   # 2 x 2 = the 4 ranks
    output = pipe(...)                                             # same output on every rank; write it on rank 0

Ranks are laid out as a grid: rank = g * context_degree + c, so a context-parallel group is `context_degree`
consecutive ranks (keep it inside one machine) and the guidance groups run across them.
"""

from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

from .context import MODES, ContextParallel
from .decode import DistributedDecode
from .guidance import GuidanceParallel
from .sharding import ShardedWeights


@dataclass
class Parallelism:
    """What `enable_parallelism` installed; `remove()` takes it all off again."""

    context_degree: int
    guidance_degree: int
    mode: str
    parts: list = field(default_factory=list)

    def remove(self) -> None:
        for part in reversed(self.parts):
            part.remove()
        self.parts = []


def _degrees_from_diffusers(config) -> tuple[int, str]:
    """diffusers' ContextParallelConfig (or ParallelConfig holding one) -> (degree, mode)."""
    config = getattr(config, "context_parallel_config", None) or config
    ring, ulysses = getattr(config, "ring_degree", None) or 1, getattr(config, "ulysses_degree", None) or 1
    if ring > 1 and ulysses > 1:
        raise ValueError(
            f"ring_degree={ring} and ulysses_degree={ulysses} together (hybrid context parallel) is not supported: "
            "choose one of them"
        )
    return (ring, "ring") if ring > 1 else (ulysses, "ulysses")


def process_groups(context_degree: int, guidance_degree: int) -> tuple[dist.ProcessGroup | None, ...]:
    """(context group, guidance group) of this rank; None where the degree is 1. Every rank must call this (group
    creation is collective)."""
    if not dist.is_initialized():
        raise RuntimeError(
            "torch.distributed is not initialised: start with `torchrun --nproc_per_node N ...` and call "
            "torch.distributed.init_process_group() before enable_parallelism"
        )
    world, rank = dist.get_world_size(), dist.get_rank()
    if context_degree < 1 or guidance_degree < 1 or context_degree * guidance_degree != world:
        raise ValueError(
            f"context_degree x guidance_degree must equal the number of processes ({world}); got "
            f"{context_degree} x {guidance_degree}"
        )
    context_groups = [
        dist.new_group([g * context_degree + c for c in range(context_degree)]) for g in range(guidance_degree)
    ]
    guidance_groups = [
        dist.new_group([g * context_degree + c for g in range(guidance_degree)]) for c in range(context_degree)
    ]
    context = context_groups[rank // context_degree] if context_degree > 1 else None
    guidance = guidance_groups[rank % context_degree] if guidance_degree > 1 else None
    return context, guidance


def enable_parallelism(
    transformer: nn.Module,
    vae: nn.Module | None = None,
    *,
    text_encoder: nn.Module | None = None,
    context_degree: int | None = None,
    guidance_degree: int = 1,
    mode: str = "ulysses",
    config=None,
    decode: bool = True,
    shard_weights: bool = False,
) -> Parallelism:
    """Split one generation over all processes of the default group.

    context_degree: ranks that share the tokens of each stream (default: all processes / guidance_degree).
    guidance_degree: ranks that share the passes of a guided step.
    mode: "ulysses" (exact, heads divisible by context_degree) or "ring".
    config: diffusers' `ContextParallelConfig(ulysses_degree=...)` / `(ring_degree=...)` (or a `ParallelConfig`
        holding one) instead of context_degree and mode.
    decode: spread the video VAE's tiles over all processes.
    shard_weights: shard the transformer's blocks (and `text_encoder`'s layers) over all processes (FSDP2).
    """
    if config is not None:
        if context_degree is not None:
            raise ValueError("pass either config (diffusers' ContextParallelConfig) or context_degree, not both")
        context_degree, mode = _degrees_from_diffusers(config)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not dist.is_initialized():
        process_groups(1, 1)  # raises with the torchrun hint
    if context_degree is None:
        context_degree = dist.get_world_size() // guidance_degree
    context_group, guidance_group = process_groups(context_degree, guidance_degree)
    plan = Parallelism(context_degree, guidance_degree, mode)
    try:
        if guidance_degree > 1:
            plan.parts.append(GuidanceParallel(transformer, guidance_group))
        if context_degree > 1:
            plan.parts.append(ContextParallel(transformer, context_group, mode))
        if decode and vae is not None and dist.get_world_size() > 1:
            plan.parts.append(DistributedDecode(vae, None))
        if shard_weights and dist.get_world_size() > 1:
            device_type = "cuda" if next(transformer.parameters()).is_cuda or torch.cuda.is_available() else "cpu"
            modules = [transformer] + ([text_encoder] if text_encoder is not None else [])
            plan.parts.append(ShardedWeights(modules, None, device_type))
    except Exception:
        plan.remove()
        raise
    return plan


__all__ = ["Parallelism", "enable_parallelism", "process_groups"]
