"""The `config` metadata of the released single files (spec §1.1, §2.1, §3, §5.4), as test data."""

from ltx2_diffusers.loaders import metadata as md


def released_transformer(version: str) -> dict:
    """config.transformer of the released 19B / 22B headers (spec §1.1, §5.4)."""
    t = dict(md.TRANSFORMER_ASSERTED)
    t.pop("num_vector_embeds")
    t.update(
        _class_name="AVTransformer3DModel",
        num_attention_heads=32,
        attention_head_dim=128,
        in_channels=128,
        out_channels=128,
        num_layers=48,
        cross_attention_dim=4096,
        norm_eps=1e-6,
        attention_type="default",
        positional_embedding_theta=10000.0,
        positional_embedding_max_pos=[20, 2048, 2048],
        timestep_scale_multiplier=1000,
        audio_num_attention_heads=32,
        audio_attention_head_dim=64,
        audio_out_channels=128,
        audio_cross_attention_dim=2048,
        audio_positional_embedding_max_pos=[20],
        av_ca_timestep_scale_multiplier=1000.0,
        rope_type="split",
        frequencies_precision="float64",
        caption_channels=3840,
        connector_positional_embedding_max_pos=[4096],
        causal_temporal_positioning=True,
        norm_num_groups=32,
    )
    if version == md.LTX2:
        t.update(connector_num_attention_heads=30, connector_attention_head_dim=128, connector_num_layers=2)
    else:
        t.update(
            connector_num_attention_heads=32,
            connector_attention_head_dim=128,
            connector_num_layers=8,
            audio_connector_num_attention_heads=32,
            audio_connector_attention_head_dim=64,
            audio_connector_num_layers=8,
            connector_apply_gated_attention=True,
            apply_gated_attention=True,
            cross_attention_adaln=True,
            text_encoder_norm_type="per_token_rms",
            **md._V2_TEXT_KEYS,
        )
    return t


RELEASED_LTX2_VAE = {
    "_class_name": "CausalVideoAutoencoder",
    "dims": 3,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 128,
    "encoder_blocks": [
        ["res_x", {"num_layers": 4}],
        ["compress_space_res", {"multiplier": 2}],
        ["res_x", {"num_layers": 6}],
        ["compress_time_res", {"multiplier": 2}],
        ["res_x", {"num_layers": 6}],
        ["compress_all_res", {"multiplier": 2}],
        ["res_x", {"num_layers": 2}],
        ["compress_all_res", {"multiplier": 2}],
        ["res_x", {"num_layers": 2}],
    ],
    "decoder_blocks": [
        ["res_x", {"num_layers": 5, "inject_noise": False}],
        ["compress_all", {"residual": True, "multiplier": 2}],
        ["res_x", {"num_layers": 5, "inject_noise": False}],
        ["compress_all", {"residual": True, "multiplier": 2}],
        ["res_x", {"num_layers": 5, "inject_noise": False}],
        ["compress_all", {"residual": True, "multiplier": 2}],
        ["res_x", {"num_layers": 5, "inject_noise": False}],
    ],
    "scaling_factor": 1.0,
    "norm_layer": "pixel_norm",
    "patch_size": 4,
    "latent_log_var": "uniform",
    "use_quant_conv": False,
    "causal_decoder": False,
    "timestep_conditioning": False,
}
RELEASED_LTX2_3_VAE = {
    "encoder_blocks": [
        ["res_x", {"num_layers": 4}],
        ["compress_space_res", {"multiplier": 2}],
        ["res_x", {"num_layers": 6}],
        ["compress_time_res", {"multiplier": 2}],
        ["res_x", {"num_layers": 4}],
        ["compress_all_res", {"multiplier": 2}],
        ["res_x", {"num_layers": 2}],
        ["compress_all_res", {"multiplier": 1}],
        ["res_x", {"num_layers": 2}],
    ],
    "decoder_blocks": [
        ["res_x", {"num_layers": 4}],
        ["compress_space", {"multiplier": 2}],
        ["res_x", {"num_layers": 6}],
        ["compress_time", {"multiplier": 2}],
        ["res_x", {"num_layers": 4}],
        ["compress_all", {"multiplier": 1}],
        ["res_x", {"num_layers": 2}],
        ["compress_all", {"multiplier": 2}],
        ["res_x", {"num_layers": 2}],
    ],
    "spatial_padding_mode": "zeros",
    "timestep_conditioning": False,
}


RELEASED_AUDIO_VAE = {
    "model": {
        "params": {
            "sampling_rate": 16000,
            "ddconfig": {
                "ch": 128,
                "ch_mult": [1, 2, 4],
                "num_res_blocks": 2,
                "attn_resolutions": [],
                "resolution": 256,
                "z_channels": 8,
                "double_z": True,
                "in_channels": 2,
                "out_ch": 2,
                "mel_bins": 64,
                "norm_type": "pixel",
                "causality_axis": "height",
                "mid_block_add_attention": False,
                "dropout": 0.0,
                "downsample_time": False,
            },
        }
    },
    "preprocessing": {
        "stft": {"filter_length": 1024, "hop_length": 160, "win_length": 1024, "causal": True},
        "mel": {"n_mel_channels": 64, "mel_fmin": 0, "mel_fmax": 8000},
    },
}
RELEASED_LTX2_VOCODER = {
    "resblock": "1",
    "stereo": True,
    "upsample_initial_channel": 1024,
    "upsample_rates": [6, 5, 2, 2, 2],
    "upsample_kernel_sizes": [16, 15, 8, 4, 4],
    "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    "output_sampling_rate": 24000,
    "activation": "snake",
    "use_tanh_at_final": True,
    "use_bias_at_final": True,
}
RELEASED_LTX2_3_VOCODER = {
    "vocoder": {
        **RELEASED_LTX2_VOCODER,
        "resblock": "AMP1",
        "activation": "snakebeta",
        "upsample_initial_channel": 1536,
        "upsample_rates": [5, 2, 2, 2, 2, 2],
        "upsample_kernel_sizes": [11, 4, 4, 4, 4, 4],
        "use_tanh_at_final": False,
        "use_bias_at_final": False,
    },
    "bwe": {
        **RELEASED_LTX2_VOCODER,
        "resblock": "AMP1",
        "activation": "snakebeta",
        "upsample_initial_channel": 512,
        "upsample_rates": [6, 5, 2, 2, 2],
        "upsample_kernel_sizes": [12, 11, 4, 4, 4],
        "use_tanh_at_final": False,
        "use_bias_at_final": False,
        "apply_final_activation": False,
        "input_sampling_rate": 16000,
        "output_sampling_rate": 48000,
        "hop_length": 80,
        "n_fft": 512,
        "win_size": 512,
        "num_mels": 64,
    },
}


def released(version: str) -> dict:
    return {
        "transformer": released_transformer(version),
        "vae": RELEASED_LTX2_VAE if version == md.LTX2 else RELEASED_LTX2_3_VAE,
        "audio_vae": RELEASED_AUDIO_VAE,
        "vocoder": RELEASED_LTX2_VOCODER if version == md.LTX2 else RELEASED_LTX2_3_VOCODER,
    }
