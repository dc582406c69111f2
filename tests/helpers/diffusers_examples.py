"""Builders for tests/test_diffusers_examples.py: the local stand-ins for the Hub repos and media files of diffusers'
LTX-2 documentation examples, a spy on what the examples hand to the stage functions, and the output checks."""

from pathlib import Path

import av
import numpy as np
import torch

from ltx2_diffusers import GuidanceScales, LTX2AVPipeline, LTX2Scheduler
from ltx2_diffusers.pipelines.tiny import build_tiny_two_stage_pipeline

from .cli_media import write_clip, write_image, write_lora

LORA_NAME = "ltx-2-19b-distilled-lora-384.safetensors"
SPIED = ("prepare_latents", "denoise", "enhance_prompt_with_gemma")


def save_folder(root: Path, name: str, model_version: str = "2.0", distilled: bool = False) -> str:
    """A diffusers-layout folder as diffusers' LTX-2 repos: the tiny pipeline, `latent_upsampler/` (not listed in
    model_index.json) and the stage-2 LoRA file at the top."""
    two_stage = build_tiny_two_stage_pipeline(model_version=model_version)
    components = {k: v for k, v in two_stage.components.items() if k != "latent_upsampler"}
    if distilled:
        components["scheduler"] = LTX2Scheduler.distilled()
    folder = root / name
    LTX2AVPipeline(**components).save_pretrained(folder)
    two_stage.latent_upsampler.save_pretrained(folder / "latent_upsampler")
    write_lora(folder / LORA_NAME)
    return str(folder)


def example_files(root: Path, media: Path) -> dict[str, str]:
    """The examples' Hub ids -> local folders, and the local image / video files standing in for their URLs."""
    return {
        "Lightricks/LTX-2": save_folder(root, "LTX-2"),
        "rootonchair/LTX-2-19b-distilled": save_folder(root, "LTX-2-19b-distilled", distilled=True),
        "diffusers/LTX-2.3-Diffusers": save_folder(root, "LTX-2.3-Diffusers", model_version="2.3"),
        "image": str(write_image(media / "first.png", width=80, height=64)),
        "last_image": str(write_image(media / "last.png", width=64, height=96)),
        "video": str(write_clip(media / "cond.mp4", num_frames=9, size=64)),
    }


def spy_on_stages(monkeypatch) -> dict[str, list]:
    """(args, kwargs, result) per call of diffusers_compat's `SPIED` functions, which still run."""
    from ltx2_diffusers import diffusers_compat

    recorded = {name: [] for name in SPIED}
    for name, log in recorded.items():

        def spy(*args, _original=getattr(diffusers_compat, name), _log=log, **kwargs):
            result = _original(*args, **kwargs)
            _log.append((args, kwargs, result))
            return result

        monkeypatch.setattr(diffusers_compat, name, spy)
    return recorded


def sigmas_of(call) -> list[float]:
    """The schedule a recorded `denoise` call ran."""
    return [round(float(s), 6) for s in call[0][4]]


def guidance_of(call) -> tuple[GuidanceScales, GuidanceScales]:
    """The video and audio guidance a recorded `denoise` call ran."""
    return call[0][5], call[0][6]


def check_media(video, audio, num_frames: int, height: int, width: int, sample_rate: int, path: str) -> None:
    """np frames (1, F, H, W, 3) in [0, 1], a stereo float32 waveform as long as the clip, and an mp4 at `path` with
    one video stream of F frames of H x W and one audio stream at `sample_rate`."""
    assert isinstance(video, np.ndarray) and video.dtype == np.float32
    assert video.shape == (1, num_frames, height, width, 3)
    assert 0.0 <= video.min() and video.max() <= 1.0
    assert audio.dtype == torch.float32 and audio.ndim == 3 and audio.shape[:2] == (1, 2)
    assert abs(audio.shape[2] / sample_rate - num_frames / 24.0) < 0.1
    with av.open(path) as container:
        assert len(container.streams.video) == 1 and len(container.streams.audio) == 1
        stream = container.streams.video[0]
        assert (stream.codec_context.height, stream.codec_context.width) == (height, width)
        assert sum(1 for _ in container.decode(video=0)) == num_frames
        assert container.streams.audio[0].codec_context.sample_rate == sample_rate
