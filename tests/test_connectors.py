"""LTX2TextConnectors against ltx-core 1.0.0 (feature extractors + Embeddings1DConnector) and diffusers' in-tree class."""

import pytest
import torch
from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors as DiffusersTextConnectors
from ltx_core.model.transformer.rope import LTXRopeType
from ltx_core.text_encoders.gemma import EMBEDDINGS_PROCESSOR_KEY_OPS, EmbeddingsProcessor
from ltx_core.text_encoders.gemma.embeddings_connector import Embeddings1DConnector
from ltx_core.text_encoders.gemma.feature_extractor import FeatureExtractorV1, FeatureExtractorV2
from torch import nn

from ltx2_diffusers import LTX2TextConnectors
from ltx2_diffusers.loaders.connector_keys import (
    ORIGINAL_PREFIXES,
    diffusers_to_original_keys,
    original_to_diffusers_keys,
)

HIDDEN, LAYERS, SEQ, REGISTERS = 32, 3, 32, 8
# V1 = LTX-2 layout, V2 = LTX-2.3 layout (gated attention, per-modality projections with bias, audio narrower).
CONFIGS = {
    "v1": dict(
        caption_channels=HIDDEN,
        text_proj_in_factor=LAYERS,
        video_connector_num_attention_heads=4,
        video_connector_attention_head_dim=8,
        video_connector_num_layers=2,
        video_connector_num_learnable_registers=REGISTERS,
        audio_connector_num_attention_heads=4,
        audio_connector_attention_head_dim=8,
        audio_connector_num_layers=2,
        audio_connector_num_learnable_registers=REGISTERS,
        connector_rope_base_seq_len=64,
        rope_type="split",
        rope_double_precision=True,
    ),
    "v2": None,  # filled below
    "v1_interleaved_float32_rope": None,  # filled below
    "v1_no_registers": None,
}
CONFIGS["v2"] = dict(
    CONFIGS["v1"],
    video_gated_attn=True,
    audio_connector_num_attention_heads=2,
    audio_connector_num_layers=1,
    audio_gated_attn=True,
    per_modality_projections=True,
    video_hidden_dim=32,
    audio_hidden_dim=16,
    proj_bias=True,
)
CONFIGS["v1_interleaved_float32_rope"] = {**CONFIGS["v1"], "rope_type": "interleaved", "rope_double_precision": False}
CONFIGS["v1_no_registers"] = {
    **CONFIGS["v1"],
    "video_connector_num_learnable_registers": None,
    "audio_connector_num_learnable_registers": None,
}

# ltx-core module names -> names in Lightricks' single file (the inverse of its EMBEDDINGS_PROCESSOR_KEY_OPS).
_TO_FILE = (
    ("feature_extractor.aggregate_embed.", "text_embedding_projection.aggregate_embed."),
    ("feature_extractor.video_aggregate_embed.", "text_embedding_projection.video_aggregate_embed."),
    ("feature_extractor.audio_aggregate_embed.", "text_embedding_projection.audio_aggregate_embed."),
    ("video_connector.", "model.diffusion_model.video_embeddings_connector."),
    ("audio_connector.", "model.diffusion_model.audio_embeddings_connector."),
)


def _file_key(module_key: str) -> str:
    for prefix, file_prefix in _TO_FILE:
        if module_key.startswith(prefix):
            file_key = file_prefix + module_key[len(prefix) :]
            assert EMBEDDINGS_PROCESSOR_KEY_OPS.apply_to_key(file_key) == module_key  # ltx-core's own loader agrees
            return file_key
    raise AssertionError(module_key)


