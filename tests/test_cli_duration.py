"""`--frames auto` (cli/duration.py): LTX-2.5's duration head picks the clip length, within --min-seconds /
--max-seconds; the CLI prints the length it chose, and refuses models without a head before loading them."""

import json
import re

import av
import pytest

from ltx2_diffusers.cli import build_parser, main
from ltx2_diffusers.cli.duration import check_length_range, describe_prediction, require_head
from ltx2_diffusers.cli.parser import CLIError
from ltx2_diffusers.pipelines import ltx25

SMALL = ["--height", "64", "--width", "64", "--steps", "1"]


@pytest.fixture
def predictions(monkeypatch) -> list[int]:
    """The frame counts the duration head predicted during the test."""
    seen, original = [], ltx25.AutoDuration.predict

    def predict(self, *args, **kwargs):
        seen.append(original(self, *args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(ltx25.AutoDuration, "predict", predict)
    return seen


def test_generate_predicts_the_length_and_prints_it(tmp_path, capsys, predictions):
    path = tmp_path / "cat.mp4"
    argv = ["generate", "a cat", "-o", str(path), "--model", "tiny-2.5", *SMALL, "--frames", "auto",
            "--min-seconds", "0.3", "--max-seconds", "0.8"]  # fmt: skip
    assert main(argv) == 0
    (frames,) = predictions
    assert frames in (9, 17)  # 8k + 1 within 0.3-0.8 s at 24 fps (7-19 frames)
    out = capsys.readouterr().out
    assert f"the duration head chose {frames} frames ({frames / 24:.2f} s at 24 fps) within 0.3-0.8 s" in out
    with av.open(str(path)) as container:
        assert sum(1 for _ in container.decode(video=0)) == frames


def test_text_to_audio_predicts_its_length(tmp_path, capsys, predictions):
    path = tmp_path / "rain.wav"
    argv = ["text-to-audio", "rain", "-o", str(path), "--model", "tiny-2.5", "--steps", "1", "--frames", "auto",
            "--min-seconds", "0.3", "--max-seconds", "0.5"]  # fmt: skip
    assert main(argv) == 0
    assert predictions == [9]  # the one 8k + 1 in 0.3-0.5 s at 24 fps (7-12 frames)
    assert "the duration head chose" in capsys.readouterr().out and path.is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "tiny", "--frames", "auto"], r"--frames: auto predicts .* tiny LTX-2.0 model has none \(use "
                                                  r"--model tiny-2.5\)\. Pass --frames N"),
        (["--model", "tiny-2.5", "--min-seconds", "1"], r"--min-seconds: bounds the predicted clip length: it only "
                                                        r"applies with --frames auto"),
        (["--model", "tiny-2.5", "--frames", "auto", "--min-seconds", "3", "--max-seconds", "2"],
         r"--min-seconds/--max-seconds: 3 and 2 s: the range needs 0 < min < max"),
        (["--model", "tiny-2.5", "--frames", "auto", "--min-seconds", "0.45", "--max-seconds", "0.6"],
         r"11-14 frames, which holds no clip length of the form 8k \+ 1: widen the range to include 9 or 17"),
        (["--model", "tiny-2.5", "--frames", "auto", "--min-seconds", "0.01"], r"0.01 s is under one frame at 24 fps"),
        (["--model", "tiny-2.5", "--frames", "auto", "--max-seconds", "60"], r"--max-seconds: 1433 frames of 64x64 .* the size guard allows 1,025 frames"),
    ],
)  # fmt: skip
def test_bad_length_flags_fail_before_loading(tmp_path, capsys, extra, message):
    assert main(["generate", "a cat", "-o", str(tmp_path / "x.mp4"), *SMALL, *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err), err
    assert not (tmp_path / "x.mp4").exists()


def test_models_without_a_head_are_refused_before_loading(tmp_path, capsys):
    folder = tmp_path / "ltx23"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "LTX2AVPipeline", "duration_head": [None, None]}))
    argv = ["generate", "a cat", "-o", str(tmp_path / "x.mp4"), "--model", str(folder), "--frames", "auto"]
    assert main(argv) == 2
    assert "its model_index.json lists no duration_head" in capsys.readouterr().err
    single = tmp_path / "ltx-2.3.safetensors"
    single.write_bytes(len(b"{}").to_bytes(8, "little") + b"{}")
    argv = ["generate", "a cat", "-o", str(tmp_path / "x.mp4"), "--model", str(single), "--text-encoder", "g/g",
            "--frames", "auto"]  # fmt: skip
    assert main(argv) == 2
    assert "a single file holds none: LTX-2.5's duration head is a file of its own" in capsys.readouterr().err


def test_only_pipelines_with_a_duration_head_take_auto(capsys):
    with pytest.raises(SystemExit) as stop:  # the keyframe pipeline has no min_seconds / max_seconds
        build_parser().parse_args(["keyframes", "a", "-o", "x.mp4", "--frames", "auto"])
    assert stop.value.code == 2 and "invalid int value: 'auto'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["generate", "a", "-o", "x.mp4", "--frames", "many"])
    assert "invalid value 'many': a frame count (8k + 1) or 'auto'" in capsys.readouterr().err
    args = build_parser().parse_args(["hq", "a", "-o", "x.mp4", "--frames", "auto", "--max-seconds", "5"])
    assert check_length_range(args, 24.0) == 113  # the longest clip the range allows, what the checks take


def test_a_hub_model_without_a_head_is_refused_once_loaded():
    class Pipe:
        duration_head = None

    with pytest.raises(CLIError, match=r"--frames: auto predicts .* but org/ltx-2 has none\. Pass --frames N"):
        require_head(Pipe(), "org/ltx-2")
    assert describe_prediction(57, 24.0, None, 4.0) == "the duration head chose 57 frames (2.38 s at 24 fps) within 1-4 s"
