"""Text connectors: Gemma hidden states -> the video and audio contexts the transformer attends to (spec §5.3-§5.5).

Two stages, both with weights:
1. Feature extractor: normalise each of Gemma's hidden states (49 for Gemma-3 12B: the embeddings and 48 layers),
   flatten them hidden-major/layer-minor (feature index d * L + l) and project.
   V1 (LTX-2): per sample and per layer, over the real tokens, (x - mean) / (max - min) * 8; one projection
   `text_proj_in` feeds both connectors.
   V2 (LTX-2.3, `per_modality_projections=True`): per token and per layer RMS, rescaled by sqrt(out_dim / hidden);
   separate `video_text_proj_in` and `audio_text_proj_in`.
2. One 1-D transformer per modality (`video_connector`, `audio_connector`). Padding is replaced by learnable
   registers: the real tokens move to the front in order, position p >= n_real gets register p mod R, and from then
   on every position attends everywhere. ltx-core 1.0.0 does this with a batch-squeezed boolean index that is only
   right for batch size 1; here each sample is compacted on its own, so a batch equals its single-prompt calls.

Config keys, parameter names and shapes are those of diffusers' in-tree `LTX2TextConnectors`.
"""

import math
from collections.abc import Sequence

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.attention import FeedForward
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn

from ..hub import ModelCardMixin
from ..loaders.from_single_file import FromLTX2SingleFileMixin
from .attention import Attention
from .embeddings import rms_norm
from .rope import ROPE_TYPES, rope_cos_sin

RMS_EPS = 1e-6  # every weightless RMS norm of the connectors and the V2 feature extractor


def masked_range_norm(hidden_states: Tensor, keep: Tensor, scale: float = 8.0, eps: float = 1e-6) -> Tensor:
    """V1 normalisation of one Gemma layer: scale * (x - mean) / (max - min + eps) over each sample's real tokens.

    hidden_states: (B, T, D); keep: (B, T) bool, True on real tokens. Mean, min and max run over the real tokens and
    all D channels of a sample; padded positions come out as 0. Returns (B, T, D), float32 for bf16 inputs: the
    reference divides a bf16 sum by a float32 count, which promotes the rest of the arithmetic (spec §13.12).
    """
    keep = keep[:, :, None]
    count = keep.sum(dim=(1, 2), keepdim=True) * hidden_states.shape[-1]  # int64 (B, 1, 1)
    mean = hidden_states.masked_fill(~keep, 0.0).sum(dim=(1, 2), keepdim=True) / (count + eps)
    low = hidden_states.masked_fill(~keep, float("inf")).amin(dim=(1, 2), keepdim=True)
    high = hidden_states.masked_fill(~keep, float("-inf")).amax(dim=(1, 2), keepdim=True)
    normed = scale * (hidden_states - mean) / (high - low + eps)
    return normed.masked_fill(~keep, 0.0)


def per_token_rms_norm(hidden_states: Tensor, keep: Tensor, eps: float = RMS_EPS) -> Tensor:
    """V2 normalisation of one Gemma layer: x / sqrt(mean_d(x^2) + eps) per token, padded positions set to 0.

    hidden_states: (B, T, D); keep: (B, T) bool. Computed in the input dtype, as the reference does.
    """
    variance = hidden_states.pow(2).mean(dim=-1, keepdim=True)
    normed = hidden_states * torch.rsqrt(variance + eps)
    return torch.where(keep[:, :, None], normed, torch.zeros_like(normed))