def _ltx_core_processor(cfg: dict) -> EmbeddingsProcessor:
    def connector(prefix: str) -> Embeddings1DConnector:
        return Embeddings1DConnector(
            attention_head_dim=cfg[f"{prefix}_connector_attention_head_dim"],
            num_attention_heads=cfg[f"{prefix}_connector_num_attention_heads"],
            num_layers=cfg[f"{prefix}_connector_num_layers"],
            positional_embedding_max_pos=[cfg["connector_rope_base_seq_len"]],
            num_learnable_registers=cfg[f"{prefix}_connector_num_learnable_registers"],
            rope_type=LTXRopeType(cfg["rope_type"]),
            double_precision_rope=cfg["rope_double_precision"],
            apply_gated_attention=cfg.get(f"{prefix}_gated_attn", False),
        )

    flat = HIDDEN * LAYERS
    if cfg.get("per_modality_projections", False):
        extractor = FeatureExtractorV2(
            video_aggregate_embed=nn.Linear(flat, cfg["video_hidden_dim"], bias=True),
            embedding_dim=HIDDEN,
            audio_aggregate_embed=nn.Linear(flat, cfg["audio_hidden_dim"], bias=True),
        )
    else:
        extractor = FeatureExtractorV1(aggregate_embed=nn.Linear(flat, HIDDEN, bias=False), is_av=True)
    processor = EmbeddingsProcessor(
        feature_extractor=extractor, video_connector=connector("video"), audio_connector=connector("audio")
    ).float()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in processor.named_parameters():
            if name.endswith("norm.weight"):
                param.copy_(1.0 + 0.2 * torch.randn(param.shape, generator=generator))
            elif "aggregate_embed.weight" in name:
                param.copy_(torch.randn(param.shape, generator=generator) / flat**0.5)
            else:
                param.copy_(0.3 * torch.randn(param.shape, generator=generator))
    return processor.eval()


def _ours_from_ltx_core(processor: EmbeddingsProcessor, cfg: dict) -> LTX2TextConnectors:
    original = {_file_key(key): value for key, value in processor.state_dict().items()}
    names = original_to_diffusers_keys(original, config=cfg)
    ours = LTX2TextConnectors(**cfg).eval()
    ours.load_state_dict({names[key]: value for key, value in original.items()}, strict=True)
    return ours


def _gemma_like_hidden_states(batch: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    # Layers with different offsets and scales, so the per-layer normalisation matters.
    return tuple(
        (torch.randn(batch, SEQ, HIDDEN, generator=generator) * (1.0 + 2 * index) + index) for index in range(LAYERS)
    )


def _left_padded_mask(lengths: list[int]) -> torch.Tensor:
    mask = torch.zeros(len(lengths), SEQ, dtype=torch.int64)
    for row, length in enumerate(lengths):
        mask[row, SEQ - length :] = 1
    return mask


@pytest.mark.parametrize("name", list(CONFIGS))
def test_matches_ltx_core_per_prompt_and_batch_equals_single_calls(name):
    cfg = CONFIGS[name]
    processor = _ltx_core_processor(cfg)
    ours = _ours_from_ltx_core(processor, cfg)
    generator = torch.Generator().manual_seed(2)
    hidden_states = _gemma_like_hidden_states(2, generator)
    lengths = [5, 19]
    mask = _left_padded_mask(lengths)

    with torch.no_grad():
        video, audio, context_mask = ours(hidden_states, mask)
        for row in range(2):
            single = tuple(layer[row : row + 1] for layer in hidden_states)
            # ltx-core's register replacement is only right at batch size 1: compare each prompt on its own.
            expected = processor.process_hidden_states(single, mask[row : row + 1], padding_side="left")
            torch.testing.assert_close(video[row : row + 1], expected.video_encoding, rtol=0, atol=1e-5)
            torch.testing.assert_close(audio[row : row + 1], expected.audio_encoding, rtol=0, atol=1e-5)
            assert context_mask[row].tolist() == expected.attention_mask[0].tolist()
            video_1, audio_1, mask_1 = ours(single, mask[row : row + 1])
            torch.testing.assert_close(video[row : row + 1], video_1, rtol=0, atol=1e-6)
            torch.testing.assert_close(audio[row : row + 1], audio_1, rtol=0, atol=1e-6)
            assert mask_1[0].tolist() == context_mask[row].tolist()

    width_v = cfg.get("video_hidden_dim", HIDDEN) if cfg.get("per_modality_projections") else HIDDEN
    width_a = cfg.get("audio_hidden_dim", HIDDEN) if cfg.get("per_modality_projections") else HIDDEN
    assert video.shape == (2, SEQ, width_v) and audio.shape == (2, SEQ, width_a)
    # All ones even without registers: the reference's `additive < 1e-6` holds for 0 and -finfo.max alike.
    assert context_mask.dtype == torch.int64 and bool((context_mask == 1).all())


@pytest.mark.parametrize("name", ["v1", "v2", "v1_interleaved_float32_rope"])
def test_bf16_is_bit_identical_to_ltx_core(name):
    cfg = CONFIGS[name]
    processor = _ltx_core_processor(cfg)
    ours = LTX2TextConnectors.from_config(cfg).eval()
    ours.load_state_dict(_ours_from_ltx_core(processor, cfg).state_dict(), strict=True)
    ours, processor = ours.to(torch.bfloat16), processor.to(torch.bfloat16)
    hidden_states = tuple(h.bfloat16() for h in _gemma_like_hidden_states(1, torch.Generator().manual_seed(8)))
    mask = _left_padded_mask([13])
    with torch.no_grad():
        video, audio, _ = ours(hidden_states, mask)
        expected = processor.process_hidden_states(hidden_states, mask, padding_side="left")
    assert video.dtype == torch.bfloat16
    torch.testing.assert_close(video, expected.video_encoding, rtol=0, atol=0)
    torch.testing.assert_close(audio, expected.audio_encoding, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["v1", "v2"])
def test_packed_and_stacked_layouts_match_the_layer_sequence(name):
    cfg = CONFIGS[name]
    ours = LTX2TextConnectors(**cfg).eval()
    hidden_states = _gemma_like_hidden_states(2, torch.Generator().manual_seed(3))
    mask = _left_padded_mask([7, 30])
    stacked = torch.stack(hidden_states, dim=-1)
    with torch.no_grad():
        expected = ours(hidden_states, mask)
        for layout in (stacked, stacked.flatten(2)):
            for got, want in zip(ours(layout, mask), expected):
                torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["v1", "v2"])
