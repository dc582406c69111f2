"""LTX2AVTwoStageHQPipeline against ltx-pipelines 1.0.0's TI2VidTwoStagesHQPipeline.

(a) Stage 1's guided res_2s loop (`denoise(sampler=res2s_sample)`, one batched call per prediction) equals the reference's
    `res2s_audio_video_denoising_loop` + `multi_modal_guider_denoising_func` (separate passes) with the HQ guidance,
    on a tiny random transformer holding the same weights, fp32, token-count-shifted sigmas, with and without image
    conditioning (asserted at 5e-5).
(b) A full tiny call: the distilled adapter at 0.25 during every stage-1 call and 0.5 during every stage-2 call, the
    stage-1 schedule shifted by the stage-1 token count, adapters restored afterwards.
(c) Stage 2 (`refine_latents(sampler=res2s_sample)`) equals the reference's upsample + re-noise + res_2s with `simple_denoising_func`
    (image-conditioned, fp32, 5e-5).
(d) Errors.
"""

import math
from types import SimpleNamespace

import pytest
import torch
from _transformer_helpers import CAPTION_CHANNELS, FRAMES, HEIGHT, TEXT_TOKENS, WIDTH, build_pair
from helpers.pipelines import adapters_enabled, core_params, make_contexts, make_states, to_core, upsampler_pair
from ltx_core.components.diffusion_steps import Res2sDiffusionStep
from ltx_core.components.guiders import MultiModalGuider
from ltx_core.components.noisers import GaussianNoiser
from ltx_core.components.schedulers import LTX2Scheduler as CoreLTX2Scheduler
from ltx_core.conditioning.types.latent_cond import VideoConditionByLatentIndex
from ltx_core.model.transformer.model import X0Model
from ltx_core.model.upsampler.model import upsample_video
from ltx_core.model.video_vae.ops import PerChannelStatistics
from ltx_core.types import VideoPixelShape
from ltx_pipelines.utils.constants import LTX_2_3_HQ_PARAMS
from ltx_pipelines.utils.helpers import denoise_audio_video, multi_modal_guider_denoising_func, simple_denoising_func
from ltx_pipelines.utils.samplers import res2s_audio_video_denoising_loop
from ltx_pipelines.utils.types import PipelineComponents

from ltx2_diffusers import LTX2AVTwoStageHQPipeline
from ltx2_diffusers.loaders.lora import LTX2LoRA, load_lora_adapter
from ltx2_diffusers.models.autoencoder_kl_ltx2_audio import audio_latent_frames
from ltx2_diffusers.pipelines.denoising import TextContexts, VideoCondition, denoise
from ltx2_diffusers.pipelines.guidance import GuidanceScales
from ltx2_diffusers.pipelines.pipeline_base import with_guidance_scales
from ltx2_diffusers.pipelines.presets import hq_preset
from ltx2_diffusers.pipelines.refinement import refine_latents
from ltx2_diffusers.pipelines.tiny import build_tiny_two_stage_pipeline
from ltx2_diffusers.schedulers.scheduling_ltx2 import STAGE_2_DISTILLED_SIGMAS, ltx2_sigmas, res2s_sample

HQ = with_guidance_scales(hq_preset("2.3"))
HQ_VIDEO_GUIDANCE, HQ_AUDIO_GUIDANCE = HQ.video_guidance, HQ.audio_guidance
FAST = {"num_frames": 9, "height": 128, "width": 128, "num_inference_steps": 2, "output_type": "latent"}


def test_hq_defaults_are_the_reference_params():
    assert HQ.num_inference_steps == LTX_2_3_HQ_PARAMS.num_inference_steps == 15
    assert (HQ.two_stage_height, HQ.two_stage_width) == (1088, 1920)
    assert (HQ.stage_1_adapter_scale, HQ.stage_2_adapter_scale) == (0.25, 0.5)
    for ours, theirs in (
        (HQ_VIDEO_GUIDANCE, LTX_2_3_HQ_PARAMS.video_guider_params),
        (HQ_AUDIO_GUIDANCE, LTX_2_3_HQ_PARAMS.audio_guider_params),
    ):
        assert (ours.cfg, ours.stg, ours.modality, ours.rescale, ours.skip_step, list(ours.stg_blocks)) == (
            theirs.cfg_scale,
            theirs.stg_scale,
            theirs.modality_scale,
            theirs.rescale_scale,
            theirs.skip_step,
            theirs.stg_blocks,
        )


@pytest.fixture(scope="module")
def pair():
    return build_pair("ltx2", seed=0)


