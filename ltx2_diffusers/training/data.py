"""Training data: `metadata.jsonl` + media -> one cached safetensors file per sample (ltx-trainer spec §2).

A data folder holds media files and `metadata.jsonl`, one JSON object a line: `file_name` (a video, its audio track
used when present, or an image), `text` (the caption), and optionally `reference_file_name` (an IC-LoRA reference
video, cached at the bucket's size / the downscale factor) and `audio_file_name` (the soundtrack from another file).
Caching runs in two phases:
1. `plan_cache` reads and checks everything first (metadata lines, files present, media readable, a bucket for each
   clip), so a bad input fails with one message naming the file before anything is written;
2. `cache_dataset` encodes each planned sample (video VAE latents, audio VAE latents from the clip's audio track,
   text contexts from Gemma + the connectors) and writes `<cache_dir>/<file_name>.safetensors` atomically (a temporary
   file, then a rename). A rerun skips every file already cached for the same caption, bucket and sources.
Training then reads only the cache: it never loads Gemma or the VAE encoders.

Buckets (spec §2.4): `WxHxF` with W, H multiples of 32 and F = 8k + 1; an image is a 1-frame clip. Among the buckets
a clip can fill without upscaling (enough frames, at least the bucket's width and height), the one closest in aspect
ratio wins, then the one with more frames, then the larger area (ltx-trainer's order). The clip is cover-resized,
centre-cropped and cut to the bucket's first F frames at its own frame rate.
"""

import json
import math
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import av
import torch
from diffusers.utils import logging
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from ..models.autoencoder_kl_ltx2 import normalize_latents
from ..pipelines.inputs import audio_waveform, image_to_uint8, video_to_pixels
from ..pipelines.text_encoding import encode_prompts
from ..pipelines.validation import check_video_size

logger = logging.get_logger(__name__)

METADATA_FILE = "metadata.jsonl"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
METADATA_KEYS = ("file_name", "text", "reference_file_name", "audio_file_name")
DEFAULT_FPS = 24.0  # ltx-trainer's default when a file does not state its frame rate
CACHE_FORMAT = "1"


class DataError(ValueError):
    """A problem with one input file or metadata line; the message names it."""


# ----------------------------------------------------------------------------------------------------------------------
# Metadata


@dataclass(frozen=True)
class Sample:
    """One line of metadata.jsonl: `path` = data_dir / file_name; `line` counts from 1."""

    file_name: str
    text: str
    path: Path
    line: int
    reference_path: Path | None = None  # IC-LoRA: data_dir / reference_file_name
    audio_path: Path | None = None  # the soundtrack, when not the video's own: data_dir / audio_file_name

    @property
    def where(self) -> str:
        return f"{self.path} ({METADATA_FILE} line {self.line})"


