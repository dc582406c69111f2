"""Attention of LTX-2: one module for the transformer's self-, text- and audio<->video attention (spec §1.2, §1.8,
§1.11) and for the text connectors' self-attention (spec §5.5).

Attention goes through `attention(q, k, v, mask)`: `torch.nn.functional.scaled_dot_product_attention`, or a kernel
from another package. Which kernel runs is chosen with `sdpa_backend(name)` around the call (the transformer does this
for its whole block loop when `set_attention_backend` was called):
- PyTorch's SDPA kernels: "cudnn" is the fastest on Hopper, "flash" and "efficient" are the others, "math" is the slow
  reference. PyTorch raises when the named kernel cannot run. "cudnn_first" / "flash_first" are priority lists
  (`SDPA_PRIORITIES`): each call runs the first kernel of the list that can take it (`pipe.enable_fast()` uses them,
  so a call cuDNN cannot run, e.g. with some masks, still runs).
- Kernels of other packages (`EXTERNAL_BACKENDS`), CUDA only, each used only when its package imports:
  "flash_attn_2" (`flash_attn.flash_attn_func`), "flash_attn_4" (`flash_attn.cute.flash_attn_func`, Hopper and
  Blackwell) and "sageattention" (`sageattention.sageattn`: 8-bit Q K^T, approximate). They take no mask and only
  half precision: a call with a mask or in float32 runs SDPA instead (rare: the standard path has no mask).
Choose the backend before compiling blocks, and keep it while they run.
"""

import contextlib
import functools
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from .rope import apply_rope

SDPA_BACKENDS: dict[str, SDPBackend] = {
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "math": SDPBackend.MATH,
}
# Priority lists: the first kernel that can run the call (PyTorch's sdpa_kernel(..., set_priority=True))
SDPA_PRIORITIES: dict[str, tuple[SDPBackend, ...]] = {
    "cudnn_first": (SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                    SDPBackend.MATH),  # fmt: skip
    "flash_first": (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH),
}
# diffusers' names for the same native kernels, so `set_attention_backend("_native_cudnn")` keeps working
DIFFUSERS_BACKEND_NAMES: dict[str, str | None] = {
    "native": None,
    "_native_cudnn": "cudnn",
    "_native_flash": "flash",
    "_native_efficient": "efficient",
    "_native_math": "math",
}


Kernel = Callable[[Tensor, Tensor, Tensor], Tensor]  # q (B, T, H, d), k and v (B, S, H, d) -> (B, T, H, d)


def _load_flash_attn_2() -> Kernel:
    from flash_attn import flash_attn_func

    return flash_attn_func


