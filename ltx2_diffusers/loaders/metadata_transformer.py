"""Lightricks' `config.transformer` metadata <-> our transformer and text-connector configs (spec §1.1, §5.4;
1.2 spec §2.1, §3.5). Part of `metadata.py`'s API, which re-exports every name here.

ltx-core 1.2.0 (LTX-2.5) adds five keys, each absent from LTX-2 / LTX-2.3 files and read with the default below:
`ff_bias` (True), `audio_ff_bias` (True), `use_prompt_adaln_single` (True), `use_keyframes_abs_pos_embedding` (False)
and `connector_ff_bias` (True). The reverse writes a key only where it differs from that default, so LTX-2 / LTX-2.3
sections come out exactly as before.
"""

from collections.abc import Mapping
from typing import Any

from .metadata_rules import _one_of, _require, _section

# Values ltx-core's configurator asserts (`check_config_value`): a missing key fails unless the expected value is None.
TRANSFORMER_ASSERTED: dict[str, Any] = {
    "dropout": 0.0,
    "attention_bias": True,
    "num_vector_embeds": None,
    "activation_fn": "gelu-approximate",
    "num_embeds_ada_norm": 1000,
    "use_linear_projection": False,
    "only_cross_attention": False,
    "cross_attention_norm": True,
    "double_self_attention": False,
    "upcast_attention": False,
    "standardization_norm": "rms_norm",
    "norm_elementwise_affine": False,
    "qk_norm": "rms_norm",
    "positional_embedding_type": "rope",
    "use_middle_indices_grid": True,
    "use_audio_video_cross_attention": True,
    "share_ff": False,
    "av_cross_ada_norm": True,
}
# ltx-core's "V2" text path (LTX-2.3): the projection moves out of the transformer into the connectors.
_V2_TEXT_KEYS: dict[str, bool] = {
    "caption_proj_before_connector": True,
    "caption_projection_first_linear": False,
    "caption_proj_input_norm": False,
    "caption_projection_second_linear": False,
}
GEMMA_3_12B_HIDDEN_SIZE = 3840
GEMMA_3_12B_PROJ_IN_FACTOR = 49  # 48 layers + the embedding layer, all concatenated before the projection
CONNECTOR_NUM_REGISTERS = 128  # hard-coded in ltx-core (1.0.0 and 1.2.0); `connector_num_learnable_registers` is ignored
# ltx-core 1.2.0's keys, absent (= these defaults) in LTX-2 / LTX-2.3 files: {original key: (our key, default)}
TRANSFORMER_2_5_KEYS: dict[str, tuple[str, bool]] = {
    "ff_bias": ("ff_bias", True),
    "audio_ff_bias": ("audio_ff_bias", True),
    "use_prompt_adaln_single": ("use_prompt_adaln_single", True),
    "use_keyframes_abs_pos_embedding": ("use_keyframes_abs_pos_embedding", False),
}
CONNECTOR_2_5_KEYS: dict[str, tuple[str, bool]] = {"connector_ff_bias": ("connector_ff_bias", True)}

