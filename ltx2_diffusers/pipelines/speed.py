"""`pipe.enable_fast()`: the fastest attention kernel for the device, opt-in compiled blocks and opt-in FP8.

What it does, in this order (FP8 before compiling: compiled graphs capture the layers they see):
1. FP8 block linears (`fp8="rowwise"` / `"tensorwise"`, models/fp8.py), only on CUDA capability 8.9+ (Ada, Hopper,
   Blackwell); elsewhere FP8 would be emulated in float32, slower than bf16, so it is left off with a note.
2. Attention: `attention_backend="auto"` walks `AUTO_ATTENTION_ORDER` for the device's CUDA capability and takes the
   first kernel that can run: "cudnn_first" on Hopper and newer, "flash_first" before (priority lists of PyTorch's
   SDPA kernels, which never refuse a call). A named backend ("cudnn", "flash_attn_4", "sageattention", ...; other
   packages' kernels only when they import, models/attention.py) that cannot run here falls back to the "auto"
   choice, with a note saying why. On CPU nothing is set: PyTorch's own choice, outputs unchanged.
3. `compile=True`: every transformer block through `torch.compile(fullgraph=True, dynamic=False)`. Warm-up cost:
   the first call at each new token shape compiles (every block shares one graph per shape; a two-stage call has
   two shapes, and a different guidance batch is another); that time shows in the benchmark's "first call" column
   (`benchmarks/pipeline.py --fast`). Later calls at seen shapes run the compiled graph.

The choice is a pure function (`choose_attention_backend`) of the device type, its capability and the importable
packages, so it is tested on CPU. `enable_fast` returns a `FastSettings` saying what was chosen and why.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..models.attention import EXTERNAL_BACKENDS, SDPA_BACKENDS, SDPA_PRIORITIES, external_backend_importable

logger = logging.getLogger(__name__)

# Fastest first, per CUDA capability (major, minor) from which an entry applies; the last entry whose capability the
# device reaches is used. Measured: cuDNN SDPA is the fastest kernel on the H100 (docs/performance.md, "Transformer").
# The priority lists never refuse a call ("cudnn_first": cuDNN, else flash, efficient, math; models/attention.py).
# Other packages' kernels (flash_attn_4, flash_attn_2) join a row only once `benchmarks/pipeline.py --fast
# --attention NAME` shows them faster at equal accuracy; until then they run when named. SageAttention is never
# chosen automatically: its 8-bit Q K^T changes the numbers.
AUTO_ATTENTION_ORDER: tuple[tuple[tuple[int, int], tuple[str, ...]], ...] = (
    ((0, 0), ()),  # PyTorch's own choice
    ((5, 0), ("flash_first",)),
    ((9, 0), ("cudnn_first",)),
)
# The lowest CUDA capability each kernel runs on.
MIN_CAPABILITY: dict[str, tuple[int, int]] = {
    "cudnn_first": (5, 0),
    "flash_first": (5, 0),
    "math": (0, 0),
    "efficient": (5, 0),
    "flash": (8, 0),
    "cudnn": (8, 0),
    "flash_attn_2": (8, 0),
    "flash_attn_4": (9, 0),
    "sageattention": (8, 0),
}
FP8_MIN_CAPABILITY = (8, 9)


@dataclass(frozen=True)
class FastSettings:
    """What `enable_fast` chose. attention_backend None = PyTorch's own SDPA choice (left alone)."""

    device: str
    attention_backend: str | None
    compiled: bool
    fp8: str | None
    notes: tuple[str, ...] = ()


def kernel_present(name: str) -> bool:
    """Whether the software behind a kernel is here: cuDNN in this PyTorch build, another package importable."""
    if name == "cudnn":
        return torch.backends.cudnn.is_available()
    if name in EXTERNAL_BACKENDS:
        return external_backend_importable(name)
    return True


