"""The x1.5 spatial latent upsampler (LTX-2.3's rational one) in every two-stage pipeline: plain, HQ, keyframes,
IC-LoRA and Dub-It share `refinement.two_stage_size_multiple` / `stage_1_pixel_size` (and all but Dub-It
`refine_latents`); HDR, whose stage-2 tiles are laid out for x2, refuses it.

For each pipeline on the tiny model with a tiny x1.5 upsampler: stage 1 runs at 2/3 of the output size (96 x 96 ->
64 x 64 pixels, 2 x 2 latents), the stage-1 latent reaches the upsampler exactly (un-normalised with the VAE's
statistics), the upsampled latent equals the upsampler called directly on it (3 x 3), and the output is the requested
size. Sizes that the x1.5 scale does not divide are refused with an error naming the upsampler and valid sizes.
(ltx-pipelines 1.2.0 always runs stage 1 at output // 2, so it offers no x1.5 two-stage run to compare against.)
"""

import copy

import numpy as np
import pytest
import torch
from helpers.cli_media import write_lora

from ltx2_diffusers import (
    LTX2AVDubItPipeline,
    LTX2AVHDRICLoraPipeline,
    LTX2AVICLoRAPipeline,
    LTX2AVKeyframeInterpolationPipeline,
    LTX2AVTwoStageHQPipeline,
    LTX2AVTwoStagePipeline,
    LTX2LatentUpsamplerModel,
)
from ltx2_diffusers.models.latent_upsampler import upsample_latents
from ltx2_diffusers.pipelines.conditioning import unpatchify_video
from ltx2_diffusers.pipelines.guidance import GuidanceScales
from ltx2_diffusers.pipelines.tiny import TINY_LATENT_UPSAMPLER_CONFIG, build_tiny_two_stage_pipeline
from ltx2_diffusers.schedulers.scheduling_ltx2 import LTX2Scheduler

NEUTRAL = {"video_guidance": GuidanceScales(), "audio_guidance": GuidanceScales()}
FAST = {"num_frames": 9, "frame_rate": 24.0, "sigmas": (1.0, 0.0), "stage_2_sigmas": (0.909375, 0.0), **NEUTRAL}
OUTPUT, STAGE_1 = (96, 96), (64, 64)  # x1.5: stage 1 at 2/3; latents 2 x 2 -> 3 x 3 (2 latent frames)


def _image() -> torch.Tensor:
    """A prepared float image (3, H, W) in [-1, 1] at the output size (resized for stage 1 by the pipeline)."""
    return torch.rand(3, *OUTPUT, generator=torch.Generator().manual_seed(0)) * 2 - 1


# pipeline class, its own call arguments
CASES = {
    "two_stage": (LTX2AVTwoStagePipeline, lambda: {"image": _image()}),
    "hq": (LTX2AVTwoStageHQPipeline, lambda: {"image": _image()}),
    "keyframes": (LTX2AVKeyframeInterpolationPipeline, lambda: {"keyframes": [(_image(), 0, 1.0), (_image(), 8, 0.8)]}),
    "ic_lora": (
        LTX2AVICLoRAPipeline,
        lambda: {"reference_videos": [(np.random.default_rng(1).integers(0, 256, (9, 40, 48, 3), np.uint8), 1.0)]},
    ),
}


@pytest.fixture(scope="module")
def components():
    components = build_tiny_two_stage_pipeline(seed=0).components
    torch.manual_seed(3)
    x15 = LTX2LatentUpsamplerModel(
        **{**TINY_LATENT_UPSAMPLER_CONFIG, "use_rational_resampler": True, "rational_spatial_scale": 1.5}
    ).eval()
    assert x15.spatial_ratio == (3, 2)
    return {**components, "latent_upsampler": x15}