def _load_flash_attn_4() -> Kernel:
    from flash_attn.cute import flash_attn_func  # returns out, or (out, lse), by version

    def kernel(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        out = flash_attn_func(q, k, v)
        return out[0] if isinstance(out, tuple) else out

    return kernel


def _load_sage() -> Kernel:
    from sageattention import sageattn

    def kernel(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        return sageattn(q, k, v, tensor_layout="NHD", is_causal=False)

    return kernel


# name -> (loader, the package that provides it)
EXTERNAL_BACKENDS: dict[str, tuple[Callable[[], Kernel], str]] = {
    "flash_attn_2": (_load_flash_attn_2, "flash-attn"),
    "flash_attn_4": (_load_flash_attn_4, "flash-attn-4 (flash_attn.cute)"),
    "sageattention": (_load_sage, "sageattention"),
}
_external_backend: str | None = None  # set by `sdpa_backend` for the duration of a block loop


@functools.cache
def load_external_kernel(name: str) -> Kernel:
    """The kernel of an `EXTERNAL_BACKENDS` entry; a clear error when its package does not import."""
    loader, package = EXTERNAL_BACKENDS[name]
    try:
        return loader()
    except ImportError as error:
        raise ValueError(
            f"attention backend {name!r} needs the {package} package, which does not import here ({error}). "
            f"Install it on a CUDA machine, or choose one of PyTorch's kernels {sorted(SDPA_BACKENDS)}."
        ) from error


def external_backend_importable(name: str) -> bool:
    try:
        load_external_kernel(name)
    except ValueError:
        return False
    return True


# A custom op, so torch.compile(fullgraph=True) keeps the call whole whether or not the package's kernel traces.
@torch.library.custom_op("ltx2_diffusers::external_attention", mutates_args=())
def external_attention(q: Tensor, k: Tensor, v: Tensor, backend: str) -> Tensor:
    """softmax(q k^T / sqrt(d)) v by another package's kernel: q (B, T, H, d), k and v (B, S, H, d) -> (B, T, H, d)"""
    return load_external_kernel(backend)(q, k, v).contiguous()


@external_attention.register_fake
def _(q: Tensor, k: Tensor, v: Tensor, backend: str) -> Tensor:
    return q.new_empty(q.shape)


def resolve_sdpa_backend(name: str | None) -> str | None:
    """Our backend name for `name` (ours or diffusers' native one); None = PyTorch's own choice."""
    if name is None or name in SDPA_BACKENDS or name in SDPA_PRIORITIES or name in EXTERNAL_BACKENDS:
        return name
    if name in DIFFUSERS_BACKEND_NAMES:
        return DIFFUSERS_BACKEND_NAMES[name]
    raise ValueError(
        f"Unknown attention backend {name!r}. Choose one of torch SDPA's {sorted(SDPA_BACKENDS)} (or diffusers' "
        f"{sorted(DIFFUSERS_BACKEND_NAMES)}), a priority list {sorted(SDPA_PRIORITIES)}, another package's "
        f"{sorted(EXTERNAL_BACKENDS)}, or None for PyTorch's choice."
    )


@contextlib.contextmanager
def sdpa_backend(name: str | None) -> Iterator[None]:
    """Run attention with exactly the named kernel inside the block (no silent fallback: PyTorch raises if an SDPA
    kernel can't run; another package's kernel raises here if it does not import)."""
    global _external_backend
    name = resolve_sdpa_backend(name)
    if name is None:
        yield
        return
    if name in SDPA_BACKENDS:
        with sdpa_kernel([SDPA_BACKENDS[name]]):
            yield
        return
    if name in SDPA_PRIORITIES:
        with sdpa_kernel(list(SDPA_PRIORITIES[name]), set_priority=True):
            yield
        return
    load_external_kernel(name)  # refused here, before any block runs, when its package does not import
    previous, _external_backend = _external_backend, name
    try:
        yield
    finally:
        _external_backend = previous


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
    """softmax(q k^T / sqrt(d) + mask) v for (B, H, T, d) q and (B, H, S, d) k, v. Another package's kernel when one
    is active (`sdpa_backend`), the call has no mask and is in half precision; SDPA otherwise."""
    backend = _external_backend
    if backend is not None and mask is None and q.dtype in (torch.bfloat16, torch.float16):
        return external_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), backend).transpose(1, 2)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


