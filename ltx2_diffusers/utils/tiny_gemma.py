"""A tiny, randomly initialised Gemma-3 and tokenizer built offline, for tests and the CLI's `--model tiny`.

The real text encoder is Gemma-3 12B (`Gemma3ForConditionalGeneration`, hidden size 3840, 48 layers, so 49 hidden
states). The tiny one has the same class and the same special-token conventions (pad 0, eos 1, bos 2, unk 3, left
padding, a BOS prepended), so every code path that runs the real model runs this one; only the sizes differ. Its
connectors therefore take `caption_channels=TINY_GEMMA_HIDDEN_SIZE` and `text_proj_in_factor=TINY_GEMMA_NUM_HIDDEN_STATES`.

Nothing is downloaded: the vocabulary is built here (special tokens, Gemma's chat-turn markers, the 256 byte-fallback
tokens and printable ASCII), and the weights come from transformers' own initialisation under a fixed seed.
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


def build_tiny_gemma_tokenizer() -> GemmaTokenizer:
    """A character-level Gemma tokenizer: left padding, `<bos>` prepended, bytes for anything outside ASCII."""
    byte_tokens = [f"<0x{value:02X}>" for value in range(256)]
    characters = ["▁", "\n"] + [c for c in string.printable if not c.isspace()]
    vocab = {token: index for index, token in enumerate([*_SPECIAL_TOKENS, *byte_tokens, *characters])}
    # The chat-turn and image markers are special tokens, as in Gemma's tokenizer: one id each, dropped when decoding
    # with skip_special_tokens. The named ones are what Gemma3Processor looks up (boi_token, image_token, ...).
    markers = {
        "boi_token": "<start_of_image>",
        "eoi_token": "<end_of_image>",
        "image_token": "<image_soft_token>",
        "sot_token": "<start_of_turn>",
        "eot_token": "<end_of_turn>",
    }
    tokenizer = GemmaTokenizer(
        vocab=vocab, merges=[], add_bos_token=True, model_max_length=1024, extra_special_tokens=markers
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
        "max_position_embeddings": 8192,  # room for a system prompt at one token per character
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
