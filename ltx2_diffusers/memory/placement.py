"""Carrying out a `MemoryPlan` on a pipeline: resident weights on the device, the rest in (pinned) host memory.

Mechanisms (one each, shared by every component):
- `PackedTensors`: the parameters (and buffers) of some modules copied once into ONE contiguous host buffer, each
  tensor's `.data` a view of it; placing them on the device is one copy into a device buffer plus re-pointing `.data`
  to views of that buffer, and releasing them re-points `.data` to the host views. The tensors keep their identity,
  so peft adapters, tied weights and optimiser-free inference see the same Parameter objects throughout, and there is
  never a second device copy of a tensor.
- `BlockStreamer`: a list of blocks (transformer blocks, Gemma layers) whose packed host copies stream through two
  device slots, allocated once per activation and sized to the largest block. A block's forward-pre hook waits for
  its copy (a CUDA event: the compute stream waits on the device, the host never synchronises) and starts copying the
  next streamed block into the other slot on a side stream, after that slot's last reader finished (another event);
  its forward hook hands the slot back. After the last block the first is prefetched again for the next call. On a
  CPU device the same code runs with plain synchronous copies.
- `TransientHolder`: at most one onloaded component (a VAE, the vocoder, Gemma's streamed parts, the transformer's
  slots...) on the device at a time; activating one (its pre-hooks do) releases the previous one. This is what the
  planner's per-stage peak assumes.
Inference streams with gradients off. Training (`stream_for_training`, `backward=True`) streams in backward too:
autograd keeps the very Parameter objects (a frozen leaf is saved as itself, not copied), so what a backward node
reads is whatever that Parameter's `.data` points at when the node runs. Only the frozen tensors are packed (the
trainable adapters stay on the device, never re-pointed), each block has a fixed slot (its position modulo 2), and:
- forward: as in inference, plus a gradient hook on the block's outputs ("its backward begins") and on its inputs
  ("its backward is done"); after the last block nothing is prefetched (the backward starts with it);
- a block's backward begins (the gradient of an output arrives, before any of its backward nodes runs): the block
  after it is done (autograd runs the later block's nodes first), so its slot is handed back; this block is copied
  into its slot unless it is still there, its tensors point at the slot, and the block before it is prefetched into
  the other slot;
- with gradient checkpointing the block's backward first reruns its forward: the same pre-hook (it finds the block in
  its slot) and no post-hook re-pointing (a recompute runs inside a backward node: the tensors stay in the slot for
  the backward that follows);
- a block's backward is done (an input's gradient arrives, or the backward of the block before it begins, or the
  whole backward ends: a callback queued on autograd's engine): its tensors point at the host again and its slot's last reader is recorded.
Outside a block's forward or backward its frozen tensors point at the host copy (on a CUDA device a read there
fails loudly).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..pipelines.text_encoding import gemma_language_model
from .planner import SMALL_COMPONENTS, MemoryPlan
from .sizes import gemma_vision_modules

_ALIGN = 256  # bytes: every view starts aligned as the CUDA caching allocator aligns (same GEMM kernel choices)
_CHUNK = 4 << 30  # bytes per pinned host chunk


class HostArena:
    """Host memory for packed tensors, handed out as slices. Pinned memory comes in chunks of 4 GiB (or the next power
    of two for a larger request): torch's pinned allocator rounds every allocation up to a power of two, so a 0.77 GB
    block allocated alone would hold 1 GiB. Unpinned memory (CPU devices) is allocated per request."""

    def __init__(self, pin: bool):
        self.pin, self.chunk, self.used = pin, None, 0

    def take(self, nbytes: int) -> Tensor:
        nbytes = max(nbytes, _ALIGN)
        if not self.pin:
            return torch.empty(nbytes, dtype=torch.uint8)
        if self.chunk is None or self.used + nbytes > self.chunk.numel():
            size = max(_CHUNK, 1 << (nbytes - 1).bit_length())
            self.chunk, self.used = torch.empty(size, dtype=torch.uint8, pin_memory=True), 0
        taken = self.chunk[self.used : self.used + nbytes]
        self.used += nbytes
        return taken


def _unique_tensors(modules: Sequence[nn.Module], buffers: bool, skip: set[int]) -> list[Tensor]:
    seen, tensors = set(skip), []
    for module in modules:
        for tensor in [*module.parameters(), *(module.buffers() if buffers else ())]:
            if id(tensor) not in seen:
                seen.add(id(tensor))
                tensors.append(tensor)
    return tensors


class PackedTensors:
    """Tensors of `modules` (parameters; buffers too with buffers=True) living in one contiguous host buffer.

    skip: ids of tensors to leave alone (already owned by another pack). arena: where the host buffer comes from
    (pinned for CUDA devices)."""

    def __init__(
        self, modules: Sequence[nn.Module], *, buffers: bool, arena: HostArena, skip: set[int] | None = None
    ):
        self.tensors = _unique_tensors(modules, buffers, skip or set())
        self.offsets, offset = [], 0
        for tensor in self.tensors:
            self.offsets.append(offset)
            offset += -(-tensor.numel() * tensor.element_size() // _ALIGN) * _ALIGN
        self.nbytes = offset
        self.host = arena.take(offset)
        self.host_views = self._views(self.host)
        for tensor, view in zip(self.tensors, self.host_views):
            view.copy_(tensor.data)
            tensor.data = view  # the device copy (if any) is freed here
        self._device_views: dict[int, list[Tensor]] = {}

    def ids(self) -> set[int]:
        return {id(t) for t in self.tensors}

    def _views(self, buffer: Tensor) -> list[Tensor]:
        return [
            buffer[o : o + t.numel() * t.element_size()].view(t.dtype).view(t.shape)
            for t, o in zip(self.tensors, self.offsets)
        ]

    def copy_to(self, buffer: Tensor) -> None:
        """Start copying the host bytes into `buffer` (non-blocking from pinned memory) on the current stream."""
        buffer[: self.nbytes].copy_(self.host[: self.nbytes], non_blocking=True)

    def point_to(self, buffer: Tensor) -> None:
        """Re-point every tensor at its view of `buffer` (views cached per buffer)."""
        key = buffer.data_ptr()
        views = self._device_views.get(key)
        if views is None:
            views = self._device_views[key] = self._views(buffer)
        for tensor, view in zip(self.tensors, views):
            tensor.data = view

    def point_to_host(self) -> None:
        for tensor, view in zip(self.tensors, self.host_views):
            tensor.data = view

    def forget_buffer(self, buffer: Tensor) -> None:
        self._device_views.pop(buffer.data_ptr(), None)

    def unpack(self, device: torch.device) -> None:
        """Give every tensor its own storage on `device` again (the packed buffer is released with the last view)."""
        for tensor, view in zip(self.tensors, self.host_views):
            tensor.data = view.to(device, copy=True)
        self._device_views.clear()


class TransientHolder:
    """At most one transient user on the device; `activate(name)` releases the current one first."""

    def __init__(self):
        self.current: str | None = None
        self.users: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {}

    def add(self, name: str, activate: Callable[[], None], release: Callable[[], None]) -> None:
        self.users[name] = (activate, release)

    def activate(self, name: str) -> None:
        if self.current == name:
            return
        self.release()
        self.users[name][0]()
        self.current = name

    def release(self) -> None:
        if self.current is not None:
            self.users[self.current][1]()
            self.current = None


class Onloaded:
    """Packed tensors placed in a device buffer allocated on activation and dropped on release."""

    def __init__(self, pack: PackedTensors, device: torch.device):
        self.pack, self.device, self.buffer = pack, device, None

    def activate(self) -> None:
        self.buffer = torch.empty(max(self.pack.nbytes, 1), dtype=torch.uint8, device=self.device)
        self.pack.copy_to(self.buffer)  # ordered before the kernels that read it: same stream
        self.pack.point_to(self.buffer)

    def release(self) -> None:
        if self.buffer is not None:
            self.pack.point_to_host()
            self.pack.forget_buffer(self.buffer)
            self.buffer = None  # back to the caching allocator, in stream order


def _tensors(values) -> list[Tensor]:
    """The tensors among a block's positional arguments or outputs (a tensor, or a tuple with None and non-tensors)."""
    values = values if isinstance(values, (tuple, list)) else (values,)
    return [value for value in values if isinstance(value, Tensor)]


