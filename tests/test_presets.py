"""presets.py: torch-free, the values today's pipelines use (so wiring it in changes no output), the reference's
numbers (spec §6.1, §6.2, §9), and the two vocabularies with their errors."""

import dataclasses
import inspect
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from ltx2_diffusers.pipelines import presets
from ltx2_diffusers.pipelines.presets import (
    HQ_PRESET,
    GuidancePreset,
    guidance_with_scalars,
    hq_preset,
    kind_from_name,
    model_version_from_config,
    parse_kind,
    parse_model_version,
    retake_preset,
    sampling_preset,
)

PRESETS_FILE = Path(presets.__file__)


def test_presets_module_imports_neither_torch_nor_diffusers():
    # Loaded from its file, so the package's own __init__ (which imports diffusers) does not blur the result.
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('standalone_presets', {str(PRESETS_FILE)!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "assert module.sampling_preset('2.3').num_inference_steps == 30\n"
        "print(sorted(name for name in ('torch', 'diffusers', 'numpy', 'PIL') if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


# ----------------------------------------------------------------------------------------------------------------------
# The pipelines take their defaults from here


def _defaults(function) -> dict:
    return {name: p.default for name, p in inspect.signature(function).parameters.items()}


def test_distilled_presets_are_the_distilled_scheduler():
    from ltx2_diffusers.schedulers.scheduling_ltx2 import LTX2Scheduler

    for version in ("2.0", "2.3"):
        preset = sampling_preset(version, "distilled")
        assert preset.num_inference_steps == 8 and preset.video_guidance == preset.audio_guidance == GuidancePreset()
        assert list(preset.sigmas) == LTX2Scheduler.distilled().config.fixed_sigmas
        assert not preset.needs_negative


@pytest.mark.parametrize(
    "module, name",
    [
        ("pipeline_ltx2_av", "LTX2AVPipeline"),
        ("pipeline_ltx2_av_two_stage", "LTX2AVTwoStagePipeline"),
        ("pipeline_ltx2_av_two_stage_hq", "LTX2AVTwoStageHQPipeline"),
        ("pipeline_ltx2_av_ic_lora", "LTX2AVICLoRAPipeline"),
        ("pipeline_ltx2_av_audio_to_video", "LTX2AVAudioToVideoPipeline"),
        ("pipeline_ltx2_av_retake", "LTX2AVRetakePipeline"),
    ],
)
def test_call_defaults_are_none_and_filled_from_the_presets(module, name):
    import importlib

    call = _defaults(getattr(importlib.import_module(f"ltx2_diffusers.pipelines.{module}"), name).__call__)
    for argument in ("height", "width", "num_frames", "frame_rate", "image_crf", "negative_prompt",
                     "num_inference_steps", "stage_2_sigmas", "stage_1_adapter_scale", "stage_2_adapter_scale"):  # fmt: skip
        assert call.get(argument) is None, argument
    assert call["allow_large"] is False


def test_the_cli_and_the_pipelines_share_one_image_crf():
    from ltx2_diffusers.cli import parser

    assert parser.DEFAULT_IMAGE_CRF is presets.DEFAULT_IMAGE_CRF


def test_hq_and_retake_presets():
    hq = hq_preset("2.0")
    assert (hq.num_inference_steps, hq.sampler, hq.two_stage_height, hq.two_stage_width) == (15, "res2s", 1088, 1920)
    assert (hq.stage_1_adapter_scale, hq.stage_2_adapter_scale) == (0.25, 0.5) and hq.model_version == "2.0"
    assert hq.video_guidance == GuidancePreset(cfg=3.0, stg=0.0, modality=3.0, rescale=0.45)
    assert hq.audio_guidance == GuidancePreset(cfg=7.0, stg=0.0, modality=3.0, rescale=1.0)
    assert HQ_PRESET.stage_2_sigmas == (0.909375, 0.725, 0.421875, 0.0)
    dev, distilled = retake_preset("2.3", "dev"), retake_preset("2.3", "distilled")
    assert dev.num_inference_steps == 40 and dev.negative_prompt == distilled.negative_prompt == ""
    assert dev.video_guidance == sampling_preset("2.3").video_guidance  # guidance still by model version
    assert distilled.num_inference_steps == 8 and distilled.sigmas == presets.DISTILLED_SIGMAS


@pytest.mark.parametrize(("transformer", "expected"), [((True, True), "2.3"), ((False, False), "2.3"),
                                                       ((False, True), "2.0")])  # fmt: skip
def test_model_version_from_config(transformer, expected):
    gated_attn, use_prompt_embeddings = transformer
    config = SimpleNamespace(gated_attn=gated_attn, use_prompt_embeddings=use_prompt_embeddings)
    assert model_version_from_config(config) == model_version_from_config(vars(config)) == expected


@pytest.mark.parametrize(
    "name, kind",
    [("Lightricks/LTX-2.3-Distilled", "distilled"), ("/x/ltx-2.3-22b-distilled.safetensors", "distilled"),
     ("ltx-2", "dev"), ("a/", "dev"), ("distilled/ltx-2", "dev")],
)  # fmt: skip
def test_kind_from_name(name, kind):
    assert kind_from_name(name) == kind


# ----------------------------------------------------------------------------------------------------------------------
# The reference's numbers, written out (they outlive today's constants)


def test_reference_values_spec_6_2():
    ltx2, ltx23, ltx25 = (sampling_preset(v) for v in ("2.0", "2.3", "2.5"))
    assert (ltx2.num_inference_steps, ltx23.num_inference_steps, ltx25.num_inference_steps) == (40, 30, 30)
    assert ltx2.video_guidance == GuidancePreset(cfg=3.0, stg=1.0, modality=3.0, rescale=0.7, stg_blocks=(29,))
    assert ltx2.audio_guidance == GuidancePreset(cfg=7.0, stg=1.0, modality=3.0, rescale=0.7, stg_blocks=(29,))
    assert ltx23.video_guidance.stg_blocks == ltx23.audio_guidance.stg_blocks == (28,)
    assert (ltx2.image_crf, ltx23.image_crf, ltx25.image_crf) == (33, 33, 18)
    assert (ltx2.height, ltx2.width, ltx2.num_frames, ltx2.frame_rate, ltx2.seed) == (512, 768, 121, 24.0, 10)
    assert HQ_PRESET.video_guidance == GuidancePreset(cfg=3.0, stg=0.0, modality=3.0, rescale=0.45)
    assert HQ_PRESET.audio_guidance == GuidancePreset(cfg=7.0, stg=0.0, modality=3.0, rescale=1.0)
    assert (HQ_PRESET.height, HQ_PRESET.width) == (544, 960)
    assert presets.DISTILLED_SIGMAS == (1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875, 0.0)
    assert presets.STAGE_2_DISTILLED_SIGMAS == (0.909375, 0.725, 0.421875, 0.0)
    assert presets.NEGATIVE_PROMPT_1_0.startswith("blurry, out of focus, overexposed, underexposed")
    assert presets.NEGATIVE_PROMPT_1_0.endswith("stylized filters, or AI artifacts.")
    assert len(presets.NEGATIVE_PROMPT_1_0.split(", ")) == 58
    assert "mismatched lip sync, silent or muted audio, distorted voice" in presets.NEGATIVE_PROMPT_1_0
    assert sampling_preset("2.5", "distilled").sampler == "euler_ancestral"
    assert sampling_preset("2.3", "distilled").sampler == "euler"
    assert hq_preset("2.5").image_crf == 18 and hq_preset().image_crf == 33


def test_presets_are_frozen():
    preset = sampling_preset("2.3")
    with pytest.raises(dataclasses.FrozenInstanceError):
        preset.num_inference_steps = 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        preset.video_guidance.cfg = 5.0
    assert sampling_preset("2.3").num_inference_steps == 30


def test_guidance_preset_as_kwargs_and_needs_negative():
    preset = sampling_preset("2.0").video_guidance
    assert preset.as_kwargs() == {"cfg": 3.0, "stg": 1.0, "modality": 3.0, "rescale": 0.7, "stg_blocks": (29,)}
    assert preset.needs_negative and not GuidancePreset().needs_negative


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"cfg": -1.0}, r"GuidancePreset\.cfg must be a finite number >= 0, got -1\.0"),
        ({"rescale": float("nan")}, r"GuidancePreset\.rescale"),
        ({"stg_blocks": [28]}, r"stg_blocks must be a tuple"),
        ({"stg_blocks": (-1,)}, r"stg_blocks must be a tuple of block indices >= 0"),
    ],
)
def test_guidance_preset_refuses_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GuidancePreset(**kwargs)


