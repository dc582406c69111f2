"""Acceptance 1: parity with ltx-core 1.0.0's LTXModel on random weights, fp32, through our key map (max abs <= 1e-4).

Layouts: LTX-2, LTX-2.3, and "ltx2_legacy" (ltx-core's code defaults: interleaved RoPE, float32 grid, gate multiplier 1).
"""

import pytest
import torch
from _transformer_helpers import (
    HEIGHT,
    VIDEO_TOKENS,
    WIDTH,
    build_pair,
    empty_perturbations,
    ltx_core_perturbations,
    make_inputs,
)

from ltx2_diffusers.models.perturbations import Perturbations

LAYOUTS = ["ltx2", "ltx23"]
TOLERANCE = dict(rtol=0, atol=1e-4)


@pytest.fixture(scope="module", params=[*LAYOUTS, "ltx2_legacy"])
def pair(request):
    reference, ours = build_pair(request.param)
    return request.param, reference, ours


def run_both(reference, ours, inputs, core_perturbations, **our_kwargs):
    with torch.no_grad():
        expected = reference(*inputs.ltx_core(), core_perturbations)
        got = ours(**inputs.ours(), **our_kwargs)
    return expected, got


def assert_outputs_close(expected, got):
    assert got[0].shape == expected[0].shape
    torch.testing.assert_close(got[0], expected[0], **TOLERANCE)
    if expected[1] is None:
        assert got[1] is None
    else:
        torch.testing.assert_close(got[1], expected[1], **TOLERANCE)
    assert expected[0].abs().max() > 0.1  # outputs are O(1): the tolerance means something


def test_equal_sigmas(pair):
    layout, reference, ours = pair
    inputs = make_inputs(layout, 2, video_sigma=[0.9, 0.3])
    assert_outputs_close(*run_both(reference, ours, inputs, empty_perturbations(2)))


def test_unequal_video_and_audio_sigmas(pair):
    # the cross-modal AdaLN of each stream reads the partner's sigma (spec §1.7): unequal sigmas expose a swap
    layout, reference, ours = pair
    inputs = make_inputs(layout, 2, video_sigma=[0.9, 0.6], audio_sigma=[0.2, 1.0])
    expected, got = run_both(reference, ours, inputs, empty_perturbations(2))
    assert_outputs_close(expected, got)
    swapped = ours(**{**inputs.ours(), "sigma": inputs.audio_sigma * 1000, "audio_sigma": inputs.video_sigma * 1000})
    assert (swapped[0] - expected[0]).abs().max() > 1e-3


def test_per_token_timesteps_with_conditioning_mask(pair):
    layout, reference, ours = pair
    inputs = make_inputs(layout, 2, video_sigma=[0.8, 0.5], condition_first_frame=True)
    assert inputs.video_timesteps[0, : HEIGHT * WIDTH].abs().max() == 0
    assert_outputs_close(*run_both(reference, ours, inputs, empty_perturbations(2)))


def test_stg_on_some_blocks_for_some_samples(pair):
    layout, reference, ours = pair
    inputs = make_inputs(layout, 3)
    core = ltx_core_perturbations([[], [("video_stg", [0, 2]), ("audio_stg", [1])], [("audio_stg", [1])]])
    perturbations = Perturbations(
        video_stg_blocks=(0, 2),
        audio_stg_blocks=(1,),
        video_stg_mask=torch.tensor([0.0, 1.0, 0.0]),
        audio_stg_mask=torch.tensor([0.0, 1.0, 1.0]),
    )
    expected, got = run_both(reference, ours, inputs, core, perturbations=perturbations)
    assert_outputs_close(expected, got)
    plain = ours(**inputs.ours())
    assert (plain[0][1] - got[0][1]).abs().max() > 1e-3  # STG changed sample 1 ...
    torch.testing.assert_close(plain[0][0], got[0][0], rtol=0, atol=1e-6)  # ... and left sample 0 alone


def test_stg_on_every_sample_matches_the_reference_value_path(pair):
    # ltx-core skips q/k entirely when every sample is perturbed; we blend, which must give the same numbers
    layout, reference, ours = pair
    inputs = make_inputs(layout, 2)
    core = ltx_core_perturbations([[("video_stg", [1]), ("audio_stg", [1])]] * 2)
    expected, got = run_both(
        reference, ours, inputs, core, spatio_temporal_guidance_blocks=[1], perturbation_mask=torch.zeros(2)
    )
    assert_outputs_close(expected, got)


