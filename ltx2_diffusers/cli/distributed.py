"""The CLI under `torchrun --nproc_per_node N -m ltx2_diffusers.cli ...`: one generation split over the N processes
(ltx2_diffusers/parallel, docs/parallel.md); rank 0 writes the clip, the other ranks write nothing.

Without torchrun nothing here runs. Under torchrun without parallel flags, the tokens are split over all ranks
(context parallel, Ulysses).
"""

import argparse
import os
from dataclasses import dataclass

from .parser import CLIError

FLAGS = ("context_parallel", "guidance_parallel", "parallel_mode", "shard_weights")


@dataclass(frozen=True)
class Launch:
    world_size: int
    rank: int
    local_rank: int


def launch() -> Launch | None:
    """The torchrun launch this process belongs to, or None for a plain run."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return None
    return Launch(world_size, int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")))


def check(args: argparse.Namespace) -> None:
    """Parallel flags only under torchrun, degrees that multiply to the number of processes; before any weight."""
    given = [f for f in FLAGS if getattr(args, f, None) not in (None, False)]
    run = launch()
    if run is None:
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise CLIError(flag, "splits a generation over processes: launch with `torchrun --nproc_per_node N -m "
                           "ltx2_diffusers.cli ...`")  # fmt: skip
        return
    for flag in ("context_parallel", "guidance_parallel"):
        value = getattr(args, flag, None)
        if value is not None and (value < 1 or run.world_size % value):
            raise CLIError("--" + flag.replace("_", "-"), f"{value} does not divide the {run.world_size} processes")
    context, guidance = degrees(args, run)
    if context * guidance != run.world_size:
        raise CLIError(
            "--context-parallel",
            f"{context} x --guidance-parallel {guidance} must equal the {run.world_size} processes torchrun started",
        )
    for flag in ("offload", "vram"):
        if getattr(args, flag, None):
            raise CLIError("--" + flag, "does not combine with a torchrun launch: use --shard-weights to fit")
    if args.shard_weights and getattr(args, "fp8", False):
        raise CLIError("--shard-weights", "shards bf16 weights; drop --fp8")


def degrees(args: argparse.Namespace, run: Launch) -> tuple[int, int]:
    guidance = args.guidance_parallel or 1
    context = args.context_parallel or max(1, run.world_size // guidance)
    return context, guidance


def start(args: argparse.Namespace, device: str) -> tuple[Launch | None, str]:
    """Join the process group (NCCL on CUDA, gloo on CPU); returns the launch and this rank's device."""
    run = launch()
    if run is None:
        return None, device
    import torch
    import torch.distributed as dist

    if device.startswith("cuda"):
        device = f"cuda:{run.local_rank}"
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return run, device


def enable(pipe, args: argparse.Namespace, run: Launch | None) -> None:
    if run is None:
        return
    context, guidance = degrees(args, run)
    pipe.enable_parallelism(
        context_degree=context, guidance_degree=guidance, mode=args.parallel_mode or "ulysses",
        shard_weights=args.shard_weights,
    )  # fmt: skip


def finish(run: Launch | None) -> None:
    if run is not None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
