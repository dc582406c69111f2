"""Several devices in one process: the transformer's blocks split into contiguous ranges, one range per device.

Planning (`plan_multi_device`, pure and torch-free like `planner`): the first device holds everything the
single-device plan places (transformer non-block weights, Gemma resident / onloaded / streamed, the components, the
VAE tiles) plus the first range of blocks; every other device holds its range of blocks and, while the transformer
runs, the activations of the blocks it computes (the per-forward inputs are copied there too). Every block is
resident somewhere: streaming blocks from host memory is not combined with a split (a device short of room for its
range is a refusal, not a fallback). Choice, in order: the model dtype before FP8, then the single-device preference
order for the first device's other parts (Gemma resident > onloaded > streamed, components resident, largest VAE
tile), and for that choice the split that leaves every device the same fraction of its budget free.

Placement (`apply_multi_device_plan`): each block moves to its device once; a forward-pre hook on the first block of
each range moves the block inputs (hidden states, `StreamInputs`, the perturbation plan: every tensor, recursively) to
the range's device, and a forward hook on the last block brings its outputs back to the first device.
"""

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from .planner import (
    WORKSPACE_BYTES,
    ComponentSizes,
    MemoryPlan,
    MemoryRequest,
    Placement,
    _lean_placement,
    _persistent_and_slots,
    _placements,
    _transformer_stages,
    check_request,
    check_transformer_call,
    gib,
    headroom,
    present_components,
    stage_peaks,
    transformer_activations,
)

BALANCE_STEPS = 24  # bisection steps on the shared fill fraction (2**-24: far below one block)


@dataclass(frozen=True)
class MultiDevicePlan:
    """A placement over several devices. placement: the first device's part (its `resident_blocks` = every block: none
    streams); block_ranges: (start, stop) per device, contiguous and covering every block; device_peaks: the predicted
    per-stage peaks of each device."""

    devices: tuple[str, ...]
    budgets_bytes: tuple[int, ...]
    headrooms_bytes: tuple[int, ...]
    request: MemoryRequest
    sizes: ComponentSizes
    placement: Placement
    block_ranges: tuple[tuple[int, int], ...]
    device_peaks: tuple[tuple[tuple[str, int], ...], ...]
    notes: tuple[str, ...] = ()

    @property
    def fp8(self) -> bool:
        return self.placement.fp8

    @property
    def resident_blocks(self) -> tuple[int, ...]:
        return tuple(range(len(self.sizes.transformer_blocks)))

    @property
    def streamed_blocks(self) -> tuple[int, ...]:
        return ()

    @property
    def text_encoder(self) -> str:
        return self.placement.text_encoder

    @property
    def vae_tiling(self) -> tuple[int, int]:
        return self.placement.vae_tiling

    @property
    def budget_bytes(self) -> int:
        """The first device's budget (where the pipeline's own computations run)."""
        return self.budgets_bytes[0]

    @property
    def predicted_peaks(self) -> tuple[int, ...]:
        """The predicted peak of each device."""
        return tuple(max(peak for _, peak in peaks) for peaks in self.device_peaks)

    @property
    def predicted_peak(self) -> int:
        return max(self.predicted_peaks)

    @property
    def stage_peaks(self) -> tuple[tuple[str, int], ...]:
        return self.device_peaks[0]

    def first_device_plan(self) -> MemoryPlan:
        """The single-device plan `placement.apply_plan` carries out on the first device (every block resident: the
        blocks of the other devices are moved there beforehand and skipped)."""
        return MemoryPlan(
            self.budgets_bytes[0], self.headrooms_bytes[0], self.request, self.sizes, self.placement,
            self.device_peaks[0], self.notes,
        )  # fmt: skip

    def for_request(self, request: MemoryRequest) -> "MultiDevicePlan":
        peaks = device_peaks(self.sizes, request, self.placement, self.block_ranges)
        return dataclasses.replace(self, request=request, device_peaks=peaks)

    def summary(self) -> str:
        p, s = self.placement, self.sizes
        blocks = s.transformer_blocks_fp8 if p.fp8 else s.transformer_blocks
        lines = [
            f"Memory plan for {self.request.describe()} over {len(self.devices)} devices:",
            f"  transformer blocks: {'FP8' if p.fp8 else 'model dtype'} storage, all {len(blocks)} resident, split "
            + ", ".join(f"{start}-{stop - 1} on {device}" if stop > start else f"none on {device}"
                        for device, (start, stop) in zip(self.devices, self.block_ranges)),  # fmt: skip
            f"  text encoder (on {self.devices[0]}): {p.text_encoder}",
            "  components: " + ", ".join(f"{name} {mode}" for name, mode in p.components),
            f"  VAE tiles: {p.vae_tiling[0]} px, {p.vae_tiling[1]} frames",
        ]
        for device, budget, room, (start, stop), peaks in zip(
            self.devices, self.budgets_bytes, self.headrooms_bytes, self.block_ranges, self.device_peaks
        ):
            stage, peak = max(peaks, key=lambda item: item[1])
            lines.append(
                f"  {device}: {stop - start} blocks ({gib(sum(blocks[start:stop]))}), predicted peak {gib(peak)} "
                f"({stage}) under {gib(budget)} ({gib(room)} kept free)"
            )
        return "\n".join(lines + [f"  note: {note}" for note in self.notes])