def fill_padding_with_registers(hidden_states: Tensor, keep: Tensor, registers: Tensor) -> Tensor:
    """Move each sample's real tokens to the front (order kept) and put register p mod R at every later position p.

    hidden_states: (B, T, D); keep: (B, T) bool; registers: (R, D) with T % R == 0. Returns (B, T, D).
    """
    seq_len = hidden_states.shape[1]
    # A stable sort on "is padding" lists the real tokens first, in their original order.
    order = torch.sort((~keep).to(torch.uint8), dim=1, stable=True).indices
    front = hidden_states.gather(1, order[:, :, None].expand_as(hidden_states))
    num_real = keep.sum(dim=1, keepdim=True)  # (B, 1)
    is_register = torch.arange(seq_len, device=keep.device)[None, :] >= num_real  # (B, T)
    tiled = registers.to(hidden_states.dtype).repeat(seq_len // registers.shape[0], 1)  # (T, D)
    return torch.where(is_register[:, :, None], tiled, front)


class LTX2ConnectorBlock1d(nn.Module):
    """Pre-norm block: h += attn(RMS(h)); h += ff(RMS(h)). The norms have no weights (diffusers' norm1/norm2).

    The attention is the transformer's (q/k RMSNorm over all heads, RoPE, LTX-2.3's optional per-head gates), used as
    self-attention with the connector's additive padding mask, or no mask when registers fill the padding.
    """

    def __init__(self, dim: int, heads: int, head_dim: int, rope_type: str, gated: bool, ff_bias: bool = True):
        super().__init__()
        self.attn1 = Attention(dim, heads, head_dim, gated=gated, eps=RMS_EPS, rope_type=rope_type)
        # net.0.proj, net.2: 4x GELU-tanh
        self.ff = FeedForward(dim, activation_fn="gelu-approximate", bias=ff_bias)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor], attention_bias: Tensor | None) -> Tensor:
        """x: (B, T, dim); rope: per-head cos/sin; attention_bias: (B, 1, 1, T) additive or None. Returns (B, T, dim)."""
        x = x + self.attn1(rms_norm(x, RMS_EPS), rope=rope, mask=attention_bias)
        return x + self.ff(rms_norm(x, RMS_EPS))


class LTX2ConnectorTransformer1d(nn.Module):
    """A stack of 1-D blocks over the projected text features, with RoPE at positions 0..T-1 over `rope_base_seq_len`."""

    _supports_gradient_checkpointing = True

    def __init__(
        self,
        num_attention_heads: int,
        attention_head_dim: int,
        num_layers: int,
        num_learnable_registers: int | None,
        rope_base_seq_len: int,
        rope_theta: float,
        rope_double_precision: bool,
        rope_type: str,
        gated_attention: bool,
        ff_bias: bool = True,
    ):
        super().__init__()
        self.num_attention_heads = num_attention_heads
        self.inner_dim = num_attention_heads * attention_head_dim
        self.rope_base_seq_len = rope_base_seq_len
        self.rope_theta = rope_theta
        self.rope_double_precision = rope_double_precision
        self.rope_type = rope_type
        self.learnable_registers = None
        if num_learnable_registers is not None:
            # Uniform in [-1, 1) as in the reference; checkpoints overwrite it.
            self.learnable_registers = nn.Parameter(torch.rand(num_learnable_registers, self.inner_dim) * 2.0 - 1.0)
        self.transformer_blocks = nn.ModuleList(
            LTX2ConnectorBlock1d(
                self.inner_dim, num_attention_heads, attention_head_dim, rope_type, gated_attention, ff_bias
            )
            for _ in range(num_layers)
        )
        self.gradient_checkpointing = False

    def forward(self, hidden_states: Tensor, keep: Tensor) -> Tensor:
        """hidden_states: (B, T, inner_dim) projected features; keep: (B, T) bool, True on real tokens.

        Returns the context (B, T, inner_dim). Without registers, padded keys are masked out of the attention, but
        padded positions still produce outputs, as in the reference.
        """
        batch_size, seq_len, _ = hidden_states.shape
        attention_bias = None
        if self.learnable_registers is not None:
            num_registers = self.learnable_registers.shape[0]
            if seq_len % num_registers != 0:
                raise ValueError(
                    f"The text sequence length {seq_len} is not a multiple of the connector's {num_registers} "
                    f"learnable registers, which tile the padded positions. Tokenize to a multiple of {num_registers} "
                    f"(max_sequence_length=1024 for the released models)."
                )
            hidden_states = fill_padding_with_registers(hidden_states, keep, self.learnable_registers)
        else:
            # The reference's additive mask: 0 on real tokens, -finfo.max on padding.
            dtype = hidden_states.dtype
            attention_bias = (keep.to(dtype) - 1.0).mul(torch.finfo(dtype).max).view(batch_size, 1, 1, seq_len)

        positions = torch.arange(seq_len, dtype=torch.float32, device=hidden_states.device)[None, None, :]  # (1, 1, T)
        rope = rope_cos_sin(
            positions,
            self.inner_dim,
            self.num_attention_heads,
            (self.rope_base_seq_len,),
            theta=self.rope_theta,
            rope_type=self.rope_type,
            double_precision=self.rope_double_precision,
            dtype=hidden_states.dtype,
        )
        for block in self.transformer_blocks:
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                hidden_states = self._gradient_checkpointing_func(block, hidden_states, rope, attention_bias)
            else:
                hidden_states = block(hidden_states, rope, attention_bias)
        return rms_norm(hidden_states, RMS_EPS)


