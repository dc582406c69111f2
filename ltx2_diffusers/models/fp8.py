"""Opt-in FP8 (float8_e4m3fn) inference for the LTX-2 transformer's block linears (Hopper and later).

`enable_fp8(transformer)` swaps the linear layers chosen by `FP8_POLICY` for `FP8Linear`: the weight is quantised
once to e4m3 with a float32 scale (per output channel or per tensor), the input is quantised at run time with a
scale computed on the device from its amax (no host sync, so a block still compiles with `fullgraph=True`), and the
product runs through `torch._scaled_mm` with the bias fused and a bf16 result. On devices without FP8 GEMMs (CPU) the
same quantised numbers are multiplied in float32 (`emulate`), which is how the CPU tests check the numerics.

This is not the reference's `fp8_cast` (e4m3 storage, upcast before a bf16 GEMM: saves memory, not time) nor its
`fp8_scaled_mm` (static input scales from a pre-quantised checkpoint, TensorRT-LLM): it needs no calibration and
works from any bf16 checkpoint. Layer choice follows the reference (spec §8.3): block q/k/v/out and FFN linears only.

Training: the layers are frozen (no weight gradient), but gradients flow to their input through the dequantised
weight (`FP8LinearFunction`), so LoRA adapters (models/fp8_lora.py: peft's LoRA layers run over FP8 layers, their own
matmuls in the activation dtype) train over an FP8 base, with gradient checkpointing too.

Saving: an FP8 model's weights are a run-time representation. `state_dict()` holds them as they are (e4m3 `weight`, its
float32 `weight_scale`, `bias`), which is what peft and diffusers read when adapters are loaded or saved, and what
loads back into an FP8 model; `save_pretrained` refuses (not diffusers' format), and loading a plain checkpoint's
weights into an FP8 layer is refused. `disable_fp8(model)` turns the layers back into `nn.Linear` holding the
dequantised weights (lossy: the FP8 rounding stays), which save and load as an ordinary checkpoint.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .fp8_lora import FP8LoraLinear, register_lora_layer

FP8_DTYPE = torch.float8_e4m3fn
FP8_MAX = torch.finfo(FP8_DTYPE).max  # 448
# amax floor: an all-zero input would otherwise get scale 0 and quantise to NaN (0 / 0)
_AMAX_FLOOR = 1e-12
GRANULARITIES = ("rowwise", "tensorwise")

# Which linears become FP8 (module names as in diffusers' LTX2VideoTransformer3DModel). First matching row wins;
# a linear no row matches stays in the model dtype.
#   (pattern, fp8, why)
FP8_POLICY: tuple[tuple[str, bool, str], ...] = (
    (
        r"transformer_blocks\.\d+\.(attn1|attn2|audio_attn1|audio_attn2|audio_to_video_attn|video_to_audio_attn)"
        r"\.(to_q|to_k|to_v|to_qkv|to_kv|to_out\.0)",
        True,
        "attention projections (fused to_qkv / to_kv too): about 45% of a block's linear FLOPs at 6144 video tokens",
    ),
    (r"transformer_blocks\.\d+\.(ff|audio_ff)\.net\.(0\.proj|2)", True, "feed-forward: the other 55%"),
    (r".*to_gate_logits", False, "LTX-2.3 per-head gates: tiny, and they scale whole heads"),
    (r".*", False, "AdaLN/timestep MLPs, proj_in, proj_out, caption projection: small, and errors reach every token"),
)
# The reference's scaled-mm policy keeps the first block and the last five in bf16 (spec §8.3); negative = from the end
REFERENCE_BF16_BLOCKS: tuple[int, ...] = (0, -5, -4, -3, -2, -1)


@dataclass(frozen=True)
class FP8Config:
    """What `enable_fp8` did; stored as `transformer.fp8_config` (None on a model in its own dtype)."""

    granularity: str
    fast_accum: bool
    bf16_blocks: tuple[int, ...]
    num_fp8_layers: int


def quantize_fp8(x: Tensor, granularity: str) -> tuple[Tensor, Tensor]:
    """x (..., K) -> (x_fp8 (..., K) e4m3, scale float32) with x ≈ x_fp8 * scale.

    "rowwise": one scale per row (scale (..., 1)); "tensorwise": one scale (0-dim). scale = amax / 448, so the
    largest |x| maps to e4m3's largest finite value; values are clamped to ±448 because the cast does not saturate.
    Computed on x's device: no host synchronisation.
    """
    # the amax of bf16 values is a bf16 value: reduce in x's dtype (no float32 copy in eager), then widen
    if granularity == "rowwise":
        amax = x.abs().amax(dim=-1, keepdim=True).float()
    elif granularity == "tensorwise":
        amax = x.abs().amax().float()
    else:
        raise ValueError(f"granularity={granularity!r}: expected one of {GRANULARITIES}")
    scale = amax.clamp(min=_AMAX_FLOOR) / FP8_MAX
    # x.float() explicitly: a 0-dim float32 scale would not promote a bf16 x, and x / scale would round to bf16
    return (x.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8_DTYPE), scale


def dequantize_fp8(x_fp8: Tensor, scale: Tensor) -> Tensor:
    """Inverse of `quantize_fp8`, in float32."""
    return x_fp8.float() * scale


def fp8_linear(
    x: Tensor,
    weight: Tensor,
    weight_scale: Tensor,
    bias: Tensor | None,
    granularity: str,
    fast_accum: bool = False,
    emulate: bool | None = None,
) -> Tensor:
    """y = x W^T + b with W = weight * weight_scale already in e4m3 and x quantised here; y in x's dtype.

    x: (..., K); weight: (N, K) e4m3, row-major; weight_scale: (N,) for "rowwise", 0-dim for "tensorwise".
    `torch._scaled_mm(a, b, scale_a, scale_b)` computes (a * scale_a) @ (b * scale_b): a (M, K) row-major with
    scale (M, 1) or scalar, b (K, N) column-major (weight.t() is exactly that, no copy) with scale (1, N) or scalar;
    K and N multiples of 16. Rowwise needs a bf16 result. `emulate` (default: x not on CUDA) does the same product in
    float32 from the same quantised values.
    """
    lead, k = x.shape[:-1], x.shape[-1]
    x_fp8, x_scale = quantize_fp8(x.reshape(-1, k), granularity)
    rowwise = granularity == "rowwise"
    if emulate is None:
        emulate = x.device.type != "cuda"
    if emulate:
        w = dequantize_fp8(weight, weight_scale[:, None] if rowwise else weight_scale)  # (N, K)
        y = dequantize_fp8(x_fp8, x_scale) @ w.t()
        if bias is not None:
            y = y + bias.float()
        return y.to(x.dtype).reshape(*lead, -1)
    if x.dtype != torch.bfloat16:
        raise ValueError(
            f"FP8 layers on CUDA compute in bfloat16, got input dtype {x.dtype}: run the model in bfloat16 "
            "(transformer.to(torch.bfloat16) keeps the FP8 weights as they are)"
        )
    y = torch._scaled_mm(
        x_fp8.contiguous(),  # elementwise ops keep x's strides; _scaled_mm wants a row-major first operand
        weight.t(),
        scale_a=x_scale,
        scale_b=weight_scale.reshape(1, -1) if rowwise else weight_scale,
        bias=None if bias is None else bias.to(x.dtype),
        out_dtype=x.dtype,
        use_fast_accum=fast_accum,
    )
    return y.reshape(*lead, -1)


class FP8LinearFunction(torch.autograd.Function):
    """`fp8_linear` with a backward for a frozen FP8 weight: dL/dx = dL/dy W, W = weight * weight_scale dequantised and
    rounded to the gradient's dtype, so the input gradient is exactly that of an `nn.Linear` holding the dequantised
    weight in that dtype (the rounding of x to e4m3 in the forward passes the gradient straight through). The weight
    gets no gradient; a bias that requires one gets dL/dy summed over tokens. The backward's product is an ordinary
    GEMM in the gradient's dtype (bf16 on the GPU): a (N, K) dequantised copy lives only during one layer's backward.
    """

    @staticmethod
    def forward(x, weight, weight_scale, bias, granularity, fast_accum):
        return fp8_linear(x, weight, weight_scale, bias, granularity, fast_accum)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, weight, weight_scale, bias, granularity, _ = inputs
        ctx.save_for_backward(weight, weight_scale)
        ctx.granularity = granularity
        ctx.bias_dtype = None if bias is None else bias.dtype

    @staticmethod
    def backward(ctx, grad_y):
        weight, weight_scale = ctx.saved_tensors
        grad_x = grad_bias = None
        if ctx.needs_input_grad[0]:
            scale = weight_scale[:, None] if ctx.granularity == "rowwise" else weight_scale
            grad_x = grad_y @ dequantize_fp8(weight, scale).to(grad_y.dtype)  # (..., N) @ (N, K)
        if ctx.needs_input_grad[3]:
            grad_bias = grad_y.reshape(-1, grad_y.shape[-1]).float().sum(dim=0).to(ctx.bias_dtype)
        return grad_x, None, None, grad_bias, None, None


class FP8Linear(nn.Module):
    """Drop-in for a frozen `nn.Linear`: e4m3 weight (N, K) plus float32 `weight_scale`, bias in the model dtype.

    Built by `FP8Linear.from_linear`; `to_linear()` gives back an `nn.Linear` with the dequantised weight.
    `compute_dtype` is the model dtype the layer stands in for (the dtype of the linear it replaced, following
    `model.to(dtype)`): peft creates LoRA adapters of this layer in it (models/fp8_lora.py). Gradients flow to the input
    (`FP8LinearFunction`), never to the weight.
    """

    # loaders/lora.py reads LoRA shapes from layers that declare this (it does not import models)
    lora_target_linear = True

    def __init__(
        self,
        in_features: int,
        out_features: int,
        weight: Tensor,
        weight_scale: Tensor,
        bias: Tensor | None,
        granularity: str,
        fast_accum: bool,
        compute_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.granularity, self.fast_accum = granularity, fast_accum
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.register_buffer("weight_scale", weight_scale)
        self.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)
        if compute_dtype is None:
            compute_dtype = torch.bfloat16 if bias is None else bias.dtype
        self.compute_dtype = compute_dtype
        # peft builds FP8LoraLinear (not its nn.Linear layer, which would merge into e4m3 weights) for this layer
        register_lora_layer(FP8Linear, FP8LoraLinear)

    @classmethod
    def from_linear(cls, linear: nn.Linear, granularity: str = "rowwise", fast_accum: bool = False) -> "FP8Linear":
        with torch.no_grad():
            weight, scale = quantize_fp8(linear.weight, granularity)
            bias = None if linear.bias is None else linear.bias.detach()
        # a per-channel scale is stored as (N,), not (N, 1): the layout _scaled_mm's scale_b wants is (1, N)
        scale = scale.reshape(-1) if granularity == "rowwise" else scale
        return cls(
            linear.in_features, linear.out_features, weight, scale, bias, granularity, fast_accum, linear.weight.dtype
        )

    def to_linear(self) -> nn.Linear:
        dtype = self.compute_dtype if self.bias is None else self.bias.dtype
        w_scale = self.weight_scale[:, None] if self.granularity == "rowwise" else self.weight_scale
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device="meta")
        linear.weight = nn.Parameter(dequantize_fp8(self.weight, w_scale).to(dtype))
        linear.bias = None if self.bias is None else nn.Parameter(self.bias.detach().clone())
        return linear

    def forward(self, x: Tensor) -> Tensor:
        args = (x, self.weight, self.weight_scale, self.bias, self.granularity, self.fast_accum)
        # the autograd Function only where a gradient is wanted: inference (and its compiled graphs) stays as it was
        if torch.is_grad_enabled() and (x.requires_grad or (self.bias is not None and self.bias.requires_grad)):
            if self.weight.requires_grad:
                raise ValueError(
                    f"{self.extra_repr()}: the FP8 weight has requires_grad=True, but FP8 weights are frozen (no "
                    "gradient reaches them). Train LoRA adapters over the FP8 layers, or call disable_fp8() to train "
                    "the weights; set weight.requires_grad_(False) (peft does this for non-adapter weights)."
                )
            return FP8LinearFunction.apply(*args)
        return fp8_linear(*args)

    def _apply(self, fn, recurse=True):
        # `model.to(dtype)` / `.half()` cast every floating tensor: the e4m3 weight and the float32 scale keep their
        # dtype (they only move), so the model can be cast to bf16 after enable_fp8. The compute dtype follows the
        # cast, as a float tensor of the model would (fn on an empty tensor: the same rule, no copy).
        kept = {"weight": self.weight.detach(), "weight_scale": self.weight_scale.detach()}  # .to() may set .data
        self.compute_dtype = fn(torch.empty(0, dtype=self.compute_dtype, device="cpu")).dtype
        super()._apply(fn, recurse)
        for name, before in kept.items():
            after = getattr(self, name)
            if after.dtype != before.dtype:
                moved = before.to(after.device)
                if name == "weight":
                    self.weight = nn.Parameter(moved, requires_grad=False)
                else:
                    self.weight_scale = moved
        return self

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # copy_ would cast a plain checkpoint's weight to e4m3 with no scale: silently wrong numbers
        weight = state_dict.get(f"{prefix}weight")
        if weight is not None and (weight.dtype != FP8_DTYPE or f"{prefix}weight_scale" not in state_dict):
            raise ValueError(
                f"{prefix.rstrip('.')} is an FP8 layer and the state dict holds a {weight.dtype} weight"
                f"{'' if f'{prefix}weight_scale' in state_dict else ' without weight_scale'}: FP8 layers load only "
                "their own state dict (e4m3 weight and its scale). Load the checkpoint before enable_fp8, or call "
                "disable_fp8() first."
            )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
            f"fp8=e4m3fn, granularity={self.granularity}, fast_accum={self.fast_accum}"
        )


def fp8_layer_names(model: nn.Module, bf16_blocks: Iterable[int] = ()) -> list[str]:
    """Names of the `nn.Linear`s `enable_fp8` converts: chosen by `FP8_POLICY`, outside `bf16_blocks`, and with both
    dimensions multiples of 16 (what `torch._scaled_mm` accepts; other layers stay in the model dtype)."""
    num_blocks = len(getattr(model, "transformer_blocks", ()))
    kept = set()
    for index in bf16_blocks:
        if not -num_blocks <= index < num_blocks:
            raise ValueError(f"bf16_blocks: block {index} does not exist, the model has {num_blocks} blocks")
        kept.add(index % num_blocks)
    names = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        fp8 = next(choice for pattern, choice, _ in FP8_POLICY if re.fullmatch(pattern, name))
        block = re.match(r"transformer_blocks\.(\d+)\.", name)
        if block is not None and int(block.group(1)) in kept:
            fp8 = False
        if fp8 and module.in_features % 16 == 0 and module.out_features % 16 == 0:
            names.append(name)
    return names


def enable_fp8(
    model: nn.Module,
    granularity: str = "rowwise",
    fast_accum: bool = False,
    bf16_blocks: Iterable[int] = (),
) -> FP8Config:
    """Convert `model`'s policy-selected linears to `FP8Linear`, in place, on the device the weights are on.

    granularity: "rowwise" (weight scale per output channel, input scale per token; the default, more accurate) or
        "tensorwise" (one scale each).
    fast_accum: `use_fast_accum` of `torch._scaled_mm` (Hopper's faster, less precise FP8 accumulation).
    bf16_blocks: block indices kept in the model dtype (negative counts from the end); `REFERENCE_BF16_BLOCKS` is the
        reference's choice (first block and last five).

    Call after `fuse_qkv_projections()` (fusing FP8 layers is not supported) and before compiling blocks. The model
    must compute in bfloat16 on CUDA (CUDA capability 8.9+); on CPU the product is emulated in float32. Sets and
    returns `model.fp8_config`. Undo with `disable_fp8`.
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity={granularity!r}: expected one of {GRANULARITIES}")
    if is_fp8(model):
        raise ValueError(f"FP8 is already enabled ({model.fp8_config}): call disable_fp8(model) first to change it")
    if getattr(model, "peft_config", None):
        raise ValueError(
            "LoRA adapters are loaded (model.peft_config): call enable_fp8 before loading them (adapters load onto an "
            "FP8 model and stay live, models/fp8_lora.py), i.e. unload them, enable_fp8(), load them again; or fuse "
            "them into the weights and unload them first"
        )
    bf16_blocks = tuple(bf16_blocks)
    names = fp8_layer_names(model, bf16_blocks)
    for name in names:
        parent, _, attr = name.rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        setattr(owner, attr, FP8Linear.from_linear(getattr(owner, attr), granularity, fast_accum))
    model.fp8_config = FP8Config(granularity, fast_accum, bf16_blocks, len(names))
    return model.fp8_config


def disable_fp8(model: nn.Module) -> None:
    """Replace every `FP8Linear` by an `nn.Linear` with the dequantised weight (in the bias' dtype): the model is an
    ordinary one again and saves normally; its outputs keep the FP8 weight rounding."""
    for name, module in list(model.named_modules()):
        if isinstance(module, FP8Linear):
            parent, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, attr, module.to_linear())
    model.fp8_config = None


