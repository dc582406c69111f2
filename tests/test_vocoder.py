"""LTX2Vocoder and LTX2VocoderWithBWE: parity with ltx-core 1.0.0 through our key map, diffusers format, errors."""

import inspect

import pytest
import torch
from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder as DiffusersLTX2Vocoder
from diffusers.pipelines.ltx2.vocoder import LTX2VocoderWithBWE as DiffusersLTX2VocoderWithBWE
from helpers.vocoder import TINY_BWE_OURS, TINY_HIFIGAN_OURS
from ltx_core.model.audio_vae.vocoder import MelSTFT as RefMelSTFT
from ltx_core.model.audio_vae.vocoder import UpSample1d as RefUpSample1d
from ltx_core.model.audio_vae.vocoder import Vocoder as RefVocoder
from ltx_core.model.audio_vae.vocoder import VocoderWithBWE as RefVocoderWithBWE

import ltx2_diffusers
from ltx2_diffusers.loaders.audio_keys import vocoder_diffusers_to_original_keys, vocoder_original_to_diffusers_keys
from ltx2_diffusers.models.vocoder import LTX2Vocoder, LTX2VocoderWithBWE, UpSample1d

# Tiny generators: 128 input features (2 x 64 mel bins, fixed in ltx-core), 16 channels, x6 upsampling.
TINY_HIFIGAN = dict(
    resblock_kernel_sizes=[3, 5],
    upsample_rates=[3, 2],
    upsample_kernel_sizes=[7, 4],
    resblock_dilation_sizes=[[1, 3, 5], [1, 2, 3]],
    upsample_initial_channel=16,
)


