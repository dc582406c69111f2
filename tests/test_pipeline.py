"""LTX2AVPipeline on the tiny random pipeline: inputs, outputs, conditioning, callbacks, defaults, errors."""

import functools

import numpy as np
import PIL.Image
import pytest
import torch

from ltx2_diffusers.pipelines.guidance import GuidanceScales
from ltx2_diffusers.pipelines.pipeline_base import with_guidance_scales
from ltx2_diffusers.pipelines.pipeline_ltx2_av import LTX2AVPipeline
from ltx2_diffusers.pipelines.presets import DEFAULT_IMAGE_CRF, DEFAULT_NEGATIVE_PROMPT, sampling_preset
from ltx2_diffusers.pipelines.tiny import build_tiny_pipeline


def preset(version: str, kind: str = "dev"):
    """A model version's call defaults, guidance as GuidanceScales (what the pipelines use)."""
    return with_guidance_scales(sampling_preset(version, kind))


# 9 frames at 64x64: latent 2x2x2 = 8 video tokens; round(9 / 24 * 25) = 9 audio tokens. Guidance off (one pass per
# step, no negative prompt) unless a test asks for it: the guided passes are tested in test_guidance.py and
# test_denoise_parity.py.
NEUTRAL = GuidanceScales()
SMALL = {"num_frames": 9, "height": 64, "width": 64, "num_inference_steps": 1}
SMALL |= {"video_guidance": NEUTRAL, "audio_guidance": NEUTRAL}


@pytest.fixture(scope="module")
def pipe() -> LTX2AVPipeline:
    return build_tiny_pipeline(seed=0)


def run(pipe, prompt="a cat", seed=0, **kwargs):
    return pipe(prompt, generator=torch.Generator().manual_seed(seed), **{**SMALL, **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"num_frames": 16}, ValueError, r"num_frames=16 is not of the form 8\*k \+ 1.*Use 9 or 17"),
        ({"height": 100}, ValueError, r"height=100 is not a positive multiple of 32.*Use 96 or 128"),
        ({"width": 48}, ValueError, r"width=48 is not a positive multiple of 32.*Use 32 or 64"),
        ({"prompt": []}, ValueError, r"prompt is an empty list"),
        ({"image": torch.zeros(3, 32, 64)}, ValueError, r"image is a float tensor of 32x64 \(HxW\) but the video is 64x64"),
        ({"image": torch.zeros(3, 64, 64), "image_strength": -0.5}, ValueError, r"image_strength=-0.5 is outside \[0, 1\]"),
        ({"output_type": "gif"}, ValueError, r"output_type='gif' is not one of"),
        ({"negative_prompt": ["a", "b"]}, ValueError, r"negative_prompt has 2 entries for 1 prompts"),
    ],
)
def test_bad_input_fails_fast_with_a_clear_message(pipe, kwargs, error, message):
    prompt = kwargs.pop("prompt", "a cat")
    with pytest.raises(error, match=message):
        run(pipe, prompt, **kwargs)


