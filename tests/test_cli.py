"""End to end, offline: `ltx2-diffusers generate ... --model tiny` writes an mp4 with sound that PyAV reads back."""

import av
import numpy as np
import pytest

from ltx2_diffusers.cli import build_parser, main


def test_cli_writes_mp4_with_expected_frames_size_and_audio(tmp_path, capsys):
    path = tmp_path / "cat.mp4"
    argv = ["generate", "a cat", "-o", str(path), "--model", "tiny", "--frames", "17", "--height", "128"]
    assert main([*argv, "--width", "96", "--steps", "2", "--seed", "3"]) == 0
    out = capsys.readouterr()
    # the last line says where the clip is and what it holds: 17 / 24 = 0.71 s; 69 * 240 / 24000 = 0.69 s of audio
    summary = f"wrote {path}: 17 frames of 96x128 at 24 fps (0.71 s), stereo audio at 24000 Hz (0.69 s); took "
    assert out.out.startswith(summary), out.out
    assert "denoising: 100%" in out.err and "2/2" in out.err  # the progress bar

    with av.open(str(path)) as container:
        video_stream = container.streams.video[0]
        audio_stream = container.streams.audio[0]
        assert (video_stream.codec_context.name, audio_stream.codec_context.name) == ("h264", "aac")
        assert audio_stream.rate == 24000  # the LTX-2 vocoder's rate
        assert audio_stream.channels == 2
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    with av.open(str(path)) as container:
        samples = sum(frame.samples for frame in container.decode(audio=0))

    assert len(frames) == 17
    assert frames[0].shape == (128, 96, 3)
    assert np.std(np.stack(frames).astype(np.float32)) > 1.0  # random weights, but not a blank clip
    # 17 frames at 24 fps -> round(17 / 24 * 25) = 18 audio latents -> 4 * 18 - 3 = 69 mel frames -> 69 * 240 samples.
    # AAC works in 1024-sample frames, so the decoded count may differ by up to a frame plus the encoder delay.
    expected = 69 * 240
    assert abs(samples - expected) <= 2048, (samples, expected)


def test_cli_bad_frame_count_fails_with_the_fix(tmp_path, capsys):
    code = main(["generate", "a cat", "-o", str(tmp_path / "x.mp4"), "--model", "tiny", "--frames", "16"])
    assert code == 2
    assert "num_frames=16 is not of the form 8*k + 1" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("empty_folder", "the folder has no model_index.json"),
        ("notes.txt", "a file, but not a .safetensors checkpoint"),
        ("./no/such/folder", "no such folder"),
        ("missing.safetensors", "no such file"),
        ("nobody-xyz/no-such-model", "could not be loaded from the Hub"),  # offline here (conftest): not in the cache
    ],
)
def test_cli_bad_model_stops_with_what_model_accepts(tmp_path, monkeypatch, model, message):
    (tmp_path / "empty_folder").mkdir()
    (tmp_path / "notes.txt").write_text("not a model")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main(["generate", "a cat", "-o", str(tmp_path / "x.mp4"), "--model", model])
    assert str(stop.value).startswith(f"error: --model {model}") and message in str(stop.value)
    assert not (tmp_path / "x.mp4").exists()


def test_cli_parser_defaults_follow_the_reference():
    args = build_parser().parse_args(["generate", "p", "-o", "o.mp4"])
    assert (args.frames, args.height, args.width, args.fps, args.seed, args.steps) == (121, 512, 768, 24.0, 10, None)
    # the same values as ltx-pipelines' one-stage CLI (ltx_pipelines/utils/args.py, default_1_stage_arg_parser)
    from ltx_pipelines.utils.args import default_1_stage_arg_parser
    from ltx_pipelines.utils.constants import DEFAULT_IMAGE_CRF, LTX_2_PARAMS

    from ltx2_diffusers.pipelines.conditioning import DEFAULT_IMAGE_CRF as PIPELINE_CRF

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
    assert args.image_crf == DEFAULT_IMAGE_CRF == PIPELINE_CRF == 33  # the CLI keeps its own copy (no torch import)
    assert args.negative_prompt is None  # -> the pipeline's default, the reference's DEFAULT_NEGATIVE_PROMPT
    with pytest.raises(SystemExit):
        build_parser().parse_args(["generate", "p"])  # -o is required


