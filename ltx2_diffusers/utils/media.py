"""Media I/O through PyAV and PIL: an mp4 with H.264 video and AAC audio out; images, videos and audio in (spec §10).

Frames are RGB; in arrays they are (F, H, W, 3) uint8 or float in [0, 1]. Waveforms are (channels, samples) float32
in [-1, 1]. Nothing here touches a model.
"""

import math
import numbers
import os
import uuid
from collections.abc import Sequence
from fractions import Fraction
from io import BytesIO
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image
from torch import Tensor

_INT_SAMPLE_SCALE = {"u8": 128.0, "s16": 32768.0, "s32": 2147483648.0}  # full scale of integer sample formats

# Containers that hold H.264 + AAC, by file suffix (PyAV / FFmpeg format names). Anything else is refused: writing MP4
# bytes into `clip.gif` gives a file no viewer opens as what its name says.
CONTAINER_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}

# The sample rates AAC can signal (ISO 14496-3, sampling_frequency_index); FFmpeg's encoder refuses others.
AAC_SAMPLE_RATES = (7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)


# ----------------------------------------------------------------------------------------------------------------------
# Output


def _frames_uint8(frames: "np.ndarray | Tensor | Sequence[Image.Image]") -> np.ndarray:
    """Frames in any of the pipeline's output forms -> (F, H, W, 3) uint8."""
    if isinstance(frames, Sequence) and not isinstance(frames, np.ndarray):
        if len(frames) == 0:
            raise ValueError("frames is empty: nothing to encode")
        if len(frames) == 1 and isinstance(frames[0], Sequence):  # pipeline "pil" output: one list per video
            frames = frames[0]
        if not all(isinstance(f, Image.Image) for f in frames):
            raise TypeError("a list of frames must hold PIL images (one per frame)")
        frames = np.stack([np.asarray(f.convert("RGB")) for f in frames])
    if isinstance(frames, Tensor):
        frames = frames.detach().cpu()
        frames = frames.float().numpy() if frames.is_floating_point() else frames.numpy()
    if not isinstance(frames, np.ndarray):
        raise TypeError(f"frames must be a numpy array, a tensor or a list of PIL images, got {type(frames).__name__}")
    if frames.ndim == 5:
        if frames.shape[0] != 1:
            raise ValueError(f"frames hold a batch of {frames.shape[0]} videos; pass one video, e.g. frames[0]")
        frames = frames[0]
    if frames.ndim != 4:
        raise ValueError(f"frames must be (F, H, W, 3) or (F, 3, H, W), got shape {frames.shape}")
    if frames.shape[-1] != 3 and frames.shape[1] == 3:  # (F, 3, H, W), the "pt" layout
        frames = frames.transpose(0, 2, 3, 1)
    if frames.shape[-1] != 3:
        raise ValueError(f"frames must have 3 (RGB) channels, got shape {frames.shape}")
    if frames.shape[0] == 0:
        raise ValueError(f"frames hold no frame (shape {frames.shape}): a video needs at least one")
    if frames.shape[1] == 0 or frames.shape[2] == 0:
        raise ValueError(f"frames are {frames.shape[2]}x{frames.shape[1]} (WxH): a frame needs at least 2x2 pixels")
    if frames.dtype == np.uint8:
        return np.ascontiguousarray(frames)
    if np.issubdtype(frames.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(frames)))
        if bad:
            raise ValueError(
                f"frames hold {bad} NaN/Inf values out of {frames.size}: the decode (or the model) diverged; nothing "
                "was written"
            )
        if frames.min() < -1e-3 or frames.max() > 1 + 1e-3:
            raise ValueError(
                f"float frames must lie in [0, 1], got [{frames.min():.3f}, {frames.max():.3f}]; "
                "map [-1, 1] pixels with (x + 1) / 2 first"
            )
        return np.ascontiguousarray((np.clip(frames, 0.0, 1.0) * 255.0).round().astype(np.uint8))
    raise TypeError(f"frames must be uint8 or float in [0, 1], got {frames.dtype}")


