"""LTX2AVICLoRAPipeline: the stage-1 state against ltx-pipelines 1.0.0's ICLoraPipeline, the tiny call, errors.

(1) The stage-1 video and audio states the pipeline hands to the denoising loop (image replacing frame 0, then the
    reference video's tokens at 1/2 size with a mask-video attention strength, noise from one generator) equal, in
    bf16 and bit for bit, the ones ltx-core builds from the same latents with the reference's conditioning items
    (`VideoConditionByLatentIndex`, `ConditioningItemAttentionStrengthWrapper(VideoConditionByReferenceLatent)`,
    `ICLoraPipeline._downsample_mask_to_latent`, `GaussianNoiser`).
(2) The tiny pipeline (distilled scheduler, a random IC-LoRA file with reference_downscale_factor=2): sizes,
    skip_stage_2, stage 2 = refine_latents with the adapter off, the adapter restored, errors.
"""

import numpy as np
import pytest
import torch
from helpers.pipelines import adapters_enabled
from ltx_core.components.noisers import GaussianNoiser
from ltx_core.components.patchifiers import AudioPatchifier, VideoLatentPatchifier
from ltx_core.conditioning import VideoConditionByLatentIndex
from ltx_core.conditioning.types.attention_strength_wrapper import ConditioningItemAttentionStrengthWrapper
from ltx_core.conditioning.types.reference_video_cond import VideoConditionByReferenceLatent
from ltx_core.tools import AudioLatentTools, VideoLatentTools
from ltx_core.types import AudioLatentShape, VideoLatentShape
from ltx_pipelines.ic_lora import ICLoraPipeline
from safetensors.torch import save_file

import ltx2_diffusers.pipelines.pipeline_ltx2_av_ic_lora as ic_lora_module
from ltx2_diffusers import LTX2AVICLoRAPipeline
from ltx2_diffusers.models.autoencoder_kl_ltx2_audio import audio_latent_frames
from ltx2_diffusers.pipelines.denoising import TextContexts
from ltx2_diffusers.pipelines.refinement import refine_latents
from ltx2_diffusers.pipelines.tiny import build_tiny_two_stage_pipeline
from ltx2_diffusers.schedulers.scheduling_ltx2 import DISTILLED_SIGMAS, STAGE_2_DISTILLED_SIGMAS, LTX2Scheduler

FRAMES, FPS = 9, 24.0
SIZE = {"num_frames": FRAMES, "height": 128, "width": 128}  # stage 1 64x64 (2x2 latents), reference 32x32 (1x1)
# the tiny calls run one step per stage (the distilled scheduler, shortened) to stay fast on CPU
FAST = {**SIZE, "sigmas": (1.0, 0.0), "stage_2_sigmas": (STAGE_2_DISTILLED_SIGMAS[0], 0.0)}


def _reference_frames(seed: int = 0, frames: int = FRAMES) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (frames, 40, 48, 3), dtype=np.uint8)


def _ic_lora_file(transformer, path, seed: int = 0) -> str:
    """A random rank-2 IC-LoRA on attn1.to_q / to_v of every block, diffusers names, factor 2 in the metadata."""
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, module in transformer.named_modules():
        if name.startswith("transformer_blocks.") and name.split(".", 2)[-1] in ("attn1.to_q", "attn1.to_v"):
            a = torch.randn(2, module.in_features, generator=generator) / module.in_features**0.5
            tensors[f"{name}.lora_A.weight"] = a
            tensors[f"{name}.lora_B.weight"] = 0.5 * torch.randn(module.out_features, 2, generator=generator)
    save_file(tensors, str(path), metadata={"reference_downscale_factor": "2"})
    return str(path)


def _ic_pipe(seed: int = 0) -> LTX2AVICLoRAPipeline:
    components = build_tiny_two_stage_pipeline(seed).components
    pipe = LTX2AVICLoRAPipeline(**{**components, "scheduler": LTX2Scheduler.distilled()})
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def pipe(tmp_path_factory) -> LTX2AVICLoRAPipeline:
    pipe = _ic_pipe(0)
    path = _ic_lora_file(pipe.transformer, tmp_path_factory.mktemp("lora") / "ic.safetensors")
    assert pipe.load_ic_lora(path) == "ic_lora" and pipe.reference_downscale_factor == 2
    return pipe


class _Captured(Exception):
    pass


