"""Training data: `metadata.jsonl` + media -> one cached safetensors file per sample (ltx-trainer spec §2).

A data folder holds media files and `metadata.jsonl`, one JSON object a line: `file_name` (a video, its audio track
used when present, an image, or an audio file cut to its `--audio_durations` bucket), `text` (the caption), and
optionally `reference_file_name` (an IC-LoRA reference video, cached at the bucket's size / the downscale factor) and
`audio_file_name` (the soundtrack from another file).
Caching runs in two phases:
1. `plan_cache` reads and checks everything first (metadata lines, files present, media readable, a bucket for each
   clip), so a bad input fails with one message naming the file before anything is written;
2. `cache_dataset` encodes each planned sample (video VAE latents, audio VAE latents from the clip's audio track,
   text contexts from Gemma + the connectors) and writes `<cache_dir>/<file_name>.safetensors` atomically (a temporary
   file, then a rename). A rerun skips every file already cached for the same caption, bucket and sources.
Training then reads only the cache: it never loads Gemma or the VAE encoders. Each clip is cached at its bucket
(`buckets.py`): cover-resized, centre-cropped and cut to the bucket's first F frames at its own frame rate.
"""

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
from .buckets import AudioBucket, Bucket, MediaInfo, choose_audio_bucket, choose_bucket, reference_bucket
from .metadata import DataError, Sample, read_metadata

logger = logging.get_logger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac")  # audio-only samples (--mode audio)
DEFAULT_FPS = 24.0  # ltx-trainer's default when a file does not state its frame rate
CACHE_FORMAT = "1"


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
    if sample.path.suffix.lower() in AUDIO_SUFFIXES:
        return MediaInfo(0, 0, 0, 0.0, has_audio=True, is_image=False, duration=probe_audio(sample))
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


def probe_audio(sample: Sample) -> float:
    """The duration in seconds of the file's first audio stream; a DataError naming the file unless it opens, has an
    audio stream and its first frame decodes."""
    try:
        with av.open(str(sample.path)) as container:
            if not container.streams.audio:
                raise DataError(f"{sample.where} has no audio stream")
            stream = container.streams.audio[0]
            next(container.decode(stream))
            if stream.duration is not None:
                return float(stream.duration * stream.time_base)
            return float(container.duration or 0) / av.time_base
    except (av.FFmpegError, StopIteration) as error:
        raise DataError(f"{sample.where}: cannot read the audio ({error or 'no decodable frame'})") from None


# ----------------------------------------------------------------------------------------------------------------------
# Cache


@dataclass(frozen=True)
class PlannedSample:
    sample: Sample
    info: MediaInfo
    bucket: Bucket | AudioBucket  # an AudioBucket for an audio-only file
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


