"""`reference=` ("1.2" default, "1.0") on the pipelines added after the switch: extend, text-to-audio, video-to-audio,
Dub-It and HDR IC-LoRA, and `--reference-version` on their subcommands. (The rules themselves are tested in
tests/test_reference_switch.py; here, that each pipeline hands the value to its shared stages and what that changes.)

What the setting changes in each, on the tiny float32 model:
- extend, video-to-audio, Dub-It: frozen tokens (the clip's context, the kept video, the reference tokens and the frozen
  stage-2 audio) next to generated ones, so the transformer's audio<->video AdaLN and the frozen stream's sigma follow
  the release: the generated part differs.
- text-to-audio: audio alone (no audio<->video AdaLN), noise at scale 1 (both noisers return the noise itself), the
  guidance arithmetic in float32 either way and Gemma-3 tokenized alike: with the same negative prompt the audio is
  EQUAL. Its default negative prompt is the release's (1.2.0's begins with five caption tags), as extend's.
- HDR: video alone and unguided; only the noiser's rounding at stage 2's noise scale differs (lerp in float32 vs
  n s + x (1 - s)): equal up to float32 rounding.
Every pipeline passes the value to its noiser and to `denoise`, and refuses a bad one before any model runs.
"""

import inspect

import numpy as np
import pytest
import torch
from helpers.cli_media import write_clip, write_lora

import ltx2_diffusers
from ltx2_diffusers import GuidanceScales
from ltx2_diffusers.cli import main
from ltx2_diffusers.pipelines import pipeline_ltx2_av_dubit as dubit_module
from ltx2_diffusers.pipelines import pipeline_ltx2_av_extend as extend_module
from ltx2_diffusers.pipelines import pipeline_ltx2_av_hdr_ic_lora as hdr_module
from ltx2_diffusers.pipelines import pipeline_ltx2_text_to_audio as t2a_module
from ltx2_diffusers.pipelines import pipeline_ltx2_video_to_audio as v2a_module
from ltx2_diffusers.pipelines import pipeline_utils, presets
from ltx2_diffusers.pipelines.tiny import build_tiny_pipeline, build_tiny_two_stage_pipeline
from ltx2_diffusers.schedulers.scheduling_ltx2 import LTX2Scheduler

NEUTRAL = {"video_guidance": GuidanceScales(), "audio_guidance": GuidanceScales()}
ONE_STEP = {"sigmas": (1.0, 0.0)}
TWO_STAGE = {"height": 64, "width": 64, **ONE_STEP, "stage_2_sigmas": (0.909375, 0.0)}
PIPELINES = {
    "extend": "LTX2AVExtendPipeline",
    "t2a": "LTX2TextToAudioPipeline",
    "v2a": "LTX2VideoToAudioPipeline",
    "dubit": "LTX2AVDubItPipeline",
    "hdr": "LTX2AVHDRICLoraPipeline",
}


