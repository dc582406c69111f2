"""Prompt encoding, the first stage of every LTX-2 pipeline: prompts -> Gemma hidden states -> connector contexts.

Same math as the reference (spec §5.1-§5.6, delta spec §3): each prompt is stripped, tokenized with left padding to
`max_sequence_length` (1024) tokens with one `<bos>` in front, run through Gemma's language model with all hidden
states returned, and turned into a video and an audio context by `LTX2TextConnectors`. The text encoder is Gemma-3
(LTX-2, LTX-2.3: `Gemma3ForConditionalGeneration`) or Gemma-4 "unified" (LTX-2.5:
`Gemma4UnifiedForConditionalGeneration`, whose tokenizer adds no `<bos>` itself). `reference` picks the tokenization
rule: "1.2" (default) guarantees exactly one leading `<bos>` (prepended when the tokenizer gives none, delta spec
§3.3); "1.0" leaves it to the tokenizer, as 1.0.0 did. Differences from the reference, all on the cost side:
- a batch of prompts (positives and negatives together) goes through Gemma in one call (as 1.2.0 does; 1.0.0 encodes
  one prompt per call), and the connectors run on the whole batch (1.0.0's are only right at batch size 1);
- the LM head sees only the last token (`logits_to_keep=1`, not 1024 x 262k logits per prompt), no vision tower
  runs, no KV cache is built;
- Gemma runs under `torch.no_grad()` (it is frozen), the connectors in the caller's grad mode, so connector LoRAs
  train through this function;
- the 49 hidden states (B x 49 x 1024 x 3840, 385 MB per prompt in bf16) go to the connectors as Gemma returns them,
  without a stacked copy: the peak is those states plus one normalised copy, released when this function returns.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from diffusers.utils import logging
from torch import Tensor, nn
from transformers import (
    Gemma3ForCausalLM,
    Gemma3ForConditionalGeneration,
    Gemma3Model,
    Gemma3TextModel,
    PreTrainedTokenizerBase,
)

from ..models.connectors import LTX2TextConnectors
from .presets import DEFAULT_REFERENCE, check_reference

try:  # Gemma-4 "unified" (LTX-2.5's text encoder) arrived in transformers 5.10.1
    from transformers import (
        Gemma4UnifiedForCausalLM,
        Gemma4UnifiedForConditionalGeneration,
        Gemma4UnifiedModel,
        Gemma4UnifiedTextModel,
    )
except ImportError:  # older transformers: no Gemma-4 model can exist, so nothing can be passed that needs these
    Gemma4UnifiedForCausalLM = Gemma4UnifiedForConditionalGeneration = Gemma4UnifiedModel = None
    Gemma4UnifiedTextModel = None

logger = logging.get_logger(__name__)

MAX_SEQUENCE_LENGTH = 1024  # the reference's tokenizer length; a multiple of the connectors' 128 registers


@dataclass(frozen=True)
class PromptEmbeddings:
    """The transformer's text inputs for a batch of prompts.

    video_context: (B, T, video width): 3840 on LTX-2 (the transformer projects it to 4096), 4096 on LTX-2.3.
    audio_context: (B, T, audio width): 3840 on LTX-2 (projected to 2048), 2048 on LTX-2.3.
    attention_mask: (B, T) int64, all ones: learnable registers fill the padding, so the transformer attends to all
        T positions, as in the reference, and can run without a text mask.
    """

    video_context: Tensor
    audio_context: Tensor
    attention_mask: Tensor

    def __len__(self) -> int:
        return self.video_context.shape[0]

    def __getitem__(self, index: int | slice) -> "PromptEmbeddings":
        """Rows of the batch, e.g. `embeds[:n]` and `embeds[n:]` for the positive and negative halves; an int keeps
        the batch dimension."""
        if isinstance(index, int):
            index = [index]
        return PromptEmbeddings(self.video_context[index], self.audio_context[index], self.attention_mask[index])

    def repeat_interleave(self, repeats: int) -> "PromptEmbeddings":
        """Each prompt's row `repeats` times in a row (for `num_videos_per_prompt`)."""
        return PromptEmbeddings(
            self.video_context.repeat_interleave(repeats, dim=0),
            self.audio_context.repeat_interleave(repeats, dim=0),
            self.attention_mask.repeat_interleave(repeats, dim=0),
        )


def _check_prompts(prompts: str | Sequence[str]) -> list[str]:
    if isinstance(prompts, str):
        return [prompts]
    if not isinstance(prompts, Sequence):
        raise TypeError(f"prompts must be a string or a list of strings, got {type(prompts).__name__}")
    prompts = list(prompts)
    if not prompts:
        raise ValueError("prompts is empty: pass at least one prompt (an empty string is a valid prompt).")
    for index, prompt in enumerate(prompts):
        if not isinstance(prompt, str):
            raise TypeError(f"prompts[{index}] is a {type(prompt).__name__}, expected a string")
    return prompts


