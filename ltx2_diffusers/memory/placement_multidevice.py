"""Carrying out a `MultiDevicePlan`: the first device as `placement.apply_plan` places it, the other devices' blocks
moved there once, and hooks that carry each range's inputs to its device and the last range's outputs back."""

import dataclasses
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ..models.fp8 import is_fp8
from .multidevice import MultiDevicePlan
from .placement import AppliedPlan, _move, apply_plan


def budget_devices(budget, device) -> list[torch.device]:
    """The devices of a multi-device budget: as many as budgets, each CUDA device once."""
    if not isinstance(budget, list | tuple) or not isinstance(device, list | tuple) or len(budget) != len(device):
        raise ValueError(
            f"several devices need a list of budgets and a list of as many devices, got budget={budget!r} and "
            f"device={device!r}: e.g. enable_memory_budget(['24GB', '24GB'], device=['cuda:0', 'cuda:1'])"
        )
    if len(device) < 2:
        raise ValueError(f"device={device!r}: a multi-device budget needs two or more devices; pass one as a string")
    devices = [torch.device(d) for d in device]
    cuda = [d for d in devices if d.type == "cuda"]
    if any(d.index is None for d in cuda) or len(set(cuda)) != len(cuda):
        raise ValueError(f"device={device!r}: name each CUDA device once with its index ('cuda:0', 'cuda:1', ...)")
    return devices


def to_device(value, device: torch.device):
    """`value` with every tensor on `device`: tensors, tuples / lists / dicts and dataclasses (`StreamInputs`,
    `BlockPerturbation`) recursively; anything else (None, bools, numbers) as is. What the range hooks call."""
    return _moved(value, device)


def _moved(value, device: torch.device):
    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, tuple | list):
        return type(value)(_moved(item, device) for item in value)
    if isinstance(value, dict):
        return {key: _moved(item, device) for key, item in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        moved = {f.name: _moved(getattr(value, f.name), device) for f in dataclasses.fields(value) if f.init}
        return dataclasses.replace(value, **moved)
    return value


def _inputs_to(device: torch.device):
    def hook(module, args, kwargs):
        return to_device((args, kwargs), device)

    return hook


def _outputs_to(device: torch.device):
    def hook(module, args, output):
        return to_device(output, device)

    return hook


def apply_multi_device_plan(
    pipe, plan: MultiDevicePlan, devices: Sequence[torch.device | str], check_call: Callable | None = None
) -> AppliedPlan:
    """Place `pipe`'s weights as `plan` says: FP8 first (where the weights are), then every later range of blocks onto
    its device (each block moves once), then the first device as the single-device placement (the moved blocks left
    alone), then the hooks. The returned `AppliedPlan` carries `plan`; its `remove` takes every block back."""
    devices = [torch.device(d) for d in devices]
    devices = [torch.device("cuda", torch.cuda.current_device()) if d.type == "cuda" and d.index is None else d
               for d in devices]  # fmt: skip
    if len(devices) != len(plan.block_ranges):
        raise ValueError(f"{len(devices)} devices for a plan over {len(plan.block_ranges)}: pass one per budget")
    transformer = pipe.transformer
    if plan.fp8 and not is_fp8(transformer):
        transformer.enable_fp8()
    blocks = list(transformer.transformer_blocks)
    elsewhere = set()
    for device, (start, stop) in zip(devices[1:], plan.block_ranges[1:]):
        _move(blocks[start:stop], device)
        elsewhere |= {id(t) for block in blocks[start:stop] for t in [*block.parameters(), *block.buffers()]}
    first = plan.first_device_plan()
    first = dataclasses.replace(first, sizes=dataclasses.replace(first.sizes, transformer_is_fp8=plan.fp8))
    applied = apply_plan(pipe, first, devices[0], check_call=check_call, placed_elsewhere=frozenset(elsewhere))
    applied.plan = plan
    last = None
    for device, (start, stop) in zip(devices[1:], plan.block_ranges[1:]):
        if stop > start:
            applied.handles.append(blocks[start].register_forward_pre_hook(_inputs_to(device), with_kwargs=True))
            last = stop - 1
    if last is not None:  # the ranges are contiguous and cover every block: `last` is the transformer's last block
        applied.handles.append(blocks[last].register_forward_hook(_outputs_to(devices[0])))
    return applied


def block_devices(transformer: nn.Module) -> list[set[torch.device]]:
    """The devices of each block's parameters (for tests and checks)."""
    return [{p.device for p in block.parameters()} for block in transformer.transformer_blocks]