# ----------------------------------------------------------------------------------------------------------------------
# Peak model per device


def first_device_peaks(
    sizes: ComponentSizes, request: MemoryRequest, placement: Placement, stop: int
) -> tuple[tuple[str, int], ...]:
    """The first device's stage peaks holding blocks 0 .. stop-1: the single-device model with those blocks resident
    and no streaming slots (the other blocks live on other devices)."""
    single = dataclasses.replace(placement, resident_blocks=stop)
    _, slots = _persistent_and_slots(sizes, single)
    transformer = {name for name, _, _ in _transformer_stages(request)}
    return tuple((name, peak - slots if name in transformer else peak)
                 for name, peak in stage_peaks(sizes, request, single))  # fmt: skip


def other_device_peaks(
    sizes: ComponentSizes, request: MemoryRequest, fp8: bool, start: int, stop: int
) -> tuple[tuple[str, int], ...]:
    """A later device's peaks: its blocks all the time, plus the activations of the transformer stages (the copied
    per-forward inputs are inside the activation estimate). Without blocks it holds nothing."""
    if stop <= start:
        return (("idle", 0),)
    blocks = sum((sizes.transformer_blocks_fp8 if fp8 else sizes.transformer_blocks)[start:stop])
    peaks = [("weights", blocks + WORKSPACE_BYTES)]
    for name, rows, tokens in _transformer_stages(request):
        peaks.append((name, blocks + transformer_activations(sizes, rows, tokens, request)))
    return tuple(peaks)


def device_peaks(
    sizes: ComponentSizes, request: MemoryRequest, placement: Placement, ranges: Sequence[tuple[int, int]]
) -> tuple[tuple[tuple[str, int], ...], ...]:
    first = first_device_peaks(sizes, request, placement, ranges[0][1])
    return (first, *(other_device_peaks(sizes, request, placement.fp8, a, b) for a, b in ranges[1:]))