def test_diffusers_folder_loads_strictly_and_back(tmp_path, name):
    cfg = CONFIGS[name]
    torch.manual_seed(4)
    theirs = DiffusersTextConnectors(**cfg).eval()
    theirs.save_pretrained(tmp_path / "theirs")
    ours = LTX2TextConnectors.from_pretrained(tmp_path / "theirs").eval()
    public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}  # noqa: E731
    # connector_ff_bias (ltx-core 1.2.0) is ours only: True, the layout diffusers' class always builds
    assert public(ours.config) == {**public(theirs.config), "connector_ff_bias": True}
    assert ours.state_dict().keys() == theirs.state_dict().keys()

    hidden_states = _gemma_like_hidden_states(2, torch.Generator().manual_seed(5))
    mask = _left_padded_mask([4, 25])
    packed = torch.stack(hidden_states, dim=-1).flatten(2)
    with torch.no_grad():
        for got, want in zip(ours(packed, mask), theirs(packed, mask)):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-5)

    ours.save_pretrained(tmp_path / "ours")
    back = DiffusersTextConnectors.from_pretrained(tmp_path / "ours").eval()
    with torch.no_grad():
        for got, want in zip(back(packed, mask), theirs(packed, mask)):
            torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_key_map_round_trip_and_unknown_keys():
    for name in ("v1", "v2"):
        ours = LTX2TextConnectors(**CONFIGS[name])
        to_original = diffusers_to_original_keys(ours.state_dict(), config=CONFIGS[name])
        assert all(key.startswith(ORIGINAL_PREFIXES) for key in to_original.values())
        back = original_to_diffusers_keys(to_original.values(), config=CONFIGS[name])
        assert all(back[to_original[key]] == key for key in to_original)
    assert (
        original_to_diffusers_keys(
            ["model.diffusion_model.video_embeddings_connector.transformer_1d_blocks.0.attn1.q_norm.weight"]
        )["model.diffusion_model.video_embeddings_connector.transformer_1d_blocks.0.attn1.q_norm.weight"]
        == "video_connector.transformer_blocks.0.attn1.norm_q.weight"
    )
    with pytest.raises(ValueError, match="is not a text-connector key"):
        original_to_diffusers_keys(["model.diffusion_model.transformer_blocks.0.attn1.to_q.weight"])
    with pytest.raises(ValueError, match="Unknown text-connector key"):
        original_to_diffusers_keys(["model.diffusion_model.video_embeddings_connector.something_new"])
    with pytest.raises(ValueError, match="per_modality_projections=True"):
        original_to_diffusers_keys(["text_embedding_projection.aggregate_embed.weight"], config=CONFIGS["v2"])
    with pytest.raises(ValueError, match="is not a parameter of LTX2TextConnectors"):
        diffusers_to_original_keys(["video_connector.norm_out.weight"])


