"""The CLI under torchrun (ltx2_diffusers/cli/distributed.py): real processes through torch.distributed.run with the
gloo backend. Two ranks split the tiny model's tokens (Ulysses, exact on CPU), rank 0 alone writes the mp4, and its
frames and sound equal a one-process run's."""

import os
import socket
import sys

import av
import numpy as np
import pytest
from helpers.fresh_python import Background

from ltx2_diffusers.cli import main

ARGS = ["generate", "a cat", "--model", "tiny", "--frames", "9", "--height", "64", "--width", "64", "--steps", "1"]


def _decoded(path):
    with av.open(str(path)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    with av.open(str(path)) as container:
        audio = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=-1)
    return frames, audio


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--context-parallel", "2"], r"--context-parallel: splits a generation over processes: launch with `torchrun"),
        (["--shard-weights"], r"--shard-weights: splits a generation over processes"),
    ],
)
def test_parallel_flags_need_torchrun(flags, message, tmp_path, capsys):
    assert main([*ARGS, "-o", str(tmp_path / "x.mp4"), *flags]) == 2
    err = capsys.readouterr().err
    assert __import__("re").search(message, err), err
    assert not (tmp_path / "x.mp4").exists()


def test_two_ranks_write_one_clip_equal_to_one_process(tmp_path):
    single, split = tmp_path / "single.mp4", tmp_path / "split.mp4"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_port()),
        "-m", "ltx2_diffusers.cli", *ARGS, "-o", str(split), "--seed", "5", "--context-parallel", "2",
    ]  # fmt: skip
    torchrun = Background(command, env=env)  # started first: the one-process run below goes on while its ranks start
    try:
        assert main([*ARGS, "-o", str(single), "--seed", "5"]) == 0
        result = torchrun.result(timeout=600)
    finally:
        torchrun.stop()
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rank 1: done (rank 0 writes" in result.stdout and f"wrote {split}" in result.stdout, result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["single.mp4", "split.mp4"]  # nothing else, no partials
    (frames_1, audio_1), (frames_2, audio_2) = _decoded(single), _decoded(split)
    assert np.array_equal(frames_1, frames_2) and np.array_equal(audio_1, audio_2)


def test_degrees_must_multiply_to_the_processes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert main([*ARGS, "-o", str(tmp_path / "x.mp4"), "--context-parallel", "2", "--guidance-parallel", "1"]) == 2
    assert "--context-parallel: 2 x --guidance-parallel 1 must equal the 4 processes" in capsys.readouterr().err
    assert main([*ARGS, "-o", str(tmp_path / "x.mp4"), "--guidance-parallel", "3"]) == 2
    assert "--guidance-parallel: 3 does not divide the 4 processes" in capsys.readouterr().err
