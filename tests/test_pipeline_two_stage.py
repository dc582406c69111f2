"""LTX2AVTwoStagePipeline: stage 2 against ltx-pipelines 1.0.0, the whole call on the tiny model, adapters, errors.

(1) `refine_latents` (upsample x2, re-noise at sigma 0.909375, 3 Euler steps, one positive pass) equals the
    reference's stage-2 path: `upsample_video` + `denoise_audio_video(noise_scale=sigmas[0], initial latents)` with
    `simple_denoising_func`, on a tiny ltx-core transformer and upsampler holding the same weights as ours (loaded
    through our key maps), fp32, the same generator and contexts, with and without image conditioning
    (bit-identical in practice; asserted at 5e-5, which a 1e-3 change of one bias breaks).
(2)-(5) the tiny pipeline: output sizes, half-size stage 1, the stage-2 adapter, the distilled kind, save/load, errors.
"""

import json
from types import SimpleNamespace

import pytest
import torch
from _transformer_helpers import CAPTION_CHANNELS, TEXT_TOKENS, build_pair
from diffusers import DiffusionPipeline
from helpers.pipelines import adapters_enabled, upsampler_pair
from ltx_core.components.diffusion_steps import EulerDiffusionStep
from ltx_core.components.noisers import GaussianNoiser
from ltx_core.conditioning.types.latent_cond import VideoConditionByLatentIndex
from ltx_core.model.transformer.model import X0Model
from ltx_core.model.upsampler.model import upsample_video
from ltx_core.model.video_vae.ops import PerChannelStatistics
from ltx_core.types import VideoPixelShape
from ltx_pipelines.utils.helpers import denoise_audio_video, simple_denoising_func
from ltx_pipelines.utils.samplers import euler_denoising_loop
from ltx_pipelines.utils.types import PipelineComponents

from ltx2_diffusers import LTX2AVPipeline, LTX2AVTwoStagePipeline, LTX2LatentUpsamplerModel
from ltx2_diffusers.loaders.lora import LTX2LoRA, load_lora_adapter
from ltx2_diffusers.models.autoencoder_kl_ltx2_audio import audio_latent_frames
from ltx2_diffusers.pipelines.denoising import TextContexts, VideoCondition
from ltx2_diffusers.pipelines.guidance import GuidanceScales
from ltx2_diffusers.pipelines.pipeline_ltx2_av_two_stage import refine_latents
from ltx2_diffusers.pipelines.tiny import build_tiny_two_stage_pipeline
from ltx2_diffusers.schedulers.scheduling_ltx2 import DISTILLED_SIGMAS, STAGE_2_DISTILLED_SIGMAS, LTX2Scheduler

FRAMES, FPS = 9, 24.0  # 2 latent frames; stage 1 latents 2 x 2 x 2, stage 2 2 x 4 x 4 (128 x 128 pixels)
NEUTRAL = GuidanceScales()
FAST = {"num_frames": 9, "height": 128, "width": 128, "num_inference_steps": 1}


@pytest.mark.parametrize("conditioning", ["none", "image"])
def test_stage_2_matches_ltx_pipelines(conditioning):
    core_transformer, transformer = build_pair("ltx2_c128", seed=0)
    core_upsampler, upsampler = upsampler_pair()
    g = torch.Generator().manual_seed(7)
    mean, std = 0.1 * torch.randn(128, generator=g), 0.5 + torch.rand(128, generator=g)
    statistics = PerChannelStatistics(128)
    statistics.get_buffer("mean-of-means").copy_(mean)
    statistics.get_buffer("std-of-means").copy_(std)
    video_1 = torch.randn(1, 128, 2, 2, 2, generator=g)
    audio_1 = torch.randn(1, 8, audio_latent_frames(FRAMES, FPS), 16, generator=g)
    context_v, context_a = (torch.randn(1, TEXT_TOKENS, CAPTION_CHANNELS, generator=g) for _ in range(2))
    image = torch.randn(1, 128, 1, 4, 4, generator=g)
    sigmas = torch.tensor(STAGE_2_DISTILLED_SIGMAS)

    def loop(sigmas, video_state, audio_state, stepper):
        denoise = simple_denoising_func(context_v, context_a, X0Model(core_transformer))
        return euler_denoising_loop(sigmas, video_state, audio_state, stepper, denoise)

    with torch.no_grad():
        expected_video, expected_audio = denoise_audio_video(
            output_shape=VideoPixelShape(batch=1, frames=FRAMES, height=128, width=128, fps=FPS),
            conditionings=[VideoConditionByLatentIndex(image, 0.8, 0)] if conditioning == "image" else [],
            noiser=GaussianNoiser(torch.Generator().manual_seed(5)),
            sigmas=sigmas,
            stepper=EulerDiffusionStep(),
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
            frame_rate=FPS,
            sigmas=sigmas,
            generator=torch.Generator().manual_seed(5),
            conditions=[VideoCondition(image, 0, 0.8)] if conditioning == "image" else [],
            reference="1.0",
        )

    assert got_video.shape == (1, 128, 2, 4, 4) and got_audio.shape == audio_1.shape
    assert expected_video.latent.abs().max() > 0.5 and expected_audio.latent.abs().max() > 0.5
    torch.testing.assert_close(got_video, expected_video.latent, rtol=0, atol=5e-5)
    torch.testing.assert_close(got_audio, expected_audio.latent, rtol=0, atol=5e-5)
    # not trivially equal: another generator (other noise) moves the result far beyond the tolerance
    with torch.no_grad():
        other, _ = refine_latents(
            transformer, upsampler, video_1, audio_1, TextContexts(context_v, context_a), latents_mean=mean,
            latents_std=std, frame_rate=FPS, sigmas=sigmas, generator=torch.Generator().manual_seed(6),
            reference="1.0",
        )  # fmt: skip
    assert (other - expected_video.latent).abs().max() > 1e-2


