"""A tiny, randomly initialised Gemma-3 and tokenizer built offline, for tests and the CLI's `--model tiny`; and the
tiny Gemma-4 "unified" text encoder of the tiny LTX-2.5 (`build_tiny_gemma4`).

The real text encoder is Gemma-3 12B (`Gemma3ForConditionalGeneration`, hidden size 3840, 48 layers, so 49 hidden
states). The tiny one has the same class and the same special-token conventions (pad 0, eos 1, bos 2, unk 3, left
padding, a BOS prepended), so every code path that runs the real model runs this one; only the sizes differ. Its
connectors therefore take `caption_channels=TINY_GEMMA_HIDDEN_SIZE` and `text_proj_in_factor=TINY_GEMMA_NUM_HIDDEN_STATES`.

Nothing is downloaded: the vocabulary is built here (special tokens, Gemma's chat-turn markers, the 256 byte-fallback
tokens, printable ASCII and a few hundred whole words), and the weights come from transformers' own initialisation under a fixed seed.
"""

import string

import torch
from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3Processor, GemmaTokenizer

try:  # transformers >= 5.2x names the PIL-only image processor separately; it needs no torchvision
    from transformers import Gemma3ImageProcessorPil as _Gemma3ImageProcessor
except ImportError:  # older transformers: the one class works without torchvision
    from transformers import Gemma3ImageProcessor as _Gemma3ImageProcessor

TINY_GEMMA_HIDDEN_SIZE = 32
TINY_GEMMA_NUM_LAYERS = 2
# Gemma returns the embedding output plus one hidden state per decoder layer: the connectors' text_proj_in_factor.
TINY_GEMMA_NUM_HIDDEN_STATES = TINY_GEMMA_NUM_LAYERS + 1
TINY_GEMMA_MAX_POSITIONS = 8192  # room for the prompt-enhancement system prompts plus 512 new tokens
TINY_GEMMA_IMAGE_SIZE = 28  # SigLIP input side (the real one: 896)
TINY_GEMMA_IMAGE_TOKENS = 4  # soft tokens per image (the real one: 256)

# Token ids follow the real Gemma tokenizer where the pipeline relies on them (pad 0, eos 1, bos 2, unk 3).
_SPECIAL_TOKENS = (
    "<pad>",
    "<eos>",
    "<bos>",
    "<unk>",
    "<mask>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<start_of_image>",
    "<end_of_image>",
    "<image_soft_token>",
)
# Gemma-3's chat format, reduced to what prompt enhancement needs: a system message is folded into the first user
# turn (Gemma has no system role), and the generation prompt opens a model turn.
_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}"
    "{% set system = messages[0]['content'] + '\n\n' %}{% set turns = messages[1:] %}"
    "{% else %}{% set system = '' %}{% set turns = messages %}{% endif %}"
    "{% for message in turns %}"
    "{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else 'user') + '\n' }}"
    "{% if loop.first %}{{ system }}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<start_of_image>' }}{% else %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<end_of_turn>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)


# Words the tiny tokenizer keeps whole (after a space), besides those of the pipeline's default negative prompt: so
# prompts tokenize to about as many tokens as with Gemma's real vocabulary, and the 1079-character default negative
# prompt fits the 1024-token context instead of being cut (with two warnings) on every tiny run.
_COMMON_WORDS = (
    "a an the and or of in on at to with from by for is are was be it its this that as into over under up down out "
    "cat dog man woman person people child bird car street city room house tree sky sun rain water sea night day "
    "light dark red blue green white black yellow small big old new slow fast quiet loud sound music voice camera "
    "walks runs plays sits looks moves says sings speaks jumps falls flies drives turns smiles laughs cries"
)