def _in_backward() -> bool:
    """Whether this code runs inside an autograd node (a gradient checkpoint's recompute of a block's forward)."""
    return torch._C._current_autograd_node() is not None


class BlockStreamer:
    """Streams `blocks` (in call order) through two device slots; see the module docstring.

    on_use: called before each block runs (inference activates the streamer through its holder there); None activates
    the slots if they are released. backward: training (packs the frozen tensors only and streams in backward too)."""

    def __init__(
        self,
        blocks: Sequence[nn.Module],
        device: torch.device,
        arena: HostArena,
        on_use: Callable[[], None] | None = None,
        *,
        backward: bool = False,
    ):
        self.blocks, self.device, self.arena, self.backward = list(blocks), device, arena, backward
        self.on_use = on_use if on_use is not None else self._activate_if_released
        self.packs = self._pack_blocks()
        self.slot_bytes = max(pack.nbytes for pack in self.packs)
        self.cuda = device.type == "cuda"
        self.copy_stream = torch.cuda.Stream(device) if self.cuda else None
        self.slots: list[Tensor] | None = None
        self.slot_block: list[int | None] = [None, None]
        self.last_slot = 1  # the slot of the block that ran last
        self.ready = [torch.cuda.Event() for _ in range(2)] if self.cuda else None
        self.free = [torch.cuda.Event() for _ in range(2)] if self.cuda else None
        self.in_backward: set[int] = set()  # blocks whose tensors point at their slot for their backward
        self.callback_queued = False
        self.handles = []
        for position, block in enumerate(self.blocks):
            self.handles.append(block.register_forward_pre_hook(self._pre_hook(position)))
            self.handles.append(block.register_forward_hook(self._post_hook(position)))

    def _pack_blocks(self) -> list[PackedTensors]:
        packs = []
        for block in self.blocks:  # training leaves the trainable tensors (adapters) out: they stay on the device
            trainable = {id(p) for p in block.parameters() if p.requires_grad} if self.backward else set()
            packs.append(PackedTensors([block], buffers=True, arena=self.arena, skip=trainable))
        return packs

    def _activate_if_released(self) -> None:
        if self.slots is None:
            self.activate()

    def activate(self) -> None:
        self.slots = [torch.empty(self.slot_bytes, dtype=torch.uint8, device=self.device) for _ in range(2)]
        self.slot_block, self.last_slot = [None, None], 1
        if self.cuda:  # the slots' memory may have been another tensor's: its queued readers come first
            self.copy_stream.wait_stream(torch.cuda.current_stream(self.device))

    def repack(self) -> None:
        """Pack the blocks again (after peft adapters were added or deleted: new adapter weights are created where
        the base weights are, on the host, outside the packs)."""
        active = self.slots is not None
        self.release()
        for pack in self.packs:
            pack.unpack(torch.device("cpu"))
        self.packs = self._pack_blocks()
        self.slot_bytes = max(pack.nbytes for pack in self.packs)
        if active:  # slots of the new size
            self.activate()

    def release(self) -> None:
        if self.slots is None:
            return
        if self.cuda:  # a prefetch may still be writing a slot: the compute stream waits before the slots are freed
            torch.cuda.current_stream(self.device).wait_stream(self.copy_stream)
        for pack in self.packs:
            pack.point_to_host()  # a block whose forward raised still points at its slot
            for slot in self.slots:
                pack.forget_buffer(slot)
        self.slots, self.slot_block = None, [None, None]
        self.in_backward.clear()

    def _copy_in(self, position: int, slot: int) -> None:
        for other in [p for p in self.in_backward if p % 2 == slot]:  # an unusual order: hand the slot back first
            self._end_backward(other)
        pack = self.packs[position]
        if self.cuda:
            with torch.cuda.stream(self.copy_stream):
                self.copy_stream.wait_event(self.free[slot])  # the slot's last reader is done
                pack.copy_to(self.slots[slot])
                self.ready[slot].record(self.copy_stream)
        else:
            pack.copy_to(self.slots[slot])
        self.slot_block[slot] = position

    def _load(self, position: int) -> int:
        """Make the block's slot hold it (copying unless prefetched), order the compute stream after that copy and
        point the block's tensors at the slot; returns the slot."""
        if self.backward:
            slot = position % 2
            if self.slot_block[slot] != position:
                self._copy_in(position, slot)
        elif position in self.slot_block:
            slot = self.slot_block.index(position)
        else:  # not prefetched (first call, or called out of order): copy now, into the slot not just used
            slot = 1 - self.last_slot
            self._copy_in(position, slot)
        self.last_slot = slot
        if self.cuda:
            torch.cuda.current_stream(self.device).wait_event(self.ready[slot])
        self.packs[position].point_to(self.slots[slot])
        return slot

    def _pre_hook(self, position: int):
        def hook(module, args):
            if not self.backward and torch.is_grad_enabled():
                # autograd would keep views of a slot that the next block overwrites
                raise RuntimeError(
                    "a streamed block ran with gradients enabled: memory budgets are for inference (the pipelines "
                    "run under torch.no_grad()); wrap the call in torch.no_grad(), or disable_memory_budget() to train"
                )
            self.on_use()  # activates this streamer (allocating the slots) through the holder if needed
            if self.backward and _in_backward():  # a checkpoint's recompute, inside the block's backward
                self._begin_backward(position)  # done already when the output's gradient hook fired
                self._load(position)
                return
            if self.callback_queued:  # a forward after a backward that raised (its end-of-backward callback never
                self._finish_backward()  # ran): hand its blocks back now, so the next backward starts clean
            slot = self._load(position)
            if self.backward:  # the next block; after the last one the backward starts with it: nothing to fetch
                upcoming = position + 1 if position + 1 < len(self.blocks) else position
                if torch.is_grad_enabled():
                    for tensor in _tensors(args):
                        if tensor.requires_grad:
                            tensor.register_hook(self._gradient_hook(self._end_backward, position))
            else:
                upcoming = (position + 1) % len(self.blocks)
            if upcoming != position and upcoming not in self.slot_block:
                self._copy_in(upcoming, 1 - slot)

        return hook

    def _post_hook(self, position: int):
        def hook(module, args, output):
            if self.backward and _in_backward():  # a checkpoint's recompute: its backward reads the slot next
                return
            slot = self.slot_block.index(position)
            if self.cuda:
                self.free[slot].record(torch.cuda.current_stream(self.device))
            self.packs[position].point_to_host()
            if self.backward and torch.is_grad_enabled():
                for tensor in _tensors(output):
                    if tensor.requires_grad:
                        tensor.register_hook(self._gradient_hook(self._begin_backward, position))

        return hook

    @staticmethod
    def _gradient_hook(step: Callable[[int], None], position: int):
        def hook(gradient):
            step(position)  # the gradient itself is left as it is

        return hook

    def _begin_backward(self, position: int) -> None:
        """A gradient of the block's output arrived: its backward nodes run next (module docstring)."""
        if position in self.in_backward:
            return
        if not self.callback_queued:  # the end of this backward hands every slot back
            torch.autograd.Variable._execution_engine.queue_callback(self._finish_backward)
            self.callback_queued = True
        self.on_use()
        self._end_backward(position + 1)  # autograd ran the later block's backward first
        self._load(position)
        self.in_backward.add(position)
        previous = position - 1
        if previous >= 0 and self.slot_block[previous % 2] != previous:
            self._copy_in(previous, previous % 2)

    def _end_backward(self, position: int) -> None:
        if position not in self.in_backward:
            return
        self.in_backward.discard(position)
        if self.cuda:  # every backward kernel of the block is queued: the slot is free after them
            self.free[position % 2].record(torch.cuda.current_stream(self.device))
        self.packs[position].point_to_host()

    def _finish_backward(self) -> None:
        for position in sorted(self.in_backward):
            self._end_backward(position)
        self.callback_queued = False

    def unpack(self, device: torch.device) -> None:
        self.release()
        for handle in self.handles:
            handle.remove()
        for pack in self.packs:
            pack.unpack(device)