def _frames(count: int, size: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def _tone(num_samples: int, rate: int = 24000) -> torch.Tensor:
    return (0.3 * torch.sin(2 * torch.pi * 440 * torch.arange(num_samples) / rate))[None].repeat(2, 1)


@pytest.fixture(scope="module")
def pipes(tmp_path_factory):
    """name -> its tiny pipeline, built on first use (each its own transformer: Dub-It takes exactly one LoRA)."""
    folder, built = tmp_path_factory.mktemp("reference_switch"), {}

    def get(name: str):
        if name not in built:
            cls = getattr(ltx2_diffusers, PIPELINES[name])
            if name in ("dubit", "hdr"):  # two-stage, distilled, with their IC-LoRA
                pipe = cls(**{**build_tiny_two_stage_pipeline(0).components, "scheduler": LTX2Scheduler.distilled()})
                factor = "1" if name == "dubit" else "2"
                metadata = {"reference_downscale_factor": factor} | (
                    {"hdr_transform": "logc3"} if name == "hdr" else {}
                )
                pipe.load_ic_lora(write_lora(folder / f"{name}.safetensors", metadata=metadata))
            else:
                pipe = cls(**build_tiny_pipeline(0).components)
            pipe.set_progress_bar_config(disable=True)
            built[name] = pipe
        return built[name]

    return get


# each pipeline: a small call (keyword arguments), its module and the stage functions there that take `reference`
CALLS = {
    "extend": lambda: {
        "video": _frames(9),
        "prompt": "a cat",
        "frame_rate": 24.0,
        "audio": _tone(9000),
        "audio_sample_rate": 24000,
        "num_frames": 8,
        "context_frames": 9,
        **ONE_STEP,
        **NEUTRAL,
        "output_type": "np",
    },  # fmt: skip
    "t2a": lambda: {
        "prompt": "rain",
        "negative_prompt": "wind",
        "num_frames": 9,
        **ONE_STEP,
        "audio_guidance": GuidanceScales(cfg=3.0),
        "output_type": "latent",
    },  # fmt: skip
    "v2a": lambda: {
        "video": _frames(9),
        "prompt": "rain",
        "frame_rate": 24.0,
        **ONE_STEP,
        **NEUTRAL,
        "output_type": "latent",
    },  # fmt: skip
    "dubit": lambda: {
        "reference_video": _frames(9, 48),
        "prompt": "hi",
        "reference_audio": _tone(8000, 16000),
        "reference_audio_sample_rate": 16000,
        "frame_rate": 24.0,
        **TWO_STAGE,
        "output_type": "latent",
    },  # fmt: skip
    "hdr": lambda: {
        "video": _frames(9, 40),
        "prompt": "a lamp",
        "num_frames": 9,
        **TWO_STAGE,
        "height": 128,
        "width": 128,
        "stage_2_tiles": ((1, 0), (1, 0), (1, 0)),  # one tile: the tiling is not what is compared
        "output_type": "latent",
    },  # fmt: skip
}
STAGES = {
    "extend": (extend_module, ("add_noise", "denoise")),
    "t2a": (t2a_module, ("add_noise", "denoise")),
    "v2a": (v2a_module, ("prepare_retake_latents", "denoise")),
    "dubit": (dubit_module, ("prepare_latents_with_audio_reference", "denoise")),
    "hdr": (hdr_module, ("noised_video_state", "denoise_video_only")),
}


def _spy_stages(monkeypatch, name: str) -> dict[str, list]:
    """Wrap the pipeline module's stage functions: record (function, the `reference` it received, default included)
    for every call under "calls", and what `denoise` returned (video and audio states) under "denoised"."""
    module, functions = STAGES[name]
    record = {"calls": [], "denoised": []}
    for function in functions:
        original = getattr(module, function)
        signature = inspect.signature(original)

        def spy(*args, _original=original, _signature=signature, _function=function, **kwargs):
            bound = _signature.bind(*args, **kwargs)
            bound.apply_defaults()
            record["calls"].append((_function, bound.arguments["reference"]))
            result = _original(*args, **kwargs)
            if _function == "denoise":
                record["denoised"].append(result)
            return result

        monkeypatch.setattr(module, function, spy)
    return record


def _run(pipe, name: str, reference: str):
    return pipe(**CALLS[name](), reference=reference, generator=torch.Generator().manual_seed(0))


def _both(pipes, monkeypatch, name: str):
    """The small call under "1.2" and under "1.0": their outputs and the states each `denoise` call returned (per
    run, in call order). Asserts that every stage function ran and received the call's value."""
    pipe, record, runs = pipes(name), _spy_stages(monkeypatch, name), []
    for reference in ("1.2", "1.0"):
        record["calls"].clear(), record["denoised"].clear()
        output = _run(pipe, name, reference)
        assert {function for function, _ in record["calls"]} == set(STAGES[name][1]), record["calls"]
        assert {value for _, value in record["calls"]} == {reference}, record["calls"]
        runs.append((output, list(record["denoised"])))
    return runs


def _largest_change(new_states, old_states, stream: int) -> float:
    """The largest |difference| between the two runs' denoised latents of one stream (0 video, 1 audio), all stages."""
    return max(float((new[stream].latent - old[stream].latent).abs().max()) for new, old in zip(new_states, old_states))


def test_every_new_pipeline_takes_reference_defaulting_to_1_2():
    for name in PIPELINES.values():
        parameter = inspect.signature(getattr(ltx2_diffusers, name).__call__).parameters["reference"]
        assert parameter.default == presets.DEFAULT_REFERENCE == "1.2", name
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY, name


# A difference "> 1e-5" is far above float32 rounding (~1e-7 on these O(1) latents); the tiny model's small weights
# (std 0.05) make the audio<->video coupling, and so the change, small.


def test_extend_generates_other_latents_and_keeps_the_clip(pipes, monkeypatch):
    (new, new_states), (old, old_states) = _both(pipes, monkeypatch, "extend")
    assert new.frames.shape == old.frames.shape == (1, 17, 64, 64, 3)
    np.testing.assert_array_equal(new.frames[0, :9], old.frames[0, :9])  # the input clip, exactly, in both
    torch.testing.assert_close(new.audio[0, :, :9000], old.audio[0, :, :9000], rtol=0, atol=0)
    assert np.abs(new.frames[0, 9:] - old.frames[0, 9:]).max() > 1e-3  # the new frames
    assert _largest_change(new_states, old_states, 0) > 1e-5 and _largest_change(new_states, old_states, 1) > 1e-5


def test_video_to_audio_generates_another_soundtrack_for_the_same_video(pipes, monkeypatch):
    (new, new_states), (old, old_states) = _both(pipes, monkeypatch, "v2a")
    assert torch.equal(new.frames, old.frames)  # the clip's encoded latent, frozen in both
    assert (new.audio - old.audio).abs().max() > 1e-5 and _largest_change(new_states, old_states, 1) > 1e-5


def test_dub_it_differs_in_both_streams(pipes, monkeypatch):
    (new, new_states), (old, old_states) = _both(pipes, monkeypatch, "dubit")
    assert new.frames.shape == old.frames.shape == (1, 128, 2, 2, 2)
    assert (new.frames - old.frames).abs().max() > 1e-4 and (new.audio - old.audio).abs().max() > 1e-5


def test_text_to_audio_is_equal_with_the_same_negative_prompt(pipes, monkeypatch):
    (new, _), (old, _) = _both(pipes, monkeypatch, "t2a")
    assert torch.equal(new.audio, old.audio)  # why: the module docstring


def test_hdr_is_equal_up_to_the_noisers_rounding(pipes, monkeypatch):
    (new, _), (old, _) = _both(pipes, monkeypatch, "hdr")
    assert new.frames.shape == (1, 128, 2, 4, 4)
    torch.testing.assert_close(new.frames, old.frames, rtol=1e-5, atol=1e-5)


class _Stop(Exception):
    pass


@pytest.mark.parametrize("name", ["extend", "t2a"])
@pytest.mark.parametrize("reference", ["1.2", "1.0"])
def test_default_negative_prompt_is_the_releases(pipes, monkeypatch, name, reference):
    seen = {}

    def spy(text_encoder, tokenizer, connectors, texts, **kwargs):
        seen.update(texts=list(texts), reference=kwargs["reference"])
        raise _Stop

    monkeypatch.setattr(pipeline_utils, "encode_prompts", spy)
    kwargs = {**CALLS[name](), "video_guidance": GuidanceScales(cfg=2.0), "audio_guidance": GuidanceScales(cfg=2.0)}
    kwargs.pop("negative_prompt", None)
    if name == "t2a":
        kwargs.pop("video_guidance")
    with pytest.raises(_Stop):
        pipes(name)(**kwargs, reference=reference)
    assert seen == {"texts": [kwargs["prompt"], presets.default_negative_prompt(reference)], "reference": reference}


@pytest.mark.parametrize("name", list(PIPELINES))
def test_a_bad_value_is_refused_before_any_model_runs(pipes, monkeypatch, name):
    pipe = pipes(name)
    monkeypatch.setattr(pipeline_utils, "encode_prompts", lambda *a, **k: pytest.fail("encoded"))
    monkeypatch.setattr(pipe.vae, "forward", lambda *a, **k: pytest.fail("encoded"))
    monkeypatch.setattr(pipe.audio_vae, "encode_waveform", lambda *a, **k: pytest.fail("encoded"))
    with pytest.raises(ValueError, match=r"reference='1\.1' is not a reference version: pass '1\.2' .* or '1\.0'"):
        _run(pipe, name, "1.1")


@pytest.fixture(scope="module")
def cli_inputs(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("cli_reference")
    return {
        "clip": write_clip(folder / "clip.mp4"),
        "shot": write_clip(folder / "shot.mp4", size=128, sample_rate=None),
        "ic": write_lora(folder / "ic.safetensors", metadata={"reference_downscale_factor": "1"}),
        "hdr": write_lora(
            folder / "hdr.safetensors", metadata={"reference_downscale_factor": "2", "hdr_transform": "logc3"}
        ),
    }


class _FakeHDRPipeline:
    """What `run_hdr` loads, in place of the model: records its call's keywords, then stops the run."""

    latent_upsampler = object()

    def __init__(self, seen: dict):
        self.seen = seen

    def __call__(self, *args, **kwargs):
        self.seen.update(kwargs)
        raise ValueError("stop here")


@pytest.mark.parametrize("name", ["extend", "video-to-audio", "text-to-audio", "dub-it", "hdr"])
def test_cli_reference_version_reaches_the_pipeline(cli_inputs, tmp_path, monkeypatch, capsys, name):
    """The flag becomes the call's `reference=`, which the real pipeline class accepts (`run.check_call` checks the
    keyword against its signature before loading); left out, it is not passed. No model is loaded: the run stops
    where the pipeline would be called."""
    from ltx2_diffusers.cli import hdr as hdr_cli
    from ltx2_diffusers.cli import run as run_cli

    seen = {}

    def stop(args, c, cls, kw, *rest):
        seen.update({keyword: value for keyword, value, _ in kw})
        raise ValueError("stop here")

    monkeypatch.setattr(run_cli, "_run", stop)
    monkeypatch.setattr(hdr_cli, "load_pipeline", lambda *args, **kwargs: _FakeHDRPipeline(seen))
    monkeypatch.setattr(hdr_cli, "prepare", lambda *args, **kwargs: None)
    clip = str(cli_inputs["clip"])
    out = str(tmp_path / {"hdr": "out", "text-to-audio": "out.wav"}.get(name, "out.mp4"))
    extra = {
        "extend": ["--video", clip, "--new-frames", "8", "--context-frames", "9"],
        "video-to-audio": ["--video", clip],
        "text-to-audio": ["--frames", "9"],
        "dub-it": ["--ic-lora", str(cli_inputs["ic"]), "--reference-video", clip, "--height", "64", "--width", "64"],
        "hdr": ["--input", str(cli_inputs["shot"]), "--hdr-lora", str(cli_inputs["hdr"]), "--frames", "9"],
    }[name]
    argv = [name, "a cat", "-o", out, "--model", "tiny", *extra]
    assert main([*argv, "--reference-version", "1.0"]) == 2
    assert "stop here" in capsys.readouterr().err and seen["reference"] == "1.0"
    seen.clear()
    assert main(argv) == 2 and "stop here" in capsys.readouterr().err
    assert seen and "reference" not in seen  # left out: the pipeline's default applies
