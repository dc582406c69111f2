"""One dual-stream block of the LTX-2 / LTX-2.3 / LTX-2.5 transformer (spec §1.5) and the per-forward inputs it reads.

The block runs, per stream: AdaLN self-attention (with spatio-temporal guidance as data), text cross-attention
(LTX-2.3: AdaLN on query and text), audio<->video attention (AdaLN rows prepared by the model: the rule differs
between ltx-core 1.0.0 and 1.2.0), and the
feed-forward. Everything the two streams share lives in functions, so parameters keep diffusers' flat names.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import Attention
from .embeddings import modulate, modulation_rows, rms_norm

# Rows of a block's scale_shift_table / of `time_embed`'s output (spec §1.5): (shift, scale, gate) triples.
SELF_ATTN, FEED_FORWARD, TEXT_QUERY = slice(0, 3), slice(3, 6), slice(6, 9)
# Rows of the audio<->video tables: (scale, shift) for A2V, (scale, shift) for V2A, then row 4 is the gate.
# Note the (scale, shift) order, the opposite of the main table's.
A2V, V2A = slice(0, 2), slice(2, 4)


def av_adaln_timesteps(
    rule: str, timestep: Tensor, audio_timestep: Tensor, sigma: Tensor, audio_sigma: Tensor
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """Inputs of the audio<->video AdaLN, ((scale/shift, gate) of video, (scale/shift, gate) of audio):
    "1.2" (ltx-core 1.2.0): each stream's own per-token timestep for scale/shift, the partner's sigma for the gate;
    "1.0" (ltx-core 1.0.0): the partner's sigma for both; "diffusers" (use_cross_timestep=False): the own timestep
    for both (1.2 spec §5.1, trap 5)."""
    if rule == "1.2":
        return (timestep, audio_sigma), (audio_timestep, sigma)
    if rule == "1.0":
        return (audio_sigma, audio_sigma), (sigma, sigma)
    if rule == "diffusers":
        return (timestep, timestep), (audio_timestep, audio_timestep)
    raise ValueError(f"unknown audio<->video AdaLN rule {rule!r}; expected '1.2', '1.0' or 'diffusers'")


@dataclass(frozen=True)
class StreamInputs:
    """Everything one stream's blocks read besides its hidden states; built once per forward.

    temb: (B, N, R*D) AdaLN rows, N = 1 (one timestep per sample) or T (per token).
    context: (B, L, D) text context; context_bias: additive text mask (B, 1, 1|T, L) or None (the fast path).
    rope: self-attention cos/sin; self_attn_bias: (B, 1, T, T) log-bias of a [0, 1] weight mask, or None.
    prompt_temb: (B, 1, 2*D) text K/V modulation (LTX-2.3), None when the model has none or uses the table alone.
    cross_temb / cross_gate_temb: (B, N', 4*D) / (B, N", D) audio<->video AdaLN: scale/shift rows from the stream's
        own timestep (ltx-core 1.2.0, N' = 1 or T) or the partner's sigma (1.0.0); the gate from the partner's sigma
        (N" = 1), except on diffusers' legacy path (use_cross_timestep=False: both from the own timestep).
    cross_rope: cos/sin on the time axis for audio<->video attention.
    """

    temb: Tensor
    context: Tensor
    context_bias: Tensor | None
    rope: tuple[Tensor, Tensor]
    self_attn_bias: Tensor | None = None
    prompt_temb: Tensor | None = None
    cross_temb: Tensor | None = None
    cross_gate_temb: Tensor | None = None
    cross_rope: tuple[Tensor, Tensor] | None = None


@dataclass(frozen=True)
class BlockPerturbation:
    """Host-side perturbation plan of one block. keep tensors are 1 for untouched samples, 0 for perturbed ones.

    video_keep / audio_keep: (B, 1, 1, 1), STG on the self-attention; None = no sample perturbed in this block.
    a2v_keep / v2a_keep: (B, 1, 1) per-sample switch of the cross-modal update; None = all samples keep it.
    run_a2v / run_v2a: False skips the cross-modal attention for the whole batch (modality isolation).
    """

    video_keep: Tensor | None = None
    audio_keep: Tensor | None = None
    a2v_keep: Tensor | None = None
    v2a_keep: Tensor | None = None
    run_a2v: bool = True
    run_v2a: bool = True


class FeedForward(nn.Module):
    """dim -> 4 dim (tanh-GELU) -> dim; diffusers' names net.0.proj and net.2."""

    def __init__(self, dim: int, bias: bool = True, mult: int = 4):
        super().__init__()
        project_in = nn.Module()
        project_in.proj = nn.Linear(dim, mult * dim, bias=bias)
        self.net = nn.ModuleList([project_in, nn.Dropout(0.0), nn.Linear(mult * dim, dim, bias=bias)])

    def forward(self, x: Tensor) -> Tensor:
        return self.net[2](F.gelu(self.net[0].proj(x), approximate="tanh"))


class LTX2VideoTransformerBlock(nn.Module):
    """One dual-stream block (spec §1.5): self-attention, text cross-attention, audio<->video attention, feed-forward.

    Shared code between the streams lives in functions, so the parameters keep diffusers' flat names.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        head_dim: int,
        cross_attention_dim: int,
        audio_dim: int,
        audio_heads: int,
        audio_head_dim: int,
        audio_cross_attention_dim: int,
        gated_attn: bool,
        audio_gated_attn: bool,
        cross_attn_mod: bool,
        attention_bias: bool,
        attention_out_bias: bool,
        ff_bias: bool,
        audio_ff_bias: bool,
        eps: float,
        rope_type: str,
    ):
        super().__init__()
        self.eps = eps
        self.cross_attn_mod = cross_attn_mod

        def attention(query_dim, heads, head_dim, context_dim, gated):
            return Attention(
                query_dim, heads, head_dim, context_dim, attention_bias, attention_out_bias, gated, eps, rope_type
            )

        self.attn1 = attention(dim, heads, head_dim, None, gated_attn)
        self.attn2 = attention(dim, heads, head_dim, cross_attention_dim, gated_attn)
        self.audio_attn1 = attention(audio_dim, audio_heads, audio_head_dim, None, audio_gated_attn)
        self.audio_attn2 = attention(
            audio_dim, audio_heads, audio_head_dim, audio_cross_attention_dim, audio_gated_attn
        )
        # Both cross-modal attentions use the audio head layout; Q from one stream, K/V from the other.
        self.audio_to_video_attn = attention(dim, audio_heads, audio_head_dim, audio_dim, gated_attn)
        self.video_to_audio_attn = attention(audio_dim, audio_heads, audio_head_dim, dim, audio_gated_attn)
        self.ff = FeedForward(dim, bias=ff_bias)
        self.audio_ff = FeedForward(audio_dim, bias=audio_ff_bias)

        rows = 9 if cross_attn_mod else 6
        self.scale_shift_table = nn.Parameter(torch.randn(rows, dim) / dim**0.5)
        self.audio_scale_shift_table = nn.Parameter(torch.randn(rows, audio_dim) / audio_dim**0.5)
        if cross_attn_mod:
            self.prompt_scale_shift_table = nn.Parameter(torch.randn(2, dim))
            self.audio_prompt_scale_shift_table = nn.Parameter(torch.randn(2, audio_dim))
        self.video_a2v_cross_attn_scale_shift_table = nn.Parameter(torch.randn(5, dim))
        self.audio_a2v_cross_attn_scale_shift_table = nn.Parameter(torch.randn(5, audio_dim))

    def forward(
        self,
        video: Tensor,
        audio: Tensor | None,
        video_inputs: StreamInputs,
        audio_inputs: StreamInputs | None,
        perturbation: BlockPerturbation,
    ) -> tuple[Tensor, Tensor | None]:
        """video: (B, T_v, D) or None (audio-only call), audio: (B, T_a, D_a) or None (video-only call). Returns both
        updated."""
        # 1-2. Each stream: self-attention, then text cross-attention
        if video is not None:
            video = self._self_and_text_attention(
                video, video_inputs, perturbation.video_keep, self.attn1, self.attn2, self.scale_shift_table,
                getattr(self, "prompt_scale_shift_table", None),
            )  # fmt: skip
        if audio is not None:
            audio = self._self_and_text_attention(
                audio, audio_inputs, perturbation.audio_keep, self.audio_attn1, self.audio_attn2,
                self.audio_scale_shift_table, getattr(self, "audio_prompt_scale_shift_table", None),
            )  # fmt: skip

        # 3. Audio<->video attention. V2A reads the video state from before the A2V update (spec §13.7).
        if video is not None and audio is not None and (perturbation.run_a2v or perturbation.run_v2a):
            video_normed, audio_normed = rms_norm(video, self.eps), rms_norm(audio, self.eps)
            video_table, audio_table = (
                self.video_a2v_cross_attn_scale_shift_table,
                self.audio_a2v_cross_attn_scale_shift_table,
            )
            if perturbation.run_a2v:
                video = video + self._cross_modal_update(
                    video_normed, audio_normed, video_inputs, audio_inputs, video_table, audio_table, A2V,
                    self.audio_to_video_attn, perturbation.a2v_keep,
                )  # fmt: skip
            if perturbation.run_v2a:
                audio = audio + self._cross_modal_update(
                    audio_normed, video_normed, audio_inputs, video_inputs, audio_table, video_table, V2A,
                    self.video_to_audio_attn, perturbation.v2a_keep,
                )  # fmt: skip

        # 4. Feed-forward
        if video is not None:
            shift, scale, gate = modulation_rows(self.scale_shift_table, video_inputs.temb, FEED_FORWARD)
            video = video + self.ff(modulate(video, shift, scale, self.eps)) * gate
        if audio is not None:
            shift, scale, gate = modulation_rows(self.audio_scale_shift_table, audio_inputs.temb, FEED_FORWARD)
            audio = audio + self.audio_ff(modulate(audio, shift, scale, self.eps)) * gate
        return video, audio

    def _self_and_text_attention(
        self,
        x: Tensor,
        inputs: StreamInputs,
        keep: Tensor | None,
        self_attn: Attention,
        text_attn: Attention,
        table: Tensor,
        prompt_table: Tensor | None,
    ) -> Tensor:
        shift, scale, gate = modulation_rows(table, inputs.temb, SELF_ATTN)
        h = modulate(x, shift, scale, self.eps)
        x = x + self_attn(h, rope=inputs.rope, mask=inputs.self_attn_bias, keep=keep) * gate
        if not self.cross_attn_mod:  # LTX-2: plain RMS-normalised query, no gate
            return x + text_attn(rms_norm(x, self.eps), inputs.context, mask=inputs.context_bias)
        # LTX-2.3: AdaLN on the query (rows 6-8) and on the text (prompt table + prompt AdaLN of sigma)
        shift_q, scale_q, gate_q = modulation_rows(table, inputs.temb, TEXT_QUERY)
        if inputs.prompt_temb is None:  # diffusers' use_prompt_adaln_single=False: the table alone
            shift_kv, scale_kv = prompt_table.to(x.dtype)[:, None, None].unbind(0)
        else:
            shift_kv, scale_kv = modulation_rows(prompt_table, inputs.prompt_temb, slice(0, 2))
        context = inputs.context * (1 + scale_kv) + shift_kv
        return x + text_attn(modulate(x, shift_q, scale_q, self.eps), context, mask=inputs.context_bias) * gate_q

    @staticmethod
    def _cross_modal_update(
        query_normed: Tensor,
        context_normed: Tensor,
        query_inputs: StreamInputs,
        context_inputs: StreamInputs,
        query_table: Tensor,
        context_table: Tensor,
        rows: slice,
        attn: Attention,
        keep: Tensor | None,
    ) -> Tensor:
        """Gated update of the query stream from the other stream, each modulated by its own `cross_temb` rows.

        keep: (B, 1, 1), 0 for the samples whose update is switched off (modality isolation), or None (all keep it).
        """
        q_scale, q_shift = modulation_rows(query_table[:4], query_inputs.cross_temb, rows)
        (gate,) = modulation_rows(query_table[4:], query_inputs.cross_gate_temb, slice(0, 1))
        c_scale, c_shift = modulation_rows(context_table[:4], context_inputs.cross_temb, rows)
        out = attn(
            query_normed * (1 + q_scale) + q_shift,
            context_normed * (1 + c_scale) + c_shift,
            rope=query_inputs.cross_rope,
            context_rope=context_inputs.cross_rope,
        )
        update = out * gate
        return update if keep is None else update * keep
