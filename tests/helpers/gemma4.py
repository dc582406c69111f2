"""A tiny, random Gemma-4 "unified" text encoder and tokenizer built offline (LTX-2.5's text encoder, delta spec §3.1).

The real one is a 12B `Gemma4UnifiedForConditionalGeneration` fine-tuned by Lightricks. This one has the same class
and the same token conventions (pad 0, eos 1, bos 2; its tokenizer adds NO `<bos>` itself, like Gemma-4's, so the
1.2.0 tokenization rule has to prepend it), text only (no vision or audio tower), hidden 32, 2 layers (one sliding,
one full attention), so 3 hidden states.

Only torch and transformers (>= 5.10.1) are imported: `scripts/goldens/pipeline_math.py` builds the same model in the
ltx-core 1.2.0 oracle's environment (transformers 5.14.1) from this file, and the same seed gives the same weights
there and here (checked by the goldens' hidden states).
"""

import string

import torch
from transformers import Gemma4UnifiedConfig, Gemma4UnifiedForConditionalGeneration, GemmaTokenizer

GEMMA4_HIDDEN_SIZE = 32
GEMMA4_NUM_LAYERS = 2
GEMMA4_NUM_HIDDEN_STATES = GEMMA4_NUM_LAYERS + 1  # embeddings + one per layer: the connectors' text_proj_in_factor
GEMMA4_MAX_POSITIONS = 2048

_SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>")
_WORDS = "a an the and of in on with cat dog man woman plays walks runs piano street night rain hello world tiny"


def build_gemma4_tokenizer() -> GemmaTokenizer:
    """A small BPE tokenizer with Gemma's special ids (pad 0, eos 1, bos 2, unk 3) that, like Gemma-4's, adds no
    `<bos>`: printable ASCII characters, byte fallback, and a few whole words after a space."""
    words = _WORDS.split()
    merges, word_tokens = {}, {}
    for word in words:
        prefix = "▁"
        for char in word:
            merges[(prefix, char)] = None
            prefix += char
            word_tokens[prefix] = None
    byte_tokens = [f"<0x{value:02X}>" for value in range(256)]
    characters = ["▁", "\n"] + [c for c in string.printable if not c.isspace()]
    vocab = {token: i for i, token in enumerate([*_SPECIAL_TOKENS, *byte_tokens, *characters, *word_tokens])}
    tokenizer = GemmaTokenizer(
        vocab=vocab,
        merges=list(merges),
        add_bos_token=False,
        add_eos_token=False,
        model_max_length=GEMMA4_MAX_POSITIONS,
    )
    tokenizer.padding_side = "left"
    return tokenizer


def build_tiny_gemma4(seed: int = 0) -> tuple[Gemma4UnifiedForConditionalGeneration, GemmaTokenizer]:
    """A random text-only `Gemma4UnifiedForConditionalGeneration` (hidden 32, 2 layers of 2 heads x 16) and its
    tokenizer, fp32, eval. The same seed gives the same weights; the caller's RNG is left untouched."""
    tokenizer = build_gemma4_tokenizer()
    text_config = {
        "vocab_size": len(tokenizer),
        "hidden_size": GEMMA4_HIDDEN_SIZE,
        "intermediate_size": 64,
        "num_hidden_layers": GEMMA4_NUM_LAYERS,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 16,
        "global_head_dim": 16,
        "sliding_window": 16,
        "layer_types": ["sliding_attention", "full_attention"],
        "max_position_embeddings": GEMMA4_MAX_POSITIONS,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.bos_token_id,
    }
    config = Gemma4UnifiedConfig(text_config=text_config, vision_config=None, audio_config=None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Gemma4UnifiedForConditionalGeneration(config)
    return model.eval(), tokenizer
