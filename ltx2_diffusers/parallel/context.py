"""Context parallel for both streams: every rank holds a contiguous piece of the video tokens AND of the audio tokens
through the whole block stack; attention that needs other ranks' tokens exchanges them.

Where tokens are split and joined (hooks on the transformer's blocks, nothing in the model's code changes):
- before the first block the video and audio hidden states are cut into pieces (`comm.split_sizes`);
- before every block the per-token block inputs are cut the same way: AdaLN rows when they are per token, the RoPE
  tables of self- and audio<->video attention, a per-token text-mask row. Per-sample rows, text contexts and the
  self-attention weight mask (needed whole by the attention) are left whole;
- after the last block the pieces are gathered, so the output heads and the caller see the full sequences.

Which attention needs the other ranks: video and audio self-attention and both audio<->video attentions (their keys
are the other stream's pieces). Text cross-attention does not (every rank has the whole text). Those four modules get
an attention function over split tokens (`Attention.parallel_attention`):
- "ulysses": all-to-all from token pieces to head groups, the ordinary attention kernel on whole sequences for H/P
  heads, all-to-all back. The arithmetic per head is the single-process one: outputs are equal bit for bit (on CPU;
  tests/test_parallel.py). Needs the head count divisible by the number of ranks.
- "ring": each rank keeps its queries and the key/value pieces travel round the ring; pieces are merged with their
  log-sum-exp in float32. Not the fused kernel's arithmetic: equal within float rounding (tests state how close).
"""

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..models.attention import attention
from .comm import all_to_all, gather_pieces, piece, split_sizes

MODES = ("ulysses", "ring")


@dataclass
class SequenceSplit:
    """How the current forward's streams are split over the context-parallel group (set by the first block's hook)."""

    group: dist.ProcessGroup | None
    rank: int
    world: int
    sizes: dict[str, list[int]] = field(default_factory=dict)

    def full(self, stream: str) -> int:
        return sum(self.sizes[stream])

    def offset(self, stream: str) -> int:
        return sum(self.sizes[stream][: self.rank])


def ulysses_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, q_sizes, k_sizes, split) -> Tensor:
    """q: (B, H, t_q, d) this rank's query piece, k/v: (B, H, t_k, d) its key piece; mask: additive bias over the
    whole sequences (B, 1|H, T_q, T_k) or None. Returns (B, H, t_q, d)."""
    batch, heads, _, dim = q.shape
    group_heads = heads // split.world

    def to_head_group(x: Tensor, sizes: list[int]) -> Tensor:  # (B, H, t, d) -> (B, H/P, T, d)
        sent = [h.contiguous() for h in x.split(group_heads, dim=1)]
        received = all_to_all(sent, [(batch, group_heads, n, x.shape[-1]) for n in sizes], split.group)
        return torch.cat(received, dim=2)

    q_all, k_all, v_all = to_head_group(q, q_sizes), to_head_group(k, k_sizes), to_head_group(v, k_sizes)
    if mask is not None and mask.shape[1] != 1:
        mask = mask[:, split.rank * group_heads : (split.rank + 1) * group_heads]
    out = attention(q_all, k_all, v_all, mask)  # (B, H/P, T_q, d): the kernel the model would use
    sent = [p.contiguous() for p in out.split(q_sizes, dim=2)]
    received = all_to_all(sent, [(batch, group_heads, q_sizes[split.rank], dim)] * split.world, split.group)
    return torch.cat(received, dim=1)


def ring_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, q_sizes, k_sizes, split) -> Tensor:
    """Same contract as `ulysses_attention`; key/value pieces are passed to the next rank while this one works."""
    rank, world = split.rank, split.world
    rows = slice(sum(q_sizes[:rank]), sum(q_sizes[: rank + 1]))
    query = q.float() * q.shape[-1] ** -0.5
    key_value = torch.cat([k, v], dim=-1).contiguous()
    out, lse = None, None
    source = rank
    for step in range(world):
        requests, incoming = [], None
        if step < world - 1:
            previous = (source - 1) % world
            incoming = key_value.new_empty((*key_value.shape[:2], k_sizes[previous], key_value.shape[-1]))
            to_rank = dist.get_global_rank(split.group, (rank + 1) % world) if split.group else (rank + 1) % world
            from_rank = dist.get_global_rank(split.group, (rank - 1) % world) if split.group else (rank - 1) % world
            requests = [dist.isend(key_value, to_rank, group=split.group), dist.irecv(incoming, from_rank, split.group)]
        key, value = key_value.float().split([k.shape[-1], v.shape[-1]], dim=-1)
        scores = query @ key.transpose(-1, -2)
        if mask is not None:
            cols = slice(sum(k_sizes[:source]), sum(k_sizes[: source + 1]))
            scores = scores + mask[:, :, rows, cols].float()
        piece_lse = torch.logsumexp(scores, dim=-1, keepdim=True)
        piece_out = torch.softmax(scores, dim=-1) @ value
        if out is None:
            out, lse = piece_out, piece_lse
        else:
            merged = torch.logaddexp(lse, piece_lse)
            out = out * torch.exp(lse - merged) + piece_out * torch.exp(piece_lse - merged)
            lse = merged
        for request in requests:
            request.wait()
        if incoming is not None:
            key_value, source = incoming, (source - 1) % world
    return out.to(q.dtype)