def _stereo_float(audio: "np.ndarray | Tensor") -> np.ndarray:
    """A waveform -> (2, S) float32 clipped to [-1, 1]; accepts (2, S), (S, 2), (1, 2, S), and mono (S,) / (1, S)."""
    if isinstance(audio, Tensor):
        audio = audio.detach().cpu().float().numpy()
    if not isinstance(audio, np.ndarray):
        raise TypeError(f"audio must be a numpy array or a tensor, got {type(audio).__name__}")
    if audio.ndim == 3:
        if audio.shape[0] != 1:
            raise ValueError(f"audio holds a batch of {audio.shape[0]} waveforms; pass one, e.g. audio[0]")
        audio = audio[0]
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2:
        raise ValueError(f"audio must be (channels, samples) with 1 or 2 channels, got shape {audio.shape}")
    if 0 in audio.shape:
        raise ValueError(
            f"audio has shape {audio.shape}: no channels or no samples; pass a (2, S) or mono (S,) waveform with S > 0, "
            "or audio=None for a silent video"
        )
    if audio.shape[0] not in (1, 2) and audio.shape[1] in (1, 2):
        audio = audio.T
    if audio.shape[0] not in (1, 2):
        raise ValueError(f"audio must be mono or stereo (channels, samples), got shape {audio.shape}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise TypeError(f"audio must be a float waveform in [-1, 1], got {audio.dtype}")
    bad = int(np.count_nonzero(~np.isfinite(audio)))
    if bad:
        raise ValueError(
            f"audio holds {bad} NaN/Inf samples out of {audio.size}: the vocoder (or the model) diverged; nothing was "
            "written"
        )
    if audio.shape[0] == 1:
        audio = np.repeat(audio, 2, axis=0)
    return np.ascontiguousarray(np.clip(audio.astype(np.float32), -1.0, 1.0))


def container_format(path: "str | Path") -> str:
    """The FFmpeg container for an output path, from its suffix (.mp4, .mov, .mkv); ValueError for any other."""
    suffix = Path(path).suffix.lower()
    if suffix not in CONTAINER_FORMATS:
        raise ValueError(
            f"output {str(path)!r}: the suffix {suffix or '(none)'!r} is not a container for H.264 + AAC; use one of "
            f"{', '.join(CONTAINER_FORMATS)}"
        )
    return CONTAINER_FORMATS[suffix]


def check_fps(fps: float) -> None:
    """A frame rate must be a finite number > 0 (a stream's time base is 1/fps)."""
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a finite number > 0 (e.g. 24 or 24000/1001), got {fps!r}")


def check_sample_rate(sample_rate: "int | float | None") -> None:
    """An AAC track's sample rate must be one AAC can signal (`AAC_SAMPLE_RATES`)."""
    if sample_rate is None:
        raise ValueError("audio needs its sample_rate (Hz), e.g. 24000 for LTX-2's vocoder; or pass audio=None")
    if (
        isinstance(sample_rate, bool)
        or not isinstance(sample_rate, numbers.Real)
        or sample_rate not in AAC_SAMPLE_RATES
    ):
        raise ValueError(
            f"sample_rate={sample_rate!r} Hz cannot be written as AAC, which takes one of {list(AAC_SAMPLE_RATES)}: "
            "resample the waveform first (LTX-2's vocoder gives 24000, LTX-2.3's 48000)"
        )


def export_to_video_with_audio(
    frames: "np.ndarray | Tensor | Sequence[Image.Image]",
    audio: "np.ndarray | Tensor | None",
    sample_rate: int | None,
    fps: float,
    path: "str | Path",
    crf: int | None = None,
) -> str:
    """Write an mp4 (or .mov / .mkv, by the suffix) with H.264 (yuv420p) video and, when `audio` is given, an AAC
    stereo track. Returns the path.

    frames: (F, H, W, 3) or (F, 3, H, W) uint8 or float in [0, 1] (numpy or torch; a leading batch of 1 is fine), or a
    list of PIL images. H and W must be even (yuv420p). audio: (2, S) / (S, 2) / mono float waveform in [-1, 1] at
    `sample_rate` Hz (24000 for LTX-2's vocoder, 48000 for LTX-2.3's), or None for a silent video.
    fps: frame rate (23.976 stays 24000/1001; ltx-pipelines truncates it to an int). crf: libx264 quality, None for
    the encoder default. Audio is written after the video, as ltx-pipelines does; the stream is as long as the waveform.

    Every input is checked before anything is written (empty or 0x0 frames, NaN/Inf pixels or samples, 0-channel
    audio, a sample rate AAC cannot carry, a non-finite or non-positive fps, odd sizes, a suffix that is not a
    container for H.264 + AAC). The clip is encoded into a hidden file in the output's folder and renamed onto `path`
    only once complete: on any error, Ctrl-C included, nothing is left at `path` (an older file there stays).
    """
    path = Path(path)
    fmt = container_format(path)
    check_fps(fps)
    video = _frames_uint8(frames)
    num_frames, height, width, _ = video.shape
    if height % 2 or width % 2:
        even = f"{width - width % 2 or 2}x{height - height % 2 or 2}"
        raise ValueError(
            f"frame size {width}x{height} (WxH) must be even in both directions for H.264 yuv420p: crop or resize the "
            f"frames to {even} first (the pipelines' sizes, multiples of 32, always are)"
        )
    waveform = None
    if audio is not None:
        check_sample_rate(sample_rate)
        waveform = _stereo_float(audio)
    if path.is_dir():
        raise IsADirectoryError(f"output {str(path)!r} is a folder: give a file name, e.g. {str(path / 'clip.mp4')!r}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output {str(path)!r}: the folder {str(path.parent)!r} does not exist")

    # Encode into a hidden file beside the output and rename it on success, so that an error or Ctrl-C half way never
    # leaves a truncated clip (or replaces a good one) at `path`. Same folder: the rename is atomic.
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial{path.suffix}")
    try:
        _encode(partial, fmt, video, fps, waveform, sample_rate, crf)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return str(path)


def _encode(path: Path, fmt: str, video: np.ndarray, fps: float, waveform, sample_rate, crf: int | None) -> None:
    height, width = video.shape[1:3]
    options = {} if crf is None else {"crf": str(crf)}
    with av.open(str(path), mode="w", format=fmt) as container:
        video_stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001), options=options)
        video_stream.width, video_stream.height, video_stream.pix_fmt = width, height, "yuv420p"
        audio_stream = None
        if waveform is not None:
            audio_stream = container.add_stream("aac", rate=int(sample_rate))
            audio_stream.layout = "stereo"
        for frame in video:
            container.mux(video_stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(video_stream.encode())
        if audio_stream is not None:
            audio_frame = av.AudioFrame.from_ndarray(waveform, format="fltp", layout="stereo")
            audio_frame.sample_rate = int(sample_rate)
            audio_frame.pts = 0
            # PyAV re-chunks to the encoder's frame size (1024 samples for AAC)
            container.mux(audio_stream.encode(audio_frame))
            container.mux(audio_stream.encode())


def h264_round_trip(image: np.ndarray, crf: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> the same picture after one H.264 frame at `crf` (libx264, veryfast, yuv420p), decoded
    back to RGB; odd sizes are cropped to even first (ltx-pipelines' `preprocess`, spec §7.6). The result depends on
    the libx264 build, so tests of exact values use crf 0 elsewhere."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got shape {image.shape} {image.dtype}")
    height, width = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    if height == 0 or width == 0:
        raise ValueError(f"image {image.shape[1]}x{image.shape[0]} is too small for H.264 (needs at least 2x2)")
    buffer = BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=1, options={"crf": str(crf), "preset": "veryfast"})
        stream.height, stream.width = height, width
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:height, :width]), format="rgb24")
        container.mux(stream.encode(frame.reformat(format="yuv420p")))
        container.mux(stream.encode())
    buffer.seek(0)
    with av.open(buffer) as container:
        decoded = next(container.decode(video=0))
        return decoded.to_ndarray(format="rgb24")


