"""End to end, offline: every `ltx2-diffusers` subcommand with `--model tiny` writes a clip with H.264 video and AAC
audio that PyAV reads back; the flags reach the pipelines; Ctrl-C, NaN output and --help behave."""

import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from helpers.cli_media import write_clip, write_image, write_lora

from ltx2_diffusers.cli import COMMANDS, EXAMPLES, build_parser, main

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--model", "tiny", "--frames", "9", "--height", "64", "--width", "64"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    return {
        "image": write_image(folder / "first.png"),
        "clip": write_clip(folder / "clip.mp4"),
        "lora": write_lora(folder / "style.safetensors", seed=1),
        "distilled": write_lora(folder / "distilled.safetensors", seed=2),
        "ic": write_lora(folder / "ic.safetensors", seed=3, metadata={"reference_downscale_factor": "1"}),
    }


def _subcommand_argv(name: str, inputs: dict[str, Path]) -> list[str]:
    extra = {
        "generate": ["--steps", "1", "--image", str(inputs["image"]), "--lora", f"{inputs['lora']}:0.5"],
        "two-stage": ["--steps", "1", "--distilled-lora", f"{inputs['distilled']}:0.8", "--fp8"],  # a live adapter
        "distilled": ["--keyframe", f"{inputs['image']}:8:0.9", "--fp8"],  # FP8 emulated in float32 on CPU
        "hq": ["--steps", "2", "--distilled-lora", str(inputs["distilled"])],
        "ic-lora": ["--ic-lora", str(inputs["ic"]), "--reference", f"{inputs['clip']}:0.7"],
        "keyframes": ["--steps", "1", "--keyframe", f"{inputs['image']}:0", "--keyframe", f"{inputs['image']}:8"],
        "audio-to-video": ["--steps", "1", "--audio", str(inputs["clip"])],
        "retake": ["--steps", "1", "--video", str(inputs["clip"]), "--start", "0.1", "--end", "0.3"],
        "extend": ["--steps", "1", "--video", str(inputs["clip"]), "--new-frames", "8", "--context-frames", "9"],
        "video-to-audio": ["--steps", "1", "--video", str(inputs["clip"])],
        "dub-it": ["--ic-lora", str(inputs["ic"]), "--reference-video", str(inputs["clip"])],
    }[name]
    size = ["--model", "tiny"] if name in ("retake", "extend", "video-to-audio") else SMALL
    if name == "dub-it":
        size = ["--model", "tiny", "--height", "64", "--width", "64"]
    return [name, "a cat", *size, *extra]


def _read_back(path: Path) -> dict:
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        info = {
            "codecs": (video.codec_context.name, audio.codec_context.name),
            "size": (video.codec_context.width, video.codec_context.height),
            "rate": audio.rate,
            "channels": audio.codec_context.channels,
        }
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    with av.open(str(path)) as container:
        info["samples"] = sum(frame.samples for frame in container.decode(audio=0))
    info["frames"] = len(frames)
    info["std"] = float(np.std(np.stack(frames).astype(np.float32)))
    return info


@pytest.mark.parametrize("name", [name for name in COMMANDS if name not in ("text-to-audio", "hdr", "dfr")])  # WAV, EXR, DFR: own tests
def test_every_subcommand_writes_a_clip_with_sound(name, inputs, tmp_path, capsys):
    path = tmp_path / "out" / f"{name}.mp4"  # the folder does not exist yet: the CLI creates it
    assert main([*_subcommand_argv(name, inputs), "-o", str(path), "--seed", "3"]) == 0
    out = capsys.readouterr()
    frames, seconds = (17, "0.71") if name == "extend" else (9, "0.38")  # extend: the 9-frame clip + 8 new frames
    assert out.out.startswith(
        f"wrote {path}: {frames} frames of 64x64 at 24 fps ({seconds} s), stereo audio at 24000 Hz"
    ), out
    assert "denoising: 100%" in out.err
    info = _read_back(path)
    assert info["codecs"] == ("h264", "aac") and info["size"] == (64, 64) and info["frames"] == frames
    assert info["rate"] == 24000 and info["channels"] == 2
    # 9 frames at 24 fps: round(9 / 24 * 25) = 9 audio latents -> 33 mel frames -> 7920 samples (audio-to-video and
    # retake return the 0.375 s input track: 9000; extend the input's 9000 + 8000 new); AAC adds up to a frame of
    # padding and its priming
    assert 7920 - 1024 <= info["samples"] - (8000 if name == "extend" else 0) <= 9000 + 2048, info["samples"]
    assert info["std"] > 1.0  # random weights, but not a blank clip
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left beside it


