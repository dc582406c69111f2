"""Buckets: the sizes clips are cached at, how a clip picks one, and how batches are drawn from them (spec §2.4).

`WxHxF` with W, H multiples of 32 and F = 8k + 1; an image is a 1-frame clip. Among the buckets a clip can fill
without upscaling (enough frames, at least the bucket's width and height), the one closest in aspect ratio wins, then
the one with more frames, then the larger area (ltx-trainer's order). A batch holds samples of one shape.
"""

import math
from dataclasses import dataclass

import torch

from ..pipelines.validation import check_video_size
from .metadata import DataError


@dataclass(frozen=True)
class Bucket:
    width: int
    height: int
    num_frames: int

    def __str__(self) -> str:
        return f"{self.width}x{self.height}x{self.num_frames}"


_BUCKET_NAMES = {"height": "height", "width": "width", "num_frames": "frames"}  # validation's names -> a bucket's


def parse_buckets(text: str) -> tuple[Bucket, ...]:
    """ "768x512x49;512x512x1" -> buckets (width x height x frames), each checked against the VAE's grid."""
    buckets = []
    for item in text.replace(",", ";").split(";"):
        item = item.strip()
        parts = item.lower().split("x")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise ValueError(f"resolution bucket {item!r} is not WIDTHxHEIGHTxFRAMES, e.g. 768x512x49")
        width, height, frames = (int(p) for p in parts)
        names = {key: f"resolution bucket {item}: {label}" for key, label in _BUCKET_NAMES.items()}
        check_video_size(height, width, frames, names=names)
        buckets.append(Bucket(width, height, frames))
    if not buckets:
        raise ValueError("no resolution buckets given")
    return tuple(dict.fromkeys(buckets))


@dataclass(frozen=True)
class AudioBucket:
    """The length an audio-only sample is cut to (`--audio_durations`, ltx-trainer's `--audio-durations`)."""

    seconds: float

    def __str__(self) -> str:
        return f"{self.seconds:g}s"


def parse_audio_durations(text: str | None) -> tuple[AudioBucket, ...]:
    """ "2.0;4.0" -> audio buckets in seconds (positive); None or "" -> none."""
    if not text:
        return ()
    buckets = []
    for item in text.replace(",", ";").split(";"):
        try:
            seconds = float(item)
        except ValueError:
            seconds = float("nan")
        if not seconds > 0 or seconds == float("inf"):
            raise ValueError(f"--audio_durations: {item.strip()!r} is not a positive number of seconds, e.g. 2.0;4.0")
        buckets.append(AudioBucket(seconds))
    return tuple(dict.fromkeys(buckets))


@dataclass(frozen=True)
class MediaInfo:
    """width, height, num_frames, fps: of the video (an image: 1 frame at fps 1; an audio file: 0, 0, 0, 0.0);
    duration: seconds of an audio-only file, None otherwise."""

    width: int
    height: int
    num_frames: int
    fps: float
    has_audio: bool
    is_image: bool
    duration: float | None = None

    @property
    def is_audio(self) -> bool:
        return self.duration is not None


def choose_bucket(info: MediaInfo, buckets: tuple[Bucket, ...], where: str) -> Bucket:
    """The bucket for a clip: among those with <= its frames and <= its width and height, the closest aspect ratio,
    then more frames, then larger area (ltx-trainer's order, spec §2.4; upscaling is refused here, see module doc)."""
    fitting = [
        b for b in buckets if b.num_frames <= info.num_frames and b.width <= info.width and b.height <= info.height
    ]
    if not fitting:
        smallest = min(buckets, key=lambda b: (b.num_frames, b.width * b.height))
        kind = "image" if info.is_image else "clip"
        raise DataError(
            f"{where}: the {kind} ({info.width}x{info.height}, {info.num_frames} frame(s)) fits no resolution bucket "
            f"({'; '.join(map(str, buckets))}); a bucket must not need more frames or pixels than the clip has, so "
            f"add a bucket such as {min(smallest.width, info.width // 32 * 32) or 32}x"
            f"{min(smallest.height, info.height // 32 * 32) or 32}x{(info.num_frames - 1) // 8 * 8 + 1}, "
            "or drop the file"
        )
    aspect = math.log(info.width / info.height)
    return min(fitting, key=lambda b: (abs(aspect - math.log(b.width / b.height)), -b.num_frames, -b.width * b.height))


def choose_audio_bucket(duration: float, buckets: tuple[AudioBucket, ...], where: str) -> AudioBucket:
    """The longest audio bucket the file fills (ltx-trainer's rule, spec §2.5); shorter files are refused."""
    fitting = [b for b in buckets if b.seconds <= duration + 1e-6]
    if not buckets:
        raise DataError(
            f'{where}: an audio file; audio-only samples need --audio_durations (seconds, e.g. "2.0;4.0") to be cut to'
        )
    if not fitting:
        raise DataError(
            f"{where}: the audio ({duration:.2f} s) is shorter than every --audio_durations bucket "
            f"({'; '.join(map(str, buckets))}); add a bucket of at most {duration:.2f} s or drop the file"
        )
    return max(fitting, key=lambda b: b.seconds)


def reference_bucket(bucket: Bucket, downscale_factor: int) -> Bucket:
    """The IC-LoRA reference's size: the bucket's sides divided by `downscale_factor`, same frames (spec §2.4)."""
    if downscale_factor < 1 or bucket.width % (32 * downscale_factor) or bucket.height % (32 * downscale_factor):
        raise ValueError(
            f"--reference_downscale_factor {downscale_factor}: bucket {bucket} divided by it must keep both sides "
            f"positive multiples of 32; use a factor that divides {bucket.width // 32} and {bucket.height // 32}"
        )
    return Bucket(bucket.width // downscale_factor, bucket.height // downscale_factor, bucket.num_frames)


def epoch_batches(shape_keys: list[tuple], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The batches of one epoch: samples grouped by shape (one bucket per batch), shuffled within each group, cut
    into full batches (an incomplete last batch of a group is dropped, as ltx-trainer's `drop_last`), and the
    batches shuffled; a pure function of (seed, epoch), the same in every process."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    groups: dict[tuple, list[int]] = {}
    for index, key in enumerate(shape_keys):
        groups.setdefault(key, []).append(index)
    batches = []
    for key in sorted(groups, key=repr):
        members = groups[key]
        order = [members[i] for i in torch.randperm(len(members), generator=generator).tolist()]
        batches += [order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]
    if not batches:
        sizes = sorted(len(m) for m in groups.values())
        raise DataError(
            f"no resolution bucket holds a global batch of {batch_size} samples (--train_batch_size x processes; "
            f"samples per bucket: {sizes}); lower the batch size or add samples"
        )
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def batch_for_step(shape_keys: list[tuple], batch_size: int, seed: int, index: int) -> list[int]:
    """Sample indices of the `index`-th batch of the run (epochs follow each other; `epoch_batches`)."""
    per_epoch = len(epoch_batches(shape_keys, batch_size, seed, 0))
    return epoch_batches(shape_keys, batch_size, seed, index // per_epoch)[index % per_epoch]
