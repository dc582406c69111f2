"""Guided denoising against ltx-pipelines 1.0.0, and the batched guidance call against separate calls.

(a) N Euler steps of `denoise` (one batched transformer call per step) equal ltx-pipelines'
    `euler_denoising_loop` + `multi_modal_guider_denoising_func` (four separate passes per step) on a tiny random
    transformer holding the same weights (loaded through our key map), fp32, identical noise / contexts / sigmas,
    with CFG, STG, modality guidance and rescale all on, for video and audio, with and without image conditioning
    (max abs difference about 4e-6 over 3 steps on O(1)-5 latents; asserted at 5e-5).
(b) The batched call of one step equals running each pass as its own transformer call.
"""

from dataclasses import replace

import pytest
import torch
from _transformer_helpers import FRAMES, HEIGHT, WIDTH, build_pair
from helpers.pipelines import CHANNELS, core_params, make_contexts, make_states, to_core
from ltx_core.components.diffusion_steps import EulerDiffusionStep
from ltx_core.components.guiders import MultiModalGuider
from ltx_core.model.transformer.model import X0Model
from ltx_pipelines.utils.helpers import multi_modal_guider_denoising_func
from ltx_pipelines.utils.samplers import euler_denoising_loop

from ltx2_diffusers.models.perturbations import Perturbations
from ltx2_diffusers.pipelines.denoising import TextContexts, denoise, guided_x0, transformer_x0
from ltx2_diffusers.pipelines.guidance import GuidanceScales, combine_guidance, plan_guidance
from ltx2_diffusers.schedulers.scheduling_ltx2 import ltx2_sigmas

# every guidance term on, different per modality; the helper transformer has 3 blocks
VIDEO = GuidanceScales(cfg=3.0, stg=1.0, modality=3.0, rescale=0.7, stg_blocks=(1,))
AUDIO = GuidanceScales(cfg=7.0, stg=1.0, modality=3.0, rescale=0.7, stg_blocks=(2,))


@pytest.fixture(scope="module")
def pair():
    return build_pair("ltx2", seed=0)


@pytest.mark.parametrize("conditioning", ["none", "image", "image+keyframe"])
def test_guided_denoise_matches_ltx_pipelines(pair, conditioning):
    reference, ours = pair
    video, audio = make_states(1, conditioning)
    contexts = make_contexts(1)
    sigmas = ltx2_sigmas(3)

    core_denoise = multi_modal_guider_denoising_func(
        MultiModalGuider(core_params(VIDEO), negative_context=contexts.negative_video),
        MultiModalGuider(core_params(AUDIO), negative_context=contexts.negative_audio),
        contexts.video,
        contexts.audio,
        X0Model(reference),
    )
    with torch.no_grad():
        expected_video, expected_audio = euler_denoising_loop(
            sigmas, to_core(video), to_core(audio), EulerDiffusionStep(), core_denoise
        )
        got_video, got_audio = denoise(ours, video, audio, contexts, sigmas, VIDEO, AUDIO, reference="1.0")

    assert got_video.latent.shape == (1, FRAMES * HEIGHT * WIDTH + 12 * (conditioning == "image+keyframe"), CHANNELS)
    assert expected_video.latent.abs().max() > 0.5 and expected_audio.latent.abs().max() > 0.5
    torch.testing.assert_close(got_video.latent, expected_video.latent, rtol=0, atol=5e-5)
    torch.testing.assert_close(got_audio.latent, expected_audio.latent, rtol=0, atol=5e-5)
    if conditioning == "image":  # strength-1 tokens never move
        torch.testing.assert_close(got_video.latent[:, : HEIGHT * WIDTH], video.clean_latent[:, : HEIGHT * WIDTH])


def test_the_loop_is_not_trivially_equal(pair):
    """The parity above can fail: dropping one guidance term changes the result far beyond the tolerance."""
    _, ours = pair
    video, audio = make_states(1, "image")
    contexts = make_contexts(1)
    sigmas = ltx2_sigmas(3)
    with torch.no_grad():
        full, _ = denoise(ours, video, audio, contexts, sigmas, VIDEO, AUDIO, reference="1.0")
        no_stg, _ = denoise(
            ours, video, audio, contexts, sigmas, GuidanceScales(3.0, 0.0, 3.0, 0.7), AUDIO, reference="1.0"
        )
    assert (full.latent - no_stg.latent).abs().max() > 1e-2