def test_output_types_shapes_and_ranges(pipe):
    np_out = run(pipe, output_type="np")
    assert np_out.frames.shape == (1, 9, 64, 64, 3) and np_out.frames.dtype == np.float32
    assert 0.0 <= np_out.frames.min() and np_out.frames.max() <= 1.0
    # 9 audio latents -> 4 * 9 - 3 = 33 mel frames -> 33 * 240 samples at 24 kHz, stereo
    assert np_out.audio.shape == (1, 2, 33 * 240) and np_out.audio.dtype == torch.float32
    assert np_out.audio_sample_rate == 24000

    pt_out = run(pipe, output_type="pt")
    torch.testing.assert_close(pt_out.frames.permute(0, 1, 3, 4, 2).numpy(), np_out.frames)  # same seed, same clip

    pil_frames, audio = run(pipe, output_type="pil", return_dict=False)
    assert len(pil_frames) == 1 and len(pil_frames[0]) == 9 and pil_frames[0][0].size == (64, 64)
    expected = (np_out.frames[0, 3] * 255).astype(np.uint8)  # truncation, as the reference's export
    np.testing.assert_array_equal(np.asarray(pil_frames[0][3]), expected)
    torch.testing.assert_close(audio, np_out.audio)

    latent = run(pipe, output_type="latent")
    assert latent.frames.shape == (1, 128, 2, 2, 2) and latent.audio.shape == (1, 8, 9, 16)
    assert latent.audio_sample_rate is None
    # "latent" gives the transformer's normalised latents (diffusers' LTX2Pipeline gives un-normalised ones):
    # decode_video / decode_audio un-normalise them and reproduce the decoded outputs
    from ltx2_diffusers.pipelines.decoding import decode_audio
    from ltx2_diffusers.pipelines.denoising import decode_video

    with torch.no_grad():
        frames = ((decode_video(pipe.vae, latent.frames) + 1) / 2).clamp(0, 1).permute(0, 2, 3, 4, 1).numpy()
        np.testing.assert_allclose(frames, np_out.frames, rtol=0, atol=1e-6)
        torch.testing.assert_close(decode_audio(pipe.audio_vae, pipe.vocoder, latent.audio), np_out.audio)


def test_prompts_times_videos_per_prompt_and_seeds(pipe):
    out = run(pipe, ["a cat", "a dog"], num_videos_per_prompt=2, output_type="latent")
    assert out.frames.shape[0] == 4 and out.audio.shape[0] == 4
    clips = out.frames.flatten(1)
    assert not torch.allclose(clips[0], clips[1])  # different noise per video
    assert not torch.allclose(clips[0], clips[2])
    again = run(pipe, ["a cat", "a dog"], num_videos_per_prompt=2, output_type="latent")
    torch.testing.assert_close(again.frames, out.frames)  # a seeded generator reproduces the batch


def test_callback_sees_every_step_and_can_replace_latents(pipe):
    seen = []

    def callback(p, step_index, timestep, tensors):
        seen.append((step_index, timestep, tuple(tensors)))
        if step_index == 2:
            return {"video_latents": torch.zeros_like(tensors["video_latents"])}
        return {}

    out = run(
        pipe,
        num_inference_steps=3,
        output_type="latent",
        callback_on_step_end=callback,
        callback_on_step_end_tensor_inputs=("video_latents", "audio_latents"),
    )
    assert [s[0] for s in seen] == [0, 1, 2]
    assert seen[0][1] == pytest.approx(1000.0) and seen[0][2] == ("video_latents", "audio_latents")
    assert torch.count_nonzero(out.frames) == 0 and torch.count_nonzero(out.audio) > 0
    with pytest.raises(ValueError, match=r"callback_on_step_end_tensor_inputs has \['prompt_embeds'\], which this pipeline does not pass"):
        run(pipe, callback_on_step_end=callback, callback_on_step_end_tensor_inputs=("prompt_embeds",))


def test_image_at_strength_one_stays_exact_and_keyframes_are_dropped_from_the_output(pipe):
    image = torch.rand(3, 64, 64) * 2 - 1
    expected = pipe.encode_image(image, 64, 64, torch.device("cpu"))  # (1, 128, 1, 2, 2)
    guided = {"video_guidance": preset("2.0").video_guidance}  # with every guidance pass running
    out = run(pipe, image=image, num_inference_steps=2, output_type="latent", **guided)
    torch.testing.assert_close(out.frames[:, :, :1], expected)
    free = run(pipe, num_inference_steps=2, output_type="latent")
    assert not torch.allclose(free.frames[:, :, :1], expected)

    keyed = run(pipe, keyframes=[(image, 8, 1.0)], num_inference_steps=2, output_type="latent")
    assert keyed.frames.shape == (1, 128, 2, 2, 2)  # the appended keyframe tokens are not part of the clip
    assert not torch.allclose(keyed.frames, free.frames)  # ... but they did condition it

    pil = PIL.Image.fromarray((np.random.default_rng(0).random((48, 80, 3)) * 255).astype(np.uint8))
    assert run(pipe, image=pil, output_type="latent").frames.shape == (1, 128, 2, 2, 2)  # resized and cropped