@pytest.fixture(scope="module")
def pipe() -> LTX2AVTwoStagePipeline:
    return build_tiny_two_stage_pipeline(seed=0)


def test_two_stage_call_gives_full_size_frames_and_audio_with_a_half_size_stage_1(pipe):
    seen = []

    def callback(p, step_index, timestep, tensors):
        seen.append((step_index, round(timestep, 3), tuple(tensors["video_latents"].shape)))

    out = pipe(
        "a cat",
        num_frames=9,
        height=128,
        width=192,
        num_inference_steps=1,
        generator=torch.Generator().manual_seed(0),
        output_type="pt",
        callback_on_step_end=callback,
    )
    assert out.frames.shape == (1, 9, 3, 128, 192)
    assert 0.0 <= out.frames.min() and out.frames.max() <= 1.0 and out.frames.std() > 0.01
    assert out.audio.ndim == 3 and out.audio.shape[:2] == (1, 2) and out.audio.shape[2] > 1000
    assert torch.isfinite(out.audio).all() and out.audio.abs().max() > 0 and out.audio_sample_rate == 24000
    # stage 1: a guided step on 2 x 2 x 3 latents (64 x 96 pixels); stage 2: the 3 refinement sigmas on 2 x 4 x 6
    assert [s[0] for s in seen] == [0, 1, 2, 3]
    assert [s[2] for s in seen] == [(1, 12, 128)] + [(1, 48, 128)] * 3
    assert [s[1] for s in seen][1:] == [1000 * s for s in STAGE_2_DISTILLED_SIGMAS[:-1]]


def _stage_latents(pipe, **kwargs):
    """(final stage-1 video tokens, final video latents) of a 1-step unguided call."""
    seen = {}

    def callback(p, step_index, timestep, tensors):
        seen.setdefault(step_index, tensors["video_latents"].clone())

    video, _ = pipe(
        "a cat", **FAST, video_guidance=NEUTRAL, audio_guidance=NEUTRAL, generator=torch.Generator().manual_seed(3),
        output_type="latent", return_dict=False, callback_on_step_end=callback, **kwargs,
    )  # fmt: skip
    return seen[0], video