def transformer_config_from_original(
    config: Mapping[str, Any], audio_vae_config: Mapping[str, Any] | None = None
) -> dict:
    """`config.transformer` -> LTX2VideoTransformer3DModel config. `audio_vae_config`: our audio VAE config, whose
    sample rate and hop length set the audio token positions (16 kHz / 160 when absent, as ltx-core hard-codes)."""
    t = _section(config, "transformer")
    for name, expected in TRANSFORMER_ASSERTED.items():
        _require(t, name, expected, "transformer")
    video_max_pos = t.get("positional_embedding_max_pos", [20, 2048, 2048])
    audio_max_pos = t.get("audio_positional_embedding_max_pos", [20])
    if len(video_max_pos) != 3 or len(audio_max_pos) != 1:
        raise ValueError(
            f"positional_embedding_max_pos={video_max_pos} / audio_positional_embedding_max_pos={audio_max_pos}: "
            "expected 3 values (time, height, width) and 1 value (time)."
        )
    gated = bool(t.get("apply_gated_attention", False))
    cross_adaln = bool(t.get("cross_attention_adaln", False))
    audio_vae_config = audio_vae_config or {}
    return {
        "in_channels": t.get("in_channels", 128),
        "out_channels": t.get("out_channels", 128),
        "patch_size": 1,
        "patch_size_t": 1,
        "num_attention_heads": t.get("num_attention_heads", 32),
        "attention_head_dim": t.get("attention_head_dim", 128),
        "cross_attention_dim": t.get("cross_attention_dim", 4096),
        "vae_scale_factors": [8, 32, 32],  # ltx-core hard-codes the video VAE's compression for RoPE positions
        "pos_embed_max_pos": video_max_pos[0],
        "base_height": video_max_pos[1],
        "base_width": video_max_pos[2],
        "gated_attn": gated,
        "cross_attn_mod": cross_adaln,
        "audio_in_channels": t.get("audio_in_channels", 128),
        "audio_out_channels": t.get("audio_out_channels", 128),
        "audio_patch_size": 1,
        "audio_patch_size_t": 1,
        "audio_num_attention_heads": t.get("audio_num_attention_heads", 32),
        "audio_attention_head_dim": t.get("audio_attention_head_dim", 64),
        "audio_cross_attention_dim": t.get("audio_cross_attention_dim", 2048),
        "audio_scale_factor": 4,
        "audio_pos_embed_max_pos": audio_max_pos[0],
        "audio_sampling_rate": audio_vae_config.get("sample_rate", 16000),
        "audio_hop_length": audio_vae_config.get("mel_hop_length", 160),
        "audio_gated_attn": gated,
        "audio_cross_attn_mod": cross_adaln,
        "num_layers": t.get("num_layers", 48),
        "activation_fn": "gelu-approximate",
        "qk_norm": "rms_norm_across_heads",
        "norm_elementwise_affine": False,
        "norm_eps": t.get("norm_eps", 1e-6),
        "caption_channels": t.get("caption_channels", GEMMA_3_12B_HIDDEN_SIZE),
        "attention_bias": True,
        "attention_out_bias": True,
        "rope_theta": t.get("positional_embedding_theta", 10000.0),
        "rope_double_precision": t.get("frequencies_precision", False) == "float64",
        "causal_offset": 1,
        "timestep_scale_multiplier": t.get("timestep_scale_multiplier", 1000),
        # ltx-core's code defaults (1, "interleaved") differ from both released files (1000, "split"), spec §1.1
        "cross_attn_timestep_scale_multiplier": t.get("av_ca_timestep_scale_multiplier", 1),
        "rope_type": _one_of(t.get("rope_type", "interleaved"), ("interleaved", "split"), "rope_type"),
        "use_prompt_embeddings": not _uses_v2_text_path(t),
        # ltx-core can always skip self-attention for STG; diffusers' flag False would make STG a silent no-op
        "perturbed_attn": True,
        **_read_flags(t, TRANSFORMER_2_5_KEYS),
    }


def _uses_v2_text_path(t: Mapping[str, Any]) -> bool:
    present = t.keys() & _V2_TEXT_KEYS.keys()
    if not present:
        return False
    wrong = {k: t.get(k, "missing") for k, v in _V2_TEXT_KEYS.items() if t.get(k, "missing") != v}
    if wrong:
        raise ValueError(
            f"config.transformer has a partial or unknown text-projection setup {wrong}; ltx-core 1.0.0 knows only "
            f"none of these keys (LTX-2) or exactly {_V2_TEXT_KEYS} (LTX-2.3)."
        )
    return True


def connectors_config_from_original(config: Mapping[str, Any], text_proj_in_factor: int | None = None) -> dict:
    """The `connector_*` keys of `config.transformer` -> LTX2TextConnectors config.

    text_proj_in_factor: Gemma's hidden-state count (layers + 1), read by the converter from the projection weight's
    shape; None means Gemma-3-12B's 49, which ltx-core hard-codes.
    """
    t = _section(config, "transformer")
    v2 = _uses_v2_text_path(t)
    max_pos = t.get("connector_positional_embedding_max_pos", [1])  # the code default [1] is not the released [4096]
    heads = t.get("connector_num_attention_heads", 30)
    head_dim = t.get("connector_attention_head_dim", 128)
    layers = t.get("connector_num_layers", 2)
    gated = bool(t.get("connector_apply_gated_attention", False))  # one flag for both connectors in ltx-core
    return {
        "caption_channels": t.get("caption_channels", GEMMA_3_12B_HIDDEN_SIZE),
        "text_proj_in_factor": GEMMA_3_12B_PROJ_IN_FACTOR if text_proj_in_factor is None else int(text_proj_in_factor),
        "video_connector_num_attention_heads": heads,
        "video_connector_attention_head_dim": head_dim,
        "video_connector_num_layers": layers,
        "video_connector_num_learnable_registers": CONNECTOR_NUM_REGISTERS,
        "video_gated_attn": gated,
        "audio_connector_num_attention_heads": t.get("audio_connector_num_attention_heads", heads),
        "audio_connector_attention_head_dim": t.get("audio_connector_attention_head_dim", head_dim),
        "audio_connector_num_layers": t.get("audio_connector_num_layers", layers),
        "audio_connector_num_learnable_registers": CONNECTOR_NUM_REGISTERS,
        "audio_gated_attn": gated,
        "connector_rope_base_seq_len": max_pos[0],
        "rope_theta": 10000.0,
        "rope_double_precision": t.get("frequencies_precision", False) == "float64",
        "causal_temporal_positioning": False,
        "rope_type": _one_of(t.get("rope_type", "interleaved"), ("interleaved", "split"), "rope_type"),
        "per_modality_projections": v2,
        "video_hidden_dim": t.get("num_attention_heads", 32) * t.get("attention_head_dim", 128),
        "audio_hidden_dim": t.get("audio_num_attention_heads", 32) * t.get("audio_attention_head_dim", 64),
        "proj_bias": v2,
        **_read_flags(t, CONNECTOR_2_5_KEYS),
    }


