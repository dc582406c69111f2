"""scripts/train_lora.py as a command: bad inputs and flags stop it with one line naming the file or flag, before
anything is written to the cache or loaded (issue 10, acceptance 5)."""

import importlib.util
import json
import runpy
import sys
from pathlib import Path

import pytest
from helpers.training import BUCKETS, MAX_SEQUENCE_LENGTH, write_clip, write_dataset

from ltx2_diffusers.training.metadata import DataError

SCRIPT = Path(__file__).parents[1] / "scripts" / "train_lora.py"
spec = importlib.util.spec_from_file_location("train_lora_cli", SCRIPT)
train_lora = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train_lora)


def args_for(data_dir: Path, output_dir: Path, *extra: str, model: str = "no/such-model") -> list[str]:
    """Flags of a run whose model is never reached: every failure below happens before loading."""
    return ["--pretrained_model_name_or_path", model, "--train_data_dir", str(data_dir),
            "--resolution_buckets", BUCKETS, "--max_sequence_length", str(MAX_SEQUENCE_LENGTH),
            "--output_dir", str(output_dir), "--max_train_steps", "1", *extra]  # fmt: skip


def write_metadata(folder: Path, entries: list[dict]) -> None:
    (folder / "metadata.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))


def captionless(folder):
    write_metadata(folder, [{"file_name": "clip0.mp4", "text": "a"}, {"file_name": "clip1.mp4"}])
    return r"metadata\.jsonl line 2 \(clip1\.mp4\) has no caption: add a non-empty \"text\""


def missing(folder):
    write_metadata(folder, [{"file_name": "clip0.mp4", "text": "a"}, {"file_name": "clip9.mp4", "text": "b"}])
    return r"clip9\.mp4 \(metadata\.jsonl line 2\) does not exist"


def unbucketable(folder):
    write_clip(folder / "clip1.mp4", seed=1, num_frames=6)
    return r"clip1\.mp4 \(metadata\.jsonl line 2\): the clip \(64x64, 6 frame\(s\)\) fits no resolution bucket"


def corrupt(folder):
    (folder / "clip1.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 40)
    return r"clip1\.mp4 \(metadata\.jsonl line 2\): cannot read the video"


@pytest.mark.parametrize("make_bad", [captionless, missing, unbucketable, corrupt])
def test_bad_inputs_name_the_file_and_cache_nothing(tmp_path, make_bad):
    data_dir = write_dataset(tmp_path / "data", num_clips=2)
    expected = make_bad(data_dir)
    with pytest.raises(DataError, match=expected):
        train_lora.main(args_for(data_dir, tmp_path / "out"))
    assert not (data_dir / ".ltx2_cache").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--mode", "t2x"), r"unknown --mode 't2x'\. Modes that exist: t2v, t2av, i2v, a2v, v2a, ic_lora, audio\."),
        (("--lora_targets", " , "), r"--lora_targets ' , ' names no module; use one of \['video', 'audio'"),
        (("--resolution_buckets", "64x60x9"), r"resolution bucket 64x60x9: height=60 is not a positive multiple of 32"),
        (("--train_batch_size", "0"), r"--train_batch_size must be >= 1, got 0"),
        (("--mode", "t2av", "--first_frame_conditioning_p", "1.5"), r"mode 't2av': first_frame_p=1\.5 is not a"),
    ],
)
def test_bad_flags_are_usage_errors_before_anything_is_read(tmp_path, extra, message):
    with pytest.raises(train_lora.UsageError, match=message):
        train_lora.main(args_for(tmp_path / "no_data", tmp_path / "out", *extra))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("bad", ["file", "flag"])
def test_the_command_prints_one_line_naming_the_file_or_flag(tmp_path, monkeypatch, capsys, bad):
    """The script's `__main__` (run in this process: a subprocess would spend its time importing torch)."""
    data_dir = write_dataset(tmp_path / "data", num_clips=2)
    corrupt(data_dir)
    extra = ("--mode", "t2av") if bad == "file" else ("--mode", "t2x")
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *args_for(data_dir, tmp_path / "out", *extra)])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    code = exit_info.value.code
    if bad == "file":  # sys.exit(message): the message on stderr, status 1
        assert isinstance(code, str)
        message = code
    else:  # a usage error: argparse's status 2
        assert code == 2
        message = capsys.readouterr().err
    assert message.count("\n") <= 1 and message.startswith("error: ")
    assert ("clip1.mp4 (metadata.jsonl line 2): cannot read the video" if bad == "file" else "--mode 't2x'") in message
    assert not (data_dir / ".ltx2_cache").exists()
