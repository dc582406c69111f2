"""Prompt encoding: tiny Gemma, tokenization, and encode_prompts against ltx-core 1.0.0's Gemma step + EmbeddingsProcessor."""

import logging

import pytest
import torch
from ltx_core.model.transformer.rope import LTXRopeType
from ltx_core.text_encoders.gemma import EmbeddingsProcessor, GemmaTextEncoder
from ltx_core.text_encoders.gemma.embeddings_connector import Embeddings1DConnector
from ltx_core.text_encoders.gemma.feature_extractor import FeatureExtractorV1, FeatureExtractorV2
from ltx_core.text_encoders.gemma.tokenizer import LTXVGemmaTokenizer
from torch import nn

from ltx2_diffusers import LTX2TextConnectors
from ltx2_diffusers.loaders.connector_keys import original_to_diffusers_keys
from ltx2_diffusers.pipelines.text_encoding import (
    PromptEmbeddings,
    encode_prompts,
    gemma_hidden_states,
    tokenize_prompts,
)
from ltx2_diffusers.utils.tiny_gemma import (
    TINY_GEMMA_HIDDEN_SIZE,
    TINY_GEMMA_NUM_HIDDEN_STATES,
    build_tiny_gemma,
)


def test_tiny_gemma_is_seeded_and_left_pads_with_bos():
    model, tokenizer = build_tiny_gemma(seed=0)
    same, _ = build_tiny_gemma(seed=0)
    other, _ = build_tiny_gemma(seed=1)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, same.state_dict()[name], rtol=0, atol=0)
    assert not torch.equal(model.lm_head.weight, other.lm_head.weight)

    encoded = tokenizer(["a cat"], padding="max_length", max_length=8, truncation=True, return_tensors="pt")
    assert tokenizer.convert_ids_to_tokens(encoded.input_ids[0, -3:]) == ["<bos>", "a", "▁cat"]
    assert encoded.input_ids[0, :5].tolist() == [tokenizer.pad_token_id] * 5
    assert encoded.attention_mask[0].tolist() == [0, 0, 0, 0, 0, 1, 1, 1]

    with torch.no_grad():
        out = model.model(**encoded, output_hidden_states=True)
    assert len(out.hidden_states) == TINY_GEMMA_NUM_HIDDEN_STATES
    assert out.hidden_states[-1].shape == (1, 8, TINY_GEMMA_HIDDEN_SIZE)


HIDDEN, LAYERS = TINY_GEMMA_HIDDEN_SIZE, TINY_GEMMA_NUM_HIDDEN_STATES
PROMPTS = ["  a cat plays a tiny piano  ", "rain", 'Two people talk in a busy cafe, "hello!" says one; cups clink.']


def _connector_config(version: str) -> dict:
    config = dict(
        caption_channels=HIDDEN,
        text_proj_in_factor=LAYERS,
        video_connector_num_attention_heads=2,
        video_connector_attention_head_dim=16,
        video_connector_num_layers=1,
        audio_connector_num_attention_heads=2,
        audio_connector_attention_head_dim=16,
        audio_connector_num_layers=1,
        rope_type="split",
    )
    if version == "2.3":
        config.update(
            audio_connector_attention_head_dim=8,
            audio_connector_num_layers=2,
            video_gated_attn=True,
            audio_gated_attn=True,
            per_modality_projections=True,
            video_hidden_dim=32,
            audio_hidden_dim=16,
            proj_bias=True,
        )
    return config