def test_sampling_preset_refuses_inconsistent_rows():
    with pytest.raises(ValueError, match=r"num_inference_steps=5 but sigmas has 2 steps"):
        presets.SamplingPreset("2.3", "distilled", 5, GuidancePreset(), GuidancePreset(), sigmas=(1.0, 0.5, 0.0))
    with pytest.raises(ValueError, match=r"stage_2_sigmas must decrease strictly to 0\.0"):
        presets.SamplingPreset("2.3", "dev", 5, GuidancePreset(), GuidancePreset(), stage_2_sigmas=(0.9, 0.1))
    with pytest.raises(ValueError, match=r"expected a version in"):
        presets.SamplingPreset("2.1", "dev", 5, GuidancePreset(), GuidancePreset())


# ----------------------------------------------------------------------------------------------------------------------
# Vocabularies


@pytest.mark.parametrize(
    ("spelling", "version"),
    [
        ("2", "2.0"), ("2.0", "2.0"), (2, "2.0"), (2.0, "2.0"), ("ltx-2", "2.0"), ("LTX-2", "2.0"), ("ltx2", "2.0"),
        ("ltx-2-19b-dev", "2.0"), ("2.0.0", "2.0"), ("2.3", "2.3"), (2.3, "2.3"), (" LTX-2.3 ", "2.3"),
        ("ltx-2.3-22b-distilled", "2.3"), ("2.3.1", "2.3"), ("ltxv2.3", "2.3"), ("LTX 2.3", "2.3"),
        ("2.5", "2.5"), ("2.5-rc1", "2.5"), ("ltx-2.5", "2.5"),
    ],
)  # fmt: skip
def test_parse_model_version_spellings(spelling, version):
    assert parse_model_version(spelling) == version


