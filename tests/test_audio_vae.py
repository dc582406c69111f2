"""AutoencoderKLLTX2Audio: parity with ltx-core 1.0.0 through our key map, diffusers format, latents <-> tokens, errors."""

import json

import pytest
import torch
from diffusers.models.autoencoders.autoencoder_kl_ltx2_audio import (
    AutoencoderKLLTX2Audio as DiffusersAutoencoderKLLTX2Audio,
)
from helpers.audio_vae import TINY, ours_from_reference, reference_pair, single_file_state
from ltx_core.components.patchifiers import AudioPatchifier
from ltx_core.model.audio_vae import encode_audio
from ltx_core.types import Audio, AudioLatentShape

import ltx2_diffusers
from ltx2_diffusers.loaders.audio_keys import audio_vae_diffusers_to_original_keys, audio_vae_original_to_diffusers_keys
from ltx2_diffusers.models.autoencoder_kl_ltx2_audio import (
    AutoencoderKLLTX2Audio,
    audio_latent_frames,
    fit_audio_latent_frames,
    pack_audio_latents,
    unpack_audio_latents,
)


@pytest.mark.parametrize(
    ("causality_axis", "attention"), [("height", False), ("height", True), ("width", False), ("none", True)]
)
def test_encode_and_decode_match_ltx_core(causality_axis, attention):
    encoder, decoder = reference_pair(causality_axis, attention)
    ours = ours_from_reference(encoder, decoder, causality_axis, attention)
    mel = torch.randn(2, 2, 21, 64)
    latents = torch.randn(2, 2, 5, 16)
    with torch.no_grad():
        expected_latents, expected_mel = encoder(mel), decoder(latents)
        actual_latents = ours.normalize_latents(ours.encode(mel).latent_dist.mode())
        actual_mel = ours.decode(ours.denormalize_latents(latents)).sample
    assert actual_latents.shape == expected_latents.shape
    assert actual_mel.shape == expected_mel.shape
    assert (actual_latents - expected_latents).abs().max() <= 1e-5
    assert (actual_mel - expected_mel).abs().max() <= 1e-5
    if causality_axis == "height":  # the released layout: T mel frames -> (T - 1) // 4 + 1 latents -> 4 T_a - 3 frames
        assert actual_latents.shape == (2, 2, 6, 16)
        assert actual_mel.shape == (2, 2, 17, 64)