def _fill(sizes, request, placement, limits: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """Greedy contiguous split: each device in turn takes as many of the remaining blocks as fit under its limit
    (optimal for feasibility: every device's peak grows with its blocks). Covers fewer blocks when they do not fit."""
    num_blocks, ranges, start = len(sizes.transformer_blocks), [], 0
    for index, limit in enumerate(limits):
        def peak(stop, index=index, start=start):
            peaks = (first_device_peaks(sizes, request, placement, stop) if index == 0
                     else other_device_peaks(sizes, request, placement.fp8, start, stop))  # fmt: skip
            return max(value for _, value in peaks)

        if index == 0 and peak(0) > limit:  # the first device's other parts alone do not fit
            return tuple([(0, 0)] * len(limits))
        stop = start
        while stop < num_blocks and peak(stop + 1) <= limit:
            stop += 1
        ranges.append((start, stop))
        start = stop
    return tuple(ranges)


def _covers(ranges, num_blocks: int) -> bool:
    return ranges[-1][1] == num_blocks


def _balanced(sizes, request, placement, usable: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """The feasible split with the smallest shared fraction of each device's usable bytes (bisection)."""
    lo, hi = 0.0, 1.0
    for _ in range(BALANCE_STEPS):
        mid = (lo + hi) / 2
        if _covers(_fill(sizes, request, placement, [int(u * mid) for u in usable]), len(sizes.transformer_blocks)):
            hi = mid
        else:
            lo = mid
    return _fill(sizes, request, placement, [int(u * hi) for u in usable])


def plan_multi_device(
    budgets_bytes: Sequence[int],
    sizes: ComponentSizes,
    request: MemoryRequest,
    *,
    devices: Sequence[str] | None = None,
    fp8: "bool | str" = "auto",
    fp8_supported: bool = False,
) -> MultiDevicePlan:
    """Split the transformer's blocks over several devices, each within its budget (see the module docstring).

    budgets_bytes: one budget per device, the first device's first; devices: their names for plans and messages
    (default "device 0", "device 1", ...); fp8 / fp8_supported: as `planner.plan_memory` (supported on EVERY device).
    Raises ValueError when the request does not fit even across all devices, naming each device's needs."""
    budgets = tuple(budgets_bytes)
    names = tuple(devices) if devices is not None else tuple(f"device {i}" for i in range(len(budgets)))
    if len(budgets) < 2 or len(names) != len(budgets):
        raise ValueError(
            f"a multi-device plan needs two or more budgets and one device name per budget, got {len(budgets)} "
            f"budget(s) and {len(names)} device(s); for one device use plan_memory"
        )
    if fp8 not in ("auto", True, False):
        raise ValueError(f"fp8={fp8!r}: expected 'auto', True or False")
    if fp8 is True and not fp8_supported and not sizes.transformer_is_fp8:
        raise ValueError(
            "fp8=True, but not every device has FP8 matmuls (CUDA capability 8.9+, e.g. Ada or Hopper): pass "
            "fp8=False or fp8='auto'"
        )
    if fp8 is False and sizes.transformer_is_fp8:
        raise ValueError("fp8=False, but the transformer is in FP8 already: call transformer.disable_fp8() first")
    rooms = tuple(headroom(b) for b in budgets)
    usable = [b - r for b, r in zip(budgets, rooms)]
    if sizes.transformer_is_fp8:
        choices = [True]
    elif fp8 == "auto":
        choices = [False, True] if fp8_supported else [False]
    else:
        choices = [fp8]
    num_blocks = len(sizes.transformer_blocks)
    present = present_components(sizes)
    for use_fp8 in choices:
        for candidate in _placements(num_blocks, use_fp8, sizes.text_encoder > 0, present):
            if not _covers(_fill(sizes, request, candidate, usable), num_blocks):
                continue
            ranges = _balanced(sizes, request, candidate, usable)
            notes = ()
            if use_fp8 and not sizes.transformer_is_fp8:
                notes = ("FP8 changes the output within FP8's rounding; pass fp8=False for the model dtype's exact "
                         "output",)  # fmt: skip
            peaks = device_peaks(sizes, request, candidate, ranges)
            return MultiDevicePlan(names, budgets, rooms, request, sizes, candidate, ranges, peaks, notes)
    raise ValueError(_refusal(names, budgets, usable, sizes, request, choices[-1], fp8, fp8_supported))


def _refusal(names, budgets, usable, sizes, request, fp8: bool, fp8_arg, supported: bool) -> str:
    lean = _lean_placement(sizes, fp8)
    blocks = sizes.transformer_blocks_fp8 if fp8 else sizes.transformer_blocks
    first_stage, first_need = max(first_device_peaks(sizes, request, lean, 0), key=lambda item: item[1])
    _, act_stage, act_need = max(
        ((name, name, transformer_activations(sizes, rows, tokens, request))
         for name, rows, tokens in _transformer_stages(request)), key=lambda item: item[2],
    )  # fmt: skip
    ranges = _fill(sizes, request, lean, usable)
    placed = ranges[-1][1]
    parts = [
        f"{names[0]} (budget {gib(budgets[0])}, {gib(usable[0])} usable) needs {gib(first_need)} before any block "
        f"({first_stage}, with Gemma streamed and every component onloaded)"
    ] + [
        f"{name} (budget {gib(budget)}, {gib(room)} usable) needs {gib(act_need)} of activations ({act_stage}) "
        f"besides its blocks"
        for name, budget, room in zip(names[1:], budgets[1:], usable[1:])
    ]
    fixes = "larger budgets, more devices, a smaller height/width, fewer frames, a smaller batch or fewer guidance passes"
    if not fp8 and fp8_arg is not True and not sizes.transformer_is_fp8:
        fixes += ", or FP8 block storage (fp8=True" + (")" if supported else "; needs CUDA capability 8.9+)")
    return (
        f"The request ({request.describe()}) does not fit across {len(names)} devices: the {len(blocks)} transformer "
        f"blocks need {gib(sum(blocks))} ({'FP8' if fp8 else 'model dtype'}) and every block must be resident on "
        f"one device (streaming blocks is not combined with a multi-device split); {'; '.join(parts)}. At most "
        f"{placed} of {len(blocks)} blocks fit. Use {fixes}."
    )


def check_multi_request(plan: MultiDevicePlan, request: MemoryRequest) -> int:
    """`planner.check_request` for a multi-device plan: the largest predicted device peak, or a ValueError naming the
    device over its budget."""
    peaks = device_peaks(plan.sizes, request, plan.placement, plan.block_ranges)
    for device, budget, room, device_peak in zip(plan.devices, plan.budgets_bytes, plan.headrooms_bytes, peaks):
        stage, peak = max(device_peak, key=lambda item: item[1])
        if peak > budget - room:
            raise ValueError(
                f"The request ({request.describe()}) would peak at {gib(peak)} on {device} ({stage}) with the weights "
                f"placed for {plan.request.describe()}, over its {gib(budget)} budget less {gib(room)} kept free. Use "
                f"a smaller size, fewer frames or a smaller batch, or plan for this request: "
                f"pipe.disable_memory_budget(to='cpu'), then pipe.enable_memory_budget(budgets, device=devices, "
                f"height={request.height}, width={request.width}, num_frames={request.num_frames})."
            )
    return max(max(value for _, value in p) for p in peaks)


def check_multi_transformer_call(plan: MultiDevicePlan, rows: int, video_tokens: int) -> int:
    """`planner.check_transformer_call` for a multi-device plan: every device holding blocks computes this call."""
    act = transformer_activations(plan.sizes, rows, video_tokens, plan.request)
    blocks = plan.sizes.transformer_blocks_fp8 if plan.fp8 else plan.sizes.transformer_blocks
    single = dataclasses.replace(plan.placement, resident_blocks=plan.block_ranges[0][1])
    persistent, _ = _persistent_and_slots(plan.sizes, single)
    worst = 0
    for index, (device, budget, room, (start, stop)) in enumerate(
        zip(plan.devices, plan.budgets_bytes, plan.headrooms_bytes, plan.block_ranges)
    ):
        if index and stop <= start:
            continue
        peak = (persistent if index == 0 else sum(blocks[start:stop])) + act
        worst = max(worst, peak)
        if peak > budget - room:
            raise ValueError(
                f"A transformer call on {rows} x {video_tokens} video tokens would peak at {gib(peak)} on {device}, "
                f"over its {gib(budget)} budget less {gib(room)} kept free (the weights were placed for "
                f"{plan.request.describe()}). Use a smaller size, fewer frames or a smaller batch, or plan for this "
                f"request (pipe.disable_memory_budget(to='cpu'), then pipe.enable_memory_budget(budgets, "
                f"device=devices, height=..., width=..., num_frames=...))."
            )
    return worst


def check_any_request(plan: "MemoryPlan | MultiDevicePlan", request: MemoryRequest) -> int:
    """`check_request` for a single-device plan, `check_multi_request` for a multi-device one."""
    if isinstance(plan, MultiDevicePlan):
        return check_multi_request(plan, request)
    return check_request(plan, request)


def check_any_transformer_call(plan: "MemoryPlan | MultiDevicePlan", rows: int, video_tokens: int) -> int:
    """`check_transformer_call` for a single-device plan, `check_multi_transformer_call` for a multi-device one."""
    if isinstance(plan, MultiDevicePlan):
        return check_multi_transformer_call(plan, rows, video_tokens)
    return check_transformer_call(plan, rows, video_tokens)