def backend_unusable_reason(
    name: str, device_type: str, capability: tuple[int, int] | None, present: Callable[[str], bool]
) -> str | None:
    """Why `name` cannot run on this device, or None when it can. present: `kernel_present` (or a stand-in)."""
    if name not in MIN_CAPABILITY:
        known = sorted(SDPA_PRIORITIES) + sorted(SDPA_BACKENDS) + sorted(EXTERNAL_BACKENDS)
        raise ValueError(f"Unknown attention backend {name!r}; choose 'auto' or one of {known}")
    if name == "math":
        return None  # the reference kernel runs everywhere
    if device_type != "cuda" or capability is None:
        return f"{name} needs a CUDA device (this one is {device_type})"
    if capability < MIN_CAPABILITY[name]:
        return f"{name} needs CUDA capability {MIN_CAPABILITY[name]} or newer (this GPU: {capability})"
    if name == "cudnn" and not present(name):
        return "cudnn needs a PyTorch build with cuDNN"
    if name in EXTERNAL_BACKENDS and not present(name):
        return f"{name} needs the {EXTERNAL_BACKENDS[name][1]} package, which does not import here"
    return None


def choose_attention_backend(
    requested: str,
    device_type: str,
    capability: tuple[int, int] | None,
    present: Callable[[str], bool] = kernel_present,
) -> tuple[str | None, tuple[str, ...]]:
    """(backend or None for PyTorch's own choice, notes). A pure function of the device and of which kernels'
    software is present (`kernel_present`: cuDNN in the build, other packages importable).

    requested: "auto", or a backend name; a name that cannot run here falls back to the "auto" choice, with a note.
    """
    notes = []
    if requested != "auto":
        reason = backend_unusable_reason(requested, device_type, capability, present)
        if reason is None:
            return requested, (f"attention: {requested} (requested)",)
        notes.append(f"attention: {requested} requested, but {reason}; falling back to the automatic choice")
    if device_type != "cuda" or capability is None:
        return None, (*notes, f"attention: PyTorch's own SDPA choice ({device_type}: no faster kernel to pick)")
    order = [names for minimum, names in AUTO_ATTENTION_ORDER if capability >= minimum][-1]
    for name in order:
        reason = backend_unusable_reason(name, device_type, capability, present)
        if reason is None:
            return name, (*notes, f"attention: {name} (fastest available for CUDA capability {capability})")
        notes.append(f"attention: skipped {name}: {reason}")
    return None, (*notes, "attention: PyTorch's own SDPA choice (no listed kernel can run)")


def enable_fast(pipe, attention_backend: str = "auto", compile: bool = False, fp8: str | None = None) -> FastSettings:
    """Make `pipe.transformer` fast on its device (module docstring). Returns what was chosen; logs it too."""
    transformer = pipe.transformer
    device = transformer.device
    capability = torch.cuda.get_device_capability(device) if device.type == "cuda" else None
    notes = []

    # 1. FP8 block linears, where the GPU multiplies in FP8
    fp8_used = None
    if fp8 is not None:
        if capability is not None and capability >= FP8_MIN_CAPABILITY:
            if transformer.is_fp8:
                notes.append("fp8: the transformer was FP8 already; left as it is")
            else:
                transformer.enable_fp8(fp8)
                fp8_used = fp8
                notes.append(f"fp8: {fp8} block linears")
        else:
            notes.append(
                f"fp8: left off: {device} has no FP8 matmul (needs CUDA capability {FP8_MIN_CAPABILITY}+), and "
                "emulated FP8 is slower than bf16"
            )

    # 2. Attention kernel
    backend, attention_notes = choose_attention_backend(attention_backend, device.type, capability)
    notes.extend(attention_notes)
    if backend is not None:
        transformer.set_attention_backend(backend)

    # 3. Compiled blocks (opt-in: the first call at each shape pays the compilation)
    if compile:
        for block in transformer.transformer_blocks:
            block.compile(fullgraph=True, dynamic=False)
        notes.append("compile: every transformer block, fullgraph, static shapes (first call per shape compiles)")

    settings = FastSettings(str(device), backend, compile, fp8_used, tuple(notes))
    logger.info("enable_fast: %s", "; ".join(settings.notes))
    return settings