def test_cli_convert_forwards_to_the_converter_script(tmp_path, capsys):
    """`ltx2-diffusers convert` is scripts/convert_checkpoint.py: a tiny folder to a single file and back."""
    from ltx2_diffusers.pipelines.tiny import build_tiny_pipeline

    build_tiny_pipeline(seed=2).save_pretrained(tmp_path / "folder")
    checkpoint = tmp_path / "tiny.safetensors"
    assert main(["convert", "--reverse", str(tmp_path / "folder"), str(checkpoint)]) == 0
    assert main(["convert", str(checkpoint), str(tmp_path / "back"), "--kind", "dev"]) == 0
    assert (tmp_path / "back" / "model_index.json").is_file() and checkpoint.stat().st_size > 0
    with pytest.raises(SystemExit) as stop:
        main(["convert", "--help"])
    assert stop.value.code == 0 and "--reverse" in capsys.readouterr().out  # the script's own help


def test_cli_loads_a_lightricks_single_file(tmp_path):
    """The tiny pipeline exported to the original single-file format, then generated from through --model FILE."""
    from ltx2_diffusers.conversion import convert_diffusers_to_original
    from ltx2_diffusers.pipelines.tiny import build_tiny_pipeline

    pipe = build_tiny_pipeline(seed=2)
    pipe.save_pretrained(tmp_path / "folder")
    pipe.text_encoder.save_pretrained(tmp_path / "gemma")
    pipe.tokenizer.save_pretrained(tmp_path / "gemma")
    checkpoint = tmp_path / "tiny.safetensors"
    convert_diffusers_to_original(tmp_path / "folder", checkpoint)

    argv = ["generate", "a cat", "-o", str(tmp_path / "sf.mp4"), "--model", str(checkpoint), "--frames", "9"]
    argv += [
        "--height",
        "64",
        "--width",
        "64",
        "--steps",
        "1",
        "--kind",
        "dev",
        "--text-encoder",
        str(tmp_path / "gemma"),
    ]
    assert main(argv) == 0
    with av.open(str(tmp_path / "sf.mp4")) as container:
        assert container.streams.video[0].frames == 9 and container.streams.audio[0].rate == 24000


# ----------------------------------------------------------------------------------------------------------------------
# Flags reach the pipeline


def _spy_call(monkeypatch, class_name: str = "LTX2AVPipeline") -> dict:
    """Replace the pipeline's __call__ by one that records its keywords and stops the run."""
    import ltx2_diffusers

    seen = {}

    def spy(self, **kwargs):
        seen.update(kwargs, pipe=self)
        raise ValueError("stop here")

    monkeypatch.setattr(getattr(ltx2_diffusers, class_name), "__call__", spy)
    return seen


def test_cli_flags_reach_the_pipeline(tmp_path, monkeypatch, inputs):
    seen = _spy_call(monkeypatch)
    argv = ["generate", "a cat", "-o", str(tmp_path / "i.mp4"), *SMALL, "--image", str(inputs["image"]), "--seed", "5"]
    argv += ["--image-crf", "0", "--image-strength", "0.8", "--enhance-prompt", "--negative-prompt", "ugly"]
    argv += ["--keyframe", f"{inputs['image']}:8:0.5", "--steps", "3", "--fps", "25"]
    assert main(argv) == 2
    assert (seen["image_crf"], seen["image_strength"], seen["negative_prompt"]) == (0, 0.8, "ugly")
    assert seen["enhance_prompt"] is True and seen["enhance_prompt_seed"] == 5
    assert (seen["num_frames"], seen["height"], seen["width"], seen["frame_rate"]) == (9, 64, 64, 25.0)
    assert seen["num_inference_steps"] == 3 and seen["image"].shape == (48, 64, 3)  # resized in the pipeline
    ((keyframe, frame, strength),) = seen["keyframes"]
    assert keyframe.shape == (48, 64, 3) and (frame, strength) == (8, 0.5)
    assert not (tmp_path / "i.mp4").exists()