def test_image_conditions_each_stage_at_its_size_and_one_generator_runs_through(pipe):
    image = torch.rand(3, 128, 192, generator=torch.Generator().manual_seed(1)) * 2 - 1  # prepared, full size
    seen = {}

    def callback(p, step_index, timestep, tensors):
        seen[step_index] = tensors["video_latents"].clone()

    kwargs = dict(FAST, width=192, video_guidance=NEUTRAL, audio_guidance=NEUTRAL, output_type="latent")
    video, audio = pipe(
        "a cat", image=image, generator=torch.Generator().manual_seed(4), return_dict=False,
        callback_on_step_end=callback, **kwargs,
    )  # fmt: skip
    half = torch.nn.functional.interpolate(image[None], size=(64, 96), mode="bilinear", antialias=True)
    stage_1_image = pipe.encode_image(half, 64, 96, torch.device("cpu"))  # (1, 128, 1, 2, 3)
    stage_2_image = pipe.encode_image(image, 128, 192, torch.device("cpu"))  # (1, 128, 1, 4, 6)
    torch.testing.assert_close(seen[0][:, :6], stage_1_image.flatten(2).transpose(1, 2), rtol=0, atol=0)
    torch.testing.assert_close(video[:, :, :1], stage_2_image, rtol=0, atol=0)  # strength 1: frame 0 stays clean

    # the same result from the one-stage pipeline at half size and refine_latents, drawing from ONE generator
    generator = torch.Generator().manual_seed(4)
    one_stage = LTX2AVPipeline(**{k: v for k, v in pipe.components.items() if k != "latent_upsampler"})
    one_stage.set_progress_bar_config(disable=True)
    kwargs.update(height=64, width=96)
    video_1, audio_1 = one_stage("a cat", image=half[0], generator=generator, return_dict=False, **kwargs)
    embeds = one_stage.encode_prompt("a cat")
    contexts = TextContexts(embeds.video_context, embeds.audio_context)
    expected_video, expected_audio = refine_latents(
        pipe.transformer, pipe.latent_upsampler, video_1, audio_1, contexts, latents_mean=pipe.vae.latents_mean,
        latents_std=pipe.vae.latents_std, frame_rate=24.0, sigmas=torch.tensor(STAGE_2_DISTILLED_SIGMAS),
        generator=generator, conditions=[VideoCondition(stage_2_image, 0, 1.0)],
    )  # fmt: skip
    torch.testing.assert_close(video, expected_video, rtol=0, atol=0)
    torch.testing.assert_close(audio, expected_audio, rtol=0, atol=0)


def _random_lora(transformer, seed: int, modules: tuple[str, ...]) -> LTX2LoRA:
    """Rank-2 LoRA on the named sub-modules of every block, large enough to change the output visibly."""
    generator = torch.Generator().manual_seed(seed)
    layers = {}
    for name, module in transformer.named_modules():
        if name.startswith("transformer_blocks.") and name.split(".", 2)[-1] in modules:
            a = torch.randn(2, module.in_features, generator=generator) / module.in_features**0.5
            layers[name] = (a, 0.5 * torch.randn(module.out_features, 2, generator=generator))
    return LTX2LoRA(layers)


def test_stage_2_adapter_applies_in_stage_2_only():
    pipe = build_tiny_two_stage_pipeline(seed=2)
    base_stage_1, base = _stage_latents(pipe)
    distilled = _random_lora(pipe.transformer, 0, ("attn1.to_q", "attn1.to_v", "audio_attn1.to_v"))
    load_lora_adapter(pipe.transformer, distilled, adapter_name="distilled")
    pipe.transformer.disable_adapters()

    _, same = _stage_latents(pipe)  # stage_2_adapter=None: the transformer as it is (adapters off)
    torch.testing.assert_close(same, base, rtol=0, atol=0)

    stage_1, refined = _stage_latents(pipe, stage_2_adapter="distilled")
    torch.testing.assert_close(stage_1, base_stage_1, rtol=0, atol=0)  # stage 1 without the adapter
    assert (refined - base).abs().max() > 1e-3  # stage 2 with it
    assert not adapters_enabled(pipe.transformer)  # the state before the call is restored

    _, half = _stage_latents(pipe, stage_2_adapter="distilled", stage_2_adapter_scale=0.5)
    assert (half - refined).abs().max() > 1e-4 and (half - base).abs().max() > 1e-4
    _, again = _stage_latents(pipe, stage_2_adapter="distilled")  # the scale was restored after that call
    torch.testing.assert_close(again, refined, rtol=0, atol=0)

    # The reference's stage-2 model is the stage-1 model + the distilled LoRA: an adapter active at call time (a
    # user LoRA) applies in both stages, the stage-2 adapter in stage 2 only.
    load_lora_adapter(pipe.transformer, _random_lora(pipe.transformer, 1, ("ff.net.2",)), adapter_name="style")
    pipe.transformer.set_adapter(["style"])
    pipe.transformer.enable_adapters()
    style_stage_1, style = _stage_latents(pipe)
    assert (style_stage_1 - base_stage_1).abs().max() > 1e-3
    pipe.transformer.set_adapter(["style", "distilled"])
    stage_1, both = _stage_latents(pipe, stage_2_adapter="distilled")
    torch.testing.assert_close(stage_1, style_stage_1, rtol=0, atol=0)
    assert (both - style).abs().max() > 1e-3
    assert sorted(pipe.transformer.active_adapters()) == ["distilled", "style"] and adapters_enabled(pipe.transformer)
    with pytest.raises(ValueError, match="stage_2_adapter='nope' is not an adapter"):
        pipe("a cat", **FAST, stage_2_adapter="nope")


