"""The few collectives the parallel modes need, on torch.distributed only (gloo on CPU, NCCL on CUDA).

Sequences are split into contiguous, nearly equal pieces (`torch.tensor_split`'s rule: the first `T % P` ranks get one
token more), so every rank can work out every other rank's piece size without asking.
"""

import torch
import torch.distributed as dist
from torch import Tensor


def split_sizes(length: int, parts: int) -> list[int]:
    """Sizes of `torch.tensor_split(range(length), parts)`: the first `length % parts` pieces are one longer."""
    base, extra = divmod(length, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def piece(x: Tensor, dim: int, rank: int, parts: int) -> Tensor:
    """This rank's contiguous piece of `x` along `dim` (a view)."""
    sizes = split_sizes(x.shape[dim], parts)
    return x.narrow(dim, sum(sizes[:rank]), sizes[rank])


def gather_pieces(x: Tensor, dim: int, sizes: list[int], group: dist.ProcessGroup | None) -> Tensor:
    """Every rank's piece of a tensor split along `dim` with `sizes`, concatenated in rank order (uneven pieces
    are padded to the longest for the collective and trimmed after)."""
    longest = max(sizes)
    pad = longest - x.shape[dim]
    if pad:
        shape = list(x.shape)
        shape[dim] = pad
        x = torch.cat([x, x.new_zeros(shape)], dim=dim)
    buffers = [torch.empty_like(x) for _ in sizes]
    dist.all_gather(buffers, x.contiguous(), group=group)
    return torch.cat([b.narrow(dim, 0, n) for b, n in zip(buffers, sizes)], dim=dim)


def all_to_all(send: list[Tensor], recv_shapes: list[tuple[int, ...]], group: dist.ProcessGroup | None) -> list[Tensor]:
    """Send `send[j]` to rank j and receive from rank i a tensor of `recv_shapes[i]` (one flat all_to_all_single)."""
    dtype, device = send[0].dtype, send[0].device
    flat = torch.cat([t.reshape(-1) for t in send])
    recv_sizes = [int(torch.Size(s).numel()) for s in recv_shapes]
    out = torch.empty(sum(recv_sizes), dtype=dtype, device=device)
    dist.all_to_all_single(
        out, flat, output_split_sizes=recv_sizes, input_split_sizes=[t.numel() for t in send], group=group
    )
    return [chunk.view(shape) for chunk, shape in zip(out.split(recv_sizes), recv_shapes)]
