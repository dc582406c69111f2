"""validation.py: one table of bad calls, each refused before any work with a message that names the argument and
the fix; good calls pass and return the batch size; today's size messages are kept word for word."""

import math
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from ltx2_diffusers.pipelines import validation
from ltx2_diffusers.pipelines.guidance import GuidanceScales, GuidanceSchedule
from ltx2_diffusers.pipelines.validation import (
    check_call_inputs,
    check_output_path,
    check_video_size,
    estimate_work,
)

GOOD = {"prompt": "a cat", "height": 64, "width": 96, "num_frames": 9, "frame_rate": 24.0}
EMBEDS = SimpleNamespace(shape=(1, 8, 16), dtype="float32")  # tensor-like: validation is torch-free
GENERATOR = torch.Generator().manual_seed(0)


@pytest.fixture(scope="module")
def image_path(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("media")
    (folder / "face.png").write_bytes(b"\x89PNG not really")  # existence is what validation checks
    return str(folder / "face.png")


IMG = "IMAGE"  # replaced by the image_path fixture in the test

# (id, overrides, error, the message: it must start with the argument's name)
BAD_CALLS = [
    ("prompt_none", {"prompt": None}, ValueError, r"prompt is None: pass a string or a list of strings"),
    ("prompt_int", {"prompt": 123}, TypeError, r"prompt must be a string or a list of strings, got int 123"),
    ("prompt_empty_list", {"prompt": []}, ValueError, r"prompt is an empty list: pass at least one prompt"),
    ("prompt_item", {"prompt": ["a", 5]}, TypeError, r"prompt\[1\] is int 5: every prompt must be a string"),
    ("prompt_and_embeds", {"prompt_embeds": EMBEDS}, ValueError, r"prompt and prompt_embeds were given: pass one"),
    ("embeds_ndim", {"prompt": None, "prompt_embeds": SimpleNamespace(shape=(8, 16), dtype="f")}, TypeError,
     r"prompt_embeds must be the PromptEmbeddings that pipe.encode_prompt\(prompt\) returns, got SimpleNamespace"),
    ("enhance_embeds", {"prompt": None, "prompt_embeds": EMBEDS, "enhance_prompt": True}, ValueError,
     r"enhance_prompt rewrites a prompt string: pass prompt=, not prompt_embeds="),
    ("negative_int", {"negative_prompt": 123}, TypeError, r"negative_prompt must be a string or a list of strings"),
    ("negative_count", {"prompt": ["a", "b", "c"], "negative_prompt": ["x", "y"]}, ValueError,
     r"negative_prompt has 2 entries for 3 prompts: pass one, or one per prompt"),
    ("negative_and_embeds", {"negative_prompt": "x", "negative_prompt_embeds": EMBEDS}, ValueError,
     r"negative_prompt and negative_prompt_embeds were given: pass one"),
    ("videos_zero", {"num_videos_per_prompt": 0}, ValueError, r"num_videos_per_prompt=0 must be >= 1"),
    ("videos_float", {"num_videos_per_prompt": 1.5}, TypeError, r"num_videos_per_prompt=1\.5 is float, not an int"),
    ("height_str", {"height": "64"}, TypeError, r"height='64' is not an int \(a string\): pass the number, height=64"),
    ("height_100", {"height": 100}, ValueError, r"height=100 is not a positive multiple of 32 .* Use 96 or 128\."),
    ("height_bool", {"height": True}, TypeError, r"height=True is bool, not an int"),
    ("width_zero", {"width": 0}, ValueError, r"width=0 must be >= 1"),
    ("width_float", {"width": 96.0}, TypeError, r"width=96\.0 is float, not an int"),
    ("width_two_stage", {"width": 96, "size_multiple": 64}, ValueError,
     r"width=96 is not a positive multiple of 64 \(the two-stage pipelines generate at half size .* Use 64 or 128"),
    ("frames_120", {"num_frames": 120}, ValueError, r"num_frames=120 is not of the form 8\*k \+ 1, .* Use 113 or 121"),
    ("frames_zero", {"num_frames": 0}, ValueError, r"num_frames=0 must be >= 1"),
    ("frames_str", {"num_frames": "121"}, TypeError, r"num_frames='121' is not an int \(a string\)"),
    ("fps_zero", {"frame_rate": 0}, ValueError, r"frame_rate=0 must be > 0 frames per second"),
    ("fps_inf", {"frame_rate": math.inf}, ValueError, r"frame_rate=inf must be a finite number"),
    ("fps_nan", {"frame_rate": math.nan}, ValueError, r"frame_rate=nan must be a finite number"),
    ("fps_str", {"frame_rate": "24"}, TypeError, r"frame_rate='24' is not a number \(a string\)"),
    ("strength_high", {"image": IMG, "image_strength": 1.5}, ValueError, r"image_strength=1\.5 is outside \[0, 1\]"),
    ("strength_alone", {"image_strength": 0.5}, ValueError, r"image_strength=0\.5 was given without an image"),
    ("image_missing", {"image": "/nonexistent/face.png"}, ValueError, r"image='/nonexistent/face\.png': no such file"),
    ("image_dir", {"image": "/"}, ValueError, r"image='/' is a directory: pass an image file inside it"),
    ("image_int", {"image": 5}, TypeError, r"image must be a file path, a PIL image, a numpy array or a tensor"),
    ("crf_negative", {"image_crf": -1}, ValueError, r"image_crf=-1 must be >= 0"),
    ("crf_60", {"image_crf": 60}, ValueError, r"image_crf=60 is above 51"),
    ("keyframes_one_tuple", {"keyframes": (IMG, 0, 1.0)}, TypeError,
     r"keyframes looks like one \(image, frame_index, strength\) tuple: wrap it in a list"),
    ("keyframe_pair", {"keyframes": [(IMG, 0)]}, ValueError,
     r"keyframes\[0\] must be an \(image, frame_index, strength\) tuple"),
    ("keyframe_past_end", {"keyframes": [(IMG, 0, 1.0), (IMG, 9, 1.0)]}, ValueError,
     r"keyframes\[1\] frame_index=9 is past the clip's last frame \(8 for num_frames=9\)"),
    ("keyframe_negative", {"keyframes": [(IMG, -1, 1.0)]}, ValueError, r"keyframes\[0\] frame_index=-1 must be >= 0"),
    ("keyframe_float_index", {"keyframes": [(IMG, 1.5, 1.0)]}, TypeError, r"keyframes\[0\] frame_index=1\.5 is float"),
    ("keyframe_strength", {"keyframes": [(IMG, 0, 2.0)]}, ValueError, r"keyframes\[0\] strength=2\.0 is outside"),
    ("keyframe_nan", {"keyframes": [(IMG, 0, math.nan)]}, ValueError, r"keyframes\[0\] strength=nan must be a finite number"),
    ("keyframe_image", {"keyframes": [("/no/such.png", 0, 1.0)]}, ValueError, r"keyframes\[0\] image='/no/such\.png'"),
    ("keyframes_str", {"keyframes": "face.png"}, TypeError, r"keyframes must be a list of \(image, frame_index, str"),
    ("steps_zero", {"num_inference_steps": 0}, ValueError, r"num_inference_steps=0 must be >= 1"),
    ("steps_huge", {"num_inference_steps": 5000}, ValueError, r"num_inference_steps=5000 is above 1000 .*allow_large"),
    ("steps_str", {"num_inference_steps": "30"}, TypeError, r"num_inference_steps='30' is not an int"),
    ("sigmas_end", {"sigmas": [1.0, 0.5]}, ValueError, r"sigmas=\[1\.0, 0\.5\] must end at 0\.0.*append 0\.0"),
    ("sigmas_order", {"sigmas": [1.0, 0.5, 0.7, 0.0]}, ValueError, r"sigmas=\[.*\] must decrease strictly"),
    ("sigmas_steps", {"sigmas": [1.0, 0.5, 0.0], "num_inference_steps": 30}, ValueError,
     r"num_inference_steps=30 disagrees with sigmas, which has 2 steps"),
    ("sigmas_range", {"sigmas": [1.2, 0.0]}, ValueError, r"sigmas\[0\]=1\.2 is outside \[0\.0, 1\.0\]"),
    ("sigmas_short", {"sigmas": [0.0]}, ValueError, r"sigmas=\[0\.0\] needs at least 2 values"),
    ("sigmas_str", {"sigmas": "1,0"}, TypeError, r"sigmas must be a list of noise levels"),
    ("sigmas_nan", {"sigmas": [math.nan, 0.0]}, ValueError, r"sigmas\[0\]=nan must be a finite number"),
    ("cfg_negative", {"video_guidance": GuidanceScales(cfg=-1.0)}, ValueError,
     r"video_guidance\.cfg=-1\.0 is negative.*use a value >= 0"),
    ("rescale_high", {"audio_guidance": GuidanceScales(rescale=1.5)}, ValueError,
     r"audio_guidance\.rescale=1\.5 is outside \[0\.0, 1\.0\]"),
    ("schedule_bin", {"video_guidance": GuidanceSchedule.from_dict({1.0: GuidanceScales(), 0.5: GuidanceScales(modality=-2.0)})},
     ValueError, r"video_guidance\.bins\[1\]\.modality=-2\.0 is negative"),
    ("guidance_str", {"video_guidance": "strong"}, TypeError, r"video_guidance must be a GuidanceScales or"),
    ("kw_negative", {"guidance_keywords": {"guidance_scale": -3}}, ValueError, r"guidance_scale=-3 is negative"),
    ("kw_nan", {"guidance_keywords": {"audio_stg_scale": math.nan}}, ValueError, r"audio_stg_scale=nan must be"),
    ("kw_both", {"video_guidance": GuidanceScales(), "guidance_keywords": {"guidance_scale": 3.0}}, ValueError,
     r"video_guidance and guidance_scale were both given for one modality"),
    ("kw_unknown", {"guidance_keywords": {"cfg_scale": 3.0}}, TypeError, r"unknown guidance keyword 'cfg_scale'"),
    ("kw_rescale", {"guidance_keywords": {"audio_guidance_rescale": 2.0}}, ValueError,
     r"audio_guidance_rescale=2\.0 is above 1"),
    ("kw_blocks", {"guidance_keywords": {"spatio_temporal_guidance_blocks": 28}}, TypeError,
     r"spatio_temporal_guidance_blocks must be a list of transformer block indices"),
    ("output_type", {"output_type": "mp4"}, ValueError, r"output_type='mp4' is not one of 'pil', 'np', 'pt', 'latent'"),
    ("callback_int", {"callback_on_step_end": 5}, TypeError, r"callback_on_step_end must be callable"),
    ("callback_names", {"callback_on_step_end_tensor_inputs": ["latents"]}, ValueError,
     r"callback_on_step_end_tensor_inputs has \['latents'\], which this pipeline does not pass"),
    ("callback_str", {"callback_on_step_end_tensor_inputs": "video_latents"}, TypeError,
     r"callback_on_step_end_tensor_inputs must be a list of names"),
    ("generators", {"generator": [GENERATOR, GENERATOR]}, ValueError,
     r"generator is a list of 2 generators for a batch of 1"),
    ("generator_seed", {"generator": 42}, TypeError, r"generator must be a torch\.Generator .*manual_seed\(42\)"),
    ("return_dict", {"return_dict": "yes"}, TypeError, r"return_dict must be True or False, got 'yes'"),
]  # fmt: skip

# requests refused by the work estimate: the message gives the numbers and the escape
TOO_LARGE = [
    ("frames_100001", {"num_frames": 100001, "height": 512, "width": 768},
     r"the clip makes 4,800,384 video tokens per sample \(12501 latent frames x 16 x 24\), above 524,288"),
    ("8192_square", {"height": 8192, "width": 8192, "num_frames": 121},
     r"the clip makes 1,048,576 video tokens per sample \(16 latent frames x 256 x 256\)"),
    ("batch_bytes", {"height": 1024, "width": 1536, "num_frames": 121, "num_videos_per_prompt": 200},
     r"the decoded frames of the batch take 425\.4 GiB as float32, above 64 GiB\. Lower the batch .* = 200\)"),
]  # fmt: skip


def _call(overrides: dict, image: str) -> dict:
    def fill(value):
        if value == IMG:
            return image
        if isinstance(value, list | tuple) and not isinstance(value, str):
            return type(value)(fill(v) for v in value)
        return value

    return {**GOOD, **{key: fill(value) for key, value in overrides.items()}}


def test_the_table_is_large_enough():
    assert len(BAD_CALLS) + len(TOO_LARGE) >= 60


@pytest.mark.parametrize(("case", "overrides", "error", "match"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_call_names_the_argument(image_path, case, overrides, error, match):
    with pytest.raises(error, match=match) as raised:
        check_call_inputs(**_call(overrides, image_path))
    message = str(raised.value)
    named = [key for key in (*overrides, "guidance_scale", "audio_stg_scale", "cfg_scale", "audio_guidance_rescale",
                             "spatio_temporal_guidance_blocks") if key in message]  # fmt: skip
    assert named, f"{case}: the message does not name the argument: {message}"


@pytest.mark.parametrize(("case", "overrides", "match"), TOO_LARGE, ids=[c[0] for c in TOO_LARGE])
def test_absurd_requests_are_refused_with_numbers_unless_allowed(image_path, case, overrides, match):
    with pytest.raises(ValueError, match=match + r".*allow_large=True"):
        check_call_inputs(**_call(overrides, image_path))
    assert check_call_inputs(**_call(overrides, image_path), allow_large=True) >= 1


# ----------------------------------------------------------------------------------------------------------------------
# Good calls


def test_good_calls_return_the_batch_size(image_path):
    assert check_call_inputs(**GOOD) == 1
    generators = [torch.Generator().manual_seed(i) for i in range(6)]
    full = check_call_inputs(
        **{**GOOD, "prompt": ["a", "b"]},
        negative_prompt="blurry",
        num_videos_per_prompt=3,
        image=image_path,
        image_strength=0.8,
        image_crf=0,
        keyframes=[(image_path, 8, 0.5), (torch.zeros(3, 64, 96), 0, 1.0)],
        sigmas=torch.tensor([1.0, 0.5, 0.0]),
        num_inference_steps=2,
        video_guidance=GuidanceSchedule.from_dict({1.0: GuidanceScales(cfg=3.0), 0.5: GuidanceScales()}),
        guidance_keywords={"audio_guidance_scale": 7.0, "audio_guidance_rescale": 0.7},
        output_type="latent",
        callback_on_step_end=lambda *args: {},
        callback_on_step_end_tensor_inputs=["video_latents", "audio_latents"],
        generator=generators,
    )
    assert full == 6
    embeds = SimpleNamespace(shape=(2, 8, 16), dtype="float32")
    assert check_call_inputs(**{**GOOD, "prompt": None}, prompt_embeds=embeds, generator=GENERATOR) == 2


def test_size_messages_word_for_word():
    for (height, width, frames), message in (
        ((100, 96, 9), "height=100 is not a positive multiple of 32 (the video VAE compresses space 32x). Use 96 or 128."),
        ((64, 50, 9), "width=50 is not a positive multiple of 32 (the video VAE compresses space 32x). Use 32 or 64."),
        ((64, 96, 120), "num_frames=120 is not of the form 8*k + 1, which the causal video VAE needs (the first latent "
                        "frame holds 1 pixel frame, each later one 8). Use 113 or 121."),
        ((64, 96, 2), "num_frames=2 is not of the form 8*k + 1, which the causal video VAE needs (the first latent "
                      "frame holds 1 pixel frame, each later one 8). Use 1 or 9."),
    ):  # fmt: skip
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            check_video_size(height, width, frames)
    with pytest.raises(ValueError, match="generate at half size first"):
        check_video_size(96, 128, 9, multiple=64)


class _Embeds:
    """Duck-typed PromptEmbeddings: a video_context and a length."""

    video_context = None

    def __len__(self):
        return 3


def test_prompt_embeddings_count_as_prompts():
    assert check_call_inputs(**{**GOOD, "prompt": None}, prompt_embeds=_Embeds(), num_videos_per_prompt=2) == 6
    with pytest.raises(ValueError, match="negative_prompt_embeds has batch 3 for 2 prompts"):
        check_call_inputs(**GOOD | {"prompt": ["a", "b"]}, negative_prompt_embeds=_Embeds())


def test_allow_large_is_named_as_the_caller_spells_it():
    with pytest.raises(ValueError, match="pass --allow-large to try anyway"):
        big = {"height": 2176, "width": 3840, "num_frames": 1001}
        check_call_inputs(**{**GOOD, **big}, names={"allow_large": "--allow-large"})
    with pytest.raises(ValueError, match="pass allow_large=True to run that many anyway"):
        check_call_inputs(**GOOD, num_inference_steps=1001)


def test_cli_flag_names_in_messages():
    flags = {"num_frames": "--frames", "frame_rate": "--fps", "image_strength": "--image-strength", "image": "--image"}
    with pytest.raises(ValueError, match=r"^--frames=120 is not of the form 8\*k \+ 1"):
        check_call_inputs(**{**GOOD, "num_frames": 120}, names=flags)
    with pytest.raises(ValueError, match=r"^--fps=-24\.0 must be > 0"):
        check_call_inputs(**{**GOOD, "frame_rate": -24.0}, names=flags)
    with pytest.raises(ValueError, match=r"^--image-strength=0\.5 was given without an --image"):
        check_call_inputs(**GOOD, image_strength=0.5, names=flags)


def test_work_estimate_of_the_default_two_stage_clip():
    estimate = estimate_work(1024, 1536, 121, 24.0)
    assert (estimate.latent_frames, estimate.latent_height, estimate.latent_width) == (16, 32, 48)
    assert estimate.video_tokens == 24576 and estimate.audio_tokens == 126  # spec §11
    assert estimate.output_bytes == 121 * 1024 * 1536 * 12
    # the largest advertised clip, 4K for 20 s, passes
    assert check_call_inputs(**{**GOOD, "height": 2176, "width": 3840, "num_frames": 481}) == 1


# ----------------------------------------------------------------------------------------------------------------------
# Output paths (the CLI checks them before loading anything)


def test_output_path(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    assert check_output_path(tmp_path / "new" / "deeper" / "clip.mp4") == tmp_path / "new" / "deeper" / "clip.mp4"
    assert not (tmp_path / "new").exists()  # checks create nothing
    cases = [
        ("", r"^-o is empty: pass the file to write, e.g\. clip\.mp4"),
        (tmp_path, r"^-o='.*' is a directory: pass a file name inside it"),
        (tmp_path / "clip.gif", r"^-o='.*clip\.gif': the file is written as \.mp4, so its name must end in"),
        (tmp_path / "notes.txt" / "clip.mp4", r"^-o='.*': cannot write under '.*notes\.txt' \(not a writable folder\)"),
    ]
    for path, match in cases:
        with pytest.raises(ValueError, match=match):
            check_output_path(path, name="-o")


def test_validation_module_imports_neither_torch_nor_diffusers():
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('standalone_validation', {validation.__file__!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "assert module.check_call_inputs(prompt='a', height=64, width=64, num_frames=9, frame_rate=24.0) == 1\n"
        "print(sorted(name for name in ('torch', 'diffusers', 'numpy', 'PIL') if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"
    assert Path(validation.__file__).read_text().count("\n") < 600
