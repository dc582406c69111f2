"""One front door for user media: images, videos and audio in any form a user holds -> the pixels / waveform a model
takes (spec §7.6, §10). Every pipeline and the CLI go through here; nothing here touches a model.

The rules, by form (`name` is the argument's name, used in every error):

| form | images | videos |
|---|---|---|
| path (str / os.PathLike) | any file PIL reads | any file PyAV decodes (its fps is returned too) |
| PIL image | every mode; see below | a list of PIL images (or of any image form), one per frame |
| numpy integer | (H, W) / (H, W, 1 / 3 / 4), uint8 0..255 or uint16 0..65535 | (F, H, W) / (F, H, W, C), same dtypes |
| numpy float | same layouts, values in [0, 1] (the pipelines' "np" output) | same |
| torch integer | as numpy integer (channels last) | as numpy integer |
| torch float | (3, H, W) / (1, 3, H, W) in [-1, 1]: already prepared, must be the target size | (3, F, H, W) / (1, 3, F, H, W) in [-1, 1], prepared |

Channels: 1 = grey (repeated), 3 = RGB, 4 = RGBA with alpha dropped, not composited (the reference's `[..., :3]`).
16-bit data keeps its high byte (x >> 8, what PIL does when it reads a 16-bit RGB PNG), so 16-bit grey stays grey
instead of clipping to white; PIL modes "I;16*" and "I" (a 16-bit grey PNG) follow it, "F" follows the float rule.
Float values outside their range by more than 1e-3, NaN or infinity are refused, never clipped.

Images and videos are then prepared as the reference prepares them (spec §7.6): an image optionally goes through one
H.264 frame at `crf` (0 skips it), then every frame is cover-resized (bilinear, no antialias) and centre-cropped, and
mapped to x / 127.5 - 1. Audio: a path (its first audio stream) or a (samples,) / (channels, samples) /
(1, channels, samples) waveform with its sample rate; float in [-1, 1] or int16 / int32 PCM.

Bad input raises ValueError (TypeError for a wrong Python type) naming the argument, what was wrong and the fix.
"""

import math
import os
from collections.abc import Sequence
from numbers import Integral
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from ..utils.media import h264_round_trip, load_audio, load_video
from .presets import DEFAULT_IMAGE_CRF

ImageInput = str | os.PathLike | Image.Image | np.ndarray | Tensor
VideoInput = str | os.PathLike | np.ndarray | Tensor | Sequence[ImageInput]
AudioInput = str | os.PathLike | np.ndarray | Tensor

FLOAT_TOLERANCE = 1e-3  # how far float pixels / samples may stray outside their range (rounding), then refused
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8_000, 384_000  # Hz: telephone audio to the highest studio rate
_INT_PCM_SCALE = {np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2147483648.0}  # full scale, as PyAV's s16 / s32


# ----------------------------------------------------------------------------------------------------------------------
# Shared checks


def _existing_file(path: "str | os.PathLike", name: str) -> Path:
    """A path argument -> Path, refusing empty strings, missing files and directories with the argument's name."""
    if os.fspath(path) == "":
        raise ValueError(f"{name} is an empty path: pass the file to read")
    resolved = Path(path).expanduser()
    if resolved.is_dir():
        raise ValueError(f"{name}={os.fspath(path)!r} is a directory: pass a file inside it")
    if not resolved.is_file():
        raise ValueError(f"{name}={os.fspath(path)!r}: no such file")
    return resolved


def _check_size(height: int, width: int, name: str) -> None:
    for label, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
            raise ValueError(f"{name}: the target {label} must be a positive int, got {value!r}")


def _check_float_range(values: np.ndarray | Tensor, low: float, high: float, name: str, hint: str) -> None:
    """Refuse NaN / inf and values outside [low, high] (by more than FLOAT_TOLERANCE), naming the argument."""
    is_array = isinstance(values, np.ndarray)
    if (values.size if is_array else values.numel()) == 0:
        return
    finite = bool(np.isfinite(values).all()) if is_array else bool(torch.isfinite(values).all())
    if not finite:
        raise ValueError(f"{name} holds NaN or infinite values: check how it was computed")
    lo, hi = float(values.min()), float(values.max())
    if lo < low - FLOAT_TOLERANCE or hi > high + FLOAT_TOLERANCE:
        raise ValueError(f"{name} has float values in [{lo:.4g}, {hi:.4g}], outside [{low:g}, {high:g}]: {hint}")