def tokenize_prompts(
    tokenizer: PreTrainedTokenizerBase,
    prompts: str | Sequence[str],
    max_sequence_length: int = MAX_SEQUENCE_LENGTH,
    reference: str = DEFAULT_REFERENCE,
) -> tuple[Tensor, Tensor]:
    """Stripped prompts -> (input_ids, attention_mask), each (B, max_sequence_length) int64, padded on the left.

    Longer prompts are cut to `max_sequence_length` tokens (with a warning here). The tokenizer is not modified.
    reference "1.2" (ltx-core 1.2.0's `LTXGemmaTokenizer`, delta spec §3.3, trap 10): tokenized without padding, cut,
    `<bos>` prepended when the first token is not `<bos>` (Gemma-4's tokenizer adds none) and cut again, then
    left-padded with the pad id (the eos id when the tokenizer has no pad token). Never appends `<eos>`.
    reference "1.0": the tokenizer's own padding and special tokens (Gemma-3's prepends `<bos>`), as 1.0.0.
    """
    prompts = [prompt.strip() for prompt in _check_prompts(prompts)]
    if not isinstance(max_sequence_length, int) or max_sequence_length < 1:
        raise ValueError(f"max_sequence_length must be a positive integer, got {max_sequence_length!r}")
    if check_reference(reference) == "1.2":
        return _tokenize_with_one_bos(tokenizer, prompts, max_sequence_length)
    if tokenizer.pad_token_id is None:
        raise ValueError(
            "The tokenizer has no pad token. The reference pads with EOS in that case: set "
            "`tokenizer.pad_token = tokenizer.eos_token` before encoding."
        )
    lengths = [len(ids) for ids in tokenizer(prompts, add_special_tokens=True)["input_ids"]]
    too_long = [index for index, length in enumerate(lengths) if length > max_sequence_length]
    if too_long:
        logger.warning(
            f"Prompts {too_long} have {[lengths[i] for i in too_long]} tokens; only the first {max_sequence_length} "
            f"are used, as in the reference."
        )
    tokens = tokenizer(
        prompts,
        padding="max_length",
        max_length=max_sequence_length,
        truncation=True,
        padding_side="left",
        add_special_tokens=True,
        return_tensors="pt",
    )
    return tokens.input_ids, tokens.attention_mask


def _tokenize_with_one_bos(
    tokenizer: PreTrainedTokenizerBase, prompts: list[str], max_sequence_length: int
) -> tuple[Tensor, Tensor]:
    """1.2.0's rule (see `tokenize_prompts`) on stripped prompts."""
    bos_id = tokenizer.bos_token_id
    if bos_id is None:
        raise ValueError(
            "The tokenizer has no bos token, and every prompt must start with one (Gemma: '<bos>'). Use Gemma's "
            "tokenizer, or set `tokenizer.bos_token` before encoding."
        )
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise ValueError(
            "The tokenizer has neither a pad nor an eos token to pad prompts with: set tokenizer.pad_token"
        )
    input_ids = torch.full((len(prompts), max_sequence_length), pad_id, dtype=torch.int64)
    attention_mask = torch.zeros((len(prompts), max_sequence_length), dtype=torch.int64)
    lengths = [len(ids) for ids in tokenizer(prompts, padding=False, truncation=False)["input_ids"]]
    too_long = [row for row, length in enumerate(lengths) if length > max_sequence_length]
    if too_long:
        logger.warning(
            f"Prompts {too_long} have {[lengths[row] for row in too_long]} tokens; only the first "
            f"{max_sequence_length} are used, as in the reference."
        )
    cut = tokenizer(prompts, padding=False, truncation=True, max_length=max_sequence_length)["input_ids"]
    for row, ids in enumerate(cut):
        if not ids or ids[0] != bos_id:
            ids = [bos_id, *ids][:max_sequence_length]
        input_ids[row, max_sequence_length - len(ids) :] = torch.tensor(ids, dtype=torch.int64)
        attention_mask[row, max_sequence_length - len(ids) :] = 1
    return input_ids, attention_mask


_GEMMA_FAMILIES = (
    "Gemma-3 (Gemma3ForConditionalGeneration as in the LTX-2 / LTX-2.3 pipelines, Gemma3Model, Gemma3ForCausalLM, "
    "Gemma3TextModel) or Gemma-4 unified (Gemma4UnifiedForConditionalGeneration as in LTX-2.5, Gemma4UnifiedModel, "
    "Gemma4UnifiedForCausalLM, Gemma4UnifiedTextModel; transformers >= 5.10.1)"
)


def _is(module: nn.Module, *classes) -> bool:
    return isinstance(module, tuple(c for c in classes if c is not None))