def test_defaults_equal_ltx_pipelines_constants():
    """Pinned against the installed reference itself: ltx_pipelines/utils/constants.py (LTX_2_PARAMS, LTX_2_3_PARAMS,
    DEFAULT_NEGATIVE_PROMPT, DEFAULT_IMAGE_CRF; spec §6.2, §7.6, §9) and its one-stage `__call__` sizes."""
    import inspect

    from ltx_pipelines.utils import constants as reference

    for version, params in (("2.0", reference.LTX_2_PARAMS), ("2.3", reference.LTX_2_3_PARAMS)):
        ours = preset(version)
        assert ours.num_inference_steps == params.num_inference_steps
        for scales, guider in (
            (ours.video_guidance, params.video_guider_params),
            (ours.audio_guidance, params.audio_guider_params),
        ):
            assert (scales.cfg, scales.stg, scales.modality, scales.rescale) == (
                guider.cfg_scale,
                guider.stg_scale,
                guider.modality_scale,
                guider.rescale_scale,
            )
            assert (list(scales.stg_blocks), scales.skip_step) == (guider.stg_blocks, guider.skip_step)
        assert sampling_preset(version, reference="1.0").negative_prompt == reference.DEFAULT_NEGATIVE_PROMPT
    assert DEFAULT_IMAGE_CRF == reference.DEFAULT_IMAGE_CRF == 33
    call = inspect.signature(LTX2AVPipeline.__call__).parameters
    for name in ("height", "width", "num_frames", "frame_rate", "image_crf"):
        assert call[name].default is None  # filled from the preset
    defaults, ours = reference.LTX_2_PARAMS, sampling_preset("2.0")
    assert (ours.height, ours.width) == (defaults.stage_1_height, defaults.stage_1_width)
    assert (ours.num_frames, ours.frame_rate) == (defaults.num_frames, defaults.frame_rate)
    assert ours.image_crf == reference.DEFAULT_IMAGE_CRF


def test_defaults_follow_the_model_version():
    assert preset("2.0").num_inference_steps == 40
    assert preset("2.3").num_inference_steps == 30
    assert preset("2.0").video_guidance == GuidanceScales(3.0, 1.0, 3.0, 0.7, (29,))
    assert preset("2.0").audio_guidance == GuidanceScales(7.0, 1.0, 3.0, 0.7, (29,))
    assert preset("2.3").video_guidance.stg_blocks == (28,)
    assert DEFAULT_NEGATIVE_PROMPT.startswith("has_subtitles, has_blurbox, transition from black")  # 1.2.0's
    assert DEFAULT_NEGATIVE_PROMPT.endswith("stylized filters, or AI artifacts.")
    assert build_tiny_pipeline(model_version="2.0").model_version == "2.0"
    ltx23 = build_tiny_pipeline(model_version="2.3")
    assert ltx23.model_version == "2.3" and ltx23.audio_sample_rate == 48000
    out = run(ltx23, output_type="np")  # LTX-2.3 layout end to end: 33 mel frames -> 16 kHz -> 48 kHz
    assert out.frames.shape == (1, 9, 64, 64, 3) and out.audio.shape == (1, 2, 33 * 480)
    with pytest.raises(ValueError, match=r"model_version must be one of \('2.0', '2.3', '2.5'\), got '2.4'"):
        build_tiny_pipeline(model_version="2.4")


class _Stop(Exception):
    pass


def _sigmas_of_a_call(pipe, monkeypatch, **kwargs):
    """The sigmas the pipeline hands to `denoise` (values, not scheduler state), stopping the call there."""
    import ltx2_diffusers.pipelines.pipeline_ltx2_av as module

    seen = {}

    def spy(transformer, video, audio, contexts, sigmas, *args, **kw):
        seen["sigmas"] = sigmas
        raise _Stop

    monkeypatch.setattr(module, "denoise", spy)
    with pytest.raises(_Stop):
        run(pipe, **kwargs)
    return seen["sigmas"]