ATTENTION: dict[str, Callable] = {"ulysses": ulysses_attention, "ring": ring_attention}


class SplitAttention:
    """`Attention.parallel_attention` for one module: its queries are pieces of `query_stream`, its keys of
    `key_stream` ("video" or "audio")."""

    def __init__(self, split: SequenceSplit, mode: str, query_stream: str, key_stream: str):
        self.split, self.attention = split, ATTENTION[mode]
        self.query_stream, self.key_stream = query_stream, key_stream

    def __call__(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        sizes = self.split.sizes
        return self.attention(q, k, v, mask, sizes[self.query_stream], sizes[self.key_stream], self.split)


# per-token StreamInputs fields and the dimension that runs over tokens
_TOKEN_DIMS = {"temb": 1, "cross_temb": 1, "cross_gate_temb": 1, "context_bias": 2}
_ROPE_FIELDS = ("rope", "cross_rope")


def _split_inputs(inputs, stream: str, split: SequenceSplit):
    """This rank's piece of a stream's per-forward block inputs (StreamInputs), by the rules of the module docstring."""
    if inputs is None:
        return None
    full, changes = split.full(stream), {}
    for f in fields(inputs):
        value = getattr(inputs, f.name)
        if value is None:
            continue
        if f.name in _TOKEN_DIMS:
            dim = _TOKEN_DIMS[f.name]
            if value.shape[dim] == full and full > 1:
                changes[f.name] = piece(value, dim, split.rank, split.world)
        elif f.name in _ROPE_FIELDS:
            changes[f.name] = tuple(piece(t, 2, split.rank, split.world) for t in value)
    return replace(inputs, **changes)


class ContextParallel:
    """Installs (and `remove()`s) the hooks and attention functions of context parallel on a transformer."""

    def __init__(self, transformer: nn.Module, group: dist.ProcessGroup | None, mode: str = "ulysses"):
        if mode not in MODES:
            raise ValueError(f"context-parallel mode must be one of {MODES}, got {mode!r}")
        world = dist.get_world_size(group)
        cfg = transformer.config
        if mode == "ulysses":
            for name in ("num_attention_heads", "audio_num_attention_heads"):
                if getattr(cfg, name) % world:
                    raise ValueError(
                        f"ulysses context parallel splits attention heads over {world} ranks, but the model has "
                        f"{name}={getattr(cfg, name)}: use a degree that divides it, or mode='ring'"
                    )
        self.split = SequenceSplit(group, dist.get_rank(group), world)
        self.transformer, self.mode = transformer, mode
        blocks = list(transformer.transformer_blocks)
        self.handles = [blocks[0].register_forward_pre_hook(self._enter, with_kwargs=True)]
        self.handles += [b.register_forward_pre_hook(self._split_block_inputs, with_kwargs=True) for b in blocks]
        self.handles.append(blocks[-1].register_forward_hook(self._leave))
        self.attention_modules = []
        for block in blocks:
            for name, streams in (
                ("attn1", ("video", "video")),
                ("audio_attn1", ("audio", "audio")),
                ("audio_to_video_attn", ("video", "audio")),
                ("video_to_audio_attn", ("audio", "video")),
            ):
                module = getattr(block, name, None)
                if module is not None:
                    module.parallel_attention = SplitAttention(self.split, mode, *streams)
                    self.attention_modules.append(module)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        for module in self.attention_modules:
            module.parallel_attention = None
        self.handles, self.attention_modules = [], []

    def _enter(self, block, args, kwargs):
        video, audio, *rest = args
        split = self.split
        if video.shape[1] < split.world or (audio is not None and audio.shape[1] < split.world):
            raise ValueError(
                f"context parallel over {split.world} ranks needs at least that many tokens per stream (video "
                f"{video.shape[1]}, audio {0 if audio is None else audio.shape[1]}): use a smaller context degree "
                "(--context-parallel), or guidance parallel (--guidance-parallel) for calls this short"
            )
        split.sizes = {"video": split_sizes(video.shape[1], split.world)}
        video = piece(video, 1, split.rank, split.world)
        if audio is not None:
            split.sizes["audio"] = split_sizes(audio.shape[1], split.world)
            audio = piece(audio, 1, split.rank, split.world)
        return (video, audio, *rest), kwargs

    def _split_block_inputs(self, block, args, kwargs):
        video, audio, video_inputs, audio_inputs, *rest = args
        video_inputs = _split_inputs(video_inputs, "video", self.split)
        audio_inputs = _split_inputs(audio_inputs, "audio", self.split) if audio is not None else audio_inputs
        return (video, audio, video_inputs, audio_inputs, *rest), kwargs

    def _leave(self, block, args, output):
        video, audio = output
        video = gather_pieces(video, 1, self.split.sizes["video"], self.split.group)
        if audio is not None:
            audio = gather_pieces(audio, 1, self.split.sizes["audio"], self.split.group)
        return video, audio