def test_distilled_kind_runs_8_plus_3_single_passes(pipe):
    distilled = LTX2AVTwoStagePipeline(**{**pipe.components, "scheduler": LTX2Scheduler.distilled()})
    distilled.set_progress_bar_config(disable=True)
    timesteps, batches = [], []

    def callback(p, step_index, timestep, tensors):
        timesteps.append(round(timestep, 3))

    hook = distilled.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: batches.append(kwargs["hidden_states"].shape[0]), with_kwargs=True
    )
    try:
        distilled("a cat", num_frames=9, height=128, width=128, output_type="latent", callback_on_step_end=callback)
    finally:
        hook.remove()
    assert timesteps == [round(1000 * s, 3) for s in DISTILLED_SIGMAS[:-1] + STAGE_2_DISTILLED_SIGMAS[:-1]]
    assert batches == [1] * 11  # no negative prompt, no CFG: one pass per step in both stages


def test_save_and_load_round_trip(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    index = (tmp_path / "model_index.json").read_text()
    assert '"_class_name": "LTX2AVTwoStagePipeline"' in index
    assert '"latent_upsampler": [\n    "ltx2_diffusers",\n    "LTX2LatentUpsamplerModel"\n  ]' in index
    loaded = DiffusionPipeline.from_pretrained(tmp_path)
    assert type(loaded) is LTX2AVTwoStagePipeline and type(loaded.latent_upsampler) is LTX2LatentUpsamplerModel
    loaded.set_progress_bar_config(disable=True)
    torch.testing.assert_close(_stage_latents(loaded)[1], _stage_latents(pipe)[1], rtol=0, atol=0)

    # diffusers' LTX-2 repos keep `latent_upsampler/` without naming it in model_index.json: it is found anyway
    index = json.loads((tmp_path / "model_index.json").read_text())
    del index["latent_upsampler"]
    (tmp_path / "model_index.json").write_text(json.dumps(index))
    unlisted = LTX2AVTwoStagePipeline.from_pretrained(tmp_path, dtype=torch.bfloat16)
    state, expected = unlisted.latent_upsampler.state_dict(), pipe.latent_upsampler.state_dict()
    assert state.keys() == expected.keys() and all(torch.equal(state[k], expected[k].bfloat16()) for k in state)


def test_from_single_file_takes_the_upsampler_file(tmp_path):
    from helpers.conversion import UPSAMPLER_CONFIG, write_checkpoint, write_upsampler

    from ltx2_diffusers.loaders.metadata import LTX2

    write_checkpoint(tmp_path / "ltx-2-19b-dev.safetensors", LTX2)
    write_upsampler(tmp_path / "ltx-2-spatial-upscaler-x2-1.0.safetensors", dict(UPSAMPLER_CONFIG, in_channels=128))
    pipe = LTX2AVTwoStagePipeline.from_single_file(
        tmp_path / "ltx-2-19b-dev.safetensors",
        latent_upsampler=tmp_path / "ltx-2-spatial-upscaler-x2-1.0.safetensors",
        torch_dtype=torch.bfloat16,
    )
    expected = LTX2LatentUpsamplerModel.from_single_file(tmp_path / "ltx-2-spatial-upscaler-x2-1.0.safetensors")
    state = pipe.latent_upsampler.state_dict()
    assert type(pipe) is LTX2AVTwoStagePipeline and pipe.transformer.dtype == torch.bfloat16
    assert all(torch.equal(state[k], v.bfloat16()) for k, v in expected.state_dict().items())
    assert pipe.config["latent_upsampler"] == ("ltx2_diffusers", "LTX2LatentUpsamplerModel")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"height": 96}, "height=96 is not a positive multiple of 64.*Use 64 or 128"),
        ({"width": 160}, "width=160 is not a positive multiple of 64.*Use 128 or 192"),
        ({"num_frames": 10}, "num_frames=10 is not of the form 8"),
    ],
)
def test_bad_sizes_fail_fast(pipe, kwargs, message):
    with pytest.raises(ValueError, match=message):
        pipe("a cat", **{**FAST, **kwargs})


def test_missing_or_wrong_upsampler_is_refused(pipe):
    without = LTX2AVTwoStagePipeline(**{**pipe.components, "latent_upsampler": None})
    with pytest.raises(ValueError, match="no latent_upsampler, which stage 2 needs"):
        without("a cat", **FAST)
    temporal = LTX2LatentUpsamplerModel(
        in_channels=128, mid_channels=32, spatial_upsample=False, temporal_upsample=True
    )
    with pytest.raises(ValueError, match="the two-stage pipelines need a spatial one that enlarges"):
        LTX2AVTwoStagePipeline(**{**pipe.components, "latent_upsampler": temporal})("a cat", **FAST)