def test_default_steps_are_used_when_none_given(pipe, monkeypatch):
    sigmas = _sigmas_of_a_call(pipe, monkeypatch, num_inference_steps=None, video_guidance=None, audio_guidance=None)
    assert len(sigmas) == 41  # LTX-2: 40 steps
    assert float(sigmas[-2]) == pytest.approx(0.1)
    assert pipe.scheduler.sigmas is None  # the schedule is a value of the call, not scheduler state


def test_explicit_sigmas_override_the_schedule(pipe):
    timesteps = []

    def callback(p, i, t, d):
        timesteps.append(t)

    run(pipe, num_inference_steps=None, sigmas=[1.0, 0.725, 0.0], output_type="latent", callback_on_step_end=callback)
    assert timesteps == pytest.approx([1000.0, 725.0])


def test_a_distilled_scheduler_brings_its_own_sigmas(pipe, monkeypatch):
    from ltx2_diffusers.schedulers.scheduling_ltx2 import DISTILLED_SIGMAS, LTX2Scheduler

    original = pipe.scheduler
    try:
        pipe.scheduler = LTX2Scheduler.distilled()
        sigmas = _sigmas_of_a_call(pipe, monkeypatch, num_inference_steps=None)
        assert sigmas.tolist() == pytest.approx(list(DISTILLED_SIGMAS))
    finally:
        pipe.scheduler = original


def test_a_distilled_scheduler_defaults_to_no_guidance(pipe, monkeypatch):
    """ltx-pipelines' DistilledPipeline (ltx_pipelines/distilled.py) encodes only the prompt and denoises with
    `simple_denoising_func`: one conditional pass per step, no CFG/STG/modality/rescale for video or audio."""
    import ltx2_diffusers.pipelines.pipeline_ltx2_av as module
    from ltx2_diffusers.schedulers.scheduling_ltx2 import LTX2Scheduler

    seen = {}

    def spy(transformer, video, audio, contexts, sigmas, video_guidance, audio_guidance, **kwargs):
        seen.update(contexts=contexts, sigmas=sigmas, video=video_guidance, audio=audio_guidance)
        raise _Stop

    monkeypatch.setattr(module, "denoise", spy)
    original = pipe.scheduler
    try:
        pipe.scheduler = LTX2Scheduler.distilled()
        assert pipe.sampling_defaults == preset("2.0", "distilled")
        with pytest.raises(_Stop):
            run(pipe, num_inference_steps=None, video_guidance=None, audio_guidance=None)
    finally:
        pipe.scheduler = original
    assert seen["video"] == GuidanceScales() and seen["audio"] == GuidanceScales()
    assert seen["contexts"].negative_video is None  # no negative prompt is encoded, as the reference
    assert len(seen["sigmas"]) == 9
    # a dev scheduler keeps the model version's guided defaults
    assert pipe.sampling_defaults == preset("2.0")


def test_wrong_scheduler_or_generator_type_is_refused(pipe):
    import diffusers

    components = {**pipe.components, "scheduler": diffusers.DDIMScheduler()}
    with pytest.raises(TypeError, match="scheduler must be an LTX2Scheduler .* or diffusers' FlowMatchEuler"):
        LTX2AVPipeline(**components)
    with pytest.raises(TypeError, match=r"generator\[0\] is int, not a torch.Generator"):
        pipe("a cat", generator=[3], **SMALL)
    with pytest.raises(TypeError, match=r"generator must be a torch.Generator or a list of them, got int \(for a seed"):
        pipe("a cat", generator=3, **SMALL)
    with pytest.raises(ValueError, match="a list of 2 generators for a batch of 1"):
        pipe("a cat", generator=[torch.Generator(), torch.Generator()], **SMALL)


