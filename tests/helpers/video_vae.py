"""Shared builders for the video VAE tests: tiny diffusers-layout configs, ltx-core's matching block lists, and an
(ltx-core encoder, ltx-core decoder, ours) triple holding the same random weights through our key map."""

import torch
from ltx_core.model.video_vae import VideoDecoderConfigurator, VideoEncoderConfigurator

from ltx2_diffusers.loaders.video_vae_keys import ORIGINAL_IGNORED_KEYS, original_to_diffusers_keys
from ltx2_diffusers.models.autoencoder_kl_ltx2 import AutoencoderKLLTX2Video

LATENT = 8
BASE = 8  # ltx-core decoder width = 8 * BASE

# ltx-core block lists (encoder side first, as in the checkpoint metadata) and the matching diffusers configs
LTX2_ENCODER_BLOCKS = [
    ("res_x", 1),
    ("compress_space_res", {"multiplier": 2}),
    ("res_x", 1),
    ("compress_time_res", {"multiplier": 2}),
    ("res_x", 1),
    ("compress_all_res", {"multiplier": 2}),
    ("res_x", 1),
    ("compress_all_res", {"multiplier": 2}),
    ("res_x", 1),
]
LTX23_ENCODER_BLOCKS = [*LTX2_ENCODER_BLOCKS[:7], ("compress_all_res", {"multiplier": 1}), ("res_x", 1)]


def ltx2_decoder_blocks(inject_noise=(False, False, False, False)):
    res = [{"num_layers": 1, "inject_noise": n} for n in inject_noise]
    up = {"residual": True, "multiplier": 2}
    return [
        ("res_x", res[0]),
        ("compress_all", up),
        ("res_x", res[1]),
        ("compress_all", up),
        ("res_x", res[2]),
        ("compress_all", up),
        ("res_x", res[3]),
    ]


def ltx23_decoder_blocks(residual_all: bool):
    return [
        ("res_x", 1),
        ("compress_space", {"multiplier": 2}),
        ("res_x", 1),
        ("compress_time", {"multiplier": 2}),
        ("res_x", 1),
        ("compress_all", {"multiplier": 1, "residual": residual_all}),
        ("res_x", 1),
        ("compress_all", {"multiplier": 2, "residual": residual_all}),
        ("res_x", 1),
    ]


def tiny_config(layout: str, encoder_padding: str, decoder_padding: str, **overrides) -> dict:
    common = {
        "latent_channels": LATENT,
        "layers_per_block": (1, 1, 1, 1, 1),
        "downsample_type": ("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
        "encoder_spatial_padding_mode": encoder_padding,
        "decoder_spatial_padding_mode": decoder_padding,
        "decoder_causal": False,
    }
    if layout == "ltx2":
        layout_cfg = {
            "block_out_channels": (16, 32, 64, 128),
            "decoder_block_out_channels": (2 * BASE, 4 * BASE, 8 * BASE),
            "decoder_layers_per_block": (1, 1, 1, 1),
            "decoder_spatio_temporal_scaling": (True, True, True),
            "decoder_inject_noise": (False, False, False, False),
            "upsample_type": ("spatiotemporal",) * 3,
            "upsample_residual": (True, True, True),
            "upsample_factor": (2, 2, 2),
        }
    else:
        layout_cfg = {
            "block_out_channels": (16, 32, 64, 64),
            "decoder_block_out_channels": (2 * BASE, 4 * BASE, 4 * BASE, 8 * BASE),
            "decoder_layers_per_block": (1, 1, 1, 1, 1),
            "decoder_spatio_temporal_scaling": (True, True, True, True),
            "decoder_inject_noise": (False,) * 5,
            "upsample_type": ("spatiotemporal", "spatiotemporal", "temporal", "spatial"),
            "upsample_residual": (False, False, False, False),
            "upsample_factor": (2, 2, 1, 2),
        }
    return {**common, **layout_cfg, **overrides}


def randomize_(module: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("timestep_scale_multiplier"):
                continue
            fan_in = p[0].numel() if p.ndim > 1 else 1
            p.copy_(torch.randn(p.shape, generator=gen) / fan_in**0.5)


def build_pair(
    layout: str,
    encoder_padding: str,
    decoder_padding: str,
    encoder_blocks=None,
    decoder_blocks=None,
    timestep_conditioning: bool = False,
    **overrides,
):
    """ltx-core encoder + decoder with random weights, and ours loaded from their state dicts through our key map."""
    torch.manual_seed(0)
    if encoder_blocks is None:
        encoder_blocks = LTX2_ENCODER_BLOCKS if layout == "ltx2" else LTX23_ENCODER_BLOCKS
    if decoder_blocks is None:
        decoder_blocks = ltx2_decoder_blocks() if layout == "ltx2" else ltx23_decoder_blocks(False)
    meta = {"latent_channels": LATENT, "decoder_base_channels": BASE, "timestep_conditioning": timestep_conditioning}
    ref_encoder = VideoEncoderConfigurator.from_config(
        {"vae": {**meta, "encoder_blocks": encoder_blocks, "spatial_padding_mode": encoder_padding}}
    ).eval()
    ref_decoder = VideoDecoderConfigurator.from_config(
        {"vae": {**meta, "decoder_blocks": decoder_blocks, "spatial_padding_mode": decoder_padding}}
    ).eval()
    randomize_(ref_encoder, 1)
    randomize_(ref_decoder, 2)
    gen = torch.Generator().manual_seed(3)
    stats = {
        "mean-of-means": torch.randn(LATENT, generator=gen),
        "std-of-means": torch.rand(LATENT, generator=gen) + 0.5,
    }
    for module in (ref_encoder, ref_decoder):
        for name, value in stats.items():
            module.per_channel_statistics.get_buffer(name).copy_(value)

    single_file = {
        f"vae.encoder.{k}": v for k, v in ref_encoder.state_dict().items() if "per_channel_statistics" not in k
    }
    single_file |= {
        f"vae.decoder.{k}": v for k, v in ref_decoder.state_dict().items() if "per_channel_statistics" not in k
    }
    single_file |= {f"vae.per_channel_statistics.{k}": v for k, v in stats.items()}
    single_file |= {key: torch.zeros(LATENT) for key in ORIGINAL_IGNORED_KEYS}

    config = tiny_config(
        layout, encoder_padding, decoder_padding, timestep_conditioning=timestep_conditioning, **overrides
    )
    ours = AutoencoderKLLTX2Video(**config).eval()
    mapping = original_to_diffusers_keys(single_file, config)
    ours.load_state_dict({mapping[k]: v for k, v in single_file.items() if k in mapping}, strict=True)
    return ref_encoder, ref_decoder, ours, single_file, config