def _ltx_core_pair(version: str) -> tuple[EmbeddingsProcessor, LTX2TextConnectors]:
    """ltx-core's EmbeddingsProcessor with random weights, and ours loaded from it through the file key names."""
    cfg = LTX2TextConnectors(**_connector_config(version)).config

    def connector(prefix: str) -> Embeddings1DConnector:
        return Embeddings1DConnector(
            attention_head_dim=cfg[f"{prefix}_connector_attention_head_dim"],
            num_attention_heads=cfg[f"{prefix}_connector_num_attention_heads"],
            num_layers=cfg[f"{prefix}_connector_num_layers"],
            positional_embedding_max_pos=[cfg["connector_rope_base_seq_len"]],
            rope_type=LTXRopeType.SPLIT,
            double_precision_rope=True,
            apply_gated_attention=cfg[f"{prefix}_gated_attn"],
        )

    flat = HIDDEN * LAYERS
    if cfg["per_modality_projections"]:
        extractor = FeatureExtractorV2(nn.Linear(flat, 32), HIDDEN, nn.Linear(flat, 16))
    else:
        extractor = FeatureExtractorV1(nn.Linear(flat, HIDDEN, bias=False), is_av=True)
    processor = EmbeddingsProcessor(
        feature_extractor=extractor, video_connector=connector("video"), audio_connector=connector("audio")
    ).float()
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for param in processor.parameters():
            param.copy_(0.3 * torch.randn(param.shape, generator=generator))
    to_file = {
        "feature_extractor.": "text_embedding_projection.",
        "video_connector.": "model.diffusion_model.video_embeddings_connector.",
        "audio_connector.": "model.diffusion_model.audio_embeddings_connector.",
    }
    original = {}
    for key, value in processor.state_dict().items():
        prefix = next(p for p in to_file if key.startswith(p))
        original[to_file[prefix] + key[len(prefix) :]] = value
    names = original_to_diffusers_keys(original, config=dict(cfg))
    ours = LTX2TextConnectors(**_connector_config(version)).eval()
    ours.load_state_dict({names[k]: v for k, v in original.items()}, strict=True)
    return processor.eval(), ours


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("version", ["2.0", "2.3"])
def test_encode_prompts_matches_ltx_core_gemma_encode_and_embeddings_processor(tmp_path, version, dtype):
    gemma, tokenizer = build_tiny_gemma(seed=0)
    gemma = gemma.to(dtype)
    tokenizer.save_pretrained(tmp_path)
    reference_encoder = GemmaTextEncoder(model=gemma, tokenizer=LTXVGemmaTokenizer(str(tmp_path), 1024))
    processor, connectors = _ltx_core_pair(version)
    processor, connectors = processor.to(dtype), connectors.to(dtype)
    # fp32: the 1e-5 parity bar; bf16 (the pipelines' dtype): bit-identical, batch of 3 against single prompts.
    atol = 1e-5 if dtype == torch.float32 else 0.0

    with torch.no_grad():
        embeds = encode_prompts(gemma, tokenizer, connectors, PROMPTS, device="cpu")
        for row, prompt in enumerate(PROMPTS):
            hidden_states, mask = reference_encoder.encode(prompt)  # batch of 1, as the reference runs it
            expected = processor.process_hidden_states(hidden_states, mask, padding_side="left")
            torch.testing.assert_close(embeds.video_context[row : row + 1], expected.video_encoding, rtol=0, atol=atol)
            torch.testing.assert_close(embeds.audio_context[row : row + 1], expected.audio_encoding, rtol=0, atol=atol)
            assert embeds.attention_mask[row].tolist() == expected.attention_mask[0].tolist()
    width_v, width_a = (32, 16) if version == "2.3" else (HIDDEN, HIDDEN)
    assert embeds.video_context.shape == (3, 1024, width_v) and embeds.audio_context.shape == (3, 1024, width_a)
    assert embeds.video_context.dtype == dtype


def test_batch_equals_single_prompt_calls_and_embeddings_helpers():
    gemma, tokenizer = build_tiny_gemma(seed=0)
    _, connectors = _ltx_core_pair("2.3")
    with torch.no_grad():
        batch = encode_prompts(gemma, tokenizer, connectors, PROMPTS, max_sequence_length=256, dtype=torch.bfloat16)
        for row, prompt in enumerate(PROMPTS):
            single = encode_prompts(gemma, tokenizer, connectors, prompt, max_sequence_length=256)
            torch.testing.assert_close(
                batch.video_context[row : row + 1].float(), single.video_context.bfloat16().float()
            )
            torch.testing.assert_close(
                batch.audio_context[row : row + 1].float(), single.audio_context.bfloat16().float()
            )
    assert batch.video_context.dtype == torch.bfloat16 and len(batch) == 3
    tail = batch[1:]
    assert len(tail) == 2 and torch.equal(tail.audio_context, batch.audio_context[1:])
    assert torch.equal(batch[2].video_context, batch.video_context[2:3])
    repeated = batch.repeat_interleave(2)
    assert len(repeated) == 6 and torch.equal(repeated.video_context[3], batch.video_context[1])
    assert isinstance(repeated, PromptEmbeddings)


