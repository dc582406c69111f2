"""3-D neighbourhood attention (NATTEN's `na3d` semantics) for the LTX-2.5 diffusion video decoder (spec §4.2).

Every query at (t, h, w) attends to the K_t x K_h x K_w keys of a window that is centred on it where possible and
**shifted inward** at the borders, so it always holds K keys per axis (trap 15): on an axis of length L the window of
query i starts at clamp(i - K // 2, 0, L - K). Non-causal, no dilation, scale 1 (the decoder scales q itself).

Two paths: NATTEN's `na3d` when the package is importable and the tensors are on CUDA, and pure torch (the CPU and
test reference). The pure-torch path gathers each query's K_t K_h K_w keys when that fits a memory budget (exact and
cheap for small kernels), else runs SDPA over query blocks against the union of their windows with an exact mask.
"""

import torch
import torch.nn.functional as F
from torch import Tensor

try:  # optional: `pip install natten` (CUDA wheels); never needed for correctness
    import natten
except ImportError:
    natten = None

# Query block of the blocked-SDPA path, (T, H, W): ~1k queries against ~3k keys per SDPA call with 3x7x7 kernels.
QUERY_BLOCK: tuple[int, int, int] = (4, 16, 16)
GATHER_BUDGET_BYTES = 256 << 20  # gathered keys + values of one chunk of query frames


def natten_available() -> bool:
    """True when the `natten` package imported (its `na3d` is then used for CUDA tensors)."""
    return natten is not None