def test_stage_1_state_matches_ic_lora_pipeline_bf16(monkeypatch):
    pipe = _ic_pipe(1)
    pipe.transformer.to(torch.bfloat16)
    pipe.vae.to(torch.bfloat16)
    captured = {}

    def capture(transformer, video, audio, *args, **kwargs):
        captured.update(video=video, audio=audio, sigmas=args[1])
        raise _Captured

    monkeypatch.setattr(ic_lora_module, "denoise", capture)
    image = np.random.default_rng(3).integers(0, 256, (80, 72, 3), dtype=np.uint8)
    frames = _reference_frames(1)
    mask = torch.rand(1, 1, FRAMES, 64, 64, generator=torch.Generator().manual_seed(2)).bfloat16()
    with pytest.raises(_Captured):
        pipe(
            "a cat", image=image, image_strength=0.8, reference_videos=[(frames, 0.9)], reference_downscale_factor=2,
            conditioning_attention_strength=0.7, conditioning_attention_mask=mask, generator=torch.Generator().manual_seed(5),
            **SIZE, reference="1.0",  # ltx-core 1.0.0 is the oracle below
        )  # fmt: skip
    video, audio = captured["video"], captured["audio"]
    torch.testing.assert_close(captured["sigmas"].float().cpu(), torch.tensor(DISTILLED_SIGMAS), rtol=0, atol=0)

    # the reference: the same latents (our VAE), its conditioning items and noiser, one generator
    image_latent = pipe.encode_image(image, 64, 64, torch.device("cpu"))
    ref_latent = pipe.encode_reference_video(frames, 32, 32, FRAMES)
    assert image_latent.dtype == ref_latent.dtype == torch.bfloat16 and ref_latent.shape == (1, 128, 2, 1, 1)
    tools = VideoLatentTools(VideoLatentPatchifier(1), VideoLatentShape(1, 128, 2, 2, 2), FPS)
    state = tools.create_initial_state("cpu", torch.bfloat16)
    state = VideoConditionByLatentIndex(image_latent, 0.8, 0).apply_to(state, tools)
    weights = ICLoraPipeline._downsample_mask_to_latent(mask, VideoLatentShape.from_torch_shape(ref_latent.shape)) * 0.7
    item = ConditioningItemAttentionStrengthWrapper(VideoConditionByReferenceLatent(ref_latent, 2, 0.9), weights)
    state = item.apply_to(state, tools)
    audio_shape = AudioLatentShape(1, 8, audio_latent_frames(FRAMES, FPS), 16)
    core_audio = AudioLatentTools(AudioPatchifier(1), audio_shape).create_initial_state("cpu", torch.bfloat16)
    noiser = GaussianNoiser(torch.Generator().manual_seed(5))
    core_video, core_audio = noiser(state), noiser(core_audio)

    assert video.latent.shape == (1, 8 + 2, 128) and video.num_output_tokens == 8
    for name in ("latent", "clean_latent", "denoise_mask", "positions", "attention_mask"):
        torch.testing.assert_close(getattr(video, name), getattr(core_video, name), rtol=0, atol=0, msg=name)
    for name in ("latent", "denoise_mask", "positions"):
        torch.testing.assert_close(getattr(audio, name), getattr(core_audio, name), rtol=0, atol=0, msg=name)
    assert video.attention_mask is not None and 0 < float(video.attention_mask[0, 0, 8]) < 1