def original_transformer_section(transformer: Mapping[str, Any], connectors: Mapping[str, Any] | None) -> dict:
    """Our transformer (+ connectors) configs -> `config.transformer`, with every key ltx-core reads or asserts."""
    t = transformer
    if t["gated_attn"] != t["audio_gated_attn"] or t["cross_attn_mod"] != t["audio_cross_attn_mod"]:
        raise ValueError(
            "gated_attn/cross_attn_mod differ between video and audio; ltx-core has one flag for both "
            "(apply_gated_attention / cross_attention_adaln), so this config has no original form."
        )
    section: dict[str, Any] = dict(TRANSFORMER_ASSERTED)
    section.pop("num_vector_embeds")  # asserted None: absent is what the released files do
    section.update(
        {
            "num_attention_heads": t["num_attention_heads"],
            "attention_head_dim": t["attention_head_dim"],
            "in_channels": t["in_channels"],
            "out_channels": t["out_channels"],
            "num_layers": t["num_layers"],
            "cross_attention_dim": t["cross_attention_dim"],
            "norm_eps": t["norm_eps"],
            "attention_type": "default",
            "positional_embedding_theta": t["rope_theta"],
            "positional_embedding_max_pos": [t["pos_embed_max_pos"], t["base_height"], t["base_width"]],
            "timestep_scale_multiplier": t["timestep_scale_multiplier"],
            "audio_num_attention_heads": t["audio_num_attention_heads"],
            "audio_attention_head_dim": t["audio_attention_head_dim"],
            "audio_in_channels": t["audio_in_channels"],
            "audio_out_channels": t["audio_out_channels"],
            "audio_cross_attention_dim": t["audio_cross_attention_dim"],
            "audio_positional_embedding_max_pos": [t["audio_pos_embed_max_pos"]],
            "av_ca_timestep_scale_multiplier": t["cross_attn_timestep_scale_multiplier"],
            "rope_type": t["rope_type"],
            "apply_gated_attention": t["gated_attn"],
            "cross_attention_adaln": t["cross_attn_mod"],
            "caption_channels": t["caption_channels"],
        }
    )
    if t["rope_double_precision"]:
        section["frequencies_precision"] = "float64"
    if not t["use_prompt_embeddings"]:
        section.update(_V2_TEXT_KEYS)
    section.update(_written_flags(t, TRANSFORMER_2_5_KEYS))
    if connectors is not None:
        c = connectors
        if c["video_gated_attn"] != c["audio_gated_attn"]:
            raise ValueError("video_gated_attn != audio_gated_attn: ltx-core has one connector_apply_gated_attention.")
        section.update(
            {
                "connector_num_attention_heads": c["video_connector_num_attention_heads"],
                "connector_attention_head_dim": c["video_connector_attention_head_dim"],
                "connector_num_layers": c["video_connector_num_layers"],
                "connector_positional_embedding_max_pos": [c["connector_rope_base_seq_len"]],
                "connector_apply_gated_attention": c["video_gated_attn"],
                "audio_connector_num_attention_heads": c["audio_connector_num_attention_heads"],
                "audio_connector_attention_head_dim": c["audio_connector_attention_head_dim"],
                "audio_connector_num_layers": c["audio_connector_num_layers"],
                **_written_flags(c, CONNECTOR_2_5_KEYS),
            }
        )
    return section




def _read_flags(section: Mapping[str, Any], keys: Mapping[str, tuple[str, bool]]) -> dict[str, bool]:
    out = {}
    for original, (ours, default) in keys.items():
        value = section.get(original, default)
        if not isinstance(value, bool):
            raise ValueError(f"config.transformer.{original}={value!r}; expected true or false.")
        out[ours] = value
    return out


def _written_flags(config: Mapping[str, Any], keys: Mapping[str, tuple[str, bool]]) -> dict[str, bool]:
    """Only the non-default ones: an LTX-2 / LTX-2.3 section keeps exactly its 1.0.0 keys."""
    return {original: config[ours] for original, (ours, default) in keys.items() if config.get(ours, default) != default}