@pytest.mark.parametrize(
    ("spelling", "error", "match"),
    [
        ("2.4", ValueError, r"model_version='2\.4' reads as LTX-2\.4, which has no preset: the known versions are"),
        ("3", ValueError, r"reads as LTX-3\.0, which has no preset"),
        (1.0, ValueError, r"reads as LTX-1\.0"),
        ("2-3", ValueError, r"model_version='2-3' is not a model version: use one of '2\.0', '2\.3', '2\.5'"),
        ("", ValueError, r"model_version='' is not a model version"),
        ("latest", ValueError, r"is not a model version"),
        ("v2", ValueError, r"is not a model version"),
        (None, TypeError, r"model_version must be a version string such as '2\.3'"),
        (True, TypeError, r"model_version must be a version string"),
        ((2, 3), TypeError, r"got tuple"),
    ],
)
def test_parse_model_version_errors(spelling, error, match):
    with pytest.raises(error, match=match):
        parse_model_version(spelling)


def test_parse_model_version_names_the_argument():
    with pytest.raises(ValueError, match=r"^--model-version='2\.9'"):
        parse_model_version("2.9", name="--model-version")


@pytest.mark.parametrize(
    ("spelling", "kind"), [("dev", "dev"), ("DEV", "dev"), (" Dev ", "dev"), ("distilled", "distilled"),
                           ("Distilled", "distilled"), ("distill", "distilled")]
)  # fmt: skip
def test_parse_kind_spellings(spelling, kind):
    assert parse_kind(spelling) == kind


@pytest.mark.parametrize(
    ("spelling", "error", "match"),
    [
        ("fast", ValueError, r"kind='fast' is not a checkpoint kind: use 'dev' .* or 'distilled'"),
        ("", ValueError, r"kind='' is not a checkpoint kind"),
        ("hq", ValueError, r"kind='hq'"),
        (None, TypeError, r"kind must be 'dev' or 'distilled', got NoneType"),
        (1, TypeError, r"got int 1"),
    ],
)
def test_parse_kind_errors(spelling, error, match):
    with pytest.raises(error, match=match):
        parse_kind(spelling)


def test_sampling_preset_takes_any_spelling():
    assert sampling_preset("LTX-2.3", "Distilled") is sampling_preset(2.3, "distilled")
    assert sampling_preset("ltx-2").model_version == "2.0"
    with pytest.raises(ValueError, match=r"kind='turbo'"):
        sampling_preset("2.3", "turbo")


def test_model_version_from_config_missing_key():
    with pytest.raises(ValueError, match=r"the transformer config has no 'gated_attn'"):
        model_version_from_config({"use_prompt_embeddings": True})
    with pytest.raises(ValueError, match=r"no 'use_prompt_embeddings'"):
        model_version_from_config(SimpleNamespace(gated_attn=False))


# ----------------------------------------------------------------------------------------------------------------------
# diffusers' scalar guidance keywords


def test_guidance_with_scalars_maps_diffusers_names():
    base = sampling_preset("2.3").video_guidance
    out = guidance_with_scalars(base, guidance_scale=4.0, stg_scale=0.0, guidance_rescale=0.5, stg_blocks=[27, 28])
    assert out == GuidancePreset(cfg=4.0, stg=0.0, modality=3.0, rescale=0.5, stg_blocks=(27, 28))
    assert guidance_with_scalars(base) == base


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"guidance_scale": -2.0}, r"^guidance_scale=-2\.0 must be a finite number >= 0"),
        ({"stg_scale": float("nan")}, r"^stg_scale=nan"),
        ({"modality_scale": "3"}, r"^modality_scale='3'"),
        ({"guidance_rescale": True}, r"^guidance_rescale=True"),
        ({"stg_blocks": 28}, r"spatio_temporal_guidance_blocks=28 must be a list"),
        ({"guidance_scale": -1.0, "prefix": "audio_"}, r"^audio_guidance_scale=-1\.0"),
    ],
)
def test_guidance_with_scalars_errors_name_the_keyword(kwargs, match):
    with pytest.raises(ValueError, match=match):
        guidance_with_scalars(GuidancePreset(), **kwargs)
