"""Original metadata -> diffusers configs and back: released headers give diffusers' published configs, ltx-core's
code defaults apply where keys are absent, bad metadata fails clearly, and the reverse is an exact inverse."""

import json

import pytest
from helpers.conversion import original_config
from helpers.released_configs import (
    RELEASED_LTX2_3_VAE,
    released,
)

from ltx2_diffusers.loaders import metadata as md


def test_released_ltx2_header_gives_diffusers_published_configs():
    """The values of diffusers-ltx2.md §1.3 (LTX-2.0 19B), except perturbed_attn (see the transformer function)."""
    configs = md.component_configs_from_original(released(md.LTX2))
    t = configs["transformer"][1]
    assert t["rope_type"] == "split" and t["rope_double_precision"] is True
    assert t["cross_attn_timestep_scale_multiplier"] == 1000
    assert (t["pos_embed_max_pos"], t["base_height"], t["base_width"], t["audio_pos_embed_max_pos"]) == (
        20,
        2048,
        2048,
        20,
    )
    assert (t["gated_attn"], t["cross_attn_mod"], t["use_prompt_embeddings"], t["qk_norm"]) == (
        False,
        False,
        True,
        "rms_norm_across_heads",
    )
    assert (t["audio_sampling_rate"], t["audio_hop_length"], t["caption_channels"]) == (16000, 160, 3840)
    c = configs["connectors"][1]
    assert (c["video_connector_num_attention_heads"], c["video_connector_attention_head_dim"]) == (30, 128)
    assert (c["audio_connector_num_attention_heads"], c["audio_connector_num_layers"]) == (30, 2)
    assert (c["connector_rope_base_seq_len"], c["text_proj_in_factor"], c["per_modality_projections"]) == (
        4096,
        49,
        False,
    )
    assert c["proj_bias"] is False and c["video_gated_attn"] is False
    v = configs["vae"][1]
    assert v["block_out_channels"] == [256, 512, 1024, 2048]
    assert v["decoder_block_out_channels"] == [256, 512, 1024]
    assert v["layers_per_block"] == [4, 6, 6, 2, 2] and v["decoder_layers_per_block"] == [5, 5, 5, 5]
    assert v["downsample_type"] == ["spatial", "temporal", "spatiotemporal", "spatiotemporal"]
    assert v["upsample_type"] == ["spatiotemporal"] * 3 and v["upsample_residual"] == [True] * 3
    assert v["upsample_factor"] == [2, 2, 2] and v["decoder_inject_noise"] == [False] * 4
    assert (v["encoder_spatial_padding_mode"], v["decoder_spatial_padding_mode"]) == ("zeros", "reflect")
    assert (v["encoder_causal"], v["decoder_causal"], v["timestep_conditioning"]) == (True, False, False)
    assert (v["spatial_compression_ratio"], v["temporal_compression_ratio"]) == (32, 8)
    a = configs["audio_vae"][1]
    assert a == {
        "base_channels": 128,
        "output_channels": 2,
        "ch_mult": [1, 2, 4],
        "num_res_blocks": 2,
        "attn_resolutions": None,
        "in_channels": 2,
        "resolution": 256,
        "latent_channels": 8,
        "norm_type": "pixel",
        "causality_axis": "height",
        "dropout": 0.0,
        "mid_block_add_attention": False,
        "sample_rate": 16000,
        "mel_hop_length": 160,
        "is_causal": True,
        "mel_bins": 64,
        "double_z": True,
    }
    name, voc = configs["vocoder"]
    assert name == "LTX2Vocoder"
    assert voc == {
        "in_channels": 128,
        "hidden_channels": 1024,
        "out_channels": 2,
        "upsample_kernel_sizes": [16, 15, 8, 4, 4],
        "upsample_factors": [6, 5, 2, 2, 2],
        "resnet_kernel_sizes": [3, 7, 11],
        "resnet_dilations": [[1, 3, 5]] * 3,
        "act_fn": "leaky_relu",
        "leaky_relu_negative_slope": 0.1,
        "antialias": False,
        "antialias_ratio": 2,
        "antialias_kernel_size": 12,
        "final_act_fn": "tanh",
        "final_bias": True,
        "output_sampling_rate": 24000,
    }