# ----------------------------------------------------------------------------------------------------------------------
# Input


# Images are read by `pipelines.inputs.image_to_uint8` (every image form, 16-bit PNGs without clipping): one reader.


def load_video(path: "str | Path", max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """A video file -> ((F, H, W, 3) uint8 RGB frames, fps); at most `max_frames` frames from the start."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"no video file at {str(path)!r}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1 or None, got {max_frames}")
    frames = []
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{str(path)!r} has no video stream")
        stream = container.streams.video[0]
        fps = float(stream.average_rate) if stream.average_rate else float("nan")
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            if max_frames is not None and len(frames) == max_frames:
                break
    if not frames:
        raise ValueError(f"{str(path)!r} has a video stream but no decodable frames")
    return np.stack(frames), fps


def _audio_frame_float(frame: av.AudioFrame) -> np.ndarray:
    """One decoded frame -> (channels, samples) float32 in [-1, 1]."""
    samples = frame.to_ndarray()
    name = frame.format.name.rstrip("p")
    samples = samples.astype(np.float32)
    if name in _INT_SAMPLE_SCALE:
        samples = samples / _INT_SAMPLE_SCALE[name]
        if name == "u8":
            samples = samples - 1.0  # unsigned 8-bit is centred on 128
    if not frame.format.is_planar:  # interleaved: (1, samples * channels)
        samples = samples.reshape(-1, len(frame.layout.channels)).T
    return samples


def load_audio(path: "str | Path", start_time: float = 0.0, max_duration: float | None = None) -> tuple[Tensor, int]:
    """The first audio stream of a file -> ((channels, samples) float32 waveform in [-1, 1], sample rate).

    start_time / max_duration (seconds) select a window, cut by sample counts. Raises ValueError when the file has no
    audio stream or the window holds no samples.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"no audio/video file at {str(path)!r}")
    if start_time < 0 or (max_duration is not None and max_duration <= 0):
        raise ValueError(f"need start_time >= 0 and max_duration > 0 or None, got {start_time}, {max_duration}")
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise ValueError(f"{str(path)!r} has no audio stream")
        stream = container.streams.audio[0]
        sample_rate = stream.rate
        chunks = [_audio_frame_float(frame) for frame in container.decode(stream)]
    if not chunks:
        raise ValueError(f"{str(path)!r} has an audio stream but no decodable samples")
    waveform = np.concatenate(chunks, axis=-1)
    start = round(start_time * sample_rate)
    stop = None if max_duration is None else start + round(max_duration * sample_rate)
    waveform = waveform[:, start:stop]
    if waveform.shape[1] == 0:
        raise ValueError(f"no audio samples after start_time={start_time} s in {str(path)!r}")
    return torch.from_numpy(np.ascontiguousarray(waveform)), int(sample_rate)