@pytest.mark.parametrize("conditioning", ["none", "image+keyframe"])
def test_batched_guidance_call_equals_separate_calls(pair, conditioning):
    _, ours = pair
    video, audio = make_states(2, conditioning)
    contexts = make_contexts(2)
    sigma = torch.tensor(0.8)
    plan = plan_guidance(VIDEO, AUDIO, step_index=0, batch_size=2)
    assert plan.passes == ("cond", "uncond", "perturbed", "isolated")

    ones = torch.ones(2)
    separate = {
        "cond": (contexts.video, contexts.audio, None),
        "uncond": (contexts.negative_video, contexts.negative_audio, None),
        "perturbed": (
            contexts.video,
            contexts.audio,
            Perturbations(video_stg_blocks=(1,), audio_stg_blocks=(2,), video_stg_mask=ones, audio_stg_mask=ones),
        ),
        "isolated": (contexts.video, contexts.audio, Perturbations(skip_a2v_mask=ones, skip_v2a_mask=ones)),
    }
    with torch.no_grad():
        outputs = {
            name: transformer_x0(ours, video, audio, *args[:2], sigma, args[2], reference="1.0")
            for name, args in separate.items()
        }
        batched_video, batched_audio = guided_x0(
            ours, video, audio, contexts, sigma, plan, VIDEO, AUDIO, reference="1.0"
        )
    for index, (scales, batched) in enumerate(((VIDEO, batched_video), (AUDIO, batched_audio))):
        passes = [outputs[name][index] for name in ("cond", "uncond", "perturbed", "isolated")]
        expected = combine_guidance(*passes, scales, reference="1.0")
        torch.testing.assert_close(batched, expected, rtol=0, atol=1e-5)
        assert (passes[0] - passes[2]).abs().max() > 1e-3  # each perturbation really changes the prediction
        assert (passes[0] - passes[3]).abs().max() > 1e-3


@pytest.mark.parametrize("conditioning", ["none", "image"])
def test_guided_denoise_is_bit_exact_with_ltx_pipelines_in_bf16(conditioning):
    """The pipelines run in bf16: rounding the velocity before the Euler update, guidance in bf16 and bf16 video
    positions (spec §13.2-13.4) are reproduced exactly, so the batched loop gives the reference's bits (on CPU; GPU
    kernels may round differently for different batch sizes)."""
    reference, ours = build_pair("ltx2", seed=0)
    reference, ours = reference.to(torch.bfloat16), ours.to(torch.bfloat16)
    video, audio = make_states(1, conditioning)
    video = replace(video, latent=video.latent.bfloat16(), clean_latent=video.clean_latent.bfloat16())
    video = replace(video, positions=video.positions.bfloat16())  # the reference's video positions are bf16
    audio = replace(audio, latent=audio.latent.bfloat16(), clean_latent=audio.clean_latent.bfloat16())
    contexts = TextContexts(*(c.bfloat16() for c in vars(make_contexts(1)).values()))
    sigmas = ltx2_sigmas(3)
    core_denoise = multi_modal_guider_denoising_func(
        MultiModalGuider(core_params(VIDEO), negative_context=contexts.negative_video),
        MultiModalGuider(core_params(AUDIO), negative_context=contexts.negative_audio),
        contexts.video,
        contexts.audio,
        X0Model(reference),
    )
    with torch.no_grad():
        expected_video, expected_audio = euler_denoising_loop(
            sigmas, to_core(video), to_core(audio), EulerDiffusionStep(), core_denoise
        )
        got_video, got_audio = denoise(ours, video, audio, contexts, sigmas, VIDEO, AUDIO, reference="1.0")
    assert got_video.latent.dtype == torch.bfloat16
    assert torch.equal(got_video.latent, expected_video.latent)
    assert torch.equal(got_audio.latent, expected_audio.latent)


def test_prepare_latents_matches_ltx_pipelines_noised_states():
    """Starting states equal ltx-pipelines' `noise_video_state` + `noise_audio_state` with the same generator: zeros,
    image at frame 0, a keyframe at pixel frame 8, then video noise and audio noise drawn in that order (bf16)."""
    from ltx_core.components.noisers import GaussianNoiser
    from ltx_core.conditioning import VideoConditionByKeyframeIndex, VideoConditionByLatentIndex
    from ltx_core.types import VideoPixelShape
    from ltx_pipelines.utils.helpers import noise_audio_state, noise_video_state
    from ltx_pipelines.utils.types import PipelineComponents

    from ltx2_diffusers.pipelines.denoising import VideoCondition, prepare_latents

    dtype, device = torch.bfloat16, torch.device("cpu")
    image, keyframe = torch.randn(2, 1, 128, 1, 4, 3, generator=torch.Generator().manual_seed(9)).to(dtype)
    shape = VideoPixelShape(batch=1, frames=17, width=96, height=128, fps=24.0)
    noiser = GaussianNoiser(torch.Generator().manual_seed(5))
    components = PipelineComponents(dtype, device)
    conditionings = [
        VideoConditionByLatentIndex(latent=image, strength=1.0, latent_idx=0),
        VideoConditionByKeyframeIndex(keyframes=keyframe, frame_idx=8, strength=0.7),
    ]
    expected_video, _ = noise_video_state(shape, noiser, conditionings, components, dtype, device)
    expected_audio, _ = noise_audio_state(shape, noiser, [], components, dtype, device)

    video, audio = prepare_latents(
        1,
        128,
        96,
        17,
        24.0,
        generator=torch.Generator().manual_seed(5),
        device=device,
        dtype=dtype,
        conditions=[VideoCondition(image, 0, 1.0), VideoCondition(keyframe, 8, 0.7)],
        reference="1.0",
    )
    assert video.num_output_tokens == 3 * 4 * 3 and video.latent.shape == (1, 36 + 12, 128)
    assert audio.latent.shape == (1, 18, 128)  # round(17 / 24 * 25) = 18
    for ours, theirs in ((video, expected_video), (audio, expected_audio)):
        for name in ("latent", "clean_latent", "denoise_mask", "positions"):
            got, want = getattr(ours, name), getattr(theirs, name)
            assert got.dtype == want.dtype, name
            assert torch.equal(got, want), name