def test_tokenization_strips_left_pads_and_warns_on_truncation(caplog):
    _, tokenizer = build_tiny_gemma()
    ids, mask = tokenize_prompts(tokenizer, ["  ab  ", "abc"], max_sequence_length=6)
    assert ids.tolist() == [[0, 0, 0] + tokenizer("ab").input_ids, [0, 0] + tokenizer("abc").input_ids]
    assert mask.tolist() == [[0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1]]
    assert tokenizer.padding_side == "left"
    with caplog.at_level(logging.WARNING):
        ids, mask = tokenize_prompts(tokenizer, ["x" * 10], max_sequence_length=6)
    assert ids.tolist() == [tokenizer("xxxxx").input_ids] and mask.tolist() == [[1] * 6]
    assert "Prompts [0] have [11] tokens; only the first 6" in caplog.text


def test_hidden_states_equal_the_full_models_and_skip_logits():
    gemma, tokenizer = build_tiny_gemma()
    ids, mask = tokenize_prompts(tokenizer, ["a dog"], max_sequence_length=16)
    states = gemma_hidden_states(gemma, ids, mask)
    with torch.no_grad():
        full = gemma(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    assert len(states) == LAYERS and not states[-1].requires_grad
    for ours, theirs in zip(states, full):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    seen = []
    handle = gemma.lm_head.register_forward_hook(lambda module, args, out: seen.append(args[0].shape))
    gemma_hidden_states(gemma, ids, mask)
    handle.remove()
    assert seen == [(1, 1, HIDDEN)]  # the LM head only sees the last token


def test_bad_inputs_fail_with_clear_messages():
    gemma, tokenizer = build_tiny_gemma()
    _, connectors = _ltx_core_pair("2.0")
    with pytest.raises(ValueError, match="prompts is empty"):
        encode_prompts(gemma, tokenizer, connectors, [])
    with pytest.raises(TypeError, match=r"prompts\[1\] is a int, expected a string"):
        encode_prompts(gemma, tokenizer, connectors, ["a", 3])
    with pytest.raises(TypeError, match="prompts must be a string or a list of strings"):
        encode_prompts(gemma, tokenizer, connectors, None)
    wrong_count = LTX2TextConnectors(**{**_connector_config("2.0"), "text_proj_in_factor": 49})
    with pytest.raises(ValueError, match=r"returns 3 hidden states .* text_proj_in_factor=49"):
        encode_prompts(gemma, tokenizer, wrong_count, ["a"])
    with pytest.raises(TypeError, match="expected a Gemma-3 model"):
        encode_prompts(nn.Linear(2, 2), tokenizer, connectors, ["a"])
    with pytest.raises(ValueError, match="not a multiple of the connector's 128 learnable registers"):
        encode_prompts(gemma, tokenizer, connectors, ["a"], max_sequence_length=100)
    with pytest.raises(ValueError, match="max_sequence_length must be a positive integer"):
        encode_prompts(gemma, tokenizer, connectors, ["a"], max_sequence_length=0)
    tokenizer.pad_token = None
    with pytest.raises(ValueError, match="tokenizer.pad_token = tokenizer.eos_token"):
        encode_prompts(gemma, tokenizer, connectors, ["a"], reference="1.0")


def test_tiny_tokenizer_fits_the_default_negative_prompt_without_warnings(caplog):
    """The tiny vocabulary keeps words whole, so the reference's default negative prompt (1079 characters) is about as
    many tokens as with Gemma's (~200), not one per character: no truncation, no transformers length warning."""
    from ltx2_diffusers.pipelines.presets import DEFAULT_NEGATIVE_PROMPT

    _, tokenizer = build_tiny_gemma()
    ids = tokenizer(DEFAULT_NEGATIVE_PROMPT).input_ids
    assert 150 < len(ids) < 256 < len(DEFAULT_NEGATIVE_PROMPT)
    assert tokenizer.decode(ids, skip_special_tokens=True) == DEFAULT_NEGATIVE_PROMPT
    assert tokenizer.tokenize(" out of focus zq") == ["▁out", "▁of", "▁focus", "▁", "z", "q"]  # unknown: characters
    with caplog.at_level(logging.WARNING):
        tokenize_prompts(tokenizer, [DEFAULT_NEGATIVE_PROMPT, "x" * 2000], max_sequence_length=4096)
    assert caplog.text == ""
