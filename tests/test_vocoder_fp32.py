"""Reference 1.2.0 runs the LTX-2.3 / 2.5 vocoder + BWE in float32 over bf16 weights (delta spec §4.7, row 5.12);
reference "1.0" keeps the bf16 forward. `decoding.vocode` is where the decode stage makes that choice."""

import copy
from pathlib import Path

import pytest
import torch
from helpers.vocoder import TINY_BWE_OURS, TINY_HIFIGAN_OURS
from safetensors.torch import load_file

from ltx2_diffusers.loaders.audio_keys import vocoder_original_to_diffusers_keys
from ltx2_diffusers.models.autoencoder_kl_ltx2_audio import AutoencoderKLLTX2Audio
from ltx2_diffusers.models.vocoder import LTX2Vocoder, LTX2VocoderWithBWE
from ltx2_diffusers.pipelines.decoding import decode_waveform, float32_weights, vocode

GOLDEN = Path(__file__).parent / "goldens" / "vocoder" / "vocoder.safetensors"
# TINY_BWE_OURS (tests/helpers/vocoder.py) is the layout scripts/goldens/vocoder.py builds in ltx-core
BF16_STEP = 2.0**-8  # the bf16 spacing just below 1: the largest rounding step of a waveform in [-1, 1]


def golden_vocoder() -> tuple[LTX2VocoderWithBWE, dict[str, torch.Tensor]]:
    """Our tiny vocoder + BWE in bf16 with the golden's weights (through the single-file key map), and the golden."""
    golden = load_file(GOLDEN)
    model = LTX2VocoderWithBWE(**TINY_BWE_OURS).eval().to(torch.bfloat16)
    file_state = {key: value for key, value in golden.items() if key.startswith("vocoder.")}
    names = vocoder_original_to_diffusers_keys(file_state, dict(model.config))
    model.load_state_dict({names[key]: value for key, value in file_state.items()}, strict=True)
    return model, golden


def test_reference_1_2_matches_the_ltx_core_1_2_golden():
    model, golden = golden_vocoder()
    mel, expected = golden["input.mel"], golden["output.waveform"]
    with torch.no_grad():
        actual, bf16 = vocode(model, mel, "1.2"), vocode(model, mel, "1.0")
    assert actual.dtype == expected.dtype == torch.bfloat16 and actual.shape == expected.shape == (1, 2, 126)
    error = (actual.float() - expected.float()).abs()
    # float32 sums in another order can land a sample on the neighbouring bf16 value, rarely
    assert error.max() <= BF16_STEP and (error == 0).float().mean() >= 0.95
    bf16_error = (bf16.float() - expected.float()).abs()
    assert bf16_error.max() >= 4 * BF16_STEP  # the bf16 forward is far from 1.2.0's: the test can tell the paths apart


def test_reference_1_2_is_a_float32_run_of_the_same_weights_cast_back():
    model, golden = golden_vocoder()
    mel = golden["input.mel"]
    before = {name: tensor.clone() for name, tensor in model.state_dict(keep_vars=True).items()}
    with torch.no_grad():
        expected = copy.deepcopy(model).float()(mel.float()).to(torch.bfloat16)
        actual = vocode(model, mel, "1.2")
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)
    after = model.state_dict(keep_vars=True)  # the weights are the bf16 tensors again, values untouched
    assert all(after[name].dtype == torch.bfloat16 and torch.equal(after[name], before[name]) for name in before)
    assert model.resampler.filter.dtype == torch.bfloat16  # non-persistent buffers too


def test_reference_1_0_is_the_plain_bf16_forward():
    model, golden = golden_vocoder()
    mel = golden["input.mel"]
    with torch.no_grad():
        torch.testing.assert_close(vocode(model, mel, "1.0"), model(mel), rtol=0, atol=0)
        assert vocode(model, mel.float(), "1.0").dtype == torch.bfloat16  # the mel is cast to the vocoder's dtype


def test_hifigan_vocoder_is_unchanged_by_reference_1_2():
    """LTX-2's HiFi-GAN stays in its dtype under 1.2.0 (only `VocoderWithBWE` gained the float32 forward)."""
    torch.manual_seed(0)
    model = LTX2Vocoder(**TINY_HIFIGAN_OURS).eval().to(torch.bfloat16)
    mel = torch.randn(1, 2, 5, 64, dtype=torch.bfloat16)
    with torch.no_grad():
        torch.testing.assert_close(vocode(model, mel, "1.2"), model(mel), rtol=0, atol=0)


def test_float32_weights_restores_the_original_tensors_after_an_error():
    model = LTX2Vocoder(**TINY_HIFIGAN_OURS).to(torch.bfloat16)
    pointer = model.conv_in.weight.data_ptr()
    with pytest.raises(RuntimeError, match="boom"), float32_weights(model):
        assert model.conv_in.weight.dtype == torch.float32
        raise RuntimeError("boom")
    assert model.conv_in.weight.dtype == torch.bfloat16 and model.conv_in.weight.data_ptr() == pointer  # the same memory


def test_decode_waveform_threads_the_reference():
    model, golden = golden_vocoder()
    torch.manual_seed(0)
    audio_vae = AutoencoderKLLTX2Audio(base_channels=32, ch_mult=(1, 2, 4), num_res_blocks=1, latent_channels=2)
    audio_vae = audio_vae.eval().to(torch.bfloat16)
    latents = torch.randn(1, 2, 3, 16)
    with torch.no_grad():
        mel = audio_vae.decode(audio_vae.denormalize_latents(latents.bfloat16()), return_dict=False)[0]
        for reference in ("1.2", "1.0"):
            waveform, rate = decode_waveform(audio_vae, model, latents, "np", reference=reference)
            assert waveform.dtype == torch.float32 and rate == model.config.output_sampling_rate
            torch.testing.assert_close(waveform, vocode(model, mel, reference).float(), rtol=0, atol=0)
        with pytest.raises(ValueError, match=r"reference='1\.1' is not a reference version"):
            decode_waveform(audio_vae, model, latents, "np", reference="1.1")


@pytest.mark.gpu
def test_cuda_autocast_path_equals_the_float32_copy():
    """On CUDA, 1.2.0's path is float32 autocast over the bf16 weights; the reference reports it bit-identical to a
    float32 copy of the module, which is what the CPU path runs."""
    model, golden = golden_vocoder()
    model, mel = model.cuda(), golden["input.mel"].cuda()
    with torch.no_grad():
        expected = copy.deepcopy(model).float()(mel.float()).to(torch.bfloat16)
        torch.testing.assert_close(vocode(model, mel, "1.2"), expected, rtol=0, atol=0)
