"""LTX-2.5's duration head (spec §4.5): the prompt's connector outputs -> the clip length in seconds, used when a
pipeline is called with `num_frames=None`.

Config keys and parameter names are diffusers 0.42.1's `LTX2DurationHead`; the original files store the pooler as a
`torch.nn.MultiheadAttention` (`attention_pooler.cross_attn.in_proj_weight`, ...: loaders/duration_head_keys.py).
"""

import logging

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn

from ..loaders.from_single_file import FromLTX2SingleFileMixin

logger = logging.getLogger(__name__)

FRAME_STEP = 8  # the causal video VAE's temporal grid: clips have 8k + 1 frames


class DurationAttentionPooler(nn.Module):
    """`num_queries` learned tokens cross-attend to every context token (no mask: the connectors' outputs have no
    padding left, their registers fill it). Returns (B, num_queries, hidden)."""

    def __init__(self, hidden_dim: int, num_queries: int, num_heads: int):
        super().__init__()
        if hidden_dim % num_heads:
            raise ValueError(f"pooler_hidden_dim={hidden_dim} is not divisible by num_pooler_heads={num_heads}.")
        self.heads = num_heads
        self.query_tokens = nn.Parameter(torch.zeros(num_queries, hidden_dim))
        self.to_q = nn.Linear(hidden_dim, hidden_dim)
        self.to_k = nn.Linear(hidden_dim, hidden_dim)
        self.to_v = nn.Linear(hidden_dim, hidden_dim)
        self.to_out = nn.Linear(hidden_dim, hidden_dim)

    def forward(self, tokens: Tensor) -> Tensor:
        queries = self.query_tokens.expand(tokens.shape[0], -1, -1)
        q, k, v = (proj(x).unflatten(-1, (self.heads, -1)).transpose(1, 2)  # (B, heads, S, head_dim)
                   for proj, x in ((self.to_q, queries), (self.to_k, tokens), (self.to_v, tokens)))
        return self.to_out(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2))


class LTX2DurationHead(FromLTX2SingleFileMixin, ModelMixin, ConfigMixin):
    r"""Predicts the natural length of the shot a prompt describes: seconds = exp(MLP(pool(tokens))) (trap 24).

    tokens = [video_input_proj(video context) + video_modality_emb ; audio_input_proj(audio context) +
    audio_modality_emb] along the sequence (either may be absent), pooled by learned queries, then
    Linear -> GELU(tanh) -> Linear to one log-duration.

    Args (diffusers' `LTX2DurationHead` config, same defaults):
        video_cross_attention_dim, audio_cross_attention_dim: widths of the video and audio connector outputs.
        pooler_hidden_dim: the shared width both streams are projected to.
        num_queries, num_pooler_heads: the attention pooler's learned queries and heads.
        mlp_hidden_dim: hidden width of the output MLP (the original config calls it `mlp_hidden`).
    """

    @register_to_config
    def __init__(self, video_cross_attention_dim: int = 4096, audio_cross_attention_dim: int = 2048,
                 pooler_hidden_dim: int = 256, num_queries: int = 1, num_pooler_heads: int = 4,
                 mlp_hidden_dim: int = 256):
        super().__init__()
        self.video_input_proj = nn.Linear(video_cross_attention_dim, pooler_hidden_dim)
        self.video_modality_emb = nn.Parameter(torch.zeros(pooler_hidden_dim))
        self.audio_input_proj = nn.Linear(audio_cross_attention_dim, pooler_hidden_dim)
        self.audio_modality_emb = nn.Parameter(torch.zeros(pooler_hidden_dim))
        self.attention_pooler = DurationAttentionPooler(pooler_hidden_dim, num_queries, num_pooler_heads)
        self.mlp_hidden = nn.Linear(pooler_hidden_dim * num_queries, mlp_hidden_dim)
        self.mlp_out = nn.Linear(mlp_hidden_dim, 1)

    def forward(self, video_tokens: Tensor | None = None, audio_tokens: Tensor | None = None) -> Tensor:
        """video_tokens (B, S_v, video_cross_attention_dim), audio_tokens (B, S_a, audio_cross_attention_dim), at
        least one -> seconds (B,). Inputs are cast to the head's dtype."""
        streams = []
        for name, tokens, proj, emb, width in (
            ("video_tokens", video_tokens, self.video_input_proj, self.video_modality_emb,
             self.config.video_cross_attention_dim),
            ("audio_tokens", audio_tokens, self.audio_input_proj, self.audio_modality_emb,
             self.config.audio_cross_attention_dim),
        ):
            if tokens is None:
                continue
            if tokens.ndim != 3 or tokens.shape[-1] != width:
                raise ValueError(f"{name} of shape {tuple(tokens.shape)}; expected (B, S, {width}), the connector's "
                                 f"output for this head.")
            streams.append(proj(tokens.to(self.dtype)) + emb)
        if not streams:
            raise ValueError("LTX2DurationHead needs video_tokens, audio_tokens or both (the prompt's connector "
                             "outputs); got neither.")
        if len(streams) == 2 and streams[0].shape[0] != streams[1].shape[0]:
            raise ValueError(f"video_tokens and audio_tokens have batch sizes {streams[0].shape[0]} and "
                             f"{streams[1].shape[0]}; pass the same prompts' outputs.")
        pooled = self.attention_pooler(torch.cat(streams, dim=1)).flatten(1)
        hidden = F.gelu(self.mlp_hidden(pooled), approximate="tanh")
        return self.mlp_out(hidden).squeeze(-1).exp()