class LTX2TextConnectors(FromLTX2SingleFileMixin, ModelCardMixin, ModelMixin, ConfigMixin, PeftAdapterMixin):
    """Gemma hidden states -> (video context, audio context, context mask); config and weights = diffusers' class.

    Args:
        caption_channels: hidden size of the text encoder (3840 for Gemma-3 12B).
        text_proj_in_factor: number of hidden states the text encoder returns (49 = embeddings + 48 layers).
        video_connector_num_attention_heads, video_connector_attention_head_dim: video connector width (30 x 128 on
            LTX-2, 32 x 128 on LTX-2.3).
        video_connector_num_layers: blocks of the video connector (2 on LTX-2, 8 on LTX-2.3).
        video_connector_num_learnable_registers: registers that replace padding (128), or None to keep padding and
            mask it.
        video_gated_attn: per-head attention gates (LTX-2.3).
        audio_connector_*, audio_gated_attn: the same for the audio connector (LTX-2.3: 32 x 64).
        connector_rope_base_seq_len: RoPE positions are p / connector_rope_base_seq_len (4096).
        rope_theta: RoPE base (10000).
        rope_double_precision: build the RoPE frequency grid in float64 (the released "float64" precision).
        causal_temporal_positioning: present in the diffusers config for compatibility; the reference never uses it,
            so only False is accepted.
        rope_type: "split" (released models) or "interleaved".
        per_modality_projections: False = V1 feature extractor (LTX-2), True = V2 (LTX-2.3).
        video_hidden_dim, audio_hidden_dim: V2 projection widths (4096, 2048); they must equal the connector widths.
        proj_bias: bias on the input projection(s) (False on LTX-2, True on LTX-2.3).
        connector_ff_bias: biases on both connectors' feed-forward layers (ltx-core 1.2.0's `connector_ff_bias`,
            default True). Not a key of diffusers 0.42.1's class, which always has them: with True (every released
            file so far) a saved folder loads there too; with False only here.

    LTX-2.5 uses the V2 layout with Gemma-4's hidden size as `caption_channels` and its layer count + 1 as
    `text_proj_in_factor` (1.2 spec §3.4-3.5); nothing else changes.
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        caption_channels: int = 3840,
        text_proj_in_factor: int = 49,
        video_connector_num_attention_heads: int = 30,
        video_connector_attention_head_dim: int = 128,
        video_connector_num_layers: int = 2,
        video_connector_num_learnable_registers: int | None = 128,
        video_gated_attn: bool = False,
        audio_connector_num_attention_heads: int = 30,
        audio_connector_attention_head_dim: int = 128,
        audio_connector_num_layers: int = 2,
        audio_connector_num_learnable_registers: int | None = 128,
        audio_gated_attn: bool = False,
        connector_rope_base_seq_len: int = 4096,
        rope_theta: float = 10000.0,
        rope_double_precision: bool = True,
        causal_temporal_positioning: bool = False,
        rope_type: str = "interleaved",
        per_modality_projections: bool = False,
        video_hidden_dim: int = 4096,
        audio_hidden_dim: int = 2048,
        proj_bias: bool = False,
        connector_ff_bias: bool = True,
    ):
        super().__init__()
        if rope_type not in ROPE_TYPES:
            raise ValueError(f"rope_type must be one of {ROPE_TYPES}, got {rope_type!r}")
        if causal_temporal_positioning:
            raise ValueError(
                "causal_temporal_positioning=True is not supported: ltx-core stores the flag but never uses it, so "
                "no released connector depends on it. Set it to False."
            )
        video_dim = video_connector_num_attention_heads * video_connector_attention_head_dim
        audio_dim = audio_connector_num_attention_heads * audio_connector_attention_head_dim
        # V1 feeds the same caption_channels-wide features to both connectors; V2 projects to each connector's width.
        expected_video, expected_audio = (
            (video_hidden_dim, audio_hidden_dim) if per_modality_projections else (caption_channels, caption_channels)
        )
        if (video_dim, audio_dim) != (expected_video, expected_audio):
            which = "video_hidden_dim/audio_hidden_dim" if per_modality_projections else "caption_channels"
            raise ValueError(
                f"Connector widths (heads x head_dim) are video {video_dim} and audio {audio_dim}, but the feature "
                f"projection produces {expected_video} and {expected_audio} ({which}). Make them equal."
            )

        text_encoder_dim = caption_channels * text_proj_in_factor
        if per_modality_projections:
            self.video_text_proj_in = nn.Linear(text_encoder_dim, video_hidden_dim, bias=proj_bias)
            self.audio_text_proj_in = nn.Linear(text_encoder_dim, audio_hidden_dim, bias=proj_bias)
        else:
            self.text_proj_in = nn.Linear(text_encoder_dim, caption_channels, bias=proj_bias)

        rope_args = {
            "rope_base_seq_len": connector_rope_base_seq_len,
            "rope_theta": rope_theta,
            "rope_double_precision": rope_double_precision,
            "rope_type": rope_type,
            "ff_bias": connector_ff_bias,
        }
        self.video_connector = LTX2ConnectorTransformer1d(
            video_connector_num_attention_heads,
            video_connector_attention_head_dim,
            video_connector_num_layers,
            video_connector_num_learnable_registers,
            gated_attention=video_gated_attn,
            **rope_args,
        )
        self.audio_connector = LTX2ConnectorTransformer1d(
            audio_connector_num_attention_heads,
            audio_connector_attention_head_dim,
            audio_connector_num_layers,
            audio_connector_num_learnable_registers,
            gated_attention=audio_gated_attn,
            **rope_args,
        )

    def _check_inputs(
        self, text_encoder_hidden_states: Tensor | Sequence[Tensor], attention_mask: Tensor, padding_side: str
    ) -> tuple[list[Tensor] | Tensor, Tensor]:
        """Validate the inputs; returns the layers (a list of (B, T, D) or one (B, T, D, L) tensor) and a bool mask."""
        hidden, layers = self.config.caption_channels, self.config.text_proj_in_factor
        if isinstance(text_encoder_hidden_states, Tensor):
            states = text_encoder_hidden_states
            if states.ndim == 3:  # diffusers' packed layout, feature index d * L + l
                if states.shape[-1] != hidden * layers:
                    raise ValueError(
                        f"Packed text encoder hidden states have {states.shape[-1]} features, expected caption_channels "
                        f"x text_proj_in_factor = {hidden} x {layers} = {hidden * layers}."
                    )
                states = states.unflatten(2, (hidden, layers))
            if states.ndim != 4 or tuple(states.shape[2:]) != (hidden, layers):
                raise ValueError(
                    f"Text encoder hidden states of shape {tuple(text_encoder_hidden_states.shape)}: expected "
                    f"(B, T, {hidden}, {layers}), (B, T, {hidden * layers}) or a sequence of {layers} (B, T, {hidden})."
                )
            shape = states.shape[:2]
        elif isinstance(text_encoder_hidden_states, Sequence):
            states = list(text_encoder_hidden_states)
            if len(states) != layers:
                raise ValueError(
                    f"Got {len(states)} text encoder hidden states, but the connectors were built for "
                    f"text_proj_in_factor={layers} (Gemma-3 12B returns 49: the embeddings and 48 layers). Pass "
                    f"all of them, e.g. `output_hidden_states=True` outputs' `.hidden_states`."
                )
            shape = states[0].shape[:2]
            for index, layer in enumerate(states):
                if layer.ndim != 3 or layer.shape[:2] != shape or layer.shape[-1] != hidden:
                    raise ValueError(
                        f"Hidden state {index} has shape {tuple(layer.shape)}, expected ({shape[0]}, {shape[1]}, "
                        f"{hidden}) like the first one (caption_channels={hidden})."
                    )
        else:
            raise TypeError(
                f"text_encoder_hidden_states must be a tensor or a sequence of tensors, got "
                f"{type(text_encoder_hidden_states).__name__}."
            )
        if tuple(attention_mask.shape) != tuple(shape):
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)}, expected (B, T) = {tuple(shape)} to match "
                f"the hidden states."
            )
        keep = attention_mask.bool()
        if not bool(keep.any(dim=1).all()):
            raise ValueError("attention_mask has a sample without any real token; every prompt keeps at least <bos>.")
        # The mask is what the math uses; padding_side is checked against it, as a mismatch means a wrong tokenizer.
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        steps = keep.int().diff(dim=1)
        if bool((steps < 0).any() if padding_side == "left" else (steps > 0).any()):
            raise ValueError(
                f"attention_mask is not {padding_side}-padded (real tokens must form one block at the "
                f"{'end' if padding_side == 'left' else 'start'}). Gemma's tokenizer pads on the left; pass the "
                f"padding side it used."
            )
        return states, keep

    def extract_features(
        self, text_encoder_hidden_states: Tensor | Sequence[Tensor], keep: Tensor, scale_factor: float = 8.0
    ) -> tuple[Tensor, Tensor]:
        """Normalise, flatten (index d * L + l) and project: (video features, audio features), (B, T, width) each.

        Layers are normalised one at a time into one (B, T, D, L) buffer in the projection's dtype, so the peak is
        the text encoder's own outputs plus a single normalised copy (the reference holds several full-size
        temporaries). V1 returns the same tensor twice.
        """
        per_layer = isinstance(text_encoder_hidden_states, list)
        first = text_encoder_hidden_states[0] if per_layer else text_encoder_hidden_states[..., 0]
        num_layers = self.config.text_proj_in_factor
        proj = self.video_text_proj_in if self.config.per_modality_projections else self.text_proj_in
        normed = first.new_empty((*first.shape, num_layers), dtype=proj.weight.dtype)  # (B, T, D, L)
        for index in range(num_layers):
            layer = text_encoder_hidden_states[index] if per_layer else text_encoder_hidden_states[..., index]
            layer = layer.to(proj.weight.dtype)
            if self.config.per_modality_projections:
                normed[..., index] = per_token_rms_norm(layer, keep)
            else:
                normed[..., index] = masked_range_norm(layer, keep, scale=scale_factor)
        normed = normed.flatten(2)  # (B, T, D * L)
        if not self.config.per_modality_projections:
            features = self.text_proj_in(normed)
            return features, features
        # V2: the RMS-normalised features are rescaled by sqrt(out_width / hidden) before each projection.
        hidden = self.config.caption_channels
        video = self.video_text_proj_in(normed * math.sqrt(self.config.video_hidden_dim / hidden))
        audio = self.audio_text_proj_in(normed * math.sqrt(self.config.audio_hidden_dim / hidden))
        return video, audio

    def forward(
        self,
        text_encoder_hidden_states: Tensor | Sequence[Tensor],
        attention_mask: Tensor,
        padding_side: str = "left",
        scale_factor: int = 8,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Text encoder hidden states -> (video context, audio context, context mask).

        Args:
            text_encoder_hidden_states: Gemma's hidden states, as the sequence `outputs.hidden_states` of
                `text_proj_in_factor` tensors (B, T, caption_channels) (leanest: no stacked copy), stacked
                (B, T, caption_channels, L), or packed (B, T, caption_channels * L) as diffusers' pipeline passes.
            attention_mask: (B, T), 1 on real tokens, 0 on padding (the tokenizer's mask).
            padding_side: the tokenizer's padding side; checked against `attention_mask`.
            scale_factor: V1 normalisation scale (8 in the reference).

        Returns:
            video context (B, T, video width), audio context (B, T, audio width), and the context mask (B, T) int64,
            all ones (registers fill the padding), so the transformer needs no text mask.
        """
        states, keep = self._check_inputs(text_encoder_hidden_states, attention_mask, padding_side)
        video_features, audio_features = self.extract_features(states, keep, scale_factor)
        del states
        video_context = self.video_connector(video_features, keep)
        audio_context = self.audio_connector(audio_features, keep)
        # The reference turns the connector's additive mask back into a binary one with `mask < 1e-6`, which holds
        # for 0 and for -finfo.max alike: the context mask is all ones, with or without registers, and the context
        # is never zeroed. We return the same, so the transformer attends to all T positions as it does there.
        return video_context, audio_context, torch.ones_like(attention_mask, dtype=torch.int64)
