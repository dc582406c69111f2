"""The transformer key map: ltx-core's names <-> diffusers' names, complete, one to one, and strict."""

import pytest
import torch
from _transformer_helpers import OUR_CONFIGS, ltx_core_config
from ltx_core.model.transformer.model_configurator import LTXModelConfigurator

from ltx2_diffusers.loaders.transformer_keys import diffusers_to_original_keys, original_to_diffusers_keys
from ltx2_diffusers.models.transformer_ltx2 import LTX2VideoTransformer3DModel


def expected_diffusers_keys(config: dict | None = None) -> set[str]:
    """Parameter names of our transformer with `config` (built on the meta device)."""
    with torch.device("meta"):
        return set(LTX2VideoTransformer3DModel(**(config or {})).state_dict())


# The released layouts at full size (spec §1.1), in ltx-core's metadata keys and in our config keys
FULL_SIZE = {
    "ltx2": ({}, {}),
    "ltx23": (
        {"apply_gated_attention": True, "cross_attention_adaln": True, "caption_proj_before_connector": True},
        {"gated_attn": True, "audio_gated_attn": True, "cross_attn_mod": True, "audio_cross_attn_mod": True,
         "use_prompt_embeddings": False},
    ),
}  # fmt: skip


RELEASED_SIZES = {
    "num_attention_heads": 32, "attention_head_dim": 128, "cross_attention_dim": 4096, "audio_num_attention_heads": 32,
    "audio_attention_head_dim": 64, "audio_cross_attention_dim": 2048, "num_layers": 48, "in_channels": 128,
    "out_channels": 128, "audio_in_channels": 128, "audio_out_channels": 128, "caption_channels": 3840,
}  # fmt: skip


def original_keys(core_config: dict) -> list[str]:
    with torch.device("meta"):
        model = LTXModelConfigurator.from_config({"transformer": core_config})
    return ["model.diffusion_model." + key for key in model.state_dict()]


@pytest.mark.parametrize("layout", ["ltx2", "ltx23"])
def test_full_size_reference_keys_map_onto_our_parameters(layout):
    core_changes, our_changes = FULL_SIZE[layout]
    core_config = {**ltx_core_config("ltx2"), **core_changes}
    core_config.update(RELEASED_SIZES)
    keys = original_keys(core_config)
    expected = expected_diffusers_keys(our_changes)
    mapping = original_to_diffusers_keys(keys, our_changes, expected)
    assert set(mapping.values()) == expected
    assert len(mapping) == (3510 if layout == "ltx2" else len(expected_diffusers_keys(our_changes)))
    assert diffusers_to_original_keys(mapping.values(), our_changes, expected) == {v: k for k, v in mapping.items()}


def test_renames_spot_checks():
    mapping = original_to_diffusers_keys(
        [
            "model.diffusion_model.adaln_single.emb.timestep_embedder.linear_1.weight",
            "model.diffusion_model.audio_adaln_single.linear.bias",
            "model.diffusion_model.patchify_proj.weight",
            "model.diffusion_model.av_ca_v2a_gate_adaln_single.linear.weight",
            "model.diffusion_model.transformer_blocks.3.scale_shift_table_a2v_ca_audio",
            "model.diffusion_model.transformer_blocks.0.audio_to_video_attn.k_norm.weight",
        ]
    )
    assert list(mapping.values()) == [
        "time_embed.emb.timestep_embedder.linear_1.weight",
        "audio_time_embed.linear.bias",
        "proj_in.weight",
        "av_cross_attn_audio_v2a_gate.linear.weight",
        "transformer_blocks.3.audio_a2v_cross_attn_scale_shift_table",
        "transformer_blocks.0.audio_to_video_attn.norm_k.weight",
    ]


def test_unknown_and_foreign_keys_raise():
    ltx2 = expected_diffusers_keys()
    with pytest.raises(ValueError, match="belongs to the text connectors"):
        original_to_diffusers_keys(["model.diffusion_model.video_embeddings_connector.learnable_registers"])
    with pytest.raises(ValueError, match="belongs to the text connectors"):
        original_to_diffusers_keys(["text_embedding_projection.aggregate_embed.weight"])
    with pytest.raises(ValueError, match="not a transformer key"):
        original_to_diffusers_keys(["vae.decoder.conv_in.conv.weight"])
    with pytest.raises(ValueError, match="'model.diffusion_model.transformer_blocks.0.attn1.q_proj.weight'"):
        original_to_diffusers_keys(["model.diffusion_model.transformer_blocks.0.attn1.q_proj.weight"], None, ltx2)
    # an LTX-2.3 key against the LTX-2 layout
    with pytest.raises(ValueError, match="prompt_adaln_single.linear.weight"):
        original_to_diffusers_keys(["model.diffusion_model.prompt_adaln_single.linear.weight"], None, ltx2)
    tiny = OUR_CONFIGS["ltx2"]
    with pytest.raises(ValueError, match="not a parameter"):
        diffusers_to_original_keys(
            ["transformer_blocks.0.attn1.to_gate_logits.weight"], tiny, expected_diffusers_keys(tiny)
        )
    # without the model's names only the renames apply (the converter always passes them)
    assert original_to_diffusers_keys(["model.diffusion_model.x.q_norm.weight"]) == {
        "model.diffusion_model.x.q_norm.weight": "x.norm_q.weight"
    }