def test_cli_loads_a_lightricks_single_file(tmp_path, capsys):
    """The tiny pipeline exported to the original single-file format, then generated from through --model FILE."""
    from ltx2_diffusers.loaders.single_file import convert_diffusers_to_original
    from ltx2_diffusers.pipelines.tiny import build_tiny_pipeline

    pipe = build_tiny_pipeline(seed=2)
    pipe.save_pretrained(tmp_path / "folder")
    pipe.text_encoder.save_pretrained(tmp_path / "gemma")
    pipe.tokenizer.save_pretrained(tmp_path / "gemma")
    checkpoint = tmp_path / "tiny.safetensors"
    convert_diffusers_to_original(tmp_path / "folder", checkpoint)

    argv = ["generate", "a cat", "-o", str(tmp_path / "sf.mp4"), "--model", str(checkpoint), "--frames", "9"]
    argv += ["--height", "64", "--width", "64", "--steps", "1", "--kind", "dev"]
    with pytest.raises(SystemExit, match="pass --text-encoder"):
        main(argv)
    assert main([*argv, "--text-encoder", str(tmp_path / "gemma")]) == 0
    with av.open(str(tmp_path / "sf.mp4")) as container:
        assert container.streams.video[0].frames == 9 and container.streams.audio[0].rate == 24000


def test_cli_enhance_prompt_passes_the_flag_and_the_seed(tmp_path, monkeypatch):
    import ltx2_diffusers.cli as cli

    seen = {}

    def fake_export(frames, audio, sample_rate, fps, path):
        return str(path)

    from ltx2_diffusers.pipelines.pipeline_ltx2_av import LTX2AVPipeline

    real_call = LTX2AVPipeline.__call__

    def spy(self, *args, **kwargs):
        seen.update(kwargs)
        return real_call(self, *args, **kwargs)

    monkeypatch.setattr(LTX2AVPipeline, "__call__", spy)
    monkeypatch.setattr("ltx2_diffusers.utils.media.export_to_video_with_audio", fake_export)
    argv = ["generate", "a cat", "-o", str(tmp_path / "e.mp4"), "--model", "tiny", "--frames", "9", "--height", "64"]
    assert cli.main([*argv, "--width", "64", "--steps", "1", "--seed", "5", "--enhance-prompt"]) == 0
    assert seen["enhance_prompt"] is True and seen["enhance_prompt_seed"] == 5
    assert seen["image_crf"] == 33 and seen["image_strength"] == 1.0
    assert build_parser().parse_args(["generate", "p", "-o", "o.mp4"]).enhance_prompt is False


@pytest.mark.parametrize(("flag", "use_tiling"), [(None, None), ("--vae-tiling", True), ("--no-vae-tiling", False)])
def test_cli_vae_tiling_flags_reach_the_vae(tmp_path, monkeypatch, flag, use_tiling):
    """Default: the VAE's auto tiling (None); --vae-tiling always; --no-vae-tiling never (ltx-pipelines' one-stage
    pipeline decodes untiled: ti2vid_one_stage.py calls vae_decode_video without a tiling config)."""
    from ltx2_diffusers.pipelines.pipeline_ltx2_av import LTX2AVPipeline

    seen = {}

    def spy(self, *args, **kwargs):
        seen["use_tiling"] = self.vae.use_tiling
        raise ValueError("stop here")

    monkeypatch.setattr(LTX2AVPipeline, "__call__", spy)
    argv = ["generate", "a cat", "-o", str(tmp_path / "t.mp4"), "--model", "tiny"]
    assert main(argv + ([flag] if flag else [])) == 2
    assert seen["use_tiling"] is use_tiling
    with pytest.raises(SystemExit):
        build_parser().parse_args([*argv[:6], "--vae-tiling", "--no-vae-tiling"])  # one or the other


def test_cli_image_flags_reach_the_pipeline(tmp_path, monkeypatch):
    """--image-crf is the reference's optional 4th `--image` value (ltx_pipelines/utils/args.py ImageAction)."""
    import PIL.Image

    from ltx2_diffusers.pipelines.pipeline_ltx2_av import LTX2AVPipeline

    seen = {}

    def spy(self, *args, **kwargs):
        seen.update(kwargs)
        raise ValueError("stop here")

    monkeypatch.setattr(LTX2AVPipeline, "__call__", spy)
    PIL.Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "first.png")
    argv = [
        "generate",
        "a cat",
        "-o",
        str(tmp_path / "i.mp4"),
        "--model",
        "tiny",
        "--image",
        str(tmp_path / "first.png"),
    ]
    assert main([*argv, "--image-crf", "0", "--image-strength", "0.8"]) == 2
    assert (seen["image_crf"], seen["image_strength"]) == (0, 0.8)
    assert seen["image"].size == (40, 30)  # loaded; resizing and cropping happen in the pipeline


