"""One set of call conventions, checked on every pipeline class (tiny models, smallest sizes, one step per stage).

Callback with a running step index across stages (and its returned tensors used), progress bar per stage, output
types, return_dict, maybe_free_model_hooks once per call, prompt_embeds without a text encoder, num_videos_per_prompt,
a generator per video, prompt enhancement, diffusers' scalar guidance keywords.
"""

import pytest
import torch
from helpers.keyframes import keyframes_contract_case
from helpers.pipelines import CONTRACT_CASES

from ltx2_diffusers.pipelines import pipeline_utils
from ltx2_diffusers.pipelines.guidance import GuidanceScales

_PIPES: dict = {}


@pytest.fixture(params=[*CONTRACT_CASES, keyframes_contract_case()], ids=repr)
def case(request):
    return request.param


def pipe_of(case):
    if case.name not in _PIPES:
        _PIPES[case.name] = case.build()
    return _PIPES[case.name]


def call(pipe, case, seed=0, **kwargs):
    return pipe(**{**case.inputs, "generator": torch.Generator().manual_seed(seed), **kwargs})


def test_callback_runs_across_stages_with_a_running_index_and_its_tensors_are_used(case):
    pipe, seen = pipe_of(case), []
    total = sum(case.stage_steps)

    def callback(p, step_index, timestep, tensors):
        assert p is pipe and set(tensors) == {"video_latents", "audio_latents"}
        seen.append((step_index, timestep))
        if step_index == total - 1:  # replace the last step's video latents: the output must be them
            return {"video_latents": torch.zeros_like(tensors["video_latents"])}
        return {}

    names = ["video_latents", "audio_latents"]
    video, _ = call(pipe, case, output_type="latent", return_dict=False, callback_on_step_end=callback,
                    callback_on_step_end_tensor_inputs=names)  # fmt: skip
    assert [i for i, _ in seen] == list(range(total))
    assert seen[0][1] == pytest.approx(1000.0)  # timestep = 1000 sigma
    assert video.abs().max() == 0
    with pytest.raises(ValueError, match=r"callback_on_step_end_tensor_inputs has \['latents'\], which this pipeline does not pass"):
        call(pipe, case, callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["latents"])


def test_progress_bar_per_stage_and_hooks_freed_once_at_the_end(case, monkeypatch):
    pipe, totals, frees = pipe_of(case), [], []
    real_bar = pipe.progress_bar

    def progress_bar(total=None, **kwargs):
        totals.append(total)
        return real_bar(total=total, **kwargs)

    monkeypatch.setattr(pipe, "progress_bar", progress_bar)
    monkeypatch.setattr(pipe, "maybe_free_model_hooks", lambda: frees.append(1))
    call(pipe, case, output_type="latent")
    assert totals == case.stage_steps and frees == [1]


def test_output_types_and_return_dict(case):
    pipe = pipe_of(case)
    frames, height, width = case.frames
    latent = call(pipe, case, output_type="latent")
    assert latent.frames.shape == (1, 128, *case.grid) and latent.audio.ndim == 4
    np_out = call(pipe, case, output_type="np")
    assert np_out.frames.shape == (1, frames, height, width, 3) and np_out.audio.ndim == 3
    assert np_out.audio_sample_rate > 0
    pt_video, pt_audio = call(pipe, case, output_type="pt", return_dict=False)
    assert pt_video.shape == (1, frames, 3, height, width) and pt_audio.shape == np_out.audio.shape
    torch.testing.assert_close(pt_video.permute(0, 1, 3, 4, 2).numpy(), np_out.frames)
    with pytest.raises(ValueError, match="output_type='mp4' is not one of"):
        call(pipe, case, output_type="mp4")


def test_prompt_embeds_without_a_text_encoder_equal_the_prompt(case):
    pipe = pipe_of(case)
    expected = call(pipe, case, output_type="latent").frames
    embeds = pipe.encode_prompt("a cat")
    without_gemma = type(pipe)(**{**pipe.components, "text_encoder": None})
    without_gemma.set_progress_bar_config(disable=True)
    inputs = {k: v for k, v in case.inputs.items() if k != "prompt"}
    got = without_gemma(
        **inputs, prompt_embeds=embeds, output_type="latent", generator=torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(got.frames, expected, rtol=0, atol=0)
    with pytest.raises(ValueError, match="the pipeline has no text_encoder"):
        without_gemma(**case.inputs, output_type="latent")
    with pytest.raises(ValueError, match="both prompt and prompt_embeds were given: pass one"):
        pipe(**case.inputs, prompt_embeds=embeds)


def test_videos_per_prompt_and_a_generator_per_video(case):
    pipe = pipe_of(case)
    generators = [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)]
    both = pipe(**case.inputs, num_videos_per_prompt=2, generator=generators, output_type="latent").frames
    assert both.shape == (2, 128, *case.grid) and (both[0] - both[1]).abs().max() > 1e-3
    # each video is the one its generator gives alone (res_2s: only the first, as its SDE noise is the sampler's own,
    # seeded the reference's way, not drawn from the generator)
    for index, seed in enumerate((1,) if case.name == "LTX2AVTwoStageHQPipeline" else (1, 2)):
        alone = call(pipe, case, seed=seed, output_type="latent").frames
        torch.testing.assert_close(both[index : index + 1], alone, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="a list of 2 generators for a batch of 1"):
        pipe(**case.inputs, generator=generators)


def test_enhance_prompt_rewrites_the_prompt_before_encoding(case, monkeypatch):
    pipe, seen = pipe_of(case), {}

    def fake_enhance(text_encoder, tokenizer, prompt, image=None, processor=None, seed=None, device=None):
        seen.update(prompt=prompt, seed=seed)
        return "a cat, in detail"

    real_encode = pipeline_utils.encode_prompts

    def encode(text_encoder, tokenizer, connectors, texts, **kwargs):
        seen["texts"] = list(texts)
        return real_encode(text_encoder, tokenizer, connectors, texts, **kwargs)

    monkeypatch.setattr(pipeline_utils, "enhance_prompt_with_gemma", fake_enhance)
    monkeypatch.setattr(pipeline_utils, "encode_prompts", encode)
    call(pipe, case, seed=7, enhance_prompt=True, output_type="latent")
    assert seen == {"prompt": "a cat", "seed": 7, "texts": ["a cat, in detail"]}


def test_diffusers_scalar_guidance_keywords(case):
    """guidance_scale / stg_scale / modality_scale / guidance_rescale are applied onto the defaults' GuidanceScales."""
    pipe = pipe_of(case)
    as_object = call(pipe, case, video_guidance=GuidanceScales(cfg=2.0), output_type="latent").frames
    inputs = {k: v for k, v in case.inputs.items() if k != "video_guidance"}
    scalars = {"guidance_scale": 2.0, "stg_scale": 0.0, "modality_scale": 1.0, "guidance_rescale": 0.0}
    as_scalars = pipe(**inputs, **scalars, output_type="latent", generator=torch.Generator().manual_seed(0)).frames
    torch.testing.assert_close(as_scalars, as_object, rtol=0, atol=0)
    with pytest.raises(ValueError, match="video_guidance and guidance_scale were both given for one modality"):
        pipe(**case.inputs, guidance_scale=2.0)


def test_a_callback_returning_an_unknown_name_is_an_error(case):
    pipe = pipe_of(case)

    def callback(p, step_index, timestep, tensors):
        return {"video_latent": tensors["video_latents"]}  # a typo: it would replace nothing, silently

    with pytest.raises(ValueError, match=r"callback_on_step_end returned \['video_latent'\] at step 0, which this"):
        call(pipe, case, callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["video_latents"])
