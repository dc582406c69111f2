"""HDR files: OpenEXR frames (written and read through the OpenEXR package, the Academy Software Foundation's own
bindings: `pip install "ltx2-diffusers[hdr]"`) and a BT.2020 / HLG 10-bit HEVC mp4 (PyAV + libx265).

Frames are (F, H, W, 3) float; the colour math is `utils/hdr.py`'s. EXR frames are written as ltx-pipelines writes
them: R, G, B channels, half floats by default, ZIP compression, `chromaticities` and `colorSpace` attributes, one
file per frame named frame_00000.exr, frame_00001.exr, ...
"""

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .hdr import REC709_TO_REC2020, HDRColorSpace, apply_matrix, hlg_signal, ycbcr420_10bit

EXR_INSTALL = 'pip install "ltx2-diffusers[hdr]"  (or: pip install OpenEXR)'


def _openexr():
    """The OpenEXR module, or an ImportError that says how to install it."""
    try:
        import OpenEXR
    except ImportError:
        raise ImportError(
            f"reading and writing EXR files needs the OpenEXR package, which is not installed: {EXR_INSTALL}"
        ) from None
    return OpenEXR


def _frame_array(frame: Tensor | np.ndarray, name: str) -> np.ndarray:
    array = frame.detach().float().cpu().numpy() if isinstance(frame, Tensor) else np.asarray(frame, dtype=np.float32)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"{name} must be one (H, W, 3) RGB frame, got shape {array.shape}")
    return array


def write_exr(
    path: str | os.PathLike,
    frame: Tensor | np.ndarray,
    space: HDRColorSpace = HDRColorSpace.SRGB_LINEAR,
    half: bool = True,
) -> Path:
    """Write one (H, W, 3) frame, already in `space`'s pixels, as an EXR file tagged with `space` (chromaticities
    and colorSpace). half: float16 channels (what ltx-pipelines writes; finite up to 65504), else float32."""
    exr = _openexr()
    array = _frame_array(frame, "frame")
    dtype = np.float16 if half else np.float32
    header = {
        "compression": exr.ZIP_COMPRESSION,
        "type": exr.scanlineimage,
        "chromaticities": tuple(float(c) for c in space.chromaticities),
        "colorSpace": space.exr_tag,
    }
    channels = {name: np.ascontiguousarray(array[..., i].astype(dtype)) for i, name in enumerate("RGB")}
    with exr.File(header, channels) as file:
        file.write(str(path))
    return Path(path)


def read_exr(path: str | os.PathLike) -> Tensor:
    """One EXR file -> (H, W, 3) float32 RGB as stored (scene-linear values above 1 kept). A luminance-only file (Y)
    gives three equal channels; alpha and other channels are dropped."""
    exr = _openexr()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such EXR file")
    with exr.File(str(path), separate_channels=True) as file:
        channels = {name: np.asarray(channel.pixels, dtype=np.float32) for name, channel in file.channels().items()}
    if all(c in channels for c in "RGB"):
        rgb = np.stack([channels[c] for c in "RGB"], axis=-1)
    elif "Y" in channels:
        rgb = np.repeat(channels["Y"][..., None], 3, axis=-1)
    else:
        raise ValueError(f"{path}: an RGB (or Y) EXR was expected, its channels are {sorted(channels)}")
    return torch.from_numpy(np.ascontiguousarray(rgb))


def exr_header(path: str | os.PathLike) -> dict:
    """The header attributes of an EXR file (e.g. "chromaticities", "colorSpace", "compression")."""
    with _openexr().File(str(path)) as file:
        return dict(file.header())


def write_exr_frames(
    folder: str | os.PathLike,
    frames: Tensor | np.ndarray,
    space: HDRColorSpace = HDRColorSpace.SRGB_LINEAR,
    half: bool = True,
) -> list[Path]:
    """(F, H, W, 3) frames in `space`'s pixels -> folder/frame_00000.exr ... (the folder is created). Returns the
    paths. Refuses a folder that already holds EXR files: frames of two clips would mix."""
    _openexr()  # before any folder is made
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (F, H, W, 3), got shape {tuple(frames.shape)}")
    folder = Path(folder)
    if folder.is_dir() and any(folder.glob("*.exr")):
        raise FileExistsError(f"{folder} already holds EXR files: write the frames into an empty folder")
    folder.mkdir(parents=True, exist_ok=True)
    return [write_exr(folder / f"frame_{i:05d}.exr", frame, space, half) for i, frame in enumerate(frames)]


