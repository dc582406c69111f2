"""Builders for the training tests: a tiny diffusers folder and a dataset of short clips with a sine-wave soundtrack."""

import json
from pathlib import Path

import numpy as np
import torch

from ltx2_diffusers import LTX2AVPipeline, LTX2VideoTransformer3DModel
from ltx2_diffusers.pipelines.tiny import build_tiny_pipeline, tiny_transformer_config
from ltx2_diffusers.utils.media import export_to_video_with_audio

# The tiny pipeline's transformer is 16 wide, a bottleneck for 128 latent channels that no LoRA can train through;
# the training tests use 2 blocks 128 wide (video and audio), so that 60 steps take seconds and can fit a clip.
TRANSFORMER_CONFIG = {
    **tiny_transformer_config(),
    "num_layers": 2,
    "num_attention_heads": 4,
    "attention_head_dim": 32,
    "cross_attention_dim": 128,
    "audio_num_attention_heads": 4,
    "audio_attention_head_dim": 32,
    "audio_cross_attention_dim": 128,
}
SAMPLE_RATE = 16000
MAX_SEQUENCE_LENGTH = 128  # one block of the connectors' 128 registers: short contexts, fast steps
BUCKETS = "64x64x9"


def build_training_pipeline(seed: int = 0) -> LTX2AVPipeline:
    """`build_tiny_pipeline` with the transformer of TRANSFORMER_CONFIG, fp32 on the CPU."""
    pipe = build_tiny_pipeline(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 7)
        transformer = LTX2VideoTransformer3DModel(**TRANSFORMER_CONFIG)
        for parameter in transformer.parameters():
            parameter.data.normal_(0.0, 0.05)
        # A trained model carries its input through (it predicts x_t - x0 at high noise); start the random base there:
        # proj_out = proj_in^T with proj_in orthogonal, no output modulation. The LoRA then has a clip to learn,
        # not a whole model.
        for proj_in, proj_out, table in (
            (transformer.proj_in, transformer.proj_out, transformer.scale_shift_table),
            (transformer.audio_proj_in, transformer.audio_proj_out, transformer.audio_scale_shift_table),
        ):
            q = torch.linalg.qr(torch.randn(proj_in.out_features, proj_in.in_features))[0]
            proj_in.weight.data, proj_out.weight.data = q.clone(), q.T.clone()
            proj_in.bias.data.zero_()
            proj_out.bias.data.zero_()
            table.data.zero_()
    components = {**pipe.components, "transformer": transformer.eval()}
    small = LTX2AVPipeline(**components)
    small.set_progress_bar_config(disable=True)
    return small


def save_training_pipeline(folder: Path, seed: int = 0) -> Path:
    build_training_pipeline(seed).save_pretrained(folder)
    return folder


def clip_frames(seed: int, num_frames: int = 9, size: int = 64) -> np.ndarray:
    """(F, size, size, 3) uint8: a moving colour gradient, different per seed."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    frames = []
    for t in range(num_frames):
        phase = seed + t / num_frames
        r = 0.5 + 0.5 * np.sin(2 * np.pi * (x + phase))
        g = 0.5 + 0.5 * np.sin(2 * np.pi * (y + 0.5 * phase))
        b = np.full_like(x, (seed % 3) / 3)
        frames.append(np.stack([r, g, b], axis=-1))
    return (np.stack(frames) * 255).round().astype(np.uint8)


def write_clip(path: Path, seed: int, num_frames: int = 9, size: int = 64, fps: float = 24.0, audio: bool = True):
    """An mp4 of `num_frames` frames with, when `audio`, a stereo sine tone (220 Hz x (seed + 1)) 0.5 s long."""
    waveform = None
    if audio:
        t = np.arange(int(0.5 * SAMPLE_RATE)) / SAMPLE_RATE
        tone = 0.3 * np.sin(2 * np.pi * 220 * (seed + 1) * t).astype(np.float32)
        waveform = np.stack([tone, tone])
    export_to_video_with_audio(clip_frames(seed, num_frames, size), waveform, SAMPLE_RATE, fps, path)
    return path


def write_dataset(folder: Path, num_clips: int = 2, captions: list[str] | None = None, **clip_kwargs) -> Path:
    """`folder/clip{i}.mp4` and a metadata.jsonl listing them with captions."""
    folder.mkdir(parents=True, exist_ok=True)
    captions = captions or [f"a test pattern number {i}" for i in range(num_clips)]
    lines = []
    for i in range(num_clips):
        write_clip(folder / f"clip{i}.mp4", seed=i, **clip_kwargs)
        lines.append(json.dumps({"file_name": f"clip{i}.mp4", "text": captions[i]}))
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _process(rank: int, world_size: int, port: int, main, argv: list[str]) -> None:
    import os

    from accelerate.state import AcceleratorState

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), ACCELERATE_USE_CPU="true")  # fmt: skip
    AcceleratorState._reset_state(reset_partial_state=True)  # the parent's single-process state, inherited
    main(argv)


def run_in_processes(main, argv: list[str], world_size: int = 2, timeout: float = 300) -> None:
    """`main(argv)` in `world_size` forked CPU processes joined by torch.distributed (gloo), as `accelerate launch
    --cpu --num_processes N` would start them; forked, so the children start without importing torch again."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    port = free_port()
    processes = [context.Process(target=_process, args=(r, world_size, port, main, argv)) for r in range(world_size)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout)
    codes = [process.exitcode for process in processes]
    for process in processes:
        if process.is_alive():
            process.kill()
    if codes != [0] * world_size:
        raise RuntimeError(f"the training processes exited with {codes}")


def write_audio(path: Path, seconds: float, frequency: float = 330.0, sample_rate: int = SAMPLE_RATE) -> Path:
    """An audio-only file (by its suffix: .wav as 16-bit PCM) holding a stereo sine tone `seconds` long."""
    import av

    t = np.arange(int(seconds * sample_rate)) / sample_rate
    tone = (0.3 * np.sin(2 * np.pi * frequency * t) * 32767).astype(np.int16)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=sample_rate, layout="stereo")
        frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]).reshape(1, -1, order="F"), format="s16",
                                           layout="stereo")  # fmt: skip
        frame.sample_rate = sample_rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
