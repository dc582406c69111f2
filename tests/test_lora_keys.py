"""loaders/lora_keys.py: its tables of linear layers are the models' (both layouts), and every spelling of one module
parses to the same (component, diffusers name)."""

import pytest
import torch
from torch import nn

from ltx2_diffusers.loaders.lora_keys import (
    CONNECTOR_BLOCK_LINEARS,
    CONNECTOR_PROJECTIONS,
    TRANSFORMER_BLOCK_LINEARS,
    TRANSFORMER_TOP_LINEARS,
    parse_lora_key,
)
from ltx2_diffusers.models.connectors import LTX2TextConnectors
from ltx2_diffusers.models.transformer_ltx2 import LTX2VideoTransformer3DModel
from ltx2_diffusers.pipelines.tiny import tiny_connectors_config, tiny_transformer_config


def linear_names(model: nn.Module) -> set[str]:
    return {name for name, module in model.named_modules() if isinstance(module, nn.Linear)}


def test_tables_are_the_models_linear_layers():
    transformer, connectors = set(), set()
    for version in ("2.0", "2.3"):
        with torch.device("meta"):
            transformer |= linear_names(
                LTX2VideoTransformer3DModel(**{**tiny_transformer_config(version), "num_layers": 1})
            )
            connectors |= linear_names(LTX2TextConnectors(**tiny_connectors_config(version)))
    assert transformer == {*TRANSFORMER_TOP_LINEARS, *(f"transformer_blocks.0.{n}" for n in TRANSFORMER_BLOCK_LINEARS)}
    assert connectors == {
        *CONNECTOR_PROJECTIONS,
        *(f"{m}_connector.transformer_blocks.0.{n}" for m in ("video", "audio") for n in CONNECTOR_BLOCK_LINEARS),
    }


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (["diffusion_model.transformer_blocks.7.audio_to_video_attn.to_out.0.lora_A.weight",
          "model.diffusion_model.transformer_blocks.7.audio_to_video_attn.to_out.0.lora_down.weight",
          "transformer.transformer_blocks.7.audio_to_video_attn.to_out.0.lora_A.weight",
          "base_model.model.transformer_blocks.7.audio_to_video_attn.to_out.0.lora_A.weight",
          "lora_unet_transformer_blocks_7_audio_to_video_attn_to_out_0.lora_down.weight",
          "lora_unet_model_transformer_blocks_7_audio_to_video_attn_to_out_0.lora_down.weight"],
         ("transformer", "transformer_blocks.7.audio_to_video_attn.to_out.0", "A")),
        (["diffusion_model.av_ca_a2v_gate_adaln_single.linear.alpha", "transformer.av_cross_attn_video_a2v_gate.linear.alpha",
          "lora_unet_model_av_ca_a2v_gate_adaln_single_linear.alpha", "lora_unet_av_cross_attn_video_a2v_gate_linear.alpha"],
         ("transformer", "av_cross_attn_video_a2v_gate.linear", "alpha")),
        (["diffusion_model.audio_embeddings_connector.transformer_1d_blocks.1.ff.net.0.proj.lora_B.weight",
          "connectors.audio_connector.transformer_blocks.1.ff.net.0.proj.lora_B.weight",
          "lora_unet_audio_embeddings_connector_transformer_1d_blocks_1_ff_net_0_proj.lora_up.weight",
          "lora_unet_model_audio_embeddings_connector_transformer_1d_blocks_1_ff_net_0_proj.lora_up.weight"],
         ("connectors", "audio_connector.transformer_blocks.1.ff.net.0.proj", "B")),
        (["diffusion_model.video_embeddings_connector.transformer_1d_blocks.0.attn1.to_gate_logits.lora_A.weight",
          "lora_unet_embeddings_connector_transformer_1d_blocks_0_attn1_to_gate_logits.lora_down.weight",
          "lora_unet_video_embeddings_connector_transformer_1d_blocks_0_attn1_to_gate_logits.lora_down.weight"],
         ("connectors", "video_connector.transformer_blocks.0.attn1.to_gate_logits", "A")),
        (["text_embedding_projection.aggregate_embed.lora_A.weight", "connectors.text_proj_in.lora_A.weight",
          "lora_unet_text_embedding_projection_aggregate_embed.lora_down.weight"],
         ("connectors", "text_proj_in", "A")),
        (["text_embedding_projection.audio_aggregate_embed.lora_B.weight"], ("connectors", "audio_text_proj_in", "B")),
    ],
)  # fmt: skip
def test_every_spelling_parses_to_one_module(keys, expected):
    assert {key: parse_lora_key(key) for key in keys} == dict.fromkeys(keys, expected)


@pytest.mark.parametrize(
    "key",
    [
        "diffusion_model.transformer_blocks.0.attn1.q_norm.lora_A.weight",  # a norm, not a linear layer
        "diffusion_model.transformer_blocks.0.attn1.to_q.dora_scale",
        "diffusion_model.vae.decoder.conv_in.lora_A.weight",
        "text_encoder.model.layers.0.q_proj.lora_A.weight",
        "lora_unet_transformer_blocks_0_attn1_to_z.lora_down.weight",
        "lora_unet_model_video_embeddings_connector_transformer_1d_blocks_0_attn2_to_q.lora_down.weight",
        "connectors.video_connector.learnable_registers.lora_A.weight",
        "diffusion_model.transformer_blocks..attn1.to_q.lora_A.weight",
    ],
)
def test_keys_of_no_linear_layer_parse_to_none(key):
    assert parse_lora_key(key) is None