def plan_cache(
    data_dir: str | os.PathLike,
    cache_dir: str | os.PathLike,
    buckets: tuple[Bucket, ...],
    reference_downscale_factor: int = 1,
    trigger_word: str | None = None,
    audio_durations: tuple[AudioBucket, ...] = (),
) -> list[PlannedSample]:
    """Read metadata.jsonl and probe every file (and reference video); raises a DataError naming the first bad file
    before any encoding. A `trigger_word` starts every caption ("<trigger> <caption>", ltx-trainer's --lora-trigger)."""
    planned = []
    max_frames = max(b.num_frames for b in buckets)
    for sample in read_metadata(data_dir):
        if trigger_word:
            sample = replace(sample, text=f"{trigger_word} {sample.text}")
        info = probe_media(sample, max_frames=max_frames)
        if info.is_audio:  # an audio-only sample: cut to its --audio_durations bucket, no video, no reference
            if sample.reference_path is not None or sample.audio_path is not None:
                raise DataError(f"{sample.where}: an audio file takes no reference_file_name or audio_file_name")
            bucket = choose_audio_bucket(info.duration, audio_durations, sample.where)
            planned.append(PlannedSample(sample, info, bucket, cache_path_for(Path(cache_dir), sample.file_name)))
            continue
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
    duration = item.bucket.seconds if item.info.is_audio else item.bucket.num_frames / item.info.fps
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

    sample, tensors = item.sample, {}
    if not item.info.is_audio:
        tensors["video_latents"] = encode_video(load_pixels(sample.path, item.info.is_image, item.bucket, sample.where))
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
    audio_durations: tuple[AudioBucket, ...] = (),
) -> CacheReport:
    """Encode every sample of `data_dir` not yet cached into `cache_dir` (see the module docstring).

    pipe: an `LTX2AVPipeline` (its vae, audio_vae, text_encoder, tokenizer and connectors are used).
    """
    device = torch.device(device)
    planned = plan_cache(data_dir, cache_dir, buckets, reference_downscale_factor, trigger_word, audio_durations)
    written, skipped = [], []
    for item in planned:
        if is_cached(item, max_sequence_length):
            skipped.append(item.cache_path)
            continue
        try:
            tensors = encode_sample(pipe, item, device, max_sequence_length)
        except (av.FFmpegError, OSError) as error:  # a file that changed or broke after planning
            raise DataError(f"{item.sample.where}: cannot read the media ({error})") from None
        metadata = item.fingerprint(max_sequence_length)
        if item.info.is_audio:
            metadata["duration"] = repr(item.bucket.seconds)
        else:
            metadata.update(fps=repr(item.info.fps), num_frames=str(item.bucket.num_frames),
                            height=str(item.bucket.height), width=str(item.bucket.width))  # fmt: skip
        write_atomic(item.cache_path, tensors, metadata)
        written.append(item.cache_path)
        logger.info(f"cached {item.sample.file_name} at {item.bucket} -> {item.cache_path}")
    return CacheReport(tuple(written), tuple(skipped))


# ----------------------------------------------------------------------------------------------------------------------
# Reading the cache


@dataclass(frozen=True)
class CachedSample:
    """A cached sample: tensors as written by `encode_sample`, plus the clip's fps. An audio-only sample has no
    video_latents and no fps (None)."""

    path: Path
    video_latents: Tensor | None
    audio_latents: Tensor | None
    video_context: Tensor
    audio_context: Tensor
    fps: float | None
    reference_latents: Tensor | None = None

    def shape_key(self, with_audio: bool) -> tuple:
        """Samples with equal keys can share a batch (`cached_shape_key` of the file); the audio shape counts only
        when the mode uses audio."""
        video = None if self.video_latents is None else tuple(self.video_latents.shape)
        audio = None if self.audio_latents is None or not with_audio else tuple(self.audio_latents.shape)
        reference = None if self.reference_latents is None else tuple(self.reference_latents.shape)
        return video, audio, tuple(self.video_context.shape), self.fps, reference


def load_cached(path: str | os.PathLike) -> CachedSample:
    path = Path(path)
    tensors = {}
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        for name in handle.keys():
            tensors[name] = handle.get_tensor(name)
    media = ("audio_latents",) if "duration" in metadata else ("video_latents",)  # an audio-only sample, or a clip
    missing = [name for name in (*media, "video_context", "audio_context") if name not in tensors]
    if missing or metadata.get("format") != CACHE_FORMAT:
        raise DataError(f"{path} is not a training cache file of format {CACHE_FORMAT} (missing {missing}); re-cache")
    return CachedSample(
        path, tensors.get("video_latents"), tensors.get("audio_latents"), tensors["video_context"],
        tensors["audio_context"], _fps(metadata), tensors.get("reference_latents"),
    )  # fmt: skip


def _fps(metadata: dict[str, str]) -> float | None:
    return None if "duration" in metadata else float(metadata["fps"])


def cached_shape_key(path: str | os.PathLike, with_audio: bool) -> tuple:
    """`CachedSample.shape_key` from the file's header alone (no tensor is read)."""
    with safe_open(str(path), framework="pt") as handle:
        shape = {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
        fps = _fps(handle.metadata() or {})
    audio = shape.get("audio_latents") if with_audio else None
    return shape.get("video_latents"), audio, shape.get("video_context"), fps, shape.get("reference_latents")
