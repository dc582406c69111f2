"""The pure-torch mel front end against torchaudio and ltx-core's AudioProcessor (torchaudio is used in tests only)."""

import pytest
import torch
import torchaudio
from helpers.fresh_python import python
from ltx_core.model.audio_vae.ops import AudioProcessor
from ltx_core.types import Audio

from ltx2_diffusers.models.mel import mel_filterbank, resample_waveform, to_stereo, waveform_to_mel

WITHOUT_TORCHAUDIO = (
    "import sys, torch\n"
    "sys.modules['torchaudio'] = None  # from here on, any 'import torchaudio' raises ImportError\n"
    "from ltx2_diffusers.models.autoencoder_kl_ltx2_audio import AutoencoderKLLTX2Audio\n"
    "from ltx2_diffusers.models.vocoder import LTX2Vocoder, LTX2VocoderWithBWE\n"
    "vae = AutoencoderKLLTX2Audio(base_channels=32, ch_mult=(1, 2, 4), num_res_blocks=1, latent_channels=2)\n"
    "assert vae.encode_waveform(torch.zeros(1, 1, 48000), 48000).shape == (1, 2, 26, 16)\n"
    "print('ok')\n"
)


@pytest.fixture(scope="module")
def without_torchaudio():
    """The fresh interpreter of the last test, started with the module's first test (every test uses this fixture) so
    that it runs beside the in-process tests."""
    child = python(WITHOUT_TORCHAUDIO)
    yield child
    child.stop()


pytestmark = pytest.mark.usefixtures("without_torchaudio")


def reference_log_mel(waveform: torch.Tensor) -> torch.Tensor:
    """torchaudio's MelSpectrogram with the spec's settings, log clamp, as (B, C, T, 64)."""
    transform = torchaudio.transforms.MelSpectrogram(
        sample_rate=16000,
        n_fft=1024,
        win_length=1024,
        hop_length=160,
        f_min=0.0,
        f_max=8000.0,
        n_mels=64,
        window_fn=torch.hann_window,
        center=True,
        pad_mode="reflect",
        power=1.0,
        mel_scale="slaney",
        norm="slaney",
    )
    return torch.log(torch.clamp(transform(waveform), min=1e-5)).transpose(2, 3)


def test_filterbank_equals_torchaudio():
    expected = torchaudio.functional.melscale_fbanks(513, 0.0, 8000.0, 64, 16000, norm="slaney", mel_scale="slaney")
    actual = mel_filterbank(513, 16000, 64)
    assert actual.shape == (513, 64)
    torch.testing.assert_close(actual, expected, atol=1e-9, rtol=1e-6)


def test_mel_matches_torchaudio_on_random_stereo():
    waveform = torch.rand(2, 2, 8000) * 2 - 1  # 0.5 s of stereo noise at 16 kHz
    expected = reference_log_mel(waveform)
    actual = waveform_to_mel(waveform, 16000)
    assert actual.shape == (2, 2, 8000 // 160 + 1, 64)
    assert (actual - expected).abs().max() <= 1e-4
    # quiet passages hit the 1e-5 clamp: the floor is where the reference puts it
    silent = waveform_to_mel(torch.zeros(1, 2, 2000), 16000)
    torch.testing.assert_close(silent, torch.full_like(silent, torch.log(torch.tensor(1e-5)).item()))


@pytest.mark.parametrize(("orig", "new"), [(48000, 16000), (44100, 16000), (8000, 16000), (22050, 24000)])
def test_resampling_matches_torchaudio(orig, new):
    waveform = torch.randn(3, orig // 10 + 7)
    expected = torchaudio.functional.resample(waveform, orig, new)
    actual = resample_waveform(waveform, orig, new)
    assert actual.shape == expected.shape
    assert (actual - expected).abs().max() <= 1e-5


@pytest.mark.parametrize("sample_rate", [16000, 48000, 44100])
def test_mel_matches_ltx_core_audio_processor(sample_rate):
    waveform = (torch.rand(1, 2, sample_rate // 4) * 2 - 1) * 0.5
    processor = AudioProcessor(target_sample_rate=16000, mel_bins=64, mel_hop_length=160, n_fft=1024)
    expected = processor.waveform_to_mel(Audio(waveform=waveform, sampling_rate=sample_rate))
    actual = waveform_to_mel(waveform, sample_rate)
    assert actual.shape == expected.shape == (1, 2, 4000 // 160 + 1, 64)
    assert (actual - expected).abs().max() <= 1e-4


def test_mono_is_duplicated_to_stereo():
    mono = torch.rand(2, 1, 4000) * 2 - 1
    mel = waveform_to_mel(mono, 16000)
    assert mel.shape == (2, 2, 26, 64)
    torch.testing.assert_close(mel[:, 0], mel[:, 1], atol=0, rtol=0)
    torch.testing.assert_close(mel, waveform_to_mel(mono.repeat(1, 2, 1), 16000), atol=0, rtol=0)
    assert to_stereo(mono).shape == (2, 2, 4000)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"downmix to stereo"):
        waveform_to_mel(torch.zeros(1, 6, 4000), 16000)
    with pytest.raises(ValueError, match=r"\(batch, channels, samples\), got \(2, 4000\).*waveform\[None\]"):
        waveform_to_mel(torch.zeros(2, 4000), 16000)
    with pytest.raises(ValueError, match=r"too short: 300 samples at 16000 Hz, .* at least 32 ms"):
        waveform_to_mel(torch.zeros(1, 2, 300), 16000)
    with pytest.raises(TypeError, match=r"floating-point"):
        waveform_to_mel(torch.zeros(1, 2, 4000, dtype=torch.int16), 16000)
    with pytest.raises(ValueError, match=r"whole numbers of Hz"):
        resample_waveform(torch.zeros(1, 4000), 22050.5, 16000)


def test_package_works_without_torchaudio(without_torchaudio):
    """torchaudio's wheels break beside CPU torch (ENV.md), so the front end, VAE and vocoders must not need it.

    (transformers imports torchaudio on its own when it is importable, so the check blocks the import instead of
    looking at sys.modules.)
    """
    assert without_torchaudio.stdout() == "ok"