def randomize(module: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Random parameters at a scale that keeps the tiny generators in a nonlinear but finite regime."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * (0.1 if parameter.ndim > 1 else 0.2))
    return module.eval()


def reference_bwe() -> RefVocoderWithBWE:
    amp = dict(TINY_HIFIGAN, resblock="AMP1", activation="snakebeta", use_tanh_at_final=False, use_bias_at_final=False)
    vocoder = RefVocoder(**amp, output_sampling_rate=16000)
    bwe_generator = RefVocoder(
        **dict(
            amp,
            upsample_rates=[3, 2, 4],
            upsample_kernel_sizes=[7, 4, 4],
            resblock_kernel_sizes=[3],
            resblock_dilation_sizes=[[1, 3, 5]],
        ),
        apply_final_activation=False,
        output_sampling_rate=48000,
    )
    mel_stft = RefMelSTFT(filter_length=16, hop_length=8, win_length=16, n_mel_channels=64)
    model = randomize(RefVocoderWithBWE(vocoder, bwe_generator, mel_stft, 16000, 48000, hop_length=8))
    generator = torch.Generator().manual_seed(2)
    # STFT bases and filterbank are checkpoint buffers (zeros at init): make them random, the mel basis positive
    mel_stft.stft_fn.forward_basis.copy_(torch.randn(18, 1, 16, generator=generator) * 0.5)
    mel_stft.stft_fn.inverse_basis.copy_(torch.randn(18, 1, 16, generator=generator))
    mel_stft.mel_basis.copy_(torch.rand(64, 9, generator=generator))
    return model


def public_config(model) -> dict:
    return {key: value for key, value in model.config.items() if not key.startswith("_")}


def load_through_key_map(ours: torch.nn.Module, reference: torch.nn.Module) -> None:
    file_state = {f"vocoder.{key}": value for key, value in reference.state_dict().items()}  # the single-file names
    names = vocoder_original_to_diffusers_keys(file_state, dict(ours.config))
    ours.load_state_dict({names[key]: value for key, value in file_state.items()}, strict=True)


def test_ltx2_vocoder_matches_ltx_core():
    reference = randomize(RefVocoder(**TINY_HIFIGAN))
    ours = LTX2Vocoder(**TINY_HIFIGAN_OURS).eval()
    load_through_key_map(ours, reference)
    mel = torch.randn(2, 2, 10, 64)
    with torch.no_grad():
        expected, actual = reference(mel), ours(mel)
    assert actual.shape == (2, 2, 60)
    assert (expected - actual).abs().max() <= 1e-5
    assert expected.abs().max() > 0.1  # not a degenerate (all-zero) comparison


def test_final_leaky_relu_has_the_reference_slope():
    ours = LTX2Vocoder(**TINY_HIFIGAN_OURS)
    assert ours.act_out.negative_slope == 0.01  # nn.LeakyReLU() in ltx-core, not the 0.1 used everywhere else
    assert RefVocoder(**TINY_HIFIGAN).act_post.negative_slope == 0.01


@pytest.mark.parametrize(("activation", "final"), [("snakebeta", "clamp"), ("snakebeta", None), ("snake", "clamp")])
def test_bigvgan_generator_matches_ltx_core(activation, final):
    reference = randomize(
        RefVocoder(
            **TINY_HIFIGAN,
            resblock="AMP1",
            activation=activation,
            use_tanh_at_final=False,
            apply_final_activation=final is not None,
            use_bias_at_final=False,
        )
    )
    ours = LTX2Vocoder(**TINY_HIFIGAN_OURS, act_fn=activation, antialias=True, final_act_fn=final, final_bias=False)
    load_through_key_map(ours.eval(), reference)
    mel = torch.randn(1, 2, 7, 64)
    with torch.no_grad():
        expected, actual = reference(mel), ours(mel)
    assert actual.shape == (1, 2, 42)
    assert (expected - actual).abs().max() <= 1e-5


# 7 frames -> 42 samples, not a multiple of the hop: the padded path. "loud": the 16 kHz stage overshoots [-1, 1], where
# ltx-core clamps it although the diffusers-format config (final_act_fn=None, as in TINY_BWE_OURS) says no activation.
@pytest.mark.parametrize(("num_frames", "loud"), [(8, False), (7, False), (8, True)])
def test_vocoder_with_bwe_matches_ltx_core(num_frames, loud):
    reference = reference_bwe()
    if loud:
        with torch.no_grad():
            reference.vocoder.conv_post.weight.mul_(20)
    ours = LTX2VocoderWithBWE(**TINY_BWE_OURS).eval()
    load_through_key_map(ours, reference)
    mel = torch.randn(2, 2, num_frames, 64)
    with torch.no_grad():
        expected, actual = reference(mel), ours(mel)
    assert actual.shape == (2, 2, num_frames * 6 * 3)
    assert (expected - actual).abs().max() <= 1e-5
    assert expected.abs().max() > 0.1
    with torch.no_grad():
        assert (ours.vocoder(mel).abs().max() > 1.5) == loud  # the clamp was exercised where intended


def test_fresh_filters_equal_the_reference_filters():
    """A model built from its config (no checkpoint) carries the reference's anti-alias and resampler filters."""
    reference = RefVocoder(**TINY_HIFIGAN, resblock="AMP1", activation="snakebeta")
    ours = LTX2Vocoder(**TINY_HIFIGAN_OURS, act_fn="snakebeta", antialias=True)
    ours_buffers = dict(ours.named_buffers())
    names = vocoder_original_to_diffusers_keys([f"vocoder.{k}" for k, _ in reference.named_buffers()])
    for key, value in reference.named_buffers():
        torch.testing.assert_close(ours_buffers[names[f"vocoder.{key}"]], value, atol=1e-7, rtol=0)
    hann_reference = RefUpSample1d(ratio=3, persistent=False, window_type="hann")
    hann_ours = UpSample1d(3, window="hann", persistent=False)
    torch.testing.assert_close(hann_ours.filter, hann_reference.filter, atol=1e-7, rtol=0)
    x = torch.randn(2, 3, 50)
    torch.testing.assert_close(hann_ours(x), hann_reference(x), atol=1e-6, rtol=0)


def test_output_sampling_rate_is_in_the_config():
    assert inspect.signature(LTX2Vocoder).parameters["output_sampling_rate"].default == 24000
    assert inspect.signature(LTX2VocoderWithBWE).parameters["output_sampling_rate"].default == 48000
    model = LTX2VocoderWithBWE(**TINY_BWE_OURS)
    assert model.config.output_sampling_rate == 48000
    assert model.vocoder.config.output_sampling_rate == 16000  # the first stage runs at the BWE's input rate


def test_public_names_resolve():
    assert ltx2_diffusers.LTX2Vocoder is LTX2Vocoder
    assert ltx2_diffusers.LTX2VocoderWithBWE is LTX2VocoderWithBWE


@pytest.mark.parametrize(
    ("ours_class", "theirs_class", "config", "num_frames"),
    [
        (LTX2Vocoder, DiffusersLTX2Vocoder, TINY_HIFIGAN_OURS, 9),
        # diffusers' BWE fails off-hop lengths, and skips the reference's clamp of the 16 kHz stage unless told to
        (LTX2VocoderWithBWE, DiffusersLTX2VocoderWithBWE, dict(TINY_BWE_OURS, final_act_fn="clamp"), 8),
    ],
)
def test_diffusers_folders_load_both_ways(tmp_path, ours_class, theirs_class, config, num_frames):
    theirs = randomize(theirs_class(**config))
    if ours_class is LTX2VocoderWithBWE:
        with torch.no_grad():
            theirs.mel_stft.mel_basis.uniform_(0, 1)
            theirs.mel_stft.stft_fn.forward_basis.normal_()
    theirs.save_pretrained(tmp_path / "theirs")
    ours = ours_class.from_pretrained(tmp_path / "theirs").eval()
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    assert public_config(ours) == public_config(theirs)
    ours.save_pretrained(tmp_path / "ours")
    theirs_again = theirs_class.from_pretrained(tmp_path / "ours").eval()
    mel = torch.randn(1, 2, num_frames, 64)
    with torch.no_grad():
        expected = theirs(mel)
        torch.testing.assert_close(ours(mel), expected, atol=1e-6, rtol=0)
        torch.testing.assert_close(theirs_again(mel), expected, atol=0, rtol=0)


def test_key_map_round_trip_and_single_prefix_strip():
    reference = reference_bwe()
    file_keys = [f"vocoder.{key}" for key in reference.state_dict()]
    names = vocoder_original_to_diffusers_keys(file_keys)
    assert names["vocoder.vocoder.conv_pre.weight"] == "vocoder.conv_in.weight"
    assert names["vocoder.bwe_generator.resblocks.0.acts1.0.downsample.lowpass.filter"] == (
        "bwe_generator.resnets.0.acts1.0.downsample.filter"
    )
    assert names["vocoder.vocoder.act_post.act.beta"] == "vocoder.act_out.act.beta"
    assert names["vocoder.mel_stft.stft_fn.forward_basis"] == "mel_stft.stft_fn.forward_basis"
    assert set(names.values()) == set(LTX2VocoderWithBWE(**TINY_BWE_OURS).state_dict())
    back = vocoder_diffusers_to_original_keys(names.values())
    assert {back[target]: target for target in names.values()} == {k: names[k] for k in file_keys}
    assert all(back[names[key]] == key for key in file_keys)
    ltx2_names = vocoder_original_to_diffusers_keys(["vocoder.conv_pre.weight", "vocoder.ups.4.bias"])
    assert ltx2_names == {"vocoder.conv_pre.weight": "conv_in.weight", "vocoder.ups.4.bias": "upsamplers.4.bias"}


def test_key_map_rejects_unknown_keys():
    with pytest.raises(ValueError, match=r"'vocoder\.mel_stft\.window' is not a known vocoder key"):
        vocoder_original_to_diffusers_keys(["vocoder.mel_stft.window"])
    with pytest.raises(ValueError, match=r"'audio_vae\.encoder\.conv_in\.conv\.weight' is not a known vocoder key"):
        vocoder_original_to_diffusers_keys(["audio_vae.encoder.conv_in.conv.weight"])
    # an LTX-2.3 (BWE) name is refused when the config says LTX-2, and the reverse
    with pytest.raises(ValueError, match="not a known vocoder key"):
        vocoder_original_to_diffusers_keys(
            ["vocoder.vocoder.conv_pre.weight"], dict(LTX2Vocoder(**TINY_HIFIGAN_OURS).config)
        )
    with pytest.raises(ValueError, match="not a known vocoder key"):
        vocoder_original_to_diffusers_keys(["vocoder.conv_pre.weight"], {"bwe_hidden_channels": 512})


def test_bad_inputs_raise_clear_errors():
    vocoder = LTX2Vocoder(**TINY_HIFIGAN_OURS)
    with pytest.raises(ValueError, match=r"1 channels x 64 mel bins = 64 features .* in_channels=128"):
        vocoder(torch.randn(1, 1, 5, 64))
    with pytest.raises(ValueError, match=r"2 channels x 80 mel bins = 160 features"):
        vocoder(torch.randn(1, 2, 5, 80))
    with pytest.raises(ValueError, match=r"shape \(batch, channels, frames, mel_bins\), got \(5, 64\)"):
        vocoder(torch.randn(5, 64))
    with pytest.raises(ValueError, match="act_fn='relu' is not supported"):
        LTX2Vocoder(**dict(TINY_HIFIGAN_OURS, act_fn="relu"))
    with pytest.raises(ValueError, match="one entry per upsampling stage"):
        LTX2Vocoder(**dict(TINY_HIFIGAN_OURS, upsample_factors=[3]))
    with pytest.raises(ValueError, match="integer multiple of input_sampling_rate=16000"):
        LTX2VocoderWithBWE(**dict(TINY_BWE_OURS, output_sampling_rate=44100))


@pytest.mark.parametrize(
    ("ours_class", "theirs_class"),
    [(LTX2Vocoder, DiffusersLTX2Vocoder), (LTX2VocoderWithBWE, DiffusersLTX2VocoderWithBWE)],
)
def test_released_configs_have_diffusers_parameter_names_and_shapes(ours_class, theirs_class):
    with torch.device("meta"):
        ours, theirs = ours_class(), theirs_class()
    shapes = {name: tuple(tensor.shape) for name, tensor in ours.state_dict().items()}
    assert shapes == {name: tuple(tensor.shape) for name, tensor in theirs.state_dict().items()}
    # LTX-2: 55.6 M parameters in 194 tensors (spec §1.3 of diffusers-ltx2.md); LTX-2.3: the file's 1227 vocoder.* tensors
    assert len(shapes) == (194 if ours_class is LTX2Vocoder else 1227)


def test_bf16_runs_the_reference_operations_in_the_same_order():
    """The pipelines run the vocoder in bf16 (spec §0.3): same op order as ltx-core gives identical bf16 output."""
    reference = reference_bwe()
    ours = LTX2VocoderWithBWE(**TINY_BWE_OURS).eval()
    load_through_key_map(ours, reference)
    reference, ours = reference.to(torch.bfloat16), ours.to(torch.bfloat16)
    mel = torch.randn(1, 2, 7, 64, dtype=torch.bfloat16)
    with torch.no_grad():
        torch.testing.assert_close(ours(mel), reference(mel), atol=0, rtol=0)