def test_cli_frames_are_the_pipelines_pil_frames(tmp_path, monkeypatch):
    """The encoder gets the pipeline's "pil" frames: uint8 truncated as ltx-core's decode_video makes them (spec §13.11;
    tests/test_pipeline.py pins that conversion, bf16 included), not a rounding of the float output."""
    captured = {}

    def fake_export(frames, audio, sample_rate, fps, path):
        captured["frames"] = frames
        return str(path)

    monkeypatch.setattr("ltx2_diffusers.utils.media.export_to_video_with_audio", fake_export)
    argv = ["generate", "a cat", "-o", str(tmp_path / "u.mp4"), "--model", "tiny", "--frames", "9", "--height", "64"]
    assert main([*argv, "--width", "64", "--steps", "1", "--seed", "7"]) == 0

    import torch

    from ltx2_diffusers.pipelines.tiny import build_tiny_pipeline

    kwargs = {"num_frames": 9, "height": 64, "width": 64, "num_inference_steps": 1, "output_type": "np"}
    floats = build_tiny_pipeline()("a cat", generator=torch.Generator().manual_seed(7), **kwargs).frames[0]
    assert captured["frames"].dtype == np.uint8 and captured["frames"].shape == (9, 64, 64, 3)
    np.testing.assert_array_equal(captured["frames"], (floats * 255).astype(np.uint8))  # truncated
    assert not np.array_equal(captured["frames"], (floats * 255).round().astype(np.uint8))  # ... not rounded


def test_cli_kind_picks_the_scheduler_of_a_folder(tmp_path, monkeypatch):
    """diffusers-layout distilled repos (e.g. diffusers/LTX-2.3-Distilled-Diffusers) hold a generic scheduler: a name
    saying "distilled", or --kind distilled, gives the distilled sigmas and, with them, no guidance (ltx-pipelines'
    DistilledPipeline: DISTILLED_SIGMA_VALUES, simple_denoising_func); --kind dev overrides the name."""
    import json
    import shutil

    from diffusers import FlowMatchEulerDiscreteScheduler

    from ltx2_diffusers.pipelines.pipeline_ltx2_av import DISTILLED_DEFAULTS, LTX2AVPipeline
    from ltx2_diffusers.pipelines.tiny import build_tiny_pipeline
    from ltx2_diffusers.schedulers.scheduling_ltx2 import DISTILLED_SIGMAS

    folder = tmp_path / "tiny-distilled"
    build_tiny_pipeline().save_pretrained(folder)
    # made into a diffusers-layout folder: diffusers' generic scheduler, as diffusers' distilled repos hold
    shutil.rmtree(folder / "scheduler")
    FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=False, shift_terminal=None).save_pretrained(
        folder / "scheduler"
    )
    index = json.loads((folder / "model_index.json").read_text())
    index["scheduler"] = ["diffusers", "FlowMatchEulerDiscreteScheduler"]
    (folder / "model_index.json").write_text(json.dumps(index))
    seen = []

    def spy(self, *args, **kwargs):
        seen.append((self.scheduler.config.fixed_sigmas, self.sampling_defaults))
        raise ValueError("stop here")

    monkeypatch.setattr(LTX2AVPipeline, "__call__", spy)
    argv = ["generate", "a cat", "-o", str(tmp_path / "k.mp4"), "--model", str(folder)]
    assert main(argv) == 2 and main([*argv, "--kind", "dev"]) == 2
    assert seen[0][0] == pytest.approx(list(DISTILLED_SIGMAS)) and seen[0][1] is DISTILLED_DEFAULTS
    assert seen[1][0] is None and seen[1][1] is not DISTILLED_DEFAULTS


def test_cli_help_examples_parse(capsys):
    """The examples `--help` prints use flags that exist (the first one is the README's, run in the test above)."""
    import shlex

    from ltx2_diffusers.cli import EXAMPLES

    commands = EXAMPLES.replace("\\\n", " ").splitlines()
    commands = [line.strip() for line in commands if line.strip().startswith("ltx2-diffusers ")]
    assert len(commands) == 3
    for command in commands:
        args = build_parser().parse_args(shlex.split(command)[1:])
        assert args.command == "generate" and args.output.endswith(".mp4")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["generate", "--help"])
    assert "examples:" in capsys.readouterr().out


def test_cli_tiny_in_bf16_prints_no_spurious_float32_warnings(capfd):
    """`--model tiny` on CUDA casts to bf16; diffusers 0.42 then warns about float32 modules even when there are none."""
    import torch

    from ltx2_diffusers.cli import load_pipeline

    pipe = load_pipeline("tiny", torch.bfloat16)
    assert pipe.transformer.dtype == pipe.vae.dtype == torch.bfloat16
    assert "should be kept in float32" not in capfd.readouterr().err
