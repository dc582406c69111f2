"""Small input files for the CLI and media tests: an image, a clip with sound, LoRA files for the tiny transformer."""

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from ltx2_diffusers.utils.media import export_to_video_with_audio

TINY_VIDEO_DIM = 16  # the tiny transformer's video width: 2 heads x 8 (ltx2_diffusers/pipelines/tiny.py)


def write_image(path: Path, width: int = 64, height: int = 48) -> Path:
    """A smooth RGB gradient PNG."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), 0 * x + 90], axis=-1)
    Image.fromarray(rgb.astype(np.uint8)).save(path)
    return path


def write_clip(path: Path, num_frames: int = 9, size: int = 64, sample_rate: int | None = 24000) -> Path:
    """A moving gradient clip with a 440 Hz stereo tone as long as the video (or silent with sample_rate=None)."""
    f, y, x = np.meshgrid(np.arange(num_frames), np.arange(size), np.arange(size), indexing="ij")
    frames = np.stack([x * 255 // size, y * 255 // size, (f * 24) % 256], axis=-1).astype(np.uint8)
    audio = None
    if sample_rate is not None:
        t = np.arange(round(num_frames / 24 * sample_rate)) / sample_rate
        audio = np.stack([0.4 * np.sin(2 * np.pi * 440 * t)] * 2).astype(np.float32)
    export_to_video_with_audio(frames, audio, sample_rate, 24, path)
    return path


def write_lora(path: Path, rank: int = 2, seed: int = 0, metadata: dict[str, str] | None = None) -> Path:
    """A random rank-`rank` LoRA on attn1.to_q / to_v of the tiny transformer's first two blocks (diffusers names)."""
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for block in (0, 1):
        for layer in ("to_q", "to_v"):
            name = f"transformer_blocks.{block}.attn1.{layer}"
            tensors[f"{name}.lora_A.weight"] = torch.randn(rank, TINY_VIDEO_DIM, generator=generator) * 0.1
            tensors[f"{name}.lora_B.weight"] = torch.randn(TINY_VIDEO_DIM, rank, generator=generator) * 0.1
    save_file(tensors, str(path), metadata=metadata)
    return path
