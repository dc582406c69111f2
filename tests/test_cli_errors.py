"""Bad `ltx2-diffusers` invocations, table-driven: each exits with status 2 and one stderr line naming the flag, with no
traceback, before any weights load, and leaves nothing at (or beside) the output path."""

import pytest
from helpers.cli_media import write_clip, write_image, write_lora
from safetensors.torch import save_file

import ltx2_diffusers.cli.run as cli_run
from ltx2_diffusers.cli import main

T = ["--model", "tiny", "--frames", "9", "--height", "64", "--width", "64"]  # valid sizes for every subcommand

# (id, argv; {in} = the inputs folder, {out} = the output folder, the flag the one-line message must name)
CASES = [
    # sizes, frames, fps, the size guard
    ("frames-not-8k+1", ["generate", "p", "-o", "{out}/a.mp4", *T, "--frames", "16"], "--frames"),
    ("frames-zero", ["generate", "p", "-o", "{out}/a.mp4", *T, "--frames", "0"], "--frames"),
    ("frames-not-int", ["generate", "p", "-o", "{out}/a.mp4", *T, "--frames", "9.5"], "--frames"),
    ("frames-absurd", ["generate", "p", "-o", "{out}/a.mp4", "--model", "tiny", "--frames", "100001"], "--allow-large"),
    ("frames-absurd-small", ["generate", "p", "-o", "{out}/a.mp4", *T, "--frames", "100001"], "--frames"),
    ("size-absurd", ["generate", "p", "-o", "{out}/a.mp4", *T, "--height", "8192", "--width", "8192"], "--height"),
    ("height-not-32", ["generate", "p", "-o", "{out}/a.mp4", *T, "--height", "100"], "--height"),
    ("width-zero", ["generate", "p", "-o", "{out}/a.mp4", *T, "--width", "0"], "--width"),
    ("two-stage-height-not-64", ["two-stage", "p", "-o", "{out}/a.mp4", *T, "--height", "96"], "--height"),
    ("fps-zero", ["generate", "p", "-o", "{out}/a.mp4", *T, "--fps", "0"], "--fps"),
    ("fps-inf", ["generate", "p", "-o", "{out}/a.mp4", *T, "--fps", "inf"], "--fps"),
    ("fps-nan", ["generate", "p", "-o", "{out}/a.mp4", *T, "--fps", "nan"], "--fps"),
    ("fps-1e9", ["generate", "p", "-o", "{out}/a.mp4", *T, "--fps", "1e9"], "--fps"),
    ("fps-text", ["generate", "p", "-o", "{out}/a.mp4", *T, "--fps", "fast"], "--fps"),
    ("steps-zero", ["generate", "p", "-o", "{out}/a.mp4", *T, "--steps", "0"], "--steps"),
    ("hq-one-step", ["hq", "p", "-o", "{out}/a.mp4", *T, "--steps", "1"], "--steps"),
    ("seed-negative", ["generate", "p", "-o", "{out}/a.mp4", *T, "--seed", "-1"], "--seed"),
    ("prompt-empty", ["generate", " ", "-o", "{out}/a.mp4", *T], "prompt"),
    # images and keyframes
    ("image-missing", ["generate", "p", "-o", "{out}/a.mp4", *T, "--image", "{in}/none.png"], "--image"),
    ("image-not-an-image", ["generate", "p", "-o", "{out}/a.mp4", *T, "--image", "{in}/notes.txt"], "--image"),
    ("image-strength-alone", ["generate", "p", "-o", "{out}/a.mp4", *T, "--image-strength", "0.5"], "--image-strength"),
    (
        "image-strength-range",
        ["generate", "p", "-o", "{out}/a.mp4", *T, "--image", "{in}/a.png", "--image-strength", "1.5"],
        "--image-strength",
    ),
    ("image-crf-alone", ["generate", "p", "-o", "{out}/a.mp4", *T, "--image-crf", "20"], "--image-crf"),
    (
        "image-crf-range",
        ["generate", "p", "-o", "{out}/a.mp4", *T, "--image", "{in}/a.png", "--image-crf", "99"],
        "--image-crf",
    ),
    ("keyframe-no-frame", ["generate", "p", "-o", "{out}/a.mp4", *T, "--keyframe", "{in}/a.png"], "--keyframe"),
    ("keyframe-past-end", ["generate", "p", "-o", "{out}/a.mp4", *T, "--keyframe", "{in}/a.png:9"], "--keyframe"),
    ("keyframe-strength", ["generate", "p", "-o", "{out}/a.mp4", *T, "--keyframe", "{in}/a.png:0:2"], "--keyframe"),
    ("keyframe-missing", ["distilled", "p", "-o", "{out}/a.mp4", *T, "--keyframe", "{in}/b.png:0"], "--keyframe"),
    ("keyframes-none", ["keyframes", "p", "-o", "{out}/a.mp4", *T], "--keyframe"),
    # the output path
    ("output-gif", ["generate", "p", "-o", "{out}/clip.gif", *T], "-o/--output"),
    ("output-no-suffix", ["generate", "p", "-o", "{out}/clip", *T], "-o/--output"),
    ("output-folder", ["generate", "p", "-o", "{out}", *T], "-o/--output"),
    ("output-empty", ["generate", "p", "-o", "", *T], "-o/--output"),
    ("output-unwritable", ["generate", "p", "-o", "/proc/ltx2-cli-test/clip.mp4", *T], "-o/--output"),
    ("output-under-a-file", ["generate", "p", "-o", "{in}/notes.txt/clip.mp4", *T], "-o/--output"),
    ("output-missing", ["generate", "p", *T], "-o/--output"),
    # the model and flags that would be ignored
    ("text-encoder-with-tiny", ["generate", "p", "-o", "{out}/a.mp4", *T, "--text-encoder", "{in}"], "--text-encoder"),
    (
        "upsampler-with-tiny",
        ["two-stage", "p", "-o", "{out}/a.mp4", *T, "--upsampler", "{in}/e.safetensors"],
        "--upsampler",
    ),
    ("model-missing-file", ["generate", "p", "-o", "{out}/a.mp4", "--model", "{in}/none.safetensors"], "--model"),
    ("model-not-safetensors", ["generate", "p", "-o", "{out}/a.mp4", "--model", "{in}/junk.safetensors"], "--model"),
    ("model-folder-no-index", ["generate", "p", "-o", "{out}/a.mp4", "--model", "{in}/empty"], "--model"),
    ("model-no-such-folder", ["generate", "p", "-o", "{out}/a.mp4", "--model", "./no/such/folder"], "--model"),
    ("model-other-file", ["generate", "p", "-o", "{out}/a.mp4", "--model", "{in}/notes.txt"], "--model"),
    ("single-file-no-gemma", ["generate", "p", "-o", "{out}/a.mp4", "--model", "{in}/e.safetensors"], "--text-encoder"),
    (
        "single-file-no-upsampler",
        ["distilled", "p", "-o", "{out}/a.mp4", "--model", "{in}/e.safetensors", "--text-encoder", "{in}"],
        "--upsampler",
    ),
    ("kind-unknown", ["generate", "p", "-o", "{out}/a.mp4", *T, "--kind", "turbo"], "--kind"),
    ("kind-on-distilled", ["distilled", "p", "-o", "{out}/a.mp4", *T, "--kind", "dev"], "--kind"),
    ("steps-on-distilled", ["distilled", "p", "-o", "{out}/a.mp4", *T, "--steps", "4"], "--steps"),
    (
        "steps-with-kind-distilled",
        ["generate", "p", "-o", "{out}/a.mp4", *T, "--kind", "distilled", "--steps", "4"],
        "--steps",
    ),
    (
        "negative-with-kind-distilled",
        ["two-stage", "p", "-o", "{out}/a.mp4", *T, "--kind", "distilled", "--negative-prompt", "ugly"],
        "--negative-prompt",
    ),
    ("kind-on-hq", ["hq", "p", "-o", "{out}/a.mp4", *T, "--kind", "distilled"], "--kind"),
    ("offload-on-cpu", ["generate", "p", "-o", "{out}/a.mp4", *T, "--device", "cpu", "--offload"], "--offload"),
    ("device-unknown", ["generate", "p", "-o", "{out}/a.mp4", *T, "--device", "banana"], "--device"),
    ("device-absent", ["generate", "p", "-o", "{out}/a.mp4", *T, "--device", "cuda:99"], "--device"),
    ("dtype-unknown", ["generate", "p", "-o", "{out}/a.mp4", *T, "--dtype", "int8"], "--dtype"),
    ("tiling-both", ["generate", "p", "-o", "{out}/a.mp4", *T, "--vae-tiling", "--no-vae-tiling"], "--vae-tiling"),
    # LoRAs
    ("lora-missing", ["generate", "p", "-o", "{out}/a.mp4", *T, "--lora", "{in}/none.safetensors"], "--lora"),
    ("lora-bad-scale", ["generate", "p", "-o", "{out}/a.mp4", *T, "--lora", "{in}/l.safetensors:big"], "--lora"),
    ("lora-inf-scale", ["generate", "p", "-o", "{out}/a.mp4", *T, "--lora", "{in}/l.safetensors:inf"], "--lora"),
    ("lora-not-safetensors", ["generate", "p", "-o", "{out}/a.mp4", *T, "--lora", "{in}/notes.txt"], "--lora"),
    (
        "hq-distilled-lora-scale",
        ["hq", "p", "-o", "{out}/a.mp4", *T, "--distilled-lora", "{in}/l.safetensors:0.5"],
        "--distilled-lora",
    ),
    # audio-to-video
    ("audio-required", ["audio-to-video", "p", "-o", "{out}/a.mp4", *T], "--audio"),
    ("audio-missing", ["audio-to-video", "p", "-o", "{out}/a.mp4", *T, "--audio", "{in}/none.wav"], "--audio"),
    ("audio-no-stream", ["audio-to-video", "p", "-o", "{out}/a.mp4", *T, "--audio", "{in}/silent.mp4"], "--audio"),
    ("audio-not-media", ["audio-to-video", "p", "-o", "{out}/a.mp4", *T, "--audio", "{in}/notes.txt"], "--audio"),
    (
        "audio-start-past-end",
        ["audio-to-video", "p", "-o", "{out}/a.mp4", *T, "--audio", "{in}/clip.mp4", "--audio-start", "5"],
        "--audio-start",
    ),
    (
        "audio-shorter-than-clip",
        ["audio-to-video", "p", "-o", "{out}/a.mp4", *T, "--frames", "17", "--audio", "{in}/clip.mp4"],
        "--audio",
    ),
    # retake
    ("retake-no-video", ["retake", "p", "-o", "{out}/a.mp4", "--start", "0", "--end", "1"], "--video"),
    (
        "retake-video-10-frames",
        ["retake", "p", "-o", "{out}/a.mp4", "--video", "{in}/ten.mp4", "--start", "0", "--end", "0.1"],
        "--video",
    ),
    (
        "retake-start-outside",
        ["retake", "p", "-o", "{out}/a.mp4", "--video", "{in}/clip.mp4", "--start", "1", "--end", "2"],
        "--start",
    ),
    (
        "retake-empty-window",
        ["retake", "p", "-o", "{out}/a.mp4", "--video", "{in}/clip.mp4", "--start", "0.2", "--end", "0.1"],
        "--end",
    ),
    (
        "retake-frames-flag",
        ["retake", "p", "-o", "{out}/a.mp4", "--video", "{in}/clip.mp4", "--start", "0", "--end", "1", "--frames", "9"],
        "--frames",
    ),
    (
        "retake-keep-both",
        ["retake", "p", "-o", "{out}/a.mp4", "--video", "{in}/clip.mp4", "--start", "0", "--end", "1"]
        + ["--keep-video", "--keep-audio"],
        "--keep-audio",
    ),
    # ic-lora
    (
        "ic-lora-no-reference",
        ["ic-lora", "p", "-o", "{out}/a.mp4", *T, "--ic-lora", "{in}/l.safetensors"],
        "--reference",
    ),
    (
        "ic-lora-reference-strength",
        ["ic-lora", "p", "-o", "{out}/a.mp4", *T, "--ic-lora", "{in}/l.safetensors", "--reference", "{in}/clip.mp4:2"],
        "--reference",
    ),
    (
        "ic-lora-reference-frames",
        ["ic-lora", "p", "-o", "{out}/a.mp4", *T, "--frames", "17", "--ic-lora", "{in}/l.safetensors"]
        + ["--reference", "{in}/ten.mp4"],
        "--reference",
    ),
    ("ic-lora-missing", ["ic-lora", "p", "-o", "{out}/a.mp4", *T, "--reference", "{in}/clip.mp4"], "--ic-lora"),
    ("subcommand-unknown", ["render", "p", "-o", "{out}/a.mp4"], "SUBCOMMAND"),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad-inputs")
    write_image(folder / "a.png")
    write_clip(folder / "clip.mp4")
    write_clip(folder / "ten.mp4", num_frames=10)
    write_clip(folder / "silent.mp4", sample_rate=None)
    write_lora(folder / "l.safetensors")
    save_file({}, str(folder / "e.safetensors"))  # a valid, empty safetensors file
    (folder / "junk.safetensors").write_bytes(b"\xff" * 64)
    (folder / "notes.txt").write_text("not a model, an image or a clip")
    (folder / "empty").mkdir()
    return folder


def test_the_table_is_large_enough():
    assert len(CASES) >= 30 and len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize(("argv", "flag"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_invocation_fails_early_on_one_line(argv, flag, inputs, tmp_path, monkeypatch, capsys):
    def no_loading(*args, **kwargs):
        raise AssertionError("weights were loaded before the arguments were checked")

    monkeypatch.setattr(cli_run, "load_pipeline", no_loading)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    before = sorted(p.name for p in inputs.iterdir())
    argv = [arg.replace("{in}", str(inputs)).replace("{out}", str(out)) for arg in argv]
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own errors
        code = stop.code
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith("ltx2-diffusers") and ": error: " in err and flag in err, err
    assert list(out.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in inputs.iterdir()) == before


def test_a_flag_the_pipeline_does_not_take_is_refused_before_loading(inputs, tmp_path, monkeypatch, capsys):
    """The CLI checks its keywords against the pipeline's __call__ signature, so a pipeline without (say) keyframes
    refuses --keyframe by name instead of failing after the model has loaded."""
    import ltx2_diffusers

    def call_without_keyframes(self, prompt, *, height, width, num_frames, frame_rate, generator, output_type):
        raise AssertionError("called")

    monkeypatch.setattr(ltx2_diffusers.LTX2AVTwoStageHQPipeline, "__call__", call_without_keyframes)
    monkeypatch.setattr(cli_run, "load_pipeline", lambda *a, **k: pytest.fail("weights were loaded"))
    argv = ["hq", "p", "-o", str(tmp_path / "a.mp4"), *T, "--keyframe", f"{inputs / 'a.png'}:0"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "ltx2-diffusers hq: error: --keyframe: does not apply to `hq`: LTX2AVTwoStageHQPipeline takes no keyframes="
    )
    assert list(tmp_path.iterdir()) == []