class Attention(nn.Module):
    """Multi-head attention with RMS-normalised q/k (over all heads jointly), RoPE, optional per-head output gates
    (LTX-2.3) and a value pass-through for spatio-temporal guidance.

    Parameter names are diffusers': to_q, to_k, to_v, norm_q, norm_k, to_out.0, to_gate_logits.
    """

    def __init__(
        self,
        query_dim: int,
        heads: int,
        dim_head: int,
        context_dim: int | None = None,
        bias: bool = True,
        out_bias: bool = True,
        gated: bool = False,
        eps: float = 1e-6,
        rope_type: str = "split",
    ):
        super().__init__()
        inner_dim = heads * dim_head
        context_dim = query_dim if context_dim is None else context_dim
        self.heads = heads
        self.rope_type = rope_type
        self.norm_q = nn.RMSNorm(inner_dim, eps=eps)
        self.norm_k = nn.RMSNorm(inner_dim, eps=eps)
        self.to_q = nn.Linear(query_dim, inner_dim, bias=bias)
        self.to_k = nn.Linear(context_dim, inner_dim, bias=bias)
        self.to_v = nn.Linear(context_dim, inner_dim, bias=bias)
        self.to_out = nn.ModuleList([nn.Linear(inner_dim, query_dim, bias=out_bias), nn.Dropout(0.0)])
        self.to_gate_logits = nn.Linear(query_dim, heads) if gated else None
        self.to_qkv: nn.Linear | None = None  # set by fuse_projections (self-attention)
        self.to_kv: nn.Linear | None = None  # set by fuse_projections (cross-attention)
        # set by ltx2_diffusers.parallel.context: (q, k, v, mask) -> out, when q and k are pieces of split sequences
        self.parallel_attention = None

    def fuse_projections(self, self_attention: bool) -> None:
        """Replace to_q/to_k/to_v (self-attention) or to_k/to_v (cross-attention) by one linear layer: one GEMM
        instead of three or two, same numbers up to GEMM rounding. The separate layers are freed, not duplicated."""
        if self.to_qkv is not None or self.to_kv is not None:
            return
        names = ("to_q", "to_k", "to_v") if self_attention else ("to_k", "to_v")
        layers = [getattr(self, name) for name in names]
        if len({layer.in_features for layer in layers}) != 1:
            raise ValueError(
                "to_q and to_k read different widths: this is a cross-attention, fuse with self_attention=False"
            )
        fused = nn.Linear(layers[0].in_features, sum(layer.out_features for layer in layers), device="meta")
        fused.weight = nn.Parameter(torch.cat([layer.weight.detach() for layer in layers]))
        fused.bias = (
            None if layers[0].bias is None else nn.Parameter(torch.cat([layer.bias.detach() for layer in layers]))
        )
        for name in names:
            delattr(self, name)
        if self_attention:
            self.to_qkv = fused
        else:
            self.to_kv = fused

    def unfuse_projections(self) -> None:
        """Back to diffusers' separate to_q/to_k/to_v (needed before saving or adding LoRA adapters)."""
        fused, names = (
            (self.to_qkv, ("to_q", "to_k", "to_v")) if self.to_qkv is not None else (self.to_kv, ("to_k", "to_v"))
        )
        if fused is None:
            return
        biases = [None] * len(names) if fused.bias is None else fused.bias.detach().chunk(len(names))
        for name, weight, bias in zip(names, fused.weight.detach().chunk(len(names)), biases):
            layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")
            layer.weight = nn.Parameter(weight.clone())
            layer.bias = None if bias is None else nn.Parameter(bias.clone())
            setattr(self, name, layer)
        self.to_qkv = self.to_kv = None

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        rope: tuple[Tensor, Tensor] | None = None,
        context_rope: tuple[Tensor, Tensor] | None = None,
        mask: Tensor | None = None,
        keep: Tensor | None = None,
    ) -> Tensor:
        """x: (B, T, query_dim); context: (B, S, context_dim), None for self-attention. Returns (B, T, query_dim).

        rope: cos/sin (B, H, T, ·) for the queries (and the keys unless `context_rope` is given).
        mask: additive bias broadcastable to (B, H, T, S), or None (the fast path).
        keep: (B, 1, 1, 1) in {0, 1}; 0 replaces this sample's attention by its values (STG, spec §1.11).
        """
        if self.to_qkv is not None:
            if context is not None:
                raise ValueError("q/k/v are fused for self-attention, but a context was given")
            q, k, v = self.to_qkv(x).chunk(3, dim=-1)
        else:
            context = x if context is None else context
            q = self.to_q(x)
            k, v = (
                self.to_kv(context).chunk(2, dim=-1)
                if self.to_kv is not None
                else (self.to_k(context), self.to_v(context))
            )
        q = self.norm_q(q).unflatten(-1, (self.heads, -1)).transpose(1, 2)  # (B, H, T, d)
        k = self.norm_k(k).unflatten(-1, (self.heads, -1)).transpose(1, 2)  # (B, H, S, d)
        v = v.unflatten(-1, (self.heads, -1)).transpose(1, 2)
        if rope is not None:
            q = apply_rope(q, *rope, self.rope_type)
            k = apply_rope(k, *(rope if context_rope is None else context_rope), self.rope_type)
        if self.parallel_attention is None:
            out = attention(q, k, v, mask)
        else:
            out = self.parallel_attention(q, k, v, mask)
        if keep is not None:
            # v + keep * (out - v), as a lerp: exact at keep = 0 and 1, and no branch on values (one compiled graph)
            out = torch.lerp(v, out, keep)
        if self.to_gate_logits is not None:
            gates = 2.0 * torch.sigmoid(self.to_gate_logits(x))  # (B, T, H); zero logits give gate 1
            out = out * gates.transpose(1, 2).unsqueeze(-1)
        return self.to_out[0](out.transpose(1, 2).flatten(2))


def text_bias(mask: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """diffusers' text mask: (B, L) 1 = attend -> additive (B, 1, 1, L); an additive (B, 1|T, L) bias -> (B, 1, 1|T, L)."""
    if mask is None:
        return None
    if mask.ndim == 2:
        return ((1 - mask.to(dtype)) * -10000.0)[:, None, None, :]
    if mask.ndim == 3:
        return mask.to(dtype)[:, None]
    raise ValueError(f"text attention mask must be (B, L) or (B, 1, L), got shape {tuple(mask.shape)}")


def self_attention_bias(weights: Tensor | None, dtype: torch.dtype, num_tokens: int) -> Tensor | None:
    """[0, 1] attention weights (B, T, T) -> additive log-bias (B, 1, T, T) (spec §1.4 step 6): log(w), and the
    dtype's most negative value where w <= 0."""
    if weights is None:
        return None
    if weights.ndim != 3 or weights.shape[1:] != (num_tokens, num_tokens):
        raise ValueError(f"self-attention mask must be (B, {num_tokens}, {num_tokens}), got {tuple(weights.shape)}")
    finfo = torch.finfo(dtype)
    bias = torch.where(weights > 0, torch.log(weights.clamp(min=finfo.tiny)).to(dtype), finfo.min)
    return bias.to(dtype).unsqueeze(1)