def test_sigma_binned_guidance_switches_scales_per_step(pipe):
    from ltx2_diffusers.pipelines.guidance import GuidanceSchedule

    strong = GuidanceScales(cfg=3.0)
    schedule = GuidanceSchedule.from_dict({1.0: strong, 0.5: NEUTRAL})  # cfg 3 above sigma 0.5, off at and below
    kwargs = {"sigmas": [1.0, 0.4, 0.0], "num_inference_steps": None, "output_type": "latent"}
    binned = run(pipe, video_guidance=schedule, audio_guidance=schedule, **kwargs).frames
    constant = run(pipe, video_guidance=strong, audio_guidance=strong, **kwargs).frames
    off = run(pipe, **kwargs).frames
    assert not torch.allclose(binned, constant) and not torch.allclose(binned, off)


@pytest.fixture
def enhance_prompt(monkeypatch):
    """prompt_enhancement.enhance_prompt with a 16-token budget, also for the pipeline's own call (which passes every
    other argument itself): the tiny random Gemma never stops early, so the default 512 tokens cost ~5 s a call, and
    what is tested (which prompt is rewritten, with which seed and image) does not depend on the budget."""
    from ltx2_diffusers.pipelines import pipeline_utils, prompt_enhancement

    short = functools.partial(prompt_enhancement.enhance_prompt, max_new_tokens=16)
    monkeypatch.setattr(pipeline_utils, "enhance_prompt_with_gemma", short)
    return short


def test_enhance_prompt_rewrites_the_first_prompt_with_the_generator_seed(pipe, enhance_prompt):
    enhanced = enhance_prompt(pipe.text_encoder, pipe.tokenizer, "a cat", seed=4)
    assert enhanced != "a cat"
    got = run(pipe, ["a cat", "a dog"], seed=4, enhance_prompt=True, output_type="latent")
    expected = run(pipe, [enhanced, "a dog"], seed=4, output_type="latent")  # only the first prompt is rewritten
    torch.testing.assert_close(got.frames, expected.frames, rtol=0, atol=0)
    torch.testing.assert_close(got.audio, expected.audio, rtol=0, atol=0)
    plain = run(pipe, ["a cat", "a dog"], seed=4, output_type="latent")
    assert not torch.equal(got.frames[0], plain.frames[0])
    torch.testing.assert_close(got.frames[1], plain.frames[1], rtol=0, atol=0)
    # an explicit seed overrides the generator's
    other = enhance_prompt(pipe.text_encoder, pipe.tokenizer, "a cat", seed=11)
    got = run(pipe, seed=4, enhance_prompt=True, enhance_prompt_seed=11, output_type="latent")
    torch.testing.assert_close(got.frames, run(pipe, other, seed=4, output_type="latent").frames, rtol=0, atol=0)


def test_enhance_prompt_with_an_image_shows_gemma_the_conditioning_image(pipe, enhance_prompt):
    pixels = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    as_uint8 = ((pixels + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0)
    enhanced = enhance_prompt(
        pipe.text_encoder, pipe.tokenizer, "a cat", image=as_uint8, processor=pipe.processor, seed=2
    )
    assert enhanced != enhance_prompt(pipe.text_encoder, pipe.tokenizer, "a cat", seed=2)  # the image matters
    got = run(pipe, seed=2, image=pixels, enhance_prompt=True, output_type="latent")
    expected = run(pipe, enhanced, seed=2, image=pixels, output_type="latent")
    torch.testing.assert_close(got.frames, expected.frames, rtol=0, atol=0)


def test_enhance_prompt_with_an_image_needs_a_processor():
    pipe = build_tiny_pipeline(seed=0)
    pipe.processor = None
    with pytest.raises(ValueError, match=r"needs a Gemma3Processor \(`processor=`\)"):
        run(pipe, image=torch.zeros(3, 64, 64), enhance_prompt=True)


def test_from_pretrained_takes_dtype_or_torch_dtype_without_the_deprecation_warning(tmp_path):
    """diffusers 0.42 warns (FutureWarning) on `torch_dtype`; our from_pretrained takes either name and hands on `dtype`,
    so the quickstart's `torch_dtype=` loads silently and in that dtype."""
    import warnings

    build_tiny_pipeline().save_pretrained(tmp_path / "tiny")
    for name in ("torch_dtype", "dtype"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)
            loaded = LTX2AVPipeline.from_pretrained(tmp_path / "tiny", **{name: torch.bfloat16})
        assert loaded.transformer.dtype == loaded.vae.dtype == loaded.text_encoder.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="not both"):
        LTX2AVPipeline.from_pretrained(tmp_path / "tiny", dtype=torch.bfloat16, torch_dtype=torch.bfloat16)