def read_metadata(data_dir: str | os.PathLike) -> list[Sample]:
    """The samples of `data_dir/metadata.jsonl`, checked line by line; a DataError names the file and line."""
    data_dir = Path(data_dir)
    metadata = data_dir / METADATA_FILE
    if not metadata.is_file():
        raise DataError(
            f"{metadata} does not exist: a training folder needs a {METADATA_FILE} with one JSON object a line, "
            '{"file_name": "clip.mp4", "text": "the caption"}'
        )
    samples, seen = [], {}
    for number, raw in enumerate(metadata.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"{metadata} line {number}"
        try:
            entry = json.loads(raw)
        except json.JSONDecodeError as error:
            raise DataError(f"{where} is not valid JSON ({error.msg} at column {error.colno})") from None
        if not isinstance(entry, dict):
            raise DataError(f"{where} is a JSON {type(entry).__name__}, expected an object with file_name and text")
        unknown = [key for key in entry if key not in METADATA_KEYS]
        if unknown:
            raise DataError(f"{where}: unknown keys {unknown}; expected {list(METADATA_KEYS)}")
        file_name, text = entry.get("file_name"), entry.get("text")
        if not isinstance(file_name, str) or not file_name:
            raise DataError(f"{where} has no file_name (a path relative to {data_dir})")
        if not isinstance(text, str) or not text.strip():
            raise DataError(f'{where} ({file_name}) has no caption: add a non-empty "text"')
        path = data_dir / file_name
        if not path.is_file():
            raise DataError(f"{path} ({METADATA_FILE} line {number}) does not exist")
        if file_name in seen:
            raise DataError(f"{where}: {file_name} is listed twice (also on line {seen[file_name]})")
        seen[file_name] = number
        extra = {}
        for key, field_name in (("reference_file_name", "reference_path"), ("audio_file_name", "audio_path")):
            value = entry.get(key)
            if value is not None and (not isinstance(value, str) or not (data_dir / value).is_file()):
                raise DataError(f"{data_dir / str(value)} ({key}, {METADATA_FILE} line {number}) does not exist")
            extra[field_name] = None if value is None else data_dir / value
        samples.append(Sample(file_name, text.strip(), path, number, **extra))
    if not samples:
        raise DataError(f"{metadata} lists no samples")
    return samples


# ----------------------------------------------------------------------------------------------------------------------
# Buckets


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
class MediaInfo:
    width: int
    height: int
    num_frames: int
    fps: float
    has_audio: bool
    is_image: bool


def probe_media(sample: Sample, max_frames: int | None = None) -> MediaInfo:
    """Size, frame count, frame rate and audio presence of a sample's file; a DataError names unreadable files.

    Frames are decoded (a file that does not decode fails here, before anything is cached), at most `max_frames` of
    them (the longest bucket's count: more are never used), so `num_frames` is min(frames, max_frames)."""
    if sample.path.suffix.lower() in IMAGE_SUFFIXES:
        try:
            height, width = image_to_uint8(sample.path, name=sample.path.name).shape[:2]
        except (ValueError, TypeError) as error:  # the one image reader names every problem with a ValueError
            raise DataError(f"{sample.where}: cannot read the image ({error})") from None
        return MediaInfo(width, height, 1, 1.0, has_audio=False, is_image=True)
    try:
        with av.open(str(sample.path)) as container:
            if not container.streams.video:
                raise DataError(f"{sample.where} has no video stream")
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            fps = float(stream.average_rate) if stream.average_rate else DEFAULT_FPS
            num_frames = 0
            for _ in container.decode(stream):
                num_frames += 1
                if num_frames == max_frames:
                    break
            has_audio = bool(container.streams.audio)
    except av.FFmpegError as error:
        raise DataError(f"{sample.where}: cannot read the video ({error}); re-encode it or remove the line") from None
    if num_frames == 0 or width == 0 or height == 0:
        raise DataError(f"{sample.where}: the video has no decodable frames")
    return MediaInfo(width, height, num_frames, fps, has_audio, is_image=False)


def probe_audio(sample: Sample) -> None:
    """A DataError naming the file unless it opens and has an audio stream."""
    try:
        with av.open(str(sample.path)) as container:
            if not container.streams.audio:
                raise DataError(f"{sample.where} has no audio stream")
    except av.FFmpegError as error:
        raise DataError(f"{sample.where}: cannot read the audio ({error})") from None


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


# ----------------------------------------------------------------------------------------------------------------------
# Cache


@dataclass(frozen=True)
class PlannedSample:
    sample: Sample
    info: MediaInfo
    bucket: Bucket
    cache_path: Path
    reference_info: MediaInfo | None = None
    reference_downscale_factor: int = 1

    def fingerprint(self, max_sequence_length: int) -> dict[str, str]:
        """What the cached file was made from; a cached file with other values is re-encoded."""
        reference = self.sample.reference_path
        return {
            "format": CACHE_FORMAT,
            "file_name": self.sample.file_name,
            "text": self.sample.text,
            "bucket": str(self.bucket),
            "source_bytes": str(self.sample.path.stat().st_size),
            "max_sequence_length": str(max_sequence_length),
            "reference": "" if reference is None else f"{reference.name}:{reference.stat().st_size}",
            "audio": ""
            if self.sample.audio_path is None
            else f"{self.sample.audio_path.name}:{self.sample.audio_path.stat().st_size}",
            "reference_downscale_factor": str(self.reference_downscale_factor),
        }


def cache_path_for(cache_dir: Path, file_name: str) -> Path:
    return cache_dir / (file_name + ".safetensors")


def reference_bucket(bucket: Bucket, downscale_factor: int) -> Bucket:
    """The IC-LoRA reference's size: the bucket's sides divided by `downscale_factor`, same frames (spec §2.4)."""
    if downscale_factor < 1 or bucket.width % (32 * downscale_factor) or bucket.height % (32 * downscale_factor):
        raise ValueError(
            f"--reference_downscale_factor {downscale_factor}: bucket {bucket} divided by it must keep both sides "
            f"positive multiples of 32; use a factor that divides {bucket.width // 32} and {bucket.height // 32}"
        )
    return Bucket(bucket.width // downscale_factor, bucket.height // downscale_factor, bucket.num_frames)


def plan_cache(
    data_dir: str | os.PathLike,
    cache_dir: str | os.PathLike,
    buckets: tuple[Bucket, ...],
    reference_downscale_factor: int = 1,
    trigger_word: str | None = None,
) -> list[PlannedSample]:
    """Read metadata.jsonl and probe every file (and reference video); raises a DataError naming the first bad file
    before any encoding. A `trigger_word` starts every caption ("<trigger> <caption>", ltx-trainer's --lora-trigger)."""
    planned = []
    max_frames = max(b.num_frames for b in buckets)
    for sample in read_metadata(data_dir):
        if trigger_word:
            sample = replace(sample, text=f"{trigger_word} {sample.text}")
        info = probe_media(sample, max_frames=max_frames)
        if sample.audio_path is not None:
            probe_audio(replace(sample, path=sample.audio_path))
            info = replace(info, has_audio=True)
        bucket = choose_bucket(info, buckets, sample.where)
        reference_info = None
        if sample.reference_path is not None:
            as_reference = replace(sample, path=sample.reference_path)
            reference_info = probe_media(as_reference, max_frames=max_frames)
            # the reference must fill the target's bucket at its own (downscaled) size, frame for frame
            choose_bucket(reference_info, (reference_bucket(bucket, reference_downscale_factor),), as_reference.where)
        cache_path = cache_path_for(Path(cache_dir), sample.file_name)
        planned.append(PlannedSample(sample, info, bucket, cache_path, reference_info, reference_downscale_factor))
    return planned


def is_cached(item: PlannedSample, max_sequence_length: int) -> bool:
    if not item.cache_path.is_file():
        return False
    try:
        with safe_open(str(item.cache_path), framework="pt") as handle:
            stored = handle.metadata() or {}
    except Exception:  # a foreign or damaged file at our path: re-encode it
        return False
    expected = item.fingerprint(max_sequence_length)
    return all(stored.get(key) == value for key, value in expected.items())


def load_pixels(path: Path, is_image: bool, bucket: Bucket, where: str) -> Tensor:
    """(1, 3, F, H, W) float32 in [-1, 1] at the bucket's size: cover-resize, centre crop, the first F frames
    (`inputs.video_to_pixels`; an image is a one-frame video). A DataError names `where` for unreadable media."""
    try:
        return video_to_pixels([path] if is_image else path, bucket.height, bucket.width, path.name, bucket.num_frames)
    except (ValueError, TypeError) as error:  # a file that changed or broke after planning
        raise DataError(f"{where}: cannot read the media ({error})") from None


def load_clip_audio(item: PlannedSample) -> tuple[Tensor, int]:
    """The clip's soundtrack (its `audio_file_name`, else the video's own track) over its cached duration F / fps:
    (2, S) float32 and its sample rate. Shorter tracks are zero-padded at the end (with a warning), as ltx-trainer
    does; more than two channels are averaged first. (ltx-trainer cuts explicit audio files to
    max_bucket_frames / 25 s whatever the fps, trap T17; here both sources are cut to the clip's own duration.)"""
    duration = item.bucket.num_frames / item.info.fps
    source = item.sample if item.sample.audio_path is None else replace(item.sample, path=item.sample.audio_path)
    try:
        waveform, sample_rate = audio_waveform(source.path, name=source.path.name, max_duration=duration)
    except ValueError as error:
        raise DataError(f"{source.where}: cannot read the audio track ({error})") from None
    if waveform.shape[0] > 2:
        waveform = waveform.mean(dim=0, keepdim=True)
    if waveform.shape[0] == 1:
        waveform = waveform.expand(2, -1)
    needed = round(duration * sample_rate)
    if waveform.shape[1] < needed:
        logger.warning(
            f"{item.sample.where}: the audio track is {waveform.shape[1] / sample_rate:.3f} s, shorter than the "
            f"clip's {duration:.3f} s; padded with silence"
        )
        waveform = torch.nn.functional.pad(waveform, (0, needed - waveform.shape[1]))
    return waveform.float().contiguous(), sample_rate


@torch.no_grad()
def encode_sample(pipe, item: PlannedSample, device: torch.device, max_sequence_length: int) -> dict[str, Tensor]:
    """One sample's cached tensors (all normalised, in the transformer's spaces):

    video_latents (128, F', H', W') in the VAE's dtype; audio_latents (8, T_a, 16) float32, only when the clip has an
    audio track; reference_latents (128, F', H'/s, W'/s), only with a reference video (s = its downscale factor);
    video_context (L, D_v) and audio_context (L, D_a): the connectors' outputs for the caption.
    """

    def encode_video(pixels: Tensor) -> Tensor:
        latent = pipe.vae.encode(pixels.to(device, pipe.vae.dtype)).latent_dist.mode()  # the mean, as ltx-core's
        return normalize_latents(latent, pipe.vae.latents_mean, pipe.vae.latents_std)[0]

    sample = item.sample
    tensors = {"video_latents": encode_video(load_pixels(sample.path, item.info.is_image, item.bucket, sample.where))}
    if item.reference_info is not None:
        size = reference_bucket(item.bucket, item.reference_downscale_factor)
        reference = replace(sample, path=sample.reference_path)
        tensors["reference_latents"] = encode_video(
            load_pixels(reference.path, item.reference_info.is_image, size, reference.where)
        )
    if item.info.has_audio:
        waveform, sample_rate = load_clip_audio(item)
        audio = pipe.audio_vae.encode_waveform(waveform[None].to(device, torch.float32), sample_rate)
        tensors["audio_latents"] = audio[0].float()
    embeds = encode_prompts(
        pipe.text_encoder, pipe.tokenizer, pipe.connectors, [item.sample.text],
        max_sequence_length=max_sequence_length, device=device,
    )  # fmt: skip
    tensors["video_context"] = embeds.video_context[0]
    tensors["audio_context"] = embeds.audio_context[0]
    return {name: tensor.detach().to("cpu").contiguous() for name, tensor in tensors.items()}


def write_atomic(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str]) -> None:
    """Write a safetensors file through a temporary file in the same folder and a rename: a crash leaves either the
    old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        save_file(tensors, temporary, metadata=metadata)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class CacheReport:
    written: tuple[Path, ...]
    skipped: tuple[Path, ...]


def cache_dataset(
    pipe,
    data_dir: str | os.PathLike,
    cache_dir: str | os.PathLike,
    buckets: tuple[Bucket, ...],
    *,
    device: torch.device | str = "cpu",
    max_sequence_length: int = 1024,
    reference_downscale_factor: int = 1,
    trigger_word: str | None = None,
) -> CacheReport:
    """Encode every sample of `data_dir` not yet cached into `cache_dir` (see the module docstring).

    pipe: an `LTX2AVPipeline` (its vae, audio_vae, text_encoder, tokenizer and connectors are used).
    """
    device = torch.device(device)
    planned = plan_cache(data_dir, cache_dir, buckets, reference_downscale_factor, trigger_word)
    written, skipped = [], []
    for item in planned:
        if is_cached(item, max_sequence_length):
            skipped.append(item.cache_path)
            continue
        try:
            tensors = encode_sample(pipe, item, device, max_sequence_length)
        except (av.FFmpegError, OSError) as error:  # a file that changed or broke after planning
            raise DataError(f"{item.sample.where}: cannot read the media ({error})") from None
        metadata = {
            **item.fingerprint(max_sequence_length),
            "fps": repr(item.info.fps),
            "num_frames": str(item.bucket.num_frames),
            "height": str(item.bucket.height),
            "width": str(item.bucket.width),
        }
        write_atomic(item.cache_path, tensors, metadata)
        written.append(item.cache_path)
        logger.info(f"cached {item.sample.file_name} at {item.bucket} -> {item.cache_path}")
    return CacheReport(tuple(written), tuple(skipped))


# ----------------------------------------------------------------------------------------------------------------------
# Reading the cache


@dataclass(frozen=True)
class CachedSample:
    """A cached sample: tensors as written by `encode_sample`, plus the clip's fps and bucket."""

    path: Path
    video_latents: Tensor
    audio_latents: Tensor | None
    video_context: Tensor
    audio_context: Tensor
    fps: float
    reference_latents: Tensor | None = None

    def shape_key(self, with_audio: bool) -> tuple:
        """Samples with equal keys can share a batch (`cached_shape_key` of the file); the audio shape counts only
        when the mode uses audio."""
        audio = None if self.audio_latents is None or not with_audio else tuple(self.audio_latents.shape)
        reference = None if self.reference_latents is None else tuple(self.reference_latents.shape)
        return tuple(self.video_latents.shape), audio, tuple(self.video_context.shape), self.fps, reference


def load_cached(path: str | os.PathLike) -> CachedSample:
    path = Path(path)
    tensors = {}
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        for name in handle.keys():
            tensors[name] = handle.get_tensor(name)
    missing = [name for name in ("video_latents", "video_context", "audio_context") if name not in tensors]
    if missing or metadata.get("format") != CACHE_FORMAT:
        raise DataError(f"{path} is not a training cache file of format {CACHE_FORMAT} (missing {missing}); re-cache")
    return CachedSample(
        path, tensors["video_latents"], tensors.get("audio_latents"), tensors["video_context"],
        tensors["audio_context"], float(metadata["fps"]), tensors.get("reference_latents"),
    )  # fmt: skip


def cached_shape_key(path: str | os.PathLike, with_audio: bool) -> tuple:
    """`CachedSample.shape_key` from the file's header alone (no tensor is read)."""
    with safe_open(str(path), framework="pt") as handle:
        shape = {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
        fps = float((handle.metadata() or {}).get("fps", "nan"))
    audio = shape.get("audio_latents") if with_audio else None
    return shape.get("video_latents"), audio, shape.get("video_context"), fps, shape.get("reference_latents")


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