def _pipe(components, name):
    pipe = CASES[name][0](**components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _check_x15_call(pipe, **kwargs) -> None:
    """One call at 96 x 96 with the x1.5 upsampler: stage 1 at 64 x 64, the upsampler fed the stage-1 latent and its
    result equal to calling it directly, the output latent 3 x 3."""
    upsampler, seen, stage_1 = pipe.latent_upsampler, [], {}
    hook = upsampler.register_forward_hook(lambda module, args, out: seen.append((args[0].clone(), out.clone())))

    def grab(pipe, step, timestep, tensors):
        if step == 0:  # the only stage-1 step; its tokens (appended condition tokens after the 2 x 2 x 2 grid)
            stage_1["tokens"] = tensors["video_latents"][:, : 2 * 2 * 2].clone()
        return {}

    try:
        video, audio = pipe(
            **kwargs, height=OUTPUT[0], width=OUTPUT[1], output_type="latent",
            generator=torch.Generator().manual_seed(0), callback_on_step_end=grab, return_dict=False,
        )  # fmt: skip
    finally:
        hook.remove()
    assert len(seen) == 1
    mean, std = (s.view(1, -1, 1, 1, 1) for s in (pipe.vae.latents_mean, pipe.vae.latents_std))
    stage_1_latent = unpatchify_video(stage_1["tokens"], 2, STAGE_1[0] // 32, STAGE_1[1] // 32)
    upsampler_input, upsampler_output = seen[0]
    assert upsampler_input.shape == (1, 128, 2, 2, 2)  # the stage-1 latent: 64 x 64 pixels
    torch.testing.assert_close(upsampler_input, stage_1_latent * std + mean)
    with torch.no_grad():
        direct = upsample_latents(upsampler, stage_1_latent, pipe.vae.latents_mean, pipe.vae.latents_std)
    assert direct.shape == (1, 128, 2, 3, 3)
    torch.testing.assert_close((upsampler_output - mean) / std, direct)
    assert video.shape == (1, 128, 2, OUTPUT[0] // 32, OUTPUT[1] // 32) and audio.shape[:2] == (1, 8)


@pytest.mark.filterwarnings("ignore:reference_videos are given but no LoRA is loaded")
@pytest.mark.parametrize("name", list(CASES))
def test_x15_stage_1_size_upsampled_latent_and_output(components, name):
    _check_x15_call(_pipe(components, name), prompt="a cat", **FAST, **CASES[name][1]())


@pytest.fixture(scope="module")
def distilled_with_lora(components, tmp_path_factory):
    """The x1.5 components on a transformer of their own (a copy) with the distilled scheduler and one random LoRA,
    as Dub-It and HDR run."""
    transformer = copy.deepcopy(components["transformer"])
    lora = write_lora(tmp_path_factory.mktemp("x15") / "ic.safetensors", metadata={"reference_downscale_factor": "1"})
    return {**components, "transformer": transformer, "scheduler": LTX2Scheduler.distilled()}, lora


def test_x15_dub_it(distilled_with_lora):
    components, lora = distilled_with_lora
    pipe = LTX2AVDubItPipeline(**components)
    pipe.set_progress_bar_config(disable=True)
    pipe.load_ic_lora(lora)
    try:
        voice = 0.3 * torch.sin(torch.arange(8000) / 16000 * 2 * torch.pi * 220)[None]
        frames = np.random.default_rng(2).integers(0, 256, (9, 48, 40, 3), dtype=np.uint8)
        _check_x15_call(
            pipe, reference_video=frames, prompt="hi", reference_audio=voice, reference_audio_sample_rate=16000,
            frame_rate=24.0, sigmas=FAST["sigmas"], stage_2_sigmas=FAST["stage_2_sigmas"],
        )  # fmt: skip
    finally:
        pipe.transformer.delete_adapters(["dub_it"])


def test_hdr_refuses_the_x15_upsampler(distilled_with_lora, monkeypatch):
    components, _ = distilled_with_lora
    pipe = LTX2AVHDRICLoraPipeline(**components)
    monkeypatch.setattr(pipe.vae, "forward", lambda *a, **k: pytest.fail("a model ran"))
    frames = np.zeros((9, 64, 64, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"the HDR pipeline needs the spatial x2 latent upsampler .* got a x1\.5 one"):
        pipe(frames, "a lamp", num_frames=9, sigmas=(1.0, 0.0), output_type="latent")


def test_x15_decoded_output_size(components):
    pipe = _pipe(components, "two_stage")
    frames = pipe("a cat", height=OUTPUT[0], width=OUTPUT[1], **FAST, output_type="np").frames
    assert frames.shape == (1, 9, *OUTPUT, 3)


@pytest.mark.parametrize("name", list(CASES))
def test_x15_refuses_sizes_it_does_not_divide(components, name):
    pipe = _pipe(components, name)
    with pytest.raises(
        ValueError,
        match=r"height=128 is not a multiple of 96: with a x1\.5 latent upsampler stage 1 runs at 2/3 of the output "
        r"size.*Use 96 or 192",
    ):
        pipe("a cat", height=128, width=96, **FAST, **CASES[name][1](), output_type="latent")


def test_ic_lora_skip_stage_2_keeps_half_size_with_x15(components):
    pipe = _pipe(components, "ic_lora")
    with pytest.warns(UserWarning, match="no LoRA is loaded"):
        video, _ = pipe(
            "a cat", height=128, width=128, skip_stage_2=True, **FAST, **CASES["ic_lora"][1](), output_type="latent",
            return_dict=False,
        )  # fmt: skip
    assert video.shape == (1, 128, 2, 2, 2)  # 64 x 64: the upsampler is not used, its scale not applied