def test_modality_isolation_per_sample_and_whole_batch(pair):
    layout, reference, ours = pair
    inputs = make_inputs(layout, 3)
    core = ltx_core_perturbations([[("a2v", None)], [("v2a", None)], []])
    perturbations = Perturbations(skip_a2v_mask=torch.tensor([1.0, 0, 0]), skip_v2a_mask=torch.tensor([0, 1.0, 0]))
    assert_outputs_close(*run_both(reference, ours, inputs, core, perturbations=perturbations))
    core = ltx_core_perturbations([[("a2v", None), ("v2a", None)]] * 3)
    assert_outputs_close(*run_both(reference, ours, inputs, core, isolate_modalities=True))


def test_self_attention_weight_mask(pair):
    layout, reference, ours = pair
    inputs = make_inputs(layout, 2, condition_first_frame=True)
    generator = torch.Generator().manual_seed(3)
    weights = torch.rand(2, VIDEO_TOKENS, VIDEO_TOKENS, generator=generator)
    weights[:, :4, 10:] = 0.0  # fully masked entries -> the dtype's min
    inputs.video_attention_mask = weights
    inputs.audio_attention_mask = torch.rand(2, 5, 5, generator=generator)
    expected, got = run_both(reference, ours, inputs, empty_perturbations(2))
    assert_outputs_close(expected, got)
    inputs.video_attention_mask = None
    assert (ours(**inputs.ours())[0] - got[0]).abs().max() > 1e-3


@pytest.mark.parametrize("layout", LAYOUTS)
def test_video_only(layout):
    reference, ours = build_pair(layout, seed=5, video_only=True)
    inputs = make_inputs(layout, 2, condition_first_frame=True)
    inputs.audio = None
    expected, got = run_both(reference, ours, inputs, empty_perturbations(2))
    assert got[1] is None
    assert_outputs_close(expected, got)


def test_video_only_skips_audio_and_cross_modal_layers(pair):
    # a video-only call on the audio-video model = the audio-video call with the audio and A<->V sub-layers removed
    layout, reference, ours = pair
    inputs = make_inputs(layout, 2)
    video_only = ours(**{k: v for k, v in inputs.ours().items() if not k.startswith("audio_")})
    isolated = ours(**inputs.ours(), isolate_modalities=True)
    torch.testing.assert_close(video_only[0], isolated[0], rtol=0, atol=1e-6)
    assert video_only[1] is None


@pytest.mark.parametrize("layout", LAYOUTS)
def test_bf16_bit_exact_with_reference_positions(layout):
    # In bf16 we round like ltx-core, op for op (bf16 positions, RoPE with addcmul, modulation order): on CPU the
    # outputs are identical. Float32 positions (what diffusers' pipeline passes) move the bf16 RoPE angles by up to
    # f_k * 2^-8 ~ 30 rad at the highest frequency, which changes the output by O(1).
    reference, ours = build_pair(layout, seed=7)
    reference, ours = reference.to(torch.bfloat16), ours.to(torch.bfloat16)
    inputs = make_inputs(
        layout, 3, video_sigma=[0.9, 0.6, 0.3], audio_sigma=[0.2, 1.0, 0.5], condition_first_frame=True
    )
    for name in ("video", "audio", "video_context", "audio_context"):
        setattr(inputs, name, getattr(inputs, name).bfloat16())
    inputs.video_positions = inputs.video_positions.bfloat16()
    core = ltx_core_perturbations([[], [("video_stg", [1])], [("a2v", None), ("audio_stg", None)]])
    perturbations = Perturbations(
        video_stg_blocks=(1,),
        audio_stg_blocks=(0, 1, 2),
        video_stg_mask=torch.tensor([0.0, 1.0, 0.0]),
        audio_stg_mask=torch.tensor([0.0, 0.0, 1.0]),
        skip_a2v_mask=torch.tensor([0.0, 0.0, 1.0]),
    )
    expected, got = run_both(reference, ours, inputs, core, perturbations=perturbations)
    assert got[0].dtype == torch.bfloat16
    torch.testing.assert_close(got[0], expected[0], rtol=0, atol=0)
    torch.testing.assert_close(got[1], expected[1], rtol=0, atol=0)
    with torch.no_grad():
        fp32_positions = ours(
            **{**inputs.ours(), "video_coords": inputs.video_positions.float()}, perturbations=perturbations
        )
    assert (fp32_positions[0].float() - expected[0].float()).abs().max() > 0.1