def test_encode_waveform_matches_ltx_core_encode_audio():
    encoder, decoder = reference_pair()
    ours = ours_from_reference(encoder, decoder)
    waveform = (torch.rand(1, 2, 48000 // 5) * 2 - 1) * 0.5  # 0.2 s at 48 kHz: resampled to 16 kHz on the way
    with torch.no_grad():
        expected = encode_audio(Audio(waveform=waveform, sampling_rate=48000), encoder)
        actual = ours.encode_waveform(waveform, 48000)
    assert actual.shape == expected.shape == (1, 2, (3200 // 160) // 4 + 1, 16)
    assert (actual - expected).abs().max() <= 1e-4


def test_mono_waveform_encodes_as_duplicated_stereo():
    encoder, decoder = reference_pair()
    ours = ours_from_reference(encoder, decoder)
    mono = torch.rand(2, 1, 4000) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(ours.encode_waveform(mono, 16000), ours.encode_waveform(mono.repeat(1, 2, 1), 16000))


def saved_config(folder) -> dict:
    config = json.loads((folder / "config.json").read_text())
    return {key: value for key, value in config.items() if key not in ("_diffusers_version", "_name_or_path")}


def test_diffusers_folders_load_both_ways(tmp_path):
    theirs = DiffusersAutoencoderKLLTX2Audio(**TINY).eval()
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in theirs.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
        theirs.latents_mean.normal_()
        theirs.latents_std.uniform_(0.5, 1.5)
    theirs.save_pretrained(tmp_path / "theirs")
    ours = AutoencoderKLLTX2Audio.from_pretrained(tmp_path / "theirs").eval()
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    ours.save_pretrained(tmp_path / "ours")
    assert saved_config(tmp_path / "ours") == saved_config(tmp_path / "theirs")
    theirs_again = DiffusersAutoencoderKLLTX2Audio.from_pretrained(tmp_path / "ours").eval()
    mel, latents = torch.randn(1, 2, 21, 64), torch.randn(1, 2, 6, 16)
    with torch.no_grad():
        expected_moments, expected_mel = theirs.encode(mel).latent_dist.parameters, theirs.decode(latents).sample
        torch.testing.assert_close(ours.encode(mel).latent_dist.parameters, expected_moments, atol=1e-6, rtol=0)
        torch.testing.assert_close(ours.decode(latents).sample, expected_mel, atol=1e-6, rtol=0)
        torch.testing.assert_close(theirs_again.decode(latents).sample, expected_mel, atol=0, rtol=0)
        torch.testing.assert_close(theirs_again.latents_std, theirs.latents_std, atol=0, rtol=0)
    assert ours.temporal_compression_ratio == ours.mel_compression_ratio == 4  # read by diffusers' pipelines


def test_pack_matches_ltx_core_patchifier_and_round_trips():
    latents = torch.randn(2, 8, 5, 16)
    tokens = pack_audio_latents(latents)
    patchifier = AudioPatchifier(patch_size=1)
    torch.testing.assert_close(tokens, patchifier.patchify(latents), atol=0, rtol=0)
    assert tokens.shape == (2, 5, 128)
    assert tokens[0, 3, 2 * 16 + 7] == latents[0, 2, 3, 7]  # channel-major: feature c * 16 + f
    torch.testing.assert_close(unpack_audio_latents(tokens), latents, atol=0, rtol=0)


@pytest.mark.parametrize(("num_frames", "fps"), [(121, 24.0), (121, 25.0), (97, 30.0), (3, 10.0), (5, 10.0), (1, 24.0)])
def test_audio_latent_frames_matches_ltx_core(num_frames, fps):
    expected = AudioLatentShape.from_duration(batch=1, duration=float(num_frames) / float(fps)).frames
    assert audio_latent_frames(num_frames, fps) == expected
    assert audio_latent_frames(121, 24) == 126  # spec §0.1 example


def test_key_map_round_trip_and_unknown_keys():
    encoder, decoder = reference_pair()
    file_keys = list(single_file_state(encoder, decoder))
    names = audio_vae_original_to_diffusers_keys(file_keys)
    assert names["audio_vae.per_channel_statistics.mean-of-means"] == "latents_mean"
    assert names["audio_vae.per_channel_statistics.std-of-means"] == "latents_std"
    assert names["audio_vae.decoder.up.1.upsample.conv.conv.weight"] == "decoder.up.1.upsample.conv.conv.weight"
    assert set(names.values()) == set(AutoencoderKLLTX2Audio(**TINY).state_dict())
    back = audio_vae_diffusers_to_original_keys(names.values())
    assert all(back[names[key]] == key for key in file_keys)
    with pytest.raises(ValueError, match=r"'audio_vae\.per_channel_statistics\.channel' is not a known audio VAE key"):
        audio_vae_original_to_diffusers_keys(["audio_vae.per_channel_statistics.channel"])
    with pytest.raises(ValueError, match=r"'vae\.encoder\.conv_in\.conv\.weight' is not a known audio VAE key"):
        audio_vae_original_to_diffusers_keys(["vae.encoder.conv_in.conv.weight"])
    with pytest.raises(ValueError, match=r"'latents_scale' is not a known audio VAE key"):
        audio_vae_diffusers_to_original_keys(["latents_scale"])


def test_bad_inputs_raise_clear_errors():
    vae = AutoencoderKLLTX2Audio(**TINY)
    with pytest.raises(ValueError, match=r"shape \(batch, 2, frames, 64\), got \(1, 1, 9, 64\)"):
        vae.encode(torch.randn(1, 1, 9, 64))
    with pytest.raises(ValueError, match=r"shape \(batch, 2, frames, 64\), got \(1, 2, 9, 80\)"):
        vae.encode(torch.randn(1, 2, 9, 80))
    with pytest.raises(ValueError, match=r"shape \(batch, 2, frames, 64\), got \(2, 9, 64\)"):
        vae.encode(torch.randn(2, 9, 64))
    with pytest.raises(ValueError, match=r"\(batch, 2, frames, 16\), got \(1, 8, 3, 16\).*unpack_audio_latents"):
        vae.decode(torch.randn(1, 8, 3, 16))
    with pytest.raises(ValueError, match=r"downmix to stereo"):
        vae.encode_waveform(torch.zeros(1, 4, 8000), 16000)
    with pytest.raises(ValueError, match=r"hold 16 values .* need 2 x 16 = 32; choose base_channels"):
        AutoencoderKLLTX2Audio(**dict(TINY, base_channels=16)).normalize_latents(torch.randn(1, 2, 3, 16))
    with pytest.raises(ValueError, match=r"norm_type='group' normalises over time"):
        AutoencoderKLLTX2Audio(**dict(TINY, norm_type="group"))
    with pytest.raises(ValueError, match=r"double_z=False is not supported"):
        AutoencoderKLLTX2Audio(**dict(TINY, double_z=False))
    with pytest.raises(ValueError, match=r"causality_axis='time' is not supported"):
        AutoencoderKLLTX2Audio(**dict(TINY, causality_axis="time"))
    with pytest.raises(ValueError, match=r"num_channels=8, got \(1, 5, 100\)"):
        unpack_audio_latents(torch.randn(1, 5, 100))


def test_public_name_resolves():
    assert ltx2_diffusers.AutoencoderKLLTX2Audio is AutoencoderKLLTX2Audio


def test_released_config_has_diffusers_parameter_names_and_shapes():
    with torch.device("meta"):
        ours, theirs = AutoencoderKLLTX2Audio(), DiffusersAutoencoderKLLTX2Audio()
    shapes = {name: tuple(tensor.shape) for name, tensor in ours.state_dict().items()}
    assert shapes == {name: tuple(tensor.shape) for name, tensor in theirs.state_dict().items()}
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    assert ours.latent_mel_bins == 16 and shapes["latents_mean"] == (128,)  # = 8 channels x 16 latent mel bins


def test_bf16_runs_the_reference_operations_in_the_same_order():
    """The pipelines run the audio VAE in bf16 (spec §0.3): same op order as ltx-core gives identical bf16 output."""
    encoder, decoder = reference_pair()
    ours = ours_from_reference(encoder, decoder).to(torch.bfloat16)
    encoder, decoder = encoder.to(torch.bfloat16), decoder.to(torch.bfloat16)
    mel = torch.randn(1, 2, 21, 64, dtype=torch.bfloat16)
    latents = torch.randn(1, 2, 5, 16, dtype=torch.bfloat16)
    with torch.no_grad():
        torch.testing.assert_close(
            ours.normalize_latents(ours.encode(mel).latent_dist.mode()), encoder(mel), atol=0, rtol=0
        )
        torch.testing.assert_close(
            ours.decode(ours.denormalize_latents(latents)).sample, decoder(latents), atol=0, rtol=0
        )


def test_waveform_to_latents_to_waveform_lengths():
    """1 s at 16 kHz -> 101 mel frames (centred STFT) -> 26 latent frames -> 101 mel frames -> 101 x hop samples.

    (A video clip of 1 s asks for audio_latent_frames(25, 25.0) = 25 latents: encoded audio has one frame more.)
    """
    from ltx2_diffusers.models.vocoder import LTX2Vocoder

    vae = AutoencoderKLLTX2Audio(**TINY).eval()
    vocoder = LTX2Vocoder(hidden_channels=16, upsample_kernel_sizes=(7, 4), upsample_factors=(3, 2)).eval()
    with torch.no_grad():
        latents = vae.encode_waveform(torch.rand(1, 1, 16000) * 2 - 1, 16000)
        assert latents.shape == (1, 2, 26, 16) and audio_latent_frames(25, 25.0) == 25
        mel = vae.decode(vae.denormalize_latents(latents)).sample
        assert mel.shape == (1, 2, 4 * 26 - 3, 64)
        assert vocoder(mel).shape == (1, 2, 101 * 6)


@pytest.mark.parametrize("num_video_frames", [9, 25])  # 0.36 s of video: trim the 0.5 s clip; 1 s: zero-pad it
def test_audio_for_a_clip_matches_ltx_pipelines_retake(num_video_frames):
    from ltx_core.types import VideoPixelShape
    from ltx_pipelines.retake import _encode_audio_for_retake

    encoder, decoder = reference_pair()
    ours = ours_from_reference(encoder, decoder)
    waveform = (torch.rand(1, 2, 8000) * 2 - 1) * 0.5
    shape = VideoPixelShape(batch=1, frames=num_video_frames, height=64, width=64, fps=25.0)
    with torch.no_grad():
        expected = _encode_audio_for_retake(encoder, waveform, 16000, shape, torch.float32)
        actual = fit_audio_latent_frames(
            ours.encode_waveform(waveform, 16000), audio_latent_frames(num_video_frames, 25)
        )
    assert actual.shape == expected.shape == (1, 2, num_video_frames, 16)
    assert (actual - expected).abs().max() <= 1e-4
    with pytest.raises(ValueError, match="num_frames=0 must be at least 1"):
        fit_audio_latent_frames(actual, 0)


def test_encode_waveform_runs_the_offload_hook_before_making_the_mel():
    """Under model CPU offload the hook moves the VAE before encode_waveform builds the mel on `self.device`."""
    from accelerate.hooks import ModelHook, add_hook_to_module

    vae = AutoencoderKLLTX2Audio(**TINY).eval()
    devices_seen = []

    class RecordingHook(ModelHook):
        def pre_forward(self, module, *args, **kwargs):
            devices_seen.append(module.device.type)
            return args, kwargs

    add_hook_to_module(vae, RecordingHook())
    with torch.no_grad():
        latents = vae.encode_waveform(torch.randn(1, 2, 16000), 16000)
    assert latents.shape[:2] == (1, TINY["latent_channels"]) and len(devices_seen) == 2  # encode_waveform, then encode