def _move(
    modules: Sequence[nn.Module],
    device: torch.device,
    buffers_only: bool = False,
    skip: set[int] | frozenset = frozenset(),
) -> None:
    """Move tensors one by one (never a whole-module copy): parameters and buffers, or buffers only."""
    for module in modules:
        tensors = [*module.buffers()] if buffers_only else [*module.parameters(), *module.buffers()]
        for tensor in tensors:
            if id(tensor) not in skip and tensor.device != device:
                tensor.data = tensor.data.to(device)


def _param_owners(module: nn.Module) -> list[nn.Module]:
    """The module and every submodule holding parameters directly: hooking these catches any method that runs it
    (a VAE's encode/decode call their encoder/decoder, not forward)."""
    return [m for m in module.modules() if m is module or any(True for _ in m.parameters(recurse=False))]


def stream_for_training(model: nn.Module, blocks: Sequence[nn.Module], device: torch.device | str) -> BlockStreamer:
    """Training's block offloading: the frozen tensors of `blocks` (those that do not require a gradient) packed into
    host memory (pinned for a CUDA device) and streamed through two device slots in forward and backward (module
    docstring); every other tensor of `model` moved to `device`, the trainable ones of the streamed blocks included.
    Call it once the adapters are added with their training dtype (what requires a gradient then stays resident; an
    adapter added later is not packed). `unpack(device)` gives every tensor its own storage on `device` again."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    streamer = BlockStreamer(blocks, device, HostArena(pin=device.type == "cuda"), backward=True)
    _move([model], device, skip={id(t) for pack in streamer.packs for t in pack.tensors})
    streamer.activate()
    return streamer


@dataclass
class AppliedPlan:
    """What `apply_plan` did, for `remove`. device: where resident weights and the computation live."""

    plan: MemoryPlan
    device: torch.device
    holder: TransientHolder
    packs: list[PackedTensors] = field(default_factory=list)
    streamers: list[BlockStreamer] = field(default_factory=list)
    handles: list = field(default_factory=list)
    vae_tiling: tuple | None = None

    def remove(self, pipe, to: torch.device | None = None) -> None:
        """Every weight back in its own storage on `to` (default `device`: full residency), hooks removed, VAE tiling
        restored."""
        to = self.device if to is None else to
        self.holder.release()
        for handle in self.handles:
            handle.remove()
        for streamer in self.streamers:
            streamer.unpack(to)
        for pack in self.packs:
            pack.unpack(to)
        for name in ("transformer", "text_encoder", *SMALL_COMPONENTS):
            module = getattr(pipe, name, None)
            if isinstance(module, nn.Module):
                _move([module], to)
        if self.vae_tiling is not None and getattr(pipe, "vae", None) is not None:
            pipe.vae.use_tiling, pipe.vae.tiling = self.vae_tiling


def _hook_all(modules: Sequence[nn.Module], callback: Callable[[], None]) -> list:
    return [m.register_forward_pre_hook(lambda *_: callback()) for m in modules]


def apply_plan(
    pipe,
    plan: MemoryPlan,
    device: torch.device | str,
    check_call: Callable | None = None,
    placed_elsewhere: frozenset[int] = frozenset(),
) -> AppliedPlan:
    """Place `pipe`'s weights as `plan` says (FP8 first, then everything leaving the device, then everything joining
    it, so a pipeline that starts on the device never holds more than it did). check_call(transformer, args, kwargs):
    run before every transformer call (the pipeline's request check). placed_elsewhere: ids of tensors left where they
    are (the blocks a multi-device plan put on other devices)."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    arena = HostArena(pin=device.type == "cuda")
    p = plan.placement
    transformer = pipe.transformer
    if p.fp8 and not plan.sizes.transformer_is_fp8:
        transformer.enable_fp8()
    applied = AppliedPlan(plan, device, TransientHolder())
    holder = applied.holder

    # 1. Off the device: streamed transformer blocks, Gemma's onloaded or streamed parts, onloaded components
    blocks = list(transformer.transformer_blocks)
    streamed = blocks[p.resident_blocks :]
    if streamed:
        streamer = BlockStreamer(streamed, device, arena, lambda: holder.activate("transformer"))
        applied.streamers.append(streamer)
        holder.add("transformer", streamer.activate, streamer.release)
    else:
        holder.add("transformer", lambda: None, lambda: None)
    if check_call is not None:
        applied.handles.append(
            transformer.register_forward_pre_hook(lambda m, args, kwargs: check_call(m, args, kwargs), with_kwargs=True)
        )
    adapters = {"names": _adapter_names(transformer)}

    def on_transformer_call():
        names = _adapter_names(transformer)
        if names != adapters["names"] and streamed:
            applied.streamers[0].repack()
        adapters["names"] = names
        holder.activate("transformer")

    applied.handles += _hook_all([transformer], on_transformer_call)

    text_encoder = getattr(pipe, "text_encoder", None)
    if text_encoder is not None and p.text_encoder != "resident":
        vision = gemma_vision_modules(text_encoder)
        vision_pack = PackedTensors(vision, buffers=False, arena=arena)
        applied.packs.append(vision_pack)
        _move(vision, device, buffers_only=True)
        holder.add("text_encoder_vision", *_onloaded(vision_pack, device))
        applied.handles += _hook_all([m for v in vision for m in _param_owners(v)],
                                     lambda: holder.activate("text_encoder_vision"))  # fmt: skip
        layers = list(gemma_language_model(text_encoder).layers)
        if p.text_encoder == "streamed":
            layer_streamer = BlockStreamer(layers, device, arena, lambda: holder.activate("text_encoder"))
            applied.streamers.append(layer_streamer)
            taken = {id(t) for pack in layer_streamer.packs for t in pack.tensors} | vision_pack.ids()
            core = PackedTensors([text_encoder], buffers=False, arena=arena, skip=taken)
            core_on, core_off = _onloaded(core, device)
            holder.add("text_encoder", lambda: (core_on(), layer_streamer.activate()),
                       lambda: (layer_streamer.release(), core_off()))  # fmt: skip
            in_vision = {id(m) for v in vision for m in v.modules()}
            owners = [m for m in _param_owners(text_encoder) if id(m) not in in_vision]
        else:  # onload: the whole language model and head for the call
            core = PackedTensors([text_encoder], buffers=False, arena=arena, skip=vision_pack.ids())
            holder.add("text_encoder", *_onloaded(core, device))
            owners = _param_owners(text_encoder)
        applied.packs.append(core)
        _move([text_encoder], device, buffers_only=True)
        applied.handles += _hook_all(owners, lambda: holder.activate("text_encoder"))

    for name, mode in p.components:
        module = getattr(pipe, name, None)
        if mode != "onload" or not isinstance(module, nn.Module):
            continue
        pack = PackedTensors([module], buffers=False, arena=arena)  # buffers (latent statistics) stay on the device
        applied.packs.append(pack)
        _move([module], device, buffers_only=True)
        holder.add(name, *_onloaded(pack, device))
        applied.handles += _hook_all(_param_owners(module), lambda name=name: holder.activate(name))

    # 2. Onto the device: everything the plan keeps resident
    packed = {id(t) for pack in applied.packs for t in pack.tensors}
    packed |= {id(t) for s in applied.streamers for pack in s.packs for t in pack.tensors}
    packed |= placed_elsewhere
    resident = [transformer]
    if text_encoder is not None and p.text_encoder == "resident":
        resident.append(text_encoder)
    resident += [getattr(pipe, name, None) for name, mode in p.components if mode == "resident"]
    _move([m for m in resident if isinstance(m, nn.Module)], device, skip=packed)

    vae = getattr(pipe, "vae", None)
    if vae is not None and hasattr(vae, "enable_tiling"):
        applied.vae_tiling = (vae.use_tiling, vae.tiling)
        vae.enable_tiling(tile_size_pixels=p.vae_tiling[0], tile_size_frames=p.vae_tiling[1])
    return applied


def _adapter_names(model: nn.Module) -> tuple[str, ...]:
    return tuple(getattr(model, "peft_config", None) or ())


def _onloaded(pack: PackedTensors, device: torch.device) -> tuple[Callable[[], None], Callable[[], None]]:
    unit = Onloaded(pack, device)
    return unit.activate, unit.release