def _word_merges(words: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """BPE merges that grow "▁" + word one character at a time, and the prefix tokens they create. Every merge starts
    at a word's "▁", so a word not in the list still splits into known prefixes and characters."""
    tokens: dict[str, None] = {}
    merges: dict[tuple[str, str], None] = {}
    for word in words:
        prefix = "▁"
        for char in word:
            merges[(prefix, char)] = None
            prefix += char
            tokens[prefix] = None
    return list(tokens), list(merges)


def _tiny_words() -> list[str]:
    # 1.0.0's negative prompt: the vocabulary (and so every tiny model's embedding table) stays as it was when the
    # goldens were written; 1.2.0's longer prompt tokenises fine with it (236 tokens)
    from ..pipelines.presets import NEGATIVE_PROMPT_1_0

    text = f"{NEGATIVE_PROMPT_1_0} {_COMMON_WORDS}"
    words = (word.strip(string.punctuation) for word in text.split())
    return sorted({word for word in words if word and all(c in string.printable for c in word)})


def build_tiny_gemma_tokenizer(add_bos_token: bool = True) -> GemmaTokenizer:
    """A small Gemma BPE tokenizer: left padding, `<bos>` prepended, bytes for anything outside ASCII. Printable ASCII
    characters are tokens, and a few hundred words (`_tiny_words`) are whole tokens after a space."""
    byte_tokens = [f"<0x{value:02X}>" for value in range(256)]
    characters = ["▁", "\n"] + [c for c in string.printable if not c.isspace()]
    word_tokens, merges = _word_merges(_tiny_words())
    vocab = {token: index for index, token in enumerate([*_SPECIAL_TOKENS, *byte_tokens, *characters, *word_tokens])}
    # The chat-turn and image markers are special tokens, as in Gemma's tokenizer: one id each, dropped when decoding
    # with skip_special_tokens. The named ones are what Gemma3Processor looks up (boi_token, image_token, ...).
    markers = {
        "boi_token": "<start_of_image>",
        "eoi_token": "<end_of_image>",
        "image_token": "<image_soft_token>",
        "sot_token": "<start_of_turn>",
        "eot_token": "<end_of_turn>",
    }
    # model_max_length: the tiny Gemma's context (its max_position_embeddings), as Gemma's tokenizer declares its own;
    # the pipeline pads and cuts prompts to 1024 tokens itself.
    tokenizer = GemmaTokenizer(
        vocab=vocab,
        merges=merges,
        add_bos_token=add_bos_token,
        model_max_length=TINY_GEMMA_MAX_POSITIONS,
        extra_special_tokens=markers,
    )
    tokenizer.padding_side = "left"
    tokenizer.chat_template = _CHAT_TEMPLATE
    return tokenizer


def build_tiny_gemma(seed: int = 0) -> tuple[Gemma3ForConditionalGeneration, GemmaTokenizer]:
    """A random `Gemma3ForConditionalGeneration` (hidden 32, 2 layers, 2 heads of 8) and its tokenizer, in fp32, eval.

    The same `seed` gives the same weights. The vision tower is tiny too (one SigLIP layer on 28x28 images, 4 image
    tokens), so image-conditioned prompt enhancement runs through the same code as with the real model
    (`build_tiny_gemma_processor` gives the matching processor).
    """
    tokenizer = build_tiny_gemma_tokenizer()
    vocab_size = len(tokenizer)
    text_config = {
        "vocab_size": vocab_size,
        "hidden_size": TINY_GEMMA_HIDDEN_SIZE,
        "intermediate_size": 64,
        "num_hidden_layers": TINY_GEMMA_NUM_LAYERS,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 8,
        "query_pre_attn_scalar": 8,
        # One sliding and one global layer, like the real model's pattern, with a window short enough to matter.
        "sliding_window": 16,
        "layer_types": ["sliding_attention", "full_attention"],
        "max_position_embeddings": TINY_GEMMA_MAX_POSITIONS,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.bos_token_id,
    }
    vision_config = {
        "model_type": "siglip_vision_model",
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": TINY_GEMMA_IMAGE_SIZE,
        "patch_size": 14,
    }
    config = Gemma3Config(
        text_config=text_config,
        vision_config=vision_config,
        mm_tokens_per_image=TINY_GEMMA_IMAGE_TOKENS,
        boi_token_index=tokenizer.convert_tokens_to_ids("<start_of_image>"),
        eoi_token_index=tokenizer.convert_tokens_to_ids("<end_of_image>"),
        image_token_index=tokenizer.convert_tokens_to_ids("<image_soft_token>"),
    )
    config.eos_token_id = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<end_of_turn>")]
    # Initialise under a private RNG so building the model neither depends on nor disturbs the caller's seed.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Gemma3ForConditionalGeneration(config)
    return model.eval(), tokenizer


def build_tiny_gemma_processor(tokenizer: GemmaTokenizer | None = None) -> Gemma3Processor:
    """The `Gemma3Processor` (image processor + tokenizer) matching `build_tiny_gemma`, for image prompt enhancement.

    Images are resized to 28 x 28 and stand for 4 soft tokens, as the tiny vision tower expects.
    """
    image_processor = _Gemma3ImageProcessor(size={"height": TINY_GEMMA_IMAGE_SIZE, "width": TINY_GEMMA_IMAGE_SIZE})
    tokenizer = build_tiny_gemma_tokenizer() if tokenizer is None else tokenizer
    return Gemma3Processor(
        image_processor=image_processor, tokenizer=tokenizer, image_seq_length=TINY_GEMMA_IMAGE_TOKENS
    )


def build_tiny_gemma4(seed: int = 0):
    """A random text-only `Gemma4UnifiedForConditionalGeneration` (LTX-2.5's text encoder class; hidden 32, 2 layers
    of 2 heads x 16, one sliding and one full attention layer, so 3 hidden states like `build_tiny_gemma`) and its
    tokenizer, fp32, eval. The tokenizer is `build_tiny_gemma`'s vocabulary but, like Gemma-4's, adds no `<bos>`
    itself (the 1.2.0 tokenization rule prepends exactly one). Needs transformers >= 5.10.1 (Gemma-4 unified)."""
    try:
        from transformers import Gemma4UnifiedConfig, Gemma4UnifiedForConditionalGeneration
    except ImportError as error:
        raise ImportError(
            "the tiny LTX-2.5 text encoder is a Gemma-4 unified model, which needs transformers >= 5.10.1 (and < 5.15, "
            "as ltx-core 1.2.0 pins it): upgrade transformers"
        ) from error
    tokenizer = build_tiny_gemma_tokenizer(add_bos_token=False)
    text_config = {
        "vocab_size": len(tokenizer),
        "hidden_size": TINY_GEMMA_HIDDEN_SIZE,
        "intermediate_size": 64,
        "num_hidden_layers": TINY_GEMMA_NUM_LAYERS,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 16,
        "global_head_dim": 16,
        "sliding_window": 16,
        "layer_types": ["sliding_attention", "full_attention"],
        "max_position_embeddings": TINY_GEMMA_MAX_POSITIONS,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.bos_token_id,
    }
    config = Gemma4UnifiedConfig(text_config=text_config, vision_config=None, audio_config=None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Gemma4UnifiedForConditionalGeneration(config)
    return model.eval(), tokenizer