# ----------------------------------------------------------------------------------------------------------------------
# Images -> (H, W, 3) uint8

_FLOAT_HINT = (
    "numpy float pixels are in [0, 1] (torch float pixels in [-1, 1]); rescale, e.g. x / 255 for 0..255 values"
)


def _integer_pixels_uint8(pixels: np.ndarray, name: str) -> np.ndarray:
    """(..., H, W, C) pixels of any accepted dtype -> uint8, same shape."""
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == np.uint16:
        return (pixels >> 8).astype(np.uint8)  # the high byte: exact for 8-bit values stored as v * 257
    if np.issubdtype(pixels.dtype, np.floating):
        _check_float_range(pixels, 0.0, 1.0, name, _FLOAT_HINT)
        return (np.clip(pixels.astype(np.float32), 0.0, 1.0) * 255.0).round().astype(np.uint8)
    raise ValueError(
        f"{name} has dtype {pixels.dtype}: pixels must be uint8 (0..255), uint16 (0..65535) or float in [0, 1]; "
        "cast it, e.g. array.astype(np.uint8) for 0..255 integers"
    )


def _channels_last_uint8(pixels: np.ndarray, name: str, frames: bool) -> np.ndarray:
    """(H, W[, C]) or, with frames, (F, H, W[, C]) pixels -> (..., H, W, 3) uint8 (C = 1, 3 or 4)."""
    spatial = 3 if frames else 2
    layouts = "(F, H, W) or (F, H, W, C)" if frames else "(H, W) or (H, W, C)"
    if pixels.ndim == spatial:
        pixels = pixels[..., None]
    if pixels.ndim != spatial + 1:
        raise ValueError(f"{name} has shape {pixels.shape}: expected {layouts} with C = 1, 3 or 4 channels last")
    channels = pixels.shape[-1]
    if channels not in (1, 3, 4):
        first = pixels.shape[-3]
        hint = f"; move the {first} channels last (.permute / .transpose)" if first in (1, 3, 4) else ""
        raise ValueError(f"{name} has {channels} channels (shape {pixels.shape}): expected 1, 3 or 4, last{hint}")
    if frames and pixels.shape[0] == 0:
        raise ValueError(f"{name} has no frames (shape {pixels.shape})")
    if pixels.shape[-3] == 0 or pixels.shape[-2] == 0:
        raise ValueError(f"{name} is {pixels.shape[-2]}x{pixels.shape[-3]} (WxH): an image needs at least one pixel")
    pixels = _integer_pixels_uint8(pixels, name)
    if channels == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    return np.ascontiguousarray(pixels[..., :3])


def _pil_uint8(image: Image.Image, name: str) -> np.ndarray:
    if image.width == 0 or image.height == 0:
        raise ValueError(f"{name} is {image.width}x{image.height}: an image needs at least one pixel")
    if image.mode in ("RGB", "RGBA"):
        return np.array(np.asarray(image)[..., :3])  # a writable copy; the reference drops alpha ([..., :3])
    if image.mode.startswith("I;16"):
        return _channels_last_uint8(np.asarray(image).astype(np.uint16), name, frames=False)
    if image.mode == "I":  # 32-bit integers: a 16-bit grey PNG in older Pillow versions, read as 16-bit
        values = np.asarray(image)
        if values.min() < 0 or values.max() > 65535:
            raise ValueError(
                f"{name} is a mode 'I' image with values in [{values.min()}, {values.max()}]: mode 'I' is read as "
                "16-bit (0..65535); convert it to 'RGB' or 'L' yourself"
            )
        return _channels_last_uint8(values.astype(np.uint16), name, frames=False)
    if image.mode == "F":
        return _channels_last_uint8(np.asarray(image), name, frames=False)
    try:
        return np.asarray(image.convert("RGB"))
    except ValueError as error:
        raise ValueError(f"{name} is a PIL image in mode {image.mode!r}, which cannot become RGB ({error})") from None


