"""Audio-only samples for `--mode audio` (ltx-trainer's text-to-audio data): audio files cut to `--audio_durations`
buckets, cached without video, trained with audio-only model calls; every other mode refuses them by name."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from helpers.training import (
    BUCKETS,
    MAX_SEQUENCE_LENGTH,
    build_training_pipeline,
    save_training_pipeline,
    write_audio,
    write_dataset,
)
from safetensors.torch import load_file

from ltx2_diffusers.pipelines.inputs import audio_waveform
from ltx2_diffusers.training.buckets import AudioBucket, parse_audio_durations, parse_buckets
from ltx2_diffusers.training.data import cache_dataset, load_cached
from ltx2_diffusers.training.metadata import DataError

SCRIPT = Path(__file__).parents[1] / "scripts" / "train_lora.py"
spec = importlib.util.spec_from_file_location("train_lora_audio", SCRIPT)
train_lora = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train_lora)


def audio_dataset(folder: Path, seconds=(0.7, 0.35)) -> Path:
    """Two audio files and a clip with a soundtrack."""
    write_dataset(folder, num_clips=1)
    lines = [{"file_name": "clip0.mp4", "text": "a test pattern number 0"}]
    for i, length in enumerate(seconds):
        write_audio(folder / f"tone{i}.wav", length, frequency=330.0 * (i + 1))
        lines.append({"file_name": f"tone{i}.wav", "text": f"a tone number {i}"})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder


def test_audio_files_are_cut_to_their_bucket_and_cached_without_video(tmp_path):
    pipe = build_training_pipeline()
    folder = audio_dataset(tmp_path / "data")
    assert parse_audio_durations("0.5; 0.25") == (AudioBucket(0.5), AudioBucket(0.25))
    report = cache_dataset(pipe, folder, tmp_path / "cache", parse_buckets(BUCKETS), audio_durations=(
        AudioBucket(0.5), AudioBucket(0.25)), max_sequence_length=MAX_SEQUENCE_LENGTH)  # fmt: skip
    clip, long, short = (load_cached(path) for path in report.written)
    assert clip.video_latents is not None and clip.fps == 24.0
    assert long.video_latents is None and long.fps is None and short.video_latents is None
    # the longest bucket each file fills: 0.7 s -> 0.5 s, 0.35 s -> 0.25 s
    waveform, rate = audio_waveform(folder / "tone0.wav", max_duration=0.5)
    with torch.no_grad():
        expected = pipe.audio_vae.encode_waveform(waveform[None].float(), rate)[0]
    torch.testing.assert_close(long.audio_latents, expected)
    assert long.audio_latents.shape[1] > short.audio_latents.shape[1]
    assert long.shape_key(True)[0] is None and long.shape_key(True) != short.shape_key(True)

    with pytest.raises(DataError, match=r"tone1\.wav \(metadata\.jsonl line 3\): the audio \(0\.35 s\) is shorter than "
                       r"every --audio_durations bucket \(0\.5s\); add a bucket of at most 0\.35 s"):  # fmt: skip
        cache_dataset(pipe, folder, tmp_path / "c2", parse_buckets(BUCKETS), audio_durations=(AudioBucket(0.5),))
    with pytest.raises(DataError, match=r"tone0\.wav \(metadata\.jsonl line 2\): an audio file; audio-only samples "
                       r"need --audio_durations"):  # fmt: skip
        cache_dataset(pipe, folder, tmp_path / "c3", parse_buckets(BUCKETS))
    (folder / "tone1.wav").write_bytes(b"RIFF" + b"\x00" * 60)
    with pytest.raises(DataError, match=r"tone1\.wav \(metadata\.jsonl line 3\): cannot read the audio"):
        cache_dataset(pipe, folder, tmp_path / "c4", parse_buckets(BUCKETS), audio_durations=(AudioBucket(0.25),))
    assert not any((tmp_path / name).exists() for name in ("c2", "c3", "c4"))
    with pytest.raises(ValueError, match=r"--audio_durations: '-1' is not a positive number of seconds"):
        parse_audio_durations("2;-1")


def test_the_audio_mode_trains_on_audio_files_and_other_modes_refuse_them(tmp_path):
    model_dir = save_training_pipeline(tmp_path / "model")
    folder = audio_dataset(tmp_path / "data")

    def run(output_dir: Path, *extra: str) -> Path:
        return train_lora.main(["--pretrained_model_name_or_path", str(model_dir), "--train_data_dir", str(folder),
                                "--resolution_buckets", BUCKETS, "--audio_durations", "0.5;0.25",
                                "--max_sequence_length", str(MAX_SEQUENCE_LENGTH), "--output_dir", str(output_dir),
                                "--rank", "4", "--max_train_steps", "3", "--checkpointing_steps", "100",
                                *extra])  # fmt: skip

    with pytest.raises(DataError, match=r"tone0\.wav \(metadata\.jsonl line 2\): an audio file, but --mode t2av "
                       r"trains video; use --mode audio"):  # fmt: skip
        run(tmp_path / "t2av", "--mode", "t2av")
    assert not (folder / ".ltx2_cache").exists()
    output_dir = run(tmp_path / "audio", "--mode", "audio")
    log = [json.loads(line) for line in (output_dir / "training_log.jsonl").read_text().splitlines()]
    assert len(log) == 3 and all("audio_loss" in r and "video_loss" not in r for r in log)
    lora = load_file(str(output_dir / "comfyui_lora_weights.safetensors"))
    assert len(lora) == 2 * 10 * 2 and all(".audio_" in k for k in lora)
    assert all(v.abs().max() > 0 for k, v in lora.items() if k.endswith("lora_B.weight"))