def frames_for_seconds(seconds: float, fps: float, min_frames: int, max_frames: int) -> int:
    """round(seconds fps) clamped to [min_frames, max_frames], floored to 8k + 1, lifted to the next 8k + 1 if that
    fell below min_frames (ltx-pipelines' `seconds_to_clamped_num_frames`). No 8k + 1 in the range is an error (the
    reference then returns max_frames, a length the VAE cannot decode)."""
    raw = max(min_frames, min(round(seconds * fps), max_frames))
    frames = (raw - 1) // FRAME_STEP * FRAME_STEP + 1
    if frames < min_frames:
        frames = -(-(min_frames - 1) // FRAME_STEP) * FRAME_STEP + 1
    if frames > max_frames:
        below = (max_frames - 1) // FRAME_STEP * FRAME_STEP + 1
        raise ValueError(f"No clip length of the form 8k + 1 lies in [{min_frames}, {max_frames}] frames (the "
                         f"duration range at {fps} fps); widen the range to include {below} or {frames} frames.")
    return frames


def predict_num_frames(head: LTX2DurationHead, video_context: Tensor | None, audio_context: Tensor | None,
                       fps: float, min_seconds: float = 1.0, max_seconds: float = 20.0) -> int:
    """The number of frames (8k + 1) for one prompt's connector outputs (B = 1), its predicted length in seconds
    clamped to [min_seconds, max_seconds] (rounded to frames at `fps`) as `frames_for_seconds` snaps it."""
    if fps <= 0:
        raise ValueError(f"fps={fps}; the frame rate must be positive.")
    if not 0 < min_seconds <= max_seconds:
        raise ValueError(f"min_seconds={min_seconds}, max_seconds={max_seconds}; expected 0 < min <= max.")
    min_frames, max_frames = round(min_seconds * fps), round(max_seconds * fps)
    if min_frames < 1:
        raise ValueError(f"min_seconds={min_seconds} is under one frame at {fps} fps; use at least {1 / fps:.4g}.")
    with torch.no_grad():
        seconds = head(video_context, audio_context)
    if seconds.numel() != 1:
        raise ValueError(f"predict_num_frames takes one prompt's contexts (batch 1), got {seconds.numel()} "
                         f"predictions; call it once per prompt.")
    seconds = seconds.item()
    frames = frames_for_seconds(seconds, fps, min_frames, max_frames)
    if not min_seconds <= seconds <= max_seconds:
        logger.warning("Predicted duration %.2f s is outside [%.2f, %.2f] s; using %d frames (%.2f s at %g fps).",
                       seconds, min_seconds, max_seconds, frames, frames / fps, fps)
    return frames
