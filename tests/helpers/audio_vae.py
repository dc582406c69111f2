"""Shared builders for the audio VAE tests: ltx-core's tiny encoder / decoder pair with random weights, and ours with
the same weights through our key map."""

import torch
from ltx_core.model.audio_vae import AudioDecoder, AudioEncoder
from ltx_core.model.audio_vae.causality_axis import CausalityAxis
from ltx_core.model.common.normalization import NormType

from ltx2_diffusers.loaders.audio_keys import audio_vae_original_to_diffusers_keys
from ltx2_diffusers.models.autoencoder_kl_ltx2_audio import AutoencoderKLLTX2Audio

# Tiny but released-shaped: 3 levels (/4 in time and mel), 64 mel bins -> 16 latent bins; base_channels equals
# latent_channels * 16 so the (base_channels,) statistics fit the packed latent, as 128 = 8 * 16 does when released.
TINY = dict(base_channels=32, ch_mult=(1, 2, 4), num_res_blocks=1, latent_channels=2, mel_bins=64)


def reference_pair(causality_axis: str = "height", attention: bool = False) -> tuple[AudioEncoder, AudioDecoder]:
    """ltx-core's encoder and decoder with TINY's layout, random weights and statistics shared by both."""
    common = dict(
        ch=32,
        ch_mult=(1, 2, 4),
        num_res_blocks=1,
        attn_resolutions={64} if attention else set(),  # the deepest level: attention over few positions
        resolution=256,
        z_channels=2,
        norm_type=NormType.PIXEL,
        causality_axis=CausalityAxis(None if causality_axis == "none" else causality_axis),
        mid_block_add_attention=attention,
        mel_bins=64,
    )
    encoder, decoder = AudioEncoder(**common, in_channels=2).eval(), AudioDecoder(**common, out_ch=2).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in (encoder, decoder):
            for parameter in module.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
        mean, std = torch.randn(32, generator=generator), torch.rand(32, generator=generator) + 0.5
        for module in (encoder, decoder):
            module.per_channel_statistics.get_buffer("mean-of-means").copy_(mean)
            module.per_channel_statistics.get_buffer("std-of-means").copy_(std)
    return encoder, decoder


def single_file_state(encoder: AudioEncoder, decoder: AudioDecoder) -> dict[str, torch.Tensor]:
    """The two halves as Lightricks' single file stores them: one statistics pair under audio_vae.per_channel_statistics."""
    state = {}
    for key, value in encoder.state_dict().items():
        state[("audio_vae." if key.startswith("per_channel_statistics.") else "audio_vae.encoder.") + key] = value
    for key, value in decoder.state_dict().items():
        if not key.startswith("per_channel_statistics."):
            state[f"audio_vae.decoder.{key}"] = value
    return state


def ours_from_reference(
    encoder: AudioEncoder, decoder: AudioDecoder, causality_axis: str = "height", attention: bool = False
) -> AutoencoderKLLTX2Audio:
    config = dict(TINY, causality_axis=causality_axis, mid_block_add_attention=attention)
    if attention:
        config["attn_resolutions"] = (64,)
    ours = AutoencoderKLLTX2Audio(**config).eval()
    state = single_file_state(encoder, decoder)
    names = audio_vae_original_to_diffusers_keys(state, dict(ours.config))
    ours.load_state_dict({names[key]: value for key, value in state.items()}, strict=True)
    return ours