def _open_image(path: "str | os.PathLike", name: str) -> np.ndarray:
    file = _existing_file(path, name)
    try:
        with Image.open(file) as image:
            image.load()
            return _pil_uint8(image, name)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as error:
        raise ValueError(f"{name}={os.fspath(path)!r} is not an image PIL can read ({error})") from None


def _prepared_image(image: Tensor, name: str) -> Tensor:
    """A float tensor (3, H, W) / (1, 3, H, W) in [-1, 1] -> (1, 3, H, W), checked."""
    pixels = image if image.ndim == 4 else image.unsqueeze(0)
    if pixels.ndim != 4 or pixels.shape[:2] != (1, 3):
        raise ValueError(
            f"{name} is a float tensor of shape {tuple(image.shape)}: float image tensors are (3, H, W) or "
            "(1, 3, H, W) in [-1, 1]; pass a PIL image, path or uint8 array to have it prepared for you"
        )
    if pixels.shape[-1] == 0 or pixels.shape[-2] == 0:
        raise ValueError(f"{name} is {pixels.shape[-1]}x{pixels.shape[-2]} (WxH): an image needs at least one pixel")
    _check_float_range(pixels.detach(), -1.0, 1.0, name, "torch float pixels are in [-1, 1]: map [0, 1] with x * 2 - 1")
    return pixels


def is_prepared(media: object) -> bool:
    """True for a float torch tensor: pixels already in the VAE's [-1, 1], channels first, at the target size."""
    return isinstance(media, Tensor) and media.is_floating_point()


