"""Decoding stage: our `decode_video` / `decode_audio` on normalised latents equal ltx-core's decoders, which
un-normalise inside, on the same random weights (the VAE tests' tiny pairs, loaded through our key maps)."""

import torch
from helpers.audio_vae import ours_from_reference, reference_pair
from helpers.video_vae import build_pair

from ltx2_diffusers.pipelines.decoding import decode_audio
from ltx2_diffusers.pipelines.denoising import decode_video


@torch.no_grad()
def test_decode_video_equals_ltx_core_decoder_on_normalised_latents():
    _, ref_decoder, ours, _, _ = build_pair("ltx2", "zeros", "reflect")
    ours.disable_tiling()
    latents = torch.randn(1, ours.config.latent_channels, 3, 2, 3, generator=torch.Generator().manual_seed(1))
    expected = ref_decoder(latents)  # ltx-core: normalised latents in, pixels out
    got = decode_video(ours, latents)
    assert got.shape == (1, 3, 17, 64, 96)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    # the statistics are not the identity, so skipping the un-normalisation would fail the comparison above
    assert not torch.allclose(ours.latents_mean, torch.zeros_like(ours.latents_mean))


@torch.no_grad()
def test_decode_audio_equals_ltx_core_decoder_then_vocoder():
    encoder, decoder = reference_pair()
    ours = ours_from_reference(encoder, decoder)
    latents = torch.randn(2, 2, 5, 16, generator=torch.Generator().manual_seed(2))

    def vocoder(mel: torch.Tensor) -> torch.Tensor:  # any mel -> waveform module: the stage only passes the mel on
        return mel.mean(dim=-1, keepdim=False).repeat_interleave(3, dim=-1)

    vocoder.dtype = torch.float32
    expected = vocoder(decoder(latents))  # ltx-core's decode_audio: audio_decoder(latent), then the vocoder
    got = decode_audio(ours, vocoder, latents)
    assert got.shape == (2, 2, 17 * 3) and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