def read_exr_frames(folder: str | os.PathLike, max_frames: int | None = None) -> Tensor:
    """folder/*.exr in name order -> (F, H, W, 3) float32 (at most `max_frames` of them)."""
    folder = Path(folder)
    paths = sorted(folder.glob("*.exr")) if folder.is_dir() else []
    if not paths:
        raise FileNotFoundError(f"{folder} is not a folder of .exr frames")
    frames = [read_exr(p) for p in paths[:max_frames]]
    if len({tuple(f.shape) for f in frames}) > 1:
        raise ValueError(f"the EXR frames in {folder} differ in size: {sorted({tuple(f.shape) for f in frames})}")
    return torch.stack(frames)


# ----------------------------------------------------------------------------------------------------------------------
# HLG master

_AVCOL_PRI_BT2020, _AVCOL_TRC_ARIB_STD_B67, _AVCOL_SPC_BT2020_NCL, _AVCOL_RANGE_MPEG = 9, 18, 9, 1  # FFmpeg's pixfmt.h


def hlg_planes(rec709: Tensor, white_signal: float = 0.75) -> tuple[Tensor, Tensor, Tensor]:
    """Scene-linear Rec.709 frames (F, H, W, 3) -> the 10-bit BT.2020 / HLG Y, Cb, Cr planes (uint16) of the mp4."""
    return ycbcr420_10bit(hlg_signal(apply_matrix(rec709, REC709_TO_REC2020), white_signal))


def _in_order(packets: list) -> list:
    """Packets of an encode without B-frames, decode time = presentation time. Set here because FFmpeg's libx265
    wrapper can hand flushed packets an uninitialised dts (seen with PyAV 18's FFmpeg), which the mp4 muxer refuses."""
    for packet in packets:
        packet.dts = packet.pts
    return packets


def write_hlg_mp4(
    path: str | os.PathLike,
    frames: Tensor | np.ndarray,
    fps: float,
    white_signal: float = 0.75,
    crf: int = 12,
    preset: str = "ultrafast",
) -> Path:
    """Scene-linear Rec.709 frames (F, H, W, 3), 1.0 = diffuse white -> an HEVC Main10 mp4 tagged BT.2020 primaries,
    ARIB STD-B67 (HLG) transfer, BT.2020 non-constant-luminance matrix, limited range (`hlg_planes`). H and W must be
    even. Written to a temporary name and renamed: no partial file on failure."""
    import av

    frames = torch.as_tensor(np.asarray(frames) if not isinstance(frames, Tensor) else frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"frames must be (F, H, W, 3) with F >= 1, got shape {tuple(frames.shape)}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"4:2:0 HEVC needs an even height and width, got {height}x{width}")
    if "libx265" not in av.codecs_available:
        raise RuntimeError("this PyAV build has no libx265 encoder, which the HLG mp4 needs; install PyAV's wheels")
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial.mp4")
    try:
        with av.open(str(partial), mode="w", options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx265", rate=Fraction(fps).limit_denominator(1000))
            stream.width, stream.height, stream.pix_fmt, stream.codec_tag = width, height, "yuv420p10le", "hvc1"
            vui = "colorprim=bt2020:transfer=arib-std-b67:colormatrix=bt2020nc:range=limited"
            stream.options = {
                "crf": str(crf),
                "preset": preset,
                "x265-params": f"{vui}:repeat-headers=1:bframes=0:log-level=error",
            }
            context = stream.codec_context
            context.color_primaries, context.color_trc = _AVCOL_PRI_BT2020, _AVCOL_TRC_ARIB_STD_B67
            context.colorspace, context.color_range = _AVCOL_SPC_BT2020_NCL, _AVCOL_RANGE_MPEG
            for index, frame in enumerate(frames):  # one frame at a time: memory stays that of one frame's planes
                planes = [p[0].numpy() for p in hlg_planes(frame[None], white_signal)]
                video_frame = av.VideoFrame(width, height, "yuv420p10le")
                for plane, source in zip(video_frame.planes, planes):
                    rows = np.frombuffer(plane, dtype=np.uint16).reshape(plane.height, plane.line_size // 2)
                    rows[:, : source.shape[1]] = source
                video_frame.colorspace, video_frame.color_range = _AVCOL_SPC_BT2020_NCL, _AVCOL_RANGE_MPEG
                video_frame.pts = index  # in the stream's 1/fps time base
                container.mux(_in_order(stream.encode(video_frame)))
            container.mux(_in_order(stream.encode()))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path