@pytest.mark.parametrize("conditioning", ["none", "image"])
def test_stage_1_res2s_matches_ltx_pipelines(pair, conditioning):
    reference, ours = pair
    video, audio = make_states(1, conditioning)
    contexts = make_contexts(1)
    sigmas = ltx2_sigmas(3, num_tokens=FRAMES * HEIGHT * WIDTH)  # the HQ pipeline's token-count shift
    core_sigmas = CoreLTX2Scheduler().execute(steps=3, latent=torch.empty(1, 8, FRAMES, HEIGHT, WIDTH))
    torch.testing.assert_close(sigmas, core_sigmas, rtol=0, atol=0)

    core_denoise = multi_modal_guider_denoising_func(
        MultiModalGuider(core_params(HQ_VIDEO_GUIDANCE), negative_context=contexts.negative_video),
        MultiModalGuider(core_params(HQ_AUDIO_GUIDANCE), negative_context=contexts.negative_audio),
        contexts.video,
        contexts.audio,
        X0Model(reference),
    )
    with torch.no_grad():
        expected_video, expected_audio = res2s_audio_video_denoising_loop(
            sigmas, to_core(video), to_core(audio), Res2sDiffusionStep(), core_denoise, model_dtype=torch.float32
        )
        args = (ours, video, audio, contexts, sigmas)
        got_video, got_audio = denoise(
            *args, HQ_VIDEO_GUIDANCE, HQ_AUDIO_GUIDANCE, sampler=res2s_sample, reference="1.0"
        )
        no_cfg, _ = denoise(*args, GuidanceScales(), HQ_AUDIO_GUIDANCE, sampler=res2s_sample, reference="1.0")

    assert got_video.latent.dtype == torch.float32
    assert expected_video.latent.abs().max() > 0.5 and expected_audio.latent.abs().max() > 0.5
    torch.testing.assert_close(got_video.latent, expected_video.latent, rtol=0, atol=5e-5)
    torch.testing.assert_close(got_audio.latent, expected_audio.latent, rtol=0, atol=5e-5)
    assert (no_cfg.latent - expected_video.latent).abs().max() > 1e-2  # the parity can fail
    if conditioning == "image":  # strength-1 tokens never move
        torch.testing.assert_close(got_video.latent[:, : HEIGHT * WIDTH], video.clean_latent[:, : HEIGHT * WIDTH])


def _small_lora(transformer, seed: int, modules: tuple[str, ...]) -> LTX2LoRA:
    """Rank-2 LoRA on the named sub-modules of every block; small enough to keep the tiny model's values (and the
    CPU kernels) in their normal range, large enough to change the result."""
    generator = torch.Generator().manual_seed(seed)
    layers = {}
    for name, module in transformer.named_modules():
        if name.startswith("transformer_blocks.") and name.split(".", 2)[-1] in modules:
            a = torch.randn(2, module.in_features, generator=generator) / module.in_features**0.5
            layers[name] = (a, 0.2 * torch.randn(module.out_features, 2, generator=generator))
    return LTX2LoRA(layers)


def _hq_pipe(seed: int = 2) -> LTX2AVTwoStageHQPipeline:
    return LTX2AVTwoStageHQPipeline(**build_tiny_two_stage_pipeline(seed=seed).components)


def test_call_switches_adapter_strength_per_stage_and_shifts_stage_1_by_its_tokens():
    pipe = _hq_pipe()
    generator = torch.Generator().manual_seed(3)
    base, base_audio = pipe("a cat", **FAST, generator=generator, return_dict=False)
    assert base.shape[-3:] == (2, 4, 4) and base_audio.ndim == 4  # 9 frames, 128 / 32

    load_lora_adapter(pipe.transformer, _small_lora(pipe.transformer, 0, ("attn1.to_q", "attn1.to_v")), "distilled")
    pipe.transformer.disable_adapters()
    layer = next(m for m in pipe.transformer.modules() if "distilled" in getattr(m, "scaling", {}))
    seen = []

    def record(module, args, kwargs):
        seen.append((float(kwargs["sigma"][0]) / 1000.0, layer.scaling["distilled"], adapters_enabled(module)))

    handle = pipe.transformer.register_forward_pre_hook(record, with_kwargs=True)
    try:
        video, _ = pipe(
            "a cat",
            **FAST,
            generator=torch.Generator().manual_seed(3),
            distilled_adapter="distilled",
            return_dict=False,
        )
    finally:
        handle.remove()

    # res_2s: 2 predictions per step + 1 at the tiny last sigma; stage 1: 2 steps, stage 2: 3 steps
    assert len(seen) == 5 + 7
    assert all(scale == 0.25 and on for _, scale, on in seen[:5])
    assert all(scale == 0.5 and on for _, scale, on in seen[5:])
    s = ltx2_sigmas(2, num_tokens=2 * 2 * 2).tolist()  # stage-1 latent: 2 frames x 2 x 2
    assert s != ltx2_sigmas(2).tolist()  # differs from the fixed 4096-token shift
    expected = [s[0], math.sqrt(s[0] * s[1]), s[1], math.sqrt(s[1] * 0.0011), 0.0011]
    assert [sigma for sigma, _, _ in seen[:5]] == pytest.approx(expected, rel=1e-5)
    assert seen[5][0] == pytest.approx(STAGE_2_DISTILLED_SIGMAS[0])
    assert not adapters_enabled(pipe.transformer) and layer.scaling["distilled"] == 1.0  # restored
    assert (video - base).abs().max() > 1e-3
    # stage 1 alone at 0.25 (stage 2 at 0) differs from both the base and stage 1 at 0.5
    kwargs = {**FAST, "distilled_adapter": "distilled", "stage_2_adapter_scale": 0.0, "return_dict": False}
    quarter, _ = pipe("a cat", **kwargs, generator=torch.Generator().manual_seed(3))
    half, _ = pipe("a cat", **kwargs, stage_1_adapter_scale=0.5, generator=torch.Generator().manual_seed(3))
    # (stage 2 re-noises to 0.909, so stage 1's share of the result is small but well above float noise)
    assert (quarter - base).abs().max() > 1e-5 and (half - quarter).abs().max() > 1e-5


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"distilled_adapter": "nope"}, ValueError, "distilled_adapter='nope' is not an adapter"),
        ({"height": 96}, ValueError, "height=96 is not a positive multiple of 64"),
        ({"num_inference_steps": 0}, ValueError, "num_inference_steps=0 must be >= 1"),
        ({"video_guidance": GuidanceScales(cfg=3.0, skip_step=1)}, ValueError, "skip_step needs the Euler sampler"),
        ({"stage_1_adapter_scale": "high"}, TypeError, "stage_1_adapter_scale='high' is not a number"),
    ],
)
def test_bad_inputs_fail_with_the_fix(kwargs, error, message):
    pipe = _hq_pipe(seed=0)
    with pytest.raises(error, match=message):
        pipe("a cat", **{**FAST, **kwargs})