def test_pil_frames_are_converted_as_ltx_core_decode_video_in_the_decoders_dtype():
    """ltx_core/model/video_vae/video_vae.py `decode_video.convert_to_uint8`: (((x + 1) / 2).clamp(0, 1) * 255)
    .to(uint8) on the decoder's output, bf16 in the reference's runs (spec §13.11: truncation, no rounding)."""
    from ltx2_diffusers.pipelines.decoding import postprocess_frames

    video = (torch.rand(1, 3, 2, 16, 16, generator=torch.Generator().manual_seed(0)) * 2.2 - 1.1).bfloat16()
    reference = (((video + 1.0) / 2.0).clamp(0.0, 1.0) * 255.0).to(torch.uint8).permute(0, 2, 3, 4, 1).numpy()
    ours = np.stack([np.asarray(frame) for frame in postprocess_frames(video, "pil")[0]])
    np.testing.assert_array_equal(ours, reference[0])
    in_float32 = (postprocess_frames(video, "np")[0] * 255.0).astype(np.uint8)  # the bf16 arithmetic matters
    assert (in_float32 != reference[0]).any()


def test_diffusers_call_surface_timesteps_scheduler_and_guidance_keywords(pipe):
    import diffusers

    from ltx2_diffusers.schedulers.scheduling_ltx2 import LTX2Scheduler

    by_sigmas = run(pipe, num_inference_steps=None, sigmas=[1.0, 0.725, 0.0], output_type="latent").frames
    by_timesteps = run(pipe, num_inference_steps=None, timesteps=[1000.0, 725.0], output_type="latent").frames
    torch.testing.assert_close(by_timesteps, by_sigmas, rtol=0, atol=0)
    with pytest.raises(ValueError, match="num_inference_steps=1 disagrees with sigmas, which has 2 steps"):
        run(pipe, sigmas=[1.0, 0.725, 0.0])
    with pytest.raises(ValueError, match=r"sigmas=\[1.0, 0.5\] must end at 0.0"):
        run(pipe, num_inference_steps=None, sigmas=[1.0, 0.5])

    flow_match = diffusers.FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, shift_terminal=0.1)
    converted = LTX2AVPipeline(**{**pipe.components, "scheduler": flow_match})
    assert isinstance(converted.scheduler, LTX2Scheduler)

    # spatio_temporal_guidance_blocks sets both modalities' STG blocks; audio_ keywords the audio guidance
    seen = {}

    def spy(transformer, video, audio, contexts, sigmas, video_guidance, audio_guidance, **kwargs):
        seen.update(video=video_guidance, audio=audio_guidance)
        raise _Stop

    with pytest.MonkeyPatch.context() as patch:
        import ltx2_diffusers.pipelines.pipeline_ltx2_av as module

        patch.setattr(module, "denoise", spy)
        with pytest.raises(_Stop):
            pipe("a cat", num_frames=9, height=64, width=64, num_inference_steps=1, stg_scale=2.0,
                 audio_guidance_scale=5.0, spatio_temporal_guidance_blocks=[3])  # fmt: skip
    defaults = preset("2.0")
    assert seen["video"] == GuidanceScales(cfg=3.0, stg=2.0, modality=3.0, rescale=0.7, stg_blocks=(3,))
    assert seen["audio"] == GuidanceScales(cfg=5.0, stg=defaults.audio_guidance.stg, modality=3.0, rescale=0.7,
                                           stg_blocks=(3,))  # fmt: skip
    with pytest.raises(ValueError, match="audio_guidance and audio_guidance_scale were both given for one modality"):
        run(pipe, audio_guidance_scale=2.0)
    with pytest.raises(ValueError, match="guidance_scale=nan must be a finite number"):
        pipe("a cat", num_frames=9, height=64, width=64, guidance_scale=float("nan"))