def test_skip_stage_2_and_stage_2_without_the_adapter(pipe):
    frames = _reference_frames(0)
    kwargs = dict(prompt="a cat", reference_videos=[(frames, 1.0)], **FAST)
    half = pipe(**kwargs, skip_stage_2=True, output_type="np", generator=torch.Generator().manual_seed(0))
    assert half.frames.shape == (1, FRAMES, 64, 64, 3) and half.audio.ndim == 3

    generator = torch.Generator().manual_seed(4)
    video_1, audio_1 = pipe(**kwargs, skip_stage_2=True, output_type="latent", generator=generator, return_dict=False)
    assert video_1.shape == (1, 128, 2, 2, 2) and adapters_enabled(pipe.transformer)
    embeds = pipe.encode_prompt("a cat")
    contexts = TextContexts(embeds.video_context, embeds.audio_context)

    def refine(adapters_on: bool, generator: torch.Generator):
        (pipe.transformer.enable_adapters if adapters_on else pipe.transformer.disable_adapters)()
        try:
            return refine_latents(
                pipe.transformer, pipe.latent_upsampler, video_1, audio_1, contexts, latents_mean=pipe.vae.latents_mean,
                latents_std=pipe.vae.latents_std, frame_rate=FPS, sigmas=torch.tensor(FAST["stage_2_sigmas"]),
                generator=generator,
            )  # fmt: skip
        finally:
            pipe.transformer.enable_adapters()

    state = generator.get_state()
    expected_video, expected_audio = refine(False, generator)
    video, audio = pipe(**kwargs, output_type="latent", generator=torch.Generator().manual_seed(4), return_dict=False)
    assert video.shape == (1, 128, 2, 4, 4)
    torch.testing.assert_close(video, expected_video, rtol=0, atol=0)
    torch.testing.assert_close(audio, expected_audio, rtol=0, atol=0)
    with_adapter, _ = refine(True, torch.Generator().set_state(state))
    assert (with_adapter - video).abs().max() > 1e-3  # the adapter would have changed stage 2
    assert adapters_enabled(pipe.transformer) and pipe.transformer.active_adapters() == ["ic_lora"]  # restored

    # stage 1 does use the IC-LoRA
    pipe.transformer.disable_adapters()
    try:
        plain, _ = pipe(
            **kwargs,
            skip_stage_2=True,
            output_type="latent",
            generator=torch.Generator().manual_seed(4),
            return_dict=False,
        )
    finally:
        pipe.transformer.enable_adapters()
    assert (plain - video_1).abs().max() > 1e-3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"reference_videos": [(_reference_frames(0, 5), 1.0)]},
            r"reference_videos\[0\]'s frame count \(at most 9 frames are used\)=5 is not of the form 8\*k \+ 1.* Use 1 or 9\.",
        ),
        (
            {"reference_videos": [(torch.zeros(1, 3, 9, 64, 64), 1.0)]},
            r"reference_videos\[0\] is a float tensor of 64x64 \(HxW\), the target is 32x32",
        ),
        ({"reference_videos": [(_reference_frames(0), 1.0)], "conditioning_attention_strength": 1.5}, r"conditioning_attention_strength=1.5 is outside \[0, 1\]"),
        ({"reference_videos": [(_reference_frames(0), 2.0)]}, r"reference_videos\[0\] strength=2.0 is outside \[0, 1\]"),
        ({"reference_videos": [(_reference_frames(0), 1.0)], "reference_downscale_factor": 4}, "multiple of 32"),
        ({"conditioning_attention_mask": torch.ones(1, 1, 9, 64, 64)}, "without reference_videos"),
        (
            {"reference_videos": [(_reference_frames(0), 1.0)], "conditioning_attention_mask": torch.ones(9, 64, 64)},
            r"mask must be \(B, 1, F, H, W\)",
        ),
        ({"height": 96}, "not a positive multiple of 64"),
    ],
)
def test_errors(pipe, kwargs, message):
    with pytest.raises(ValueError, match=message):
        pipe("a cat", **{**FAST, **kwargs}, output_type="latent")
    assert adapters_enabled(pipe.transformer)


def test_conflicting_reference_factors_are_refused(pipe, tmp_path):
    other = _ic_pipe(0)
    other.load_ic_lora(_ic_lora_file(other.transformer, tmp_path / "a.safetensors"), adapter_name="a")
    from ltx2_diffusers.loaders.lora import LTX2LoRA, read_lora

    lora = read_lora(tmp_path / "a.safetensors")
    with pytest.raises(ValueError, match="reference_downscale_factor=4, but one loaded before has 2"):
        other.load_ic_lora(LTX2LoRA(lora.layers, metadata={"reference_downscale_factor": "4"}), adapter_name="b")


def test_references_without_an_ic_lora_say_so(tmp_path):
    bare = LTX2AVICLoRAPipeline(**build_tiny_two_stage_pipeline(seed=3).components)
    bare.set_progress_bar_config(disable=True)
    with pytest.warns(UserWarning, match=r"no LoRA is loaded in the transformer.*load_ic_lora"):
        bare("a cat", reference_videos=[(_reference_frames(0), 1.0)], skip_stage_2=True, output_type="latent", **FAST)


def test_a_reference_size_that_does_not_divide_is_refused_before_the_text_encoder(pipe, monkeypatch):
    """192 is a multiple of 64, but its stage-1 half (96) over the LoRA's factor 2 is 48, not a multiple of 32."""

    def encode(*args, **kwargs):
        raise AssertionError("the prompt was encoded before the reference size was checked")

    monkeypatch.setattr(ic_lora_module, "prompt_contexts", encode)
    with pytest.raises(ValueError, match=r"the stage-1 size 96x64 divided by reference_downscale_factor=2 must be"):
        pipe("a cat", **{**FAST, "height": 192}, reference_videos=[(_reference_frames(0), 1.0)], output_type="latent")