def test_stage_2_res2s_matches_ltx_pipelines():
    """`refine_latents(sampler=res2s_sample)` = the HQ pipeline's stage 2: upsample, re-noise, res_2s with `simple_denoising_func`."""
    frames, fps = 9, 24.0
    core_transformer, transformer = build_pair("ltx2_c128", seed=0)  # registered by helpers.pipelines
    core_upsampler, upsampler = upsampler_pair()
    g = torch.Generator().manual_seed(7)
    mean, std = 0.1 * torch.randn(128, generator=g), 0.5 + torch.rand(128, generator=g)
    statistics = PerChannelStatistics(128)
    statistics.get_buffer("mean-of-means").copy_(mean)
    statistics.get_buffer("std-of-means").copy_(std)
    video_1 = torch.randn(1, 128, 2, 2, 2, generator=g)
    audio_1 = torch.randn(1, 8, audio_latent_frames(frames, fps), 16, generator=g)
    context_v, context_a = (torch.randn(1, TEXT_TOKENS, CAPTION_CHANNELS, generator=g) for _ in range(2))
    image = torch.randn(1, 128, 1, 4, 4, generator=g)
    sigmas = torch.tensor(STAGE_2_DISTILLED_SIGMAS)

    def loop(sigmas, video_state, audio_state, stepper):
        denoise = simple_denoising_func(context_v, context_a, X0Model(core_transformer))
        return res2s_audio_video_denoising_loop(
            sigmas, video_state, audio_state, stepper, denoise, model_dtype=torch.float32
        )

    with torch.no_grad():
        expected_video, expected_audio = denoise_audio_video(
            output_shape=VideoPixelShape(batch=1, frames=frames, height=128, width=128, fps=fps),
            conditionings=[VideoConditionByLatentIndex(image, 0.8, 0)],
            noiser=GaussianNoiser(torch.Generator().manual_seed(5)),
            sigmas=sigmas,
            stepper=Res2sDiffusionStep(),
            denoising_loop_fn=loop,
            components=PipelineComponents(torch.float32, torch.device("cpu")),
            dtype=torch.float32,
            device=torch.device("cpu"),
            noise_scale=sigmas[0],
            initial_video_latent=upsample_video(
                video_1, SimpleNamespace(per_channel_statistics=statistics), core_upsampler
            ),
            initial_audio_latent=audio_1,
        )
        got_video, got_audio = refine_latents(
            transformer,
            upsampler,
            video_1,
            audio_1,
            TextContexts(context_v, context_a),
            latents_mean=mean,
            latents_std=std,
            frame_rate=fps,
            sigmas=sigmas,
            generator=torch.Generator().manual_seed(5),
            conditions=[VideoCondition(image, 0, 0.8)],
            sampler=res2s_sample,
            reference="1.0",
        )

    assert got_video.shape == (1, 128, 2, 4, 4) and got_audio.shape == audio_1.shape
    assert expected_video.latent.abs().max() > 0.5 and expected_audio.latent.abs().max() > 0.5
    torch.testing.assert_close(got_video, expected_video.latent, rtol=0, atol=5e-5)
    torch.testing.assert_close(got_audio, expected_audio.latent, rtol=0, atol=5e-5)