def test_released_ltx2_3_header():
    configs = md.component_configs_from_original(released(md.LTX2_3))
    t = configs["transformer"][1]
    assert (t["gated_attn"], t["audio_gated_attn"], t["cross_attn_mod"], t["use_prompt_embeddings"]) == (
        True,
        True,
        True,
        False,
    )
    c = configs["connectors"][1]
    assert (c["video_connector_num_attention_heads"], c["audio_connector_attention_head_dim"]) == (32, 64)
    assert (c["video_connector_num_layers"], c["audio_connector_num_layers"]) == (8, 8)
    assert (c["per_modality_projections"], c["proj_bias"], c["video_gated_attn"], c["audio_gated_attn"]) == (True,) * 4
    assert (c["video_hidden_dim"], c["audio_hidden_dim"]) == (4096, 2048)
    name, voc = configs["vocoder"]
    assert name == "LTX2VocoderWithBWE"
    assert (voc["hidden_channels"], voc["act_fn"], voc["antialias"], voc["final_bias"]) == (
        1536,
        "snakebeta",
        True,
        False,
    )
    assert voc["final_act_fn"] == "clamp"  # ltx-core clamps the 16 kHz waveform before the BWE stage
    assert (voc["bwe_hidden_channels"], voc["bwe_upsample_factors"], voc["bwe_final_act_fn"]) == (
        512,
        [6, 5, 2, 2, 2],
        None,
    )
    assert (voc["filter_length"], voc["hop_length"], voc["window_length"], voc["num_mel_channels"]) == (
        512,
        80,
        512,
        64,
    )
    assert (voc["input_sampling_rate"], voc["output_sampling_rate"]) == (16000, 48000)


def test_ltx2_3_video_vae_layout():
    """spec §2.1: widths 128 -> 1024 -> 1024 in the encoder; decoder 1024 -> 512 -> 512 -> 256 -> 128."""
    v = md.video_vae_config_from_original({"vae": RELEASED_LTX2_3_VAE})
    assert v["block_out_channels"] == [256, 512, 1024, 1024]
    assert v["layers_per_block"] == [4, 6, 4, 2, 2]
    assert v["decoder_block_out_channels"] == [256, 512, 512, 1024]
    assert v["decoder_layers_per_block"] == [4, 6, 4, 2, 2]
    assert v["upsample_factor"] == [2, 2, 1, 2] and v["upsample_residual"] == [False] * 4
    assert v["upsample_type"] == ["spatiotemporal", "spatiotemporal", "temporal", "spatial"]  # decoding order
    assert (v["encoder_spatial_padding_mode"], v["decoder_spatial_padding_mode"]) == ("zeros", "zeros")


def test_absent_keys_take_ltx_core_code_defaults():
    """spec §1.1: the code defaults for rope_type and the A<->V timestep scale are not the released values."""
    t = dict(md.TRANSFORMER_ASSERTED)
    config = {"transformer": t, "vae": {"encoder_blocks": ENCODER, "decoder_blocks": DECODER}, "audio_vae": {}}
    configs = md.component_configs_from_original(config)
    tr = configs["transformer"][1]
    assert (tr["rope_type"], tr["cross_attn_timestep_scale_multiplier"], tr["rope_double_precision"]) == (
        "interleaved",
        1,
        False,
    )
    assert (tr["num_layers"], tr["caption_channels"], tr["gated_attn"]) == (48, 3840, False)
    assert configs["connectors"][1]["connector_rope_base_seq_len"] == 1
    v = configs["vae"][1]
    assert v["timestep_conditioning"] is True  # ltx-core's decoder default; the released files say False
    assert (v["encoder_spatial_padding_mode"], v["decoder_spatial_padding_mode"]) == ("zeros", "reflect")
    a = configs["audio_vae"][1]
    assert a["mid_block_add_attention"] is True and a["attn_resolutions"] == [8, 16, 32]
    assert md.upsampler_config_from_original({})["mid_channels"] == 512


ENCODER = [["res_x", 1], ["compress_all_res", {"multiplier": 2}], ["res_x", 1]]
DECODER = [["res_x", 1], ["compress_all", {"multiplier": 2}], ["res_x", 1]]


@pytest.mark.parametrize("version", [md.LTX2, md.LTX2_3])
@pytest.mark.parametrize("source", ["released", "tiny"])
def test_reverse_is_an_exact_inverse(version, source):
    config = released(version) if source == "released" else original_config(version)
    configs = md.component_configs_from_original(config, 49 if source == "released" else 3)
    rebuilt = md.original_config_from_components(configs)
    again = md.component_configs_from_original(json.loads(json.dumps(rebuilt)), 49 if source == "released" else 3)
    assert again == configs
    assert md.detect_model_version({}, rebuilt) == version
    upsampler = md.upsampler_config_from_original(
        {"mid_channels": 1024, "rational_resampler": True, "spatial_scale": 1.5}
    )
    assert md.upsampler_config_from_original(md.original_upsampler_config(upsampler)) == upsampler