def test_bad_inputs_fail_with_clear_messages():
    ours = LTX2TextConnectors(**CONFIGS["v1"])
    hidden_states = _gemma_like_hidden_states(1, torch.Generator().manual_seed(6))
    mask = _left_padded_mask([10])
    with pytest.raises(ValueError, match=r"Got 2 text encoder hidden states, .*text_proj_in_factor=3"):
        ours(hidden_states[:2], mask)
    with pytest.raises(ValueError, match=r"Hidden state 1 has shape \(1, 32, 16\)"):
        ours((hidden_states[0], hidden_states[1][..., :16], hidden_states[2]), mask)
    with pytest.raises(ValueError, match=r"95 features, expected caption_channels x text_proj_in_factor = 32 x 3 = 96"):
        ours(torch.zeros(1, SEQ, 95), mask)
    with pytest.raises(ValueError, match=r"attention_mask has shape \(1, 31\)"):
        ours(hidden_states, mask[:, 1:])
    with pytest.raises(ValueError, match="not left-padded"):
        ours(hidden_states, mask.flip(1))
    with pytest.raises(ValueError, match="without any real token"):
        ours(hidden_states, torch.zeros_like(mask))
    with pytest.raises(ValueError, match="not a multiple of the connector's 8 learnable registers"):
        ours(tuple(layer[:, :30] for layer in hidden_states), mask[:, :30])
    with pytest.raises(TypeError, match="must be a tensor or a sequence of tensors"):
        ours(None, mask)
    with pytest.raises(ValueError, match=r"Connector widths .* video 32 and audio 16"):
        LTX2TextConnectors(**{**CONFIGS["v1"], "audio_connector_num_attention_heads": 2})
    with pytest.raises(ValueError, match="causal_temporal_positioning=True is not supported"):
        LTX2TextConnectors(**{**CONFIGS["v1"], "causal_temporal_positioning": True})


def test_gradient_checkpointing_and_lora_adapters():
    from peft import LoraConfig

    cfg = CONFIGS["v2"]
    hidden_states = _gemma_like_hidden_states(2, torch.Generator().manual_seed(9))
    mask = _left_padded_mask([6, 20])

    def grads(model: LTX2TextConnectors) -> dict[str, torch.Tensor]:
        model.zero_grad()
        video, audio, _ = model(hidden_states, mask)
        (video.square().mean() + audio.square().mean()).backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    torch.manual_seed(10)
    plain = LTX2TextConnectors(**cfg)
    checkpointed = LTX2TextConnectors(**cfg)
    checkpointed.load_state_dict(plain.state_dict())
    checkpointed.enable_gradient_checkpointing()
    assert checkpointed.video_connector.gradient_checkpointing
    expected, got = grads(plain), grads(checkpointed)
    assert expected.keys() == got.keys() and "video_connector.learnable_registers" in got
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-6)

    with torch.no_grad():
        before = plain(hidden_states, mask)[0]
    plain.add_adapter(LoraConfig(r=2, target_modules=["to_q", "to_v"], init_lora_weights=False))
    with torch.no_grad():
        after = plain(hidden_states, mask)[0]
    assert not torch.allclose(before, after)
    assert any("lora_A" in name for name, _ in plain.named_parameters())


RELEASED = {
    # diffusers-ltx2.md §1.3: LTX-2 connectors and the LTX-2.3 values.
    "ltx-2": dict(rope_type="split"),
    "ltx-2.3": dict(
        rope_type="split",
        video_connector_num_attention_heads=32,
        video_connector_num_layers=8,
        video_gated_attn=True,
        audio_connector_num_attention_heads=32,
        audio_connector_attention_head_dim=64,
        audio_connector_num_layers=8,
        audio_gated_attn=True,
        per_modality_projections=True,
        proj_bias=True,
    ),
}


@pytest.mark.parametrize("name", list(RELEASED))
def test_released_configs_have_diffusers_names_and_shapes(name):
    with torch.device("meta"):
        ours = LTX2TextConnectors(**RELEASED[name])
        theirs = DiffusersTextConnectors(**RELEASED[name])
    shapes = {key: tuple(value.shape) for key, value in ours.state_dict().items()}
    assert shapes == {key: tuple(value.shape) for key, value in theirs.state_dict().items()}
    if name == "ltx-2":
        assert sum(value.numel() for value in ours.state_dict().values()) == 1_431_475_200  # diffusers-ltx2.md §1.3
        assert len(shapes) == 59 and shapes["text_proj_in.weight"] == (3840, 3840 * 49)
    else:
        assert shapes["video_text_proj_in.weight"] == (4096, 3840 * 49)
        assert shapes["audio_connector.transformer_blocks.7.attn1.to_gate_logits.weight"] == (32, 2048)
    to_original = diffusers_to_original_keys(shapes, config=RELEASED[name])
    assert original_to_diffusers_keys(to_original.values(), config=RELEASED[name]) == {
        original: key for key, original in to_original.items()
    }