def image_to_uint8(image: ImageInput, name: str = "image") -> np.ndarray:
    """Any image form in the module's table -> (H, W, 3) uint8 RGB (a float tensor via round((x + 1) * 127.5))."""
    if isinstance(image, str | os.PathLike):
        return _open_image(image, name)
    if isinstance(image, Image.Image):
        return _pil_uint8(image, name)
    if is_prepared(image):
        pixels = _prepared_image(image, name)[0].detach().float().cpu()
        return ((pixels + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    if isinstance(image, Tensor):
        image = image.detach().cpu().numpy()
    if isinstance(image, np.ndarray):
        return _channels_last_uint8(image, name, frames=False)
    raise TypeError(
        f"{name} must be a file path, a PIL image, a numpy array or a torch tensor, got {type(image).__name__}"
    )


# ----------------------------------------------------------------------------------------------------------------------
# Preparation (pixels -> the VAE's input)


def resize_and_center_crop(frames: Tensor, height: int, width: int) -> Tensor:
    """(H, W, C) or (F, H, W, C) float pixels -> (1, C, F, height, width): "cover" resize, then the centre window.

    s = max(height / H, width / W); the frames are resized to ceil(H s) x ceil(W s) (bilinear, align_corners=False,
    no antialias; ceil so never below the target) and cropped to the centred height x width: ltx-pipelines'
    `resize_and_center_crop`, spec §7.6.
    """
    if frames.ndim == 3:
        frames = frames.unsqueeze(0)
    if frames.ndim != 4:
        raise ValueError(f"expected (H, W, C) or (F, H, W, C) pixels, got shape {tuple(frames.shape)}")
    _check_size(height, width, "resize_and_center_crop")
    frames = frames.permute(0, 3, 1, 2)  # (F, C, H, W)
    source_height, source_width = frames.shape[-2:]
    scale = max(height / source_height, width / source_width)
    new_height, new_width = math.ceil(source_height * scale), math.ceil(source_width * scale)
    frames = F.interpolate(frames, size=(new_height, new_width), mode="bilinear", align_corners=False)
    top, left = (new_height - height) // 2, (new_width - width) // 2
    frames = frames[:, :, top : top + height, left : left + width]
    return frames.permute(1, 0, 2, 3).unsqueeze(0)


def _check_crf(crf: int, name: str) -> None:
    if isinstance(crf, bool) or not isinstance(crf, Integral) or not 0 <= crf <= 51:
        raise ValueError(
            f"{name}={crf!r} must be an int in [0, 51] (libx264's CRF range; the reference uses "
            f"{DEFAULT_IMAGE_CRF}, 0 skips the H.264 round trip)"
        )


def image_to_pixels(
    image: ImageInput, height: int, width: int, crf: int = DEFAULT_IMAGE_CRF, name: str = "image"
) -> Tensor:
    """An image -> (1, 3, 1, height, width) pixels in [-1, 1] for the video VAE (ltx-pipelines'
    `load_image_conditioning`, spec §7.6).

    A float tensor is taken as prepared (its dtype and device kept) and must already be height x width. Every other
    form becomes (H, W, 3) uint8 (`image_to_uint8`), goes through one H.264 frame at `crf` when crf > 0 (libx264,
    veryfast, yuv420p, cropped to even), then `resize_and_center_crop` and x / 127.5 - 1, in float32.
    """
    _check_size(height, width, name)
    _check_crf(crf, f"{name} crf")
    if is_prepared(image):
        pixels = _prepared_image(image, name)
        if tuple(pixels.shape[-2:]) != (height, width):
            raise ValueError(
                f"{name} is a float tensor of {pixels.shape[-2]}x{pixels.shape[-1]} (HxW) but the video is "
                f"{height}x{width}: pass it at the video's size, or a PIL image / path / uint8 array (resized and "
                "centre-cropped for you)"
            )
        return pixels.unsqueeze(2)
    pixels = image_to_uint8(image, name)
    if crf > 0:
        if min(pixels.shape[:2]) < 2:
            raise ValueError(f"{name} is {pixels.shape[1]}x{pixels.shape[0]}: H.264 needs 2x2 at least (or pass crf=0)")
        pixels = h264_round_trip(pixels, int(crf))
    frames = resize_and_center_crop(torch.tensor(pixels, dtype=torch.float32), height, width)
    return frames / 127.5 - 1.0


def half_size_image(
    image: ImageInput, height: int, width: int, name: str = "image", size: tuple[int, int] | None = None
) -> ImageInput:
    """For stage 1 of the two-stage pipelines: a prepared float tensor given at the output size height x width is
    resized to (height // 2, width // 2) (antialiased bilinear, like the PIL resize the reference applies when it
    loads an image at the stage-1 size). Other forms pass unchanged: they are prepared per stage at that stage's size.
    """
    if not is_prepared(image):
        return image
    pixels = _prepared_image(image, name)
    if tuple(pixels.shape[-2:]) != (height, width):
        raise ValueError(
            f"{name} is a float tensor of shape {tuple(image.shape)}, but float image tensors must be the output size "
            f"{height}x{width} (HxW): pass a PIL image or path to have it resized and cropped for you"
        )
    size = (height // 2, width // 2) if size is None else size  # the stage-1 size (2/3 with the x1.5 upsampler)
    half = F.interpolate(pixels.float(), size=size, mode="bilinear", antialias=True)
    return half.to(pixels.dtype) if image.ndim == 4 else half[0].to(pixels.dtype)


# ----------------------------------------------------------------------------------------------------------------------
# Videos


def _prepared_video(video: Tensor, name: str) -> Tensor:
    """A float tensor (3, F, H, W) / (1, 3, F, H, W) in [-1, 1] -> (1, 3, F, H, W), checked."""
    pixels = video if video.ndim == 5 else video.unsqueeze(0)
    if pixels.ndim != 5 or pixels.shape[:2] != (1, 3):
        raise ValueError(
            f"{name} is a float tensor of shape {tuple(video.shape)}: float video tensors are (1, 3, F, H, W) or "
            "(3, F, H, W) in [-1, 1]. The pipelines' 'pt' output (F, 3, H, W) in [0, 1] converts with "
            "(frames.permute(1, 0, 2, 3) * 2 - 1); or pass uint8 (F, H, W, 3) frames"
        )
    if 0 in pixels.shape[2:]:
        raise ValueError(f"{name} has shape {tuple(video.shape)}: a video needs frames and pixels")
    _check_float_range(pixels.detach(), -1.0, 1.0, name, "torch float pixels are in [-1, 1]: map [0, 1] with x * 2 - 1")
    return pixels


def _read_video(path: "str | os.PathLike", name: str, max_frames: int | None) -> tuple[np.ndarray, float]:
    file = _existing_file(path, name)
    try:
        return load_video(file, max_frames=max_frames)
    except (av.error.FFmpegError, ValueError) as error:
        raise ValueError(f"{name}={os.fspath(path)!r} is not a video PyAV can decode ({error})") from None


def video_frames(
    video: VideoInput, name: str = "video", max_frames: int | None = None
) -> tuple[np.ndarray, float | None]:
    """Any video form in the module's table -> ((F, H, W, 3) uint8 RGB frames, fps or None).

    fps is the file's average frame rate for a path, None for frames in memory. max_frames: keep at most that many
    frames from the start (None: all).
    """
    bad_cap = isinstance(max_frames, bool) or not isinstance(max_frames, Integral) or max_frames < 1
    if max_frames is not None and bad_cap:
        raise ValueError(f"max_frames for {name} must be an int >= 1 or None, got {max_frames!r}")
    if isinstance(video, str | os.PathLike):
        return _read_video(video, name, max_frames)
    if is_prepared(video):
        pixels = _prepared_video(video, name)[0, :, :max_frames].detach().float().cpu()
        frames = ((pixels + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 3, 0).numpy()
        return np.ascontiguousarray(frames), None
    if isinstance(video, Tensor):
        video = video.detach().cpu().numpy()
    if isinstance(video, np.ndarray):
        return _channels_last_uint8(video[:max_frames], name, frames=True), None
    if isinstance(video, Sequence) and not isinstance(video, str | bytes):
        if len(video) == 0:
            raise ValueError(f"{name} is an empty list: pass at least one frame")
        frames = [image_to_uint8(frame, f"{name}[{i}]") for i, frame in enumerate(video[:max_frames])]
        sizes = {frame.shape for frame in frames}
        if len(sizes) > 1:
            raise ValueError(f"{name}: the frames have different sizes {sorted(sizes)}; all frames must be one size")
        return np.stack(frames), None
    raise TypeError(
        f"{name} must be a file path, a list of images, a numpy array or a torch tensor, got {type(video).__name__}"
    )


def video_to_pixels(
    video: VideoInput,
    height: int | None = None,
    width: int | None = None,
    name: str = "video",
    max_frames: int | None = None,
) -> Tensor:
    """A video -> (1, 3, F, height, width) pixels in [-1, 1] for the video VAE (ltx-pipelines'
    `load_video_conditioning`: every frame cover-resized and centre-cropped, no H.264 round trip).

    height / width None: the video's own size. A float tensor is taken as prepared (dtype and device kept), capped at
    `max_frames`, and must already have the target size.
    """
    if (height is None) != (width is None):
        raise ValueError(f"{name}: pass both height and width, or neither (the video's own size)")
    if height is not None:
        _check_size(height, width, name)
    if is_prepared(video):
        pixels = _prepared_video(video, name)
        if height is not None and tuple(pixels.shape[-2:]) != (height, width):
            raise ValueError(
                f"{name} is a float tensor of {pixels.shape[-2]}x{pixels.shape[-1]} (HxW), the target is "
                f"{height}x{width}: pass it at that size, or uint8 (F, H, W, 3) frames to have them resized for you"
            )
        return pixels[:, :, :max_frames]
    frames, _ = video_frames(video, name, max_frames)
    if height is None:
        height, width = frames.shape[1:3]
    return resize_and_center_crop(torch.from_numpy(frames).to(torch.float32), height, width) / 127.5 - 1.0


# ----------------------------------------------------------------------------------------------------------------------
# Audio


def check_sample_rate(sample_rate: int, name: str = "audio_sample_rate") -> int:
    """A sample rate in Hz -> int, refusing bools, floats, and rates outside [8000, 384000]."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, Integral):
        raise ValueError(f"{name}={sample_rate!r} must be an int number of samples per second, e.g. 48000")
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise ValueError(
            f"{name}={sample_rate} Hz is outside [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}]: pass the waveform's real "
            "sample rate (LTX-2 writes 24000, LTX-2.3 48000)"
        )
    return int(sample_rate)


def _waveform_from_array(audio: np.ndarray | Tensor, name: str) -> Tensor:
    """(S,) / (C, S) / (1, C, S) samples -> (C, S) tensor: floats keep their dtype, int16 / int32 become float32."""
    waveform = torch.from_numpy(np.ascontiguousarray(audio)) if isinstance(audio, np.ndarray) else audio.detach()
    shape = tuple(waveform.shape)
    if waveform.ndim == 3 and waveform.shape[0] == 1:
        waveform = waveform[0]
    if waveform.ndim == 1:
        waveform = waveform[None]
    if waveform.ndim != 2:
        raise ValueError(
            f"{name} has shape {shape}: expected (samples,), (channels, samples) or (1, channels, samples)"
        )
    channels, samples = waveform.shape
    if channels not in (1, 2):
        transposed = " (it looks like (samples, channels): pass audio.T)" if samples in (1, 2) else ""
        raise ValueError(f"{name} has {channels} channels (shape {shape}): expected 1 or 2{transposed}")
    if samples == 0:
        raise ValueError(f"{name} has no samples (shape {shape})")
    if waveform.is_floating_point():
        _check_float_range(waveform, -1.0, 1.0, name, "float samples are in [-1, 1]; divide int16 values by 32768")
        return waveform
    dtype = np.dtype(str(waveform.dtype).removeprefix("torch."))
    if dtype not in _INT_PCM_SCALE:
        raise ValueError(f"{name} has dtype {waveform.dtype}: samples must be float in [-1, 1], int16 or int32 PCM")
    return waveform.to(torch.float32) / _INT_PCM_SCALE[dtype]


def audio_waveform(
    audio: AudioInput,
    sample_rate: int | None = None,
    *,
    name: str = "audio",
    sample_rate_name: str = "audio_sample_rate",
    start_time: float = 0.0,
    max_duration: float | None = None,
) -> tuple[Tensor, int]:
    """A path or a waveform -> ((C, S) waveform on the CPU or the input's device, sample rate), cut to the window
    [start_time, start_time + max_duration) seconds by sample counts (the reference's `decode_audio_from_file`).

    path: its first audio stream at its own rate, float32 (passing `sample_rate` too is refused: the file has one).
    waveform: (S,) mono, (C, S) or (1, C, S) with C = 1 or 2, float in [-1, 1] (dtype kept) or int16 / int32 PCM
        (scaled to float32), with `sample_rate`. A (S, C) array is refused with the transpose to apply.
    """
    for label, value in (("start_time", start_time), ("max_duration", max_duration)):
        if value is None and label == "max_duration":
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"{name}: {label}={value!r} must be a finite number of seconds")
    if start_time < 0 or (max_duration is not None and max_duration <= 0):
        raise ValueError(f"{name}: need start_time >= 0 and max_duration > 0, got {start_time} and {max_duration}")
    if isinstance(audio, str | os.PathLike):
        if sample_rate is not None:
            raise ValueError(
                f"{sample_rate_name}={sample_rate!r} was given with a file for {name}: the file's own sample rate "
                f"is used, so pass {sample_rate_name} only with a waveform"
            )
        file = _existing_file(audio, name)
        try:
            return load_audio(file, start_time, max_duration)
        except (av.error.FFmpegError, ValueError) as error:
            raise ValueError(f"{name}={os.fspath(audio)!r}: {error}") from None
    if not isinstance(audio, np.ndarray | Tensor):
        raise TypeError(f"{name} must be a file path or a (channels, samples) waveform, got {type(audio).__name__}")
    if sample_rate is None:
        raise ValueError(
            f"{name} is a waveform, which needs its {sample_rate_name} (Hz), e.g. {sample_rate_name}=48000"
        )
    rate = check_sample_rate(sample_rate, sample_rate_name)
    waveform = _waveform_from_array(audio, name)
    start = round(start_time * rate)
    stop = None if max_duration is None else start + round(max_duration * rate)
    waveform = waveform[:, start:stop]
    if waveform.shape[1] == 0:
        lasts = audio.shape[-1] / rate
        raise ValueError(f"{name}: no samples after start_time={start_time} s (the waveform lasts {lasts:.4g} s)")
    return waveform, rate