def gemma_language_model(text_encoder: nn.Module) -> nn.Module:
    """The decoder stack of a Gemma-3 or Gemma-4 unified model: the part whose hidden states LTX-2 uses (no LM head,
    no vision or audio tower)."""
    if _is(text_encoder, Gemma3ForConditionalGeneration, Gemma4UnifiedForConditionalGeneration):
        return text_encoder.model.language_model
    if _is(text_encoder, Gemma3Model, Gemma4UnifiedModel):
        return text_encoder.language_model
    if _is(text_encoder, Gemma3ForCausalLM, Gemma4UnifiedForCausalLM):
        return text_encoder.model
    if _is(text_encoder, Gemma3TextModel, Gemma4UnifiedTextModel):
        return text_encoder
    raise TypeError(
        f"text_encoder is a {type(text_encoder).__name__}; expected a Gemma-3 model or a Gemma-4 unified model "
        f"from transformers: {_GEMMA_FAMILIES}."
    )


def gemma_hidden_states(text_encoder: nn.Module, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, ...]:
    """All hidden states of Gemma's language model: the scaled embeddings, each layer's output, and the last layer's
    output after the final norm (49 tensors (B, T, 3840) for Gemma-3 12B). Runs without gradients.

    The text encoder itself is called (not its inner language model), so offloading hooks attached to it by
    `enable_model_cpu_offload` run; its LM head then only projects the last token. Gemma-4 unified returns the same
    layout (embeddings, each layer, the last after the final norm: L + 1 states).
    """
    gemma_language_model(text_encoder)  # type check
    has_lm_head = _is(
        text_encoder,
        Gemma3ForConditionalGeneration,
        Gemma3ForCausalLM,
        Gemma4UnifiedForConditionalGeneration,
        Gemma4UnifiedForCausalLM,
    )
    extra = {"logits_to_keep": 1} if has_lm_head else {}
    with torch.no_grad():
        outputs = text_encoder(
            input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, use_cache=False, **extra
        )
    return outputs.hidden_states


def encode_prompts(
    text_encoder: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    connectors: LTX2TextConnectors,
    prompts: str | Sequence[str],
    *,
    max_sequence_length: int = MAX_SEQUENCE_LENGTH,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    reference: str = DEFAULT_REFERENCE,
) -> PromptEmbeddings:
    """Prompts -> video and audio contexts, all prompts in one Gemma batch.

    Args:
        text_encoder: Gemma-3 (`Gemma3ForConditionalGeneration` in the LTX-2 / LTX-2.3 pipelines) or Gemma-4 unified
            (`Gemma4UnifiedForConditionalGeneration`, LTX-2.5); only its language model runs (and the LM head on one
            token).
        tokenizer: Gemma's tokenizer (left padding is applied per call, the tokenizer is not modified).
        connectors: the model's `LTX2TextConnectors`; its `text_proj_in_factor` must equal Gemma's number of hidden
            states (layers + 1).
        prompts: one prompt or a list; encode positive and negative prompts together by concatenating the lists and
            slicing the result (`embeds[:n]`, `embeds[n:]`).
        max_sequence_length: tokens per prompt (1024 in the reference); a multiple of the connectors' registers.
        device: where Gemma and the connectors run (the pipeline's execution device); default: Gemma's device.
        dtype: dtype of the returned contexts (the transformer's); default: the connectors' dtype.
        reference: "1.2" (default) or "1.0", the reference's tokenization rule (`tokenize_prompts`).

    Returns:
        PromptEmbeddings with video_context (B, T, video width), audio_context (B, T, audio width) and an all-ones
        attention_mask (B, T), T = max_sequence_length.
    """
    if not isinstance(connectors, LTX2TextConnectors):
        raise TypeError(f"connectors must be an LTX2TextConnectors, got {type(connectors).__name__}")
    language_model = gemma_language_model(text_encoder)
    num_hidden_states = language_model.config.num_hidden_layers + 1
    if num_hidden_states != connectors.config.text_proj_in_factor:
        raise ValueError(
            f"The text encoder returns {num_hidden_states} hidden states ({num_hidden_states - 1} layers + "
            f"embeddings), but the connectors expect text_proj_in_factor={connectors.config.text_proj_in_factor}. "
            f"Use the text encoder the connectors were trained with (Gemma-3 12B: 49; LTX-2.5: its Gemma-4)."
        )
    if language_model.config.hidden_size != connectors.config.caption_channels:
        raise ValueError(
            f"The text encoder's hidden size is {language_model.config.hidden_size}, but the connectors expect "
            f"caption_channels={connectors.config.caption_channels}."
        )
    device = torch.device(device) if device is not None else next(language_model.parameters()).device

    input_ids, attention_mask = tokenize_prompts(tokenizer, prompts, max_sequence_length, reference)
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    hidden_states = gemma_hidden_states(text_encoder, input_ids, attention_mask)
    video_context, audio_context, context_mask = connectors(hidden_states, attention_mask, padding_side="left")
    del hidden_states
    if dtype is not None:
        video_context, audio_context = video_context.to(dtype), audio_context.to(dtype)
    return PromptEmbeddings(video_context, audio_context, context_mask)