def is_fp8(model: nn.Module) -> bool:
    return getattr(model, "fp8_config", None) is not None


def place_scaled_fp8_linear(model: nn.Module, name: str, weight: Tensor, scale: Tensor) -> None:
    """Replace the nn.Linear owning `name` (a weight's state-dict name) by a "tensorwise" FP8Linear holding `weight`
    (e4m3) and its per-tensor `scale`: how a scaled-fp8 file's weights are kept in FP8 (from_single_file, fp8="keep")."""
    owner, _, attr = name.rpartition(".")
    parent = model.get_submodule(owner) if owner else model
    linear = getattr(parent, attr)
    if not isinstance(linear, nn.Linear) or weight.dtype != FP8_DTYPE:
        raise ValueError(
            f"fp8='keep': {name} is a {type(linear).__name__} with {weight.dtype} weights; FP8 layers hold "
            f"{FP8_DTYPE} linear weights only. Load with fp8='dequantize'."
        )
    bias = None if linear.bias is None else linear.bias.detach()
    # compute dtype: the file's bias dtype (bf16 without a bias, as fp8="dequantize" gives); the placeholder's meta
    # weight has the class default dtype, not the file's
    layer = FP8Linear(linear.in_features, linear.out_features, weight, scale, bias, "tensorwise", False)
    setattr(parent, attr, layer)