def test_cli_defaults_reach_the_pipeline_as_its_own(tmp_path, monkeypatch):
    """Flags left out are not passed: the pipeline's defaults (steps, negative prompt, crf) apply."""
    seen = _spy_call(monkeypatch)
    assert main(["generate", "a cat", "-o", str(tmp_path / "d.mp4"), *SMALL]) == 2
    assert not {"num_inference_steps", "negative_prompt", "image", "image_crf", "enhance_prompt"} & set(seen)


def test_cli_lora_is_fused_and_distilled_lora_is_a_stage_2_adapter(tmp_path, monkeypatch, inputs):
    import torch

    from ltx2_diffusers.pipelines.tiny import build_tiny_two_stage_pipeline

    seen = _spy_call(monkeypatch, "LTX2AVTwoStagePipeline")
    argv = ["two-stage", "a cat", "-o", str(tmp_path / "l.mp4"), *SMALL, "--lora", f"{inputs['lora']}:0.5"]
    assert main([*argv, "--distilled-lora", f"{inputs['distilled']}:0.8"]) == 2
    assert (seen["stage_2_adapter"], seen["stage_2_adapter_scale"]) == ("distilled", 0.8)
    transformer = seen["pipe"].transformer
    assert list(transformer.peft_config) == ["distilled"]
    fused = transformer.transformer_blocks[0].attn1.to_q.base_layer.weight
    original = build_tiny_two_stage_pipeline().transformer.transformer_blocks[0].attn1.to_q.weight
    from safetensors.torch import load_file

    lora = load_file(str(inputs["lora"]))
    a, b = lora["transformer_blocks.0.attn1.to_q.lora_A.weight"], lora["transformer_blocks.0.attn1.to_q.lora_B.weight"]
    torch.testing.assert_close(fused, original + 0.5 * b @ a)