def test_metadata_errors_say_what_and_how():
    with pytest.raises(ValueError, match="has no safetensors metadata"):
        md.parse_original_metadata(None, "x.safetensors")
    with pytest.raises(ValueError, match=r"without a `config` entry \(it has: \['format'\]\)"):
        md.parse_original_metadata({"format": "pt"}, "x.safetensors")
    with pytest.raises(ValueError, match="not valid JSON"):
        md.parse_original_metadata({"config": "{"}, "x.safetensors")
    with pytest.raises(ValueError, match="is a JSON list, expected an object"):
        md.parse_original_metadata({"config": "[]"}, "x.safetensors")
    t = dict(md.TRANSFORMER_ASSERTED)
    t.pop("av_cross_ada_norm")
    with pytest.raises(
        ValueError, match=r"config.transformer.av_cross_ada_norm is 'missing'; .* av_cross_ada_norm=True"
    ):
        md.transformer_config_from_original({"transformer": t})
    with pytest.raises(ValueError, match=r"config.transformer.qk_norm is 'layer_norm'"):
        md.transformer_config_from_original({"transformer": {**md.TRANSFORMER_ASSERTED, "qk_norm": "layer_norm"}})
    with pytest.raises(ValueError, match="partial or unknown text-projection setup"):
        md.connectors_config_from_original({"transformer": {"caption_proj_before_connector": True}})
    with pytest.raises(ValueError, match="no 'vae' section"):
        md.video_vae_config_from_original({"transformer": {}})
    with pytest.raises(ValueError, match="norm_layer='group_norm' is not supported"):
        md.video_vae_config_from_original({"vae": {"norm_layer": "group_norm"}})
    with pytest.raises(ValueError, match="alternating"):
        md.video_vae_config_from_original(
            {"vae": {"encoder_blocks": [["res_x", 1], ["res_x", 1]], "decoder_blocks": DECODER}}
        )
    residual_space = [["res_x", 1], ["compress_space", {"multiplier": 2, "residual": True}], ["res_x", 1]]
    vae = md.video_vae_config_from_original({"vae": {"encoder_blocks": ENCODER, "decoder_blocks": residual_space}})
    assert vae["upsample_residual"] == [False]  # ltx-core ignores `residual` there
    with pytest.raises(ValueError, match="upsample_residual with a spatial upsampler has no original form"):
        md.original_video_vae_section({**vae, "upsample_residual": [True]})
    with pytest.raises(ValueError, match="stereo is 'missing'"):
        md.vocoder_config_from_original({"vocoder": {"resblock": "1"}})
    with pytest.raises(ValueError, match="it is a model checkpoint, not a latent upsampler"):
        md.upsampler_config_from_original(released(md.LTX2))
    with pytest.raises(ValueError, match="model_version='2.3.0' contradicts the config"):
        md.detect_model_version({"model_version": "2.3.0"}, released(md.LTX2))
    assert md.detect_model_version({"model_version": "2.3.0"}, released(md.LTX2_3)) == md.LTX2_3
    assert md.detect_model_version({}, released(md.LTX2)) == md.LTX2


def test_scheduler_config_by_kind():
    from ltx2_diffusers.schedulers.scheduling_ltx2 import DISTILLED_SIGMAS, LTX2Scheduler

    assert md.scheduler_config("dev") == {}
    assert md.scheduler_config("distilled")["fixed_sigmas"] == list(DISTILLED_SIGMAS)
    distilled = LTX2Scheduler(**md.scheduler_config("distilled"))
    distilled.set_timesteps()
    assert distilled.sigmas.tolist() == pytest.approx(list(DISTILLED_SIGMAS))
    assert md.model_kind_from_name("/x/ltx-2.3-22b-distilled.safetensors") == "distilled"
    assert md.model_kind_from_name("ltx-2-19b-dev-fp8.safetensors") == "dev"
    with pytest.raises(ValueError, match="Pass kind='dev' or kind='distilled'"):
        md.model_kind_from_name("my_model.safetensors")
    with pytest.raises(ValueError, match="kind='turbo'"):
        md.scheduler_config("turbo")


# Published sizes: diffusers-ltx2.md §1.3 (LTX-2, meta-device counts of diffusers' classes) and the spec's header note
# (LTX-2.3: video VAE 318.9M + 407.2M, audio VAE 21.3M + 31.9M, vocoder 128.5M).
PUBLISHED = {
    md.LTX2: {
        "transformer": (18_876_174_592, 3510),
        "connectors": (1_431_475_200, 59),
        "vae": (1_222_479_601, 184),
        "audio_vae": (53_248_146, 102),
        "vocoder": (55_592_802, 194),
    },
    md.LTX2_3: {"vae": (726_100_000, None), "audio_vae": (53_200_000, None), "vocoder": (128_500_000, None)},
}


@pytest.mark.parametrize("version", [md.LTX2, md.LTX2_3])
def test_released_headers_build_models_of_the_published_sizes(version):
    from accelerate import init_empty_weights

    import ltx2_diffusers

    configs = md.component_configs_from_original(released(version))
    for component, (params, tensors) in PUBLISHED[version].items():
        name, config = configs[component]
        with init_empty_weights():
            model = getattr(ltx2_diffusers, name).from_config(config)
        count = sum(p.numel() for p in model.parameters())
        if tensors is None:  # published to 0.1M
            assert abs(count - params) < 0.06e6, (component, count)
        else:
            assert (count, len(model.state_dict())) == (params, tensors), component
