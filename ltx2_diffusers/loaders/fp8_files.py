"""Pre-quantised ("scaled") fp8 single files: their two layouts, read from the header, and the dequantisation.

- Lightricks' `ltx-2.3-22b-*-fp8` files (read by ltx-core 1.2.0's `quantization/fp8_cast.py` and `fp8_scaled_mm.py`):
  an `F8_E4M3` `<module>.weight` beside a float32 per-tensor `<module>.weight_scale`; `<module>.bias_scale` likewise
  (absent from the released files, accepted by ltx-core); `<module>.input_scale` is a static activation scale that only
  ltx-core's scaled-mm path uses.
- ComfyUI's scaled fp8: a `scaled_fp8` marker tensor (under the model's prefix) and `<module>.scale_weight` (and
  `.scale_input`) beside `<module>.weight`.

In both the true weight is `weight.float() * scale`. Files with fp8 weights and no scales ("fp8-cast", e.g. the LTX-2
`-fp8` files) need none of this. Only per-tensor scales exist in these layouts; anything else is refused.
"""

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch

from .safetensors_io import FLOAT_DTYPES, FP8_DTYPES, TensorEntry

LTX_SUFFIXES = {".weight_scale": "weight", ".bias_scale": "bias", ".input_scale": "input"}
COMFY_SUFFIXES = {".scale_weight": "weight", ".scale_bias": "bias", ".scale_input": "input"}
COMFY_MARKER = "scaled_fp8"
# name of a weight's scale in a diffusers folder that keeps fp8: the buffer name of models/fp8.py's FP8Linear
FOLDER_SCALE_SUFFIXES = (".weight_scale", ".bias_scale")


@dataclass(frozen=True)
class ScaledFp8:
    """The fp8 scales of a file: which tensor each scale belongs to, and the scale-related tensors no class uses."""

    layout: str | None = None  # "ltx", "comfy", or None: no scales
    scales: dict[str, TensorEntry] = field(default_factory=dict)  # scaled tensor's key -> its per-tensor scale
    aside: dict[str, TensorEntry] = field(default_factory=dict)  # input scales and the marker, kept for the round trip

    def keys(self) -> set[str]:
        return {e.name for e in self.scales.values()} | set(self.aside)


def _is_marker(key: str) -> bool:
    return key == COMFY_MARKER or key.endswith("." + COMFY_MARKER)


def find_scaled_fp8(entries: Mapping[str, TensorEntry], path: str) -> ScaledFp8:
    """The file's scale tensors, checked: every scale belongs to an fp8 tensor of the file and holds one number."""
    ltx = [k for k in entries if k.endswith(tuple(LTX_SUFFIXES))]
    comfy = [k for k in entries if k.endswith(tuple(COMFY_SUFFIXES))]
    markers = [k for k in entries if _is_marker(k)]
    if ltx and (comfy or markers):
        raise ValueError(
            f"{path} mixes two fp8 scale layouts ({ltx[0]!r} is Lightricks', {(comfy or markers)[0]!r} ComfyUI's): "
            "the file was assembled from two sources; re-export it from one."
        )
    if comfy and not markers:
        raise ValueError(
            f"{path} has ComfyUI-style fp8 scales (e.g. {comfy[0]!r}) but no {COMFY_MARKER!r} marker tensor, so it is "
            "not a ComfyUI scaled-fp8 file; re-export it, or add the marker if you know the scales are per-tensor."
        )
    if not (ltx or markers):
        return ScaledFp8()
    layout, suffixes, keys = ("ltx", LTX_SUFFIXES, ltx) if ltx else ("comfy", COMFY_SUFFIXES, comfy)
    scales, aside = {}, {k: entries[k] for k in markers}
    for key in keys:
        suffix = next(s for s in suffixes if key.endswith(s))
        kind, module = suffixes[suffix], key[: -len(suffix)]
        if kind == "input":
            aside[key] = entries[key]
            continue
        target, scale = f"{module}.{kind}", entries[key]
        if target not in entries:
            raise ValueError(f"{path}: {key!r} is the scale of {target!r}, which the file does not hold.")
        if entries[target].dtype not in FP8_DTYPES:
            raise ValueError(
                f"{path}: {key!r} scales {target!r}, a {entries[target].dtype} tensor; only fp8 tensors carry "
                "scales. The file is inconsistent."
            )
        if math.prod(scale.shape) != 1 or scale.dtype not in FLOAT_DTYPES:
            raise ValueError(
                f"{path}: {key!r} is {scale.dtype}{list(scale.shape)}; only per-tensor scales (one float) are "
                "supported."
            )
        scales[target] = scale
    return ScaledFp8(layout, scales, aside)


def original_scale_name(tensor_key: str, layout: str) -> str:
    """The file's name of the scale of `tensor_key` (`<module>.weight` or `.bias`) in `layout`."""
    module, kind = tensor_key.rsplit(".", 1)
    return f"{module}.{kind}_scale" if layout == "ltx" else f"{module}.scale_{kind}"


def layout_of(aside_names: Iterable[str]) -> str:
    """The layout of a converted folder, from the tensors kept aside: ComfyUI's keeps its marker."""
    return "comfy" if any(_is_marker(k) for k in aside_names) else "ltx"


def dequantize(tensor: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """weight.float() * scale, in `dtype` (what ltx-core's fp8_cast does when it folds a scale, there into bf16)."""
    return (tensor.float() * scale.float().reshape(())).to(dtype)


def is_fp8_aside(name: str) -> bool:
    """Is `name` a scale-related tensor of a scaled-fp8 file (a scale or the ComfyUI marker)?"""
    return _is_marker(name) or name.endswith((*LTX_SUFFIXES, *COMFY_SUFFIXES))