def test_cli_lora_of_another_model_is_refused_by_name(tmp_path, capsys):
    """A LoRA whose modules the transformer lacks: found once the model is built, reported on one line."""
    import torch
    from safetensors.torch import save_file

    save_file(
        {"blocks.0.q.lora_A.weight": torch.zeros(2, 8), "blocks.0.q.lora_B.weight": torch.zeros(8, 2)},
        str(tmp_path / "other.safetensors"),
    )
    argv = ["generate", "a cat", "-o", str(tmp_path / "o.mp4"), *SMALL, "--lora", str(tmp_path / "other.safetensors")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ltx2-diffusers generate: error: --lora: ") and "\n" not in err, err
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize(("flag", "use_tiling"), [(None, None), ("--vae-tiling", True), ("--no-vae-tiling", False)])
def test_cli_vae_tiling_flags_reach_the_vae(tmp_path, monkeypatch, flag, use_tiling):
    seen = _spy_call(monkeypatch)
    argv = ["generate", "a cat", "-o", str(tmp_path / "t.mp4"), *SMALL]
    assert main(argv + ([flag] if flag else [])) == 2
    assert seen["pipe"].vae.use_tiling is use_tiling


def test_cli_kind_picks_the_scheduler(tmp_path, monkeypatch):
    """--kind distilled with the tiny model: the 8 distilled sigmas and no guidance; `distilled` fixes the kind."""
    from ltx2_diffusers.pipelines.presets import DISTILLED_SIGMAS

    seen = _spy_call(monkeypatch)
    assert main(["generate", "a cat", "-o", str(tmp_path / "k.mp4"), *SMALL, "--kind", "distilled"]) == 2
    assert seen["pipe"].scheduler.config.fixed_sigmas == pytest.approx(list(DISTILLED_SIGMAS))
    assert seen["pipe"].kind == "distilled"
    seen = _spy_call(monkeypatch, "LTX2AVTwoStagePipeline")
    assert main(["distilled", "a cat", "-o", str(tmp_path / "k.mp4"), *SMALL]) == 2
    assert seen["pipe"].kind == "distilled"


def test_cli_loads_a_folder_and_refuses_what_its_distilled_scheduler_ignores(tmp_path, monkeypatch, capsys):
    """A saved folder loads through from_pretrained; when its scheduler is the distilled one, --negative-prompt (which
    an unguided run would ignore) is refused by name before generating."""
    from ltx2_diffusers import LTX2AVPipeline, LTX2Scheduler
    from ltx2_diffusers.pipelines.tiny import build_tiny_pipeline

    components = build_tiny_pipeline().components
    LTX2AVPipeline(**{**components, "scheduler": LTX2Scheduler.distilled()}).save_pretrained(tmp_path / "folder")
    seen = _spy_call(monkeypatch)
    argv = ["generate", "a cat", "-o", str(tmp_path / "f.mp4"), "--model", str(tmp_path / "folder")]
    capsys.readouterr()  # save_pretrained's progress bars
    assert main([*argv, "--negative-prompt", "ugly"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "ltx2-diffusers generate: error: --negative-prompt: does not apply to a distilled checkpoint (its 8 fixed "
        "sigmas, no guidance)"
    )
    assert seen == {} and not (tmp_path / "f.mp4").exists()
    assert main(argv) == 2 and seen["pipe"].scheduler.config.fixed_sigmas is not None  # reached the call


def test_cli_frames_are_the_pipelines_pil_frames(tmp_path, monkeypatch):
    """The encoder gets the pipeline's "pil" frames: uint8 truncated as ltx-core's decode_video makes them (spec §13.11),
    not a rounding of the float output."""
    import torch

    from ltx2_diffusers.pipelines.tiny import build_tiny_pipeline

    captured = {}

    def fake_export(frames, audio, sample_rate, fps, path):
        captured["frames"] = frames
        return str(path)

    monkeypatch.setattr("ltx2_diffusers.utils.media.export_to_video_with_audio", fake_export)
    assert main(["generate", "a cat", "-o", str(tmp_path / "u.mp4"), *SMALL, "--steps", "1", "--seed", "7"]) == 0
    kwargs = {"num_frames": 9, "height": 64, "width": 64, "num_inference_steps": 1, "output_type": "np"}
    floats = build_tiny_pipeline()("a cat", generator=torch.Generator().manual_seed(7), **kwargs).frames[0]
    assert captured["frames"].dtype == np.uint8 and captured["frames"].shape == (9, 64, 64, 3)
    np.testing.assert_array_equal(captured["frames"], (floats * 255).astype(np.uint8))  # truncated
    assert not np.array_equal(captured["frames"], (floats * 255).round().astype(np.uint8))  # ... not rounded


# ----------------------------------------------------------------------------------------------------------------------
# Failures after loading, Ctrl-C


def test_nan_audio_leaves_no_file_and_exits_1(tmp_path, monkeypatch, capsys):
    import torch

    from ltx2_diffusers import LTX2AVPipeline, LTX2PipelineOutput

    def nan_audio(self, **kwargs):
        frames = np.zeros((1, 9, 64, 64, 3), np.float32)
        return LTX2PipelineOutput(
            frames=[[__import__("PIL").Image.fromarray(f.astype(np.uint8)) for f in frames[0]]],
            audio=torch.full((1, 2, 7920), float("nan")),
            audio_sample_rate=24000,
        )

    monkeypatch.setattr(LTX2AVPipeline, "__call__", nan_audio)
    (tmp_path / "keep.mp4").write_bytes(b"an older clip")
    out = tmp_path / "new" / "deeper" / "n.mp4"
    assert main(["generate", "a cat", "-o", str(out), *SMALL]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "NaN/Inf" in err and str(out) in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.mp4"]  # the folders made for it are gone too
    assert main(["generate", "a cat", "-o", str(tmp_path / "keep.mp4"), *SMALL]) == 1
    assert (tmp_path / "keep.mp4").read_bytes() == b"an older clip"  # not replaced by a broken clip


def test_ctrl_c_prints_one_line_exits_130_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    from ltx2_diffusers import LTX2AVPipeline

    def interrupted(self, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(LTX2AVPipeline, "__call__", interrupted)
    assert main(["generate", "a cat", "-o", str(tmp_path / "sub" / "c.mp4"), *SMALL]) == 130
    err = capsys.readouterr().err.strip()
    assert err == "ltx2-diffusers generate: interrupted; no output written"
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_while_encoding_removes_the_partial_file(tmp_path, monkeypatch):
    """KeyboardInterrupt inside the encoder: the hidden partial file is removed, nothing appears at the path."""
    import ltx2_diffusers.utils.media as media

    real_encode = media._encode

    def encode_then_interrupt(path, *args):
        real_encode(path, *args)
        assert path.exists() and path.name.startswith(".i.mp4.")
        raise KeyboardInterrupt

    monkeypatch.setattr(media, "_encode", encode_then_interrupt)
    assert main(["generate", "a cat", "-o", str(tmp_path / "i.mp4"), *SMALL, "--steps", "1"]) == 130
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------------------------------------
# --help


def test_help_is_fast_shows_the_default_model_and_imports_no_torch():
    """`python -m ltx2_diffusers.cli generate --help` builds the parser only. While the package itself imports
    diffusers (which imports torch) the start-up is theirs (5-6 s here); the CLI's own modules add nothing heavy."""
    code = (
        "import runpy, sys, time; t = time.perf_counter(); import ltx2_diffusers; base = set(sys.modules)\n"
        "sys.argv = ['ltx2-diffusers', 'generate', '--help']\n"
        "try:\n    runpy.run_module('ltx2_diffusers.cli', run_name='__main__')\nexcept SystemExit as stop:\n"
        "    assert stop.code == 0, stop.code\n"
        "added = set(sys.modules) - base\n"
        "print('HEAVY', sorted(m for m in added if m.split('.')[0] in ('torch', 'diffusers', 'transformers', 'numpy')))\n"
        "print('BASE', sorted(m for m in ('torch', 'diffusers') if m in base))\n"
        "print('SECONDS', time.perf_counter() - t)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage: ltx2-diffusers generate" in result.stdout and "(default: Lightricks/LTX-2)" in result.stdout
    assert "HEAVY []" in result.stdout  # the CLI's parser imports nothing heavy
    if "BASE []" in result.stdout:  # the package imports diffusers lazily: --help is then well under a second
        seconds = float(result.stdout.rsplit("SECONDS", 1)[1])
        assert seconds < 1.0, seconds


def test_help_examples_parse(capsys):
    """The examples `--help` prints use flags that exist."""
    import shlex

    commands = [line.strip() for line in EXAMPLES.replace("\\\n", " ").splitlines()]
    commands = [line for line in commands if line.startswith("ltx2-diffusers ") and " convert " not in line]
    assert len(commands) == len(COMMANDS) + 2
    for command in commands:
        args = build_parser().parse_args(shlex.split(command)[1:])
        assert args.command in COMMANDS and (args.output.endswith((".mp4", ".wav")) or args.command == "hdr")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["generate", "--help"])
    assert "example:" in capsys.readouterr().out


def test_parser_defaults_follow_the_reference():
    args = build_parser().parse_args(["generate", "p", "-o", "o.mp4"])
    assert (args.frames, args.height, args.width, args.fps, args.seed, args.steps) == (121, 512, 768, 24.0, 10, None)
    from ltx_pipelines.utils.args import default_1_stage_arg_parser
    from ltx_pipelines.utils.constants import DEFAULT_IMAGE_CRF, LTX_2_PARAMS

    from ltx2_diffusers.cli.parser import DEFAULT_IMAGE_CRF as CLI_CRF
    from ltx2_diffusers.pipelines.presets import DEFAULT_IMAGE_CRF as PIPELINE_CRF

    ref = default_1_stage_arg_parser(LTX_2_PARAMS).parse_args(
        ["--checkpoint-path", "c", "--gemma-root", "g", "--prompt", "p", "--output-path", "o.mp4"]
    )
    assert (args.frames, args.height, args.width, args.fps, args.seed) == (
        ref.num_frames,
        ref.height,
        ref.width,
        ref.frame_rate,
        ref.seed,
    )
    assert CLI_CRF == DEFAULT_IMAGE_CRF == PIPELINE_CRF == 33  # one value: the CLI reads the torch-free presets
    for name, (height, width) in {"two-stage": (1024, 1536), "hq": (1088, 1920)}.items():
        args = build_parser().parse_args([name, "p", "-o", "o.mp4"])
        assert (args.height, args.width) == (height, width)


def test_tiny_in_bf16_prints_no_spurious_float32_warnings(capfd):
    """`--model tiny` on CUDA casts to bf16; diffusers 0.42 then warns about float32 modules even when there are none."""
    import torch

    from ltx2_diffusers import LTX2AVPipeline
    from ltx2_diffusers.cli.run import load_pipeline

    pipe = load_pipeline(LTX2AVPipeline, "tiny", "tiny", torch.bfloat16)
    assert pipe.transformer.dtype == pipe.vae.dtype == torch.bfloat16
    assert "should be kept in float32" not in capfd.readouterr().err