def window_starts(length: int, kernel: int, device: torch.device | None = None) -> Tensor:
    """(length,) int64: first key index of each query's window, clamp(i - kernel // 2, 0, length - kernel).

    A kernel longer than the axis covers the whole axis (window = the axis), as NATTEN does."""
    kernel = min(kernel, length)
    return (torch.arange(length, device=device) - kernel // 2).clamp(0, length - kernel)


def window_mask_1d(length: int, kernel: int, queries: slice, keys: slice, device: torch.device | None = None) -> Tensor:
    """(len(queries), len(keys)) bool: key j is in the window of query i on one axis of `length`."""
    kernel = min(kernel, length)
    starts = window_starts(length, kernel, device)[queries]
    key_index = torch.arange(keys.start, keys.stop, device=device)
    return (key_index[None, :] >= starts[:, None]) & (key_index[None, :] < starts[:, None] + kernel)


def _axis_blocks(length: int, kernel: int, block: int) -> list[tuple[slice, slice]]:
    """(query slice, key slice) per block of `block` queries; the key slice is the union of their windows."""
    kernel = min(kernel, length)
    starts = window_starts(length, kernel).tolist()
    return [
        (slice(q0, min(q0 + block, length)), slice(starts[q0], starts[min(q0 + block, length) - 1] + kernel))
        for q0 in range(0, length, block)
    ]


def neighborhood_attention_gather(query: Tensor, key: Tensor, value: Tensor, kernel_size: tuple[int, int, int],
                                  frames_per_chunk: int) -> Tensor:
    """Pure-torch na3d by gathering every query's window: scores (..., K) = q . k_window, softmax in float32.
    Shapes as `neighborhood_attention_torch`; `frames_per_chunk` query frames at a time bound the gathered memory."""
    _, t, h, w, _, _ = query.shape
    windows = []  # (L, K) key index per query position and window offset, per axis
    for length, kernel in zip((t, h, w), kernel_size, strict=True):
        kernel = min(kernel, length)
        windows.append(window_starts(length, kernel, query.device)[:, None] + torch.arange(kernel, device=query.device))
    key_flat, value_flat = key.flatten(1, 3), value.flatten(1, 3)  # (B, T H W, heads, head_dim)
    out = torch.empty_like(value)
    for t0 in range(0, t, frames_per_chunk):
        at = windows[0][t0:t0 + frames_per_chunk]
        index = (at[:, None, None, :, None, None] * h + windows[1][None, :, None, None, :, None]) * w
        index = (index + windows[2][None, None, :, None, None, :]).flatten(3)  # (tq, H, W, K)
        keys = key_flat.index_select(1, index.flatten()).unflatten(1, index.shape)  # (B, tq, H, W, K, heads, d)
        scores = torch.einsum("bthwnd,bthwknd->bthwnk", query[:, t0:t0 + len(at)], keys)
        weights = scores.float().softmax(dim=-1).to(value.dtype)
        values = value_flat.index_select(1, index.flatten()).unflatten(1, index.shape)
        out[:, t0:t0 + len(at)] = torch.einsum("bthwnk,bthwknd->bthwnd", weights, values)
    return out


def neighborhood_attention_torch(
    query: Tensor, key: Tensor, value: Tensor, kernel_size: tuple[int, int, int],
    query_block: tuple[int, int, int] = QUERY_BLOCK, gather_budget_bytes: int = GATHER_BUDGET_BYTES,
) -> Tensor:
    """Pure-torch na3d. query/key/value: (B, T, H, W, heads, head_dim), q already scaled; returns the same shape.

    Gathers the windows (`neighborhood_attention_gather`) when one query frame's keys and values fit
    `gather_budget_bytes`; else SDPA per query block against the union of the block's windows, with the product of
    the three 1-D window masks: exact as well, since a key outside a query's window gets no weight."""
    batch, *grid, heads, head_dim = query.shape
    window = 1
    for length, kernel in zip(grid, kernel_size, strict=True):
        window *= min(kernel, length)
    frame_bytes = 2 * batch * grid[1] * grid[2] * window * heads * head_dim * value.element_size()
    if frame_bytes <= gather_budget_bytes:
        return neighborhood_attention_gather(query, key, value, kernel_size, gather_budget_bytes // frame_bytes)
    out = torch.empty_like(value)
    blocks = [_axis_blocks(length, k, b) for length, k, b in zip(grid, kernel_size, query_block, strict=True)]
    for tq, tk in blocks[0]:
        mask_t = window_mask_1d(grid[0], kernel_size[0], tq, tk, query.device)
        for hq, hk in blocks[1]:
            mask_h = window_mask_1d(grid[1], kernel_size[1], hq, hk, query.device)
            for wq, wk in blocks[2]:
                mask_w = window_mask_1d(grid[2], kernel_size[2], wq, wk, query.device)
                # (tq, hq, wq, tk, hk, wk) -> (queries, keys)
                mask = mask_t[:, None, None, :, None, None] & mask_h[None, :, None, None, :, None]
                mask = (mask & mask_w[None, None, :, None, None, :]).flatten(3).flatten(0, 2)
                q = query[:, tq, hq, wq].flatten(1, 3).transpose(1, 2)  # (B, heads, queries, head_dim)
                k = key[:, tk, hk, wk].flatten(1, 3).transpose(1, 2)
                v = value[:, tk, hk, wk].flatten(1, 3).transpose(1, 2)
                o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0)
                out[:, tq, hq, wq] = o.transpose(1, 2).unflatten(1, (tq.stop - tq.start, hq.stop - hq.start, -1))
    return out


def neighborhood_attention(query: Tensor, key: Tensor, value: Tensor, kernel_size: tuple[int, int, int]) -> Tensor:
    """na3d on (B, T, H, W, heads, head_dim) with q already scaled: NATTEN on CUDA when installed, else pure torch."""
    if natten is not None and query.is_cuda:
        # NATTEN's fused kernels read raw strides: contiguous inputs, one dtype (spec §4.4)
        query, key, value = (x.to(value.dtype).contiguous() for x in (query, key, value))
        return natten.na3d(query, key, value, kernel_size=tuple(kernel_size), scale=1.0)
    return neighborhood_attention_torch(query, key, value, kernel_size)


def rope_dim_split(head_dim: int) -> tuple[int, int, int]:
    """(d_t, d_h, d_w) channels of a head rotated by the T, H and W positions (spec §4.2, trap 16):
    d_t = 2 floor(head_dim / 8), d_h = d_w = the rest halved, each even: (16, 24, 24) for 64, (8, 12, 12) for 32."""
    if head_dim % 8 != 0:
        raise ValueError(f"head_dim={head_dim} is not a multiple of 8, which the decoder's 3-axis RoPE split needs "
                         f"(T, H and W each get an even number of channels); use 32, 64 or 128.")
    d_t = head_dim // 4 // 2 * 2
    d_hw = (head_dim - d_t) // 2
    if d_hw % 2:
        d_t -= 2
        d_hw = (head_dim - d_t) // 2
    return d_t, d_hw, d_hw


def apply_rope_3d(x: Tensor, base: float = 10000.0) -> Tensor:
    """Absolute RoPE with local positions 0..L-1 per axis, interleaved pairs (x[2i], x[2i+1]), in float32.

    x: (B, T, H, W, heads, head_dim); channels split by `rope_dim_split`. Positions local to the tensor are exact for
    neighbourhood attention: a shared offset is a phase that cancels in q.k."""
    parts = []
    offset = 0
    for axis, dim in enumerate(rope_dim_split(x.shape[-1]), start=1):
        chunk = x[..., offset:offset + dim]
        offset += dim
        inv_freq = (1.0 / base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)).float().to(x.device)
        angles = torch.arange(x.shape[axis], dtype=torch.float32, device=x.device)[:, None] * inv_freq[None, :]
        shape = [1] * 5 + [dim // 2]
        shape[axis] = x.shape[axis]
        cos, sin = angles.cos().view(shape), angles.sin().view(shape)
        even, odd = chunk.unflatten(-1, (dim // 2, 2)).float().unbind(-1)
        parts.append(torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2).to(x.dtype))
    return torch.cat(parts, dim=-1)
