"""Everything the CLI can check before it loads a model. The rules a pipeline call shares (sizes, frame counts, fps,
strengths, CRF, keyframe frames, steps, the output path) are `pipelines.validation`'s, with the flags' names; the
rest is the CLI's own: input files (they exist and decode, through `pipelines.inputs` for images), flags that would
be ignored, and a size guard stricter than the pipelines'. Each failure names the flag. Torch is imported for the
image and device checks, after every number has been checked."""

import argparse
import json
import math
import os
import re
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..pipelines.validation import (
    check_call_inputs,
    check_frame_count,
    check_frame_rate,
    check_num_inference_steps,
    check_output_path,
    check_prompts,
    check_strength,
    check_video_size,
)
from .duration import check_length_range, check_model_has_head
from .parser import AUTO, COMMANDS, DTYPES, MODEL_CHOICES, CLIError, Command

OUTPUT_SUFFIXES = (".mp4", ".mov", ".mkv")  # utils.media.CONTAINER_FORMATS, without importing torch
# the pipelines' argument names -> the flags, for validation's messages
FLAGS = {
    "prompt": "prompt",
    "negative_prompt": "--negative-prompt",
    "num_frames": "--frames",
    "height": "--height",
    "width": "--width",
    "frame_rate": "--fps",
    "image": "--image",
    "image_strength": "--image-strength",
    "image_crf": "--image-crf",
    "keyframes": "--keyframe",
    "num_inference_steps": "--steps",
    "allow_large": "--allow-large",
}
AAC_SAMPLE_RATES = (7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)

# The size guard. The largest setting the reference ships is HQ's 1088x1920x121: 16 x 34 x 60 = 32,640 video tokens,
# 2.8 GiB of decoded float32 frames. Twice that in tokens (attention work grows with their square), 16 GiB of frames and
# 1025 frames are allowed without --allow-large; beyond, a typo (--frames 100001, 8192x8192) would run for hours or die in the
# allocator after loading tens of GB of weights.
MAX_VIDEO_TOKENS = 65536
MAX_DECODED_GIB = 16.0
MAX_FRAMES = 1025  # 43 s at 24 fps; the reference's clips are 121 (up to 257) frames


@dataclass
class Checked:
    """The arguments after checking, in the forms the runner uses."""

    command: Command
    model: str  # "tiny", "file", "folder" or "hub"
    output: Path
    frames: int | None = None
    height: int | None = None
    width: int | None = None
    fps: float | None = None
    loras: list[tuple[str, float]] = field(default_factory=list)
    distilled_lora: tuple[str, float] | None = None
    ic_lora: tuple[str, float] | None = None
    keyframes: list[tuple[str, int, float]] = field(default_factory=list)
    references: list[tuple[str, float]] = field(default_factory=list)
    audio_sample_rate: int | None = None
    predict_length: bool = False  # --frames auto: `frames` is then the longest clip the seconds range allows
    min_seconds: float | None = None
    max_seconds: float | None = None
    temporal_upsampler: str | None = None  # two-stage / distilled: the clip doubled in time, written at 2x --fps


def check_args(args: argparse.Namespace) -> Checked:
    """Raise `CLIError` for the first bad argument; nothing is loaded and nothing is written."""
    command = COMMANDS[args.command]
    if not args.prompt.strip():
        raise CLIError("prompt", "the prompt is empty: say what to generate")
    if "t2a" in command.features:
        return _check_text_to_audio(args, command)
    checked = Checked(command, _check_model(args, command), _check_output(args.output))
    if command.height is not None:
        checked.frames, checked.height, checked.width, checked.fps = _check_size(args, command)
    elif "extend" in command.features:
        checked.frames, checked.height, checked.width, checked.fps = _check_extend(args)
    elif "v2a" in command.features:  # the clip's own size and fps; its whole length gets new sound
        checked.frames, checked.height, checked.width, checked.fps = _check_source_clip(args)
    elif "dubit" in command.features:  # the reference clip's frames and fps, the size of the flags
        checked.frames, checked.height, checked.width, checked.fps = _check_dub_it(args)
    else:
        checked.frames, checked.height, checked.width, checked.fps = _check_retake(args)
    _check_auto_length(args, checked)
    guard = checked  # the clip written: 2(N - 1) + 1 frames at 2x --fps with --temporal-upsampler
    if getattr(args, "temporal_upsampler", None) is not None:
        _check_file("--temporal-upsampler", args.temporal_upsampler)
        checked.temporal_upsampler = args.temporal_upsampler
        guard = replace(checked, frames=2 * checked.frames - 1, fps=2 * checked.fps)
    _check_size_guard(args, guard)
    if not 0 <= args.seed < 2**63:
        raise CLIError("--seed", f"{args.seed} is outside [0, 2**63): pass a non-negative seed")
    fewest = 2 if command.name == "hq" else 1  # HQ shifts its schedule by the token count: one step has no shape
    if getattr(args, "steps", None) is not None and args.steps < fewest:
        raise CLIError("--steps", f"{args.steps}: `{command.name}` needs at least {fewest} denoising steps")
    if (command.kind or getattr(args, "kind", None)) == "distilled":
        refuse_with_distilled(args)
    checked.loras = [_lora_spec("--lora", spec) for spec in args.lora]
    if getattr(args, "distilled_lora", None):
        checked.distilled_lora = _lora_spec("--distilled-lora", args.distilled_lora)
        if command.name == "hq" and checked.distilled_lora[0] != args.distilled_lora:
            raise CLIError(
                "--distilled-lora",
                "hq sets the distilled LoRA's strength per stage (0.25, then 0.5): give the PATH without :SCALE",
            )
    if getattr(args, "ic_lora", None):
        checked.ic_lora = _lora_spec("--ic-lora", args.ic_lora)
    _check_images(args, checked)
    image = getattr(args, "image", None)
    strength = getattr(args, "image_strength", None)
    check_call_inputs(
        prompt=args.prompt,
        negative_prompt=getattr(args, "negative_prompt", None),
        height=checked.height,
        width=checked.width,
        num_frames=checked.frames,
        frame_rate=checked.fps,
        size_multiple=command.size_multiple,
        image=image,
        image_strength=1.0 if strength is None else strength,
        image_crf=getattr(args, "image_crf", None),
        keyframes=checked.keyframes,
        num_inference_steps=getattr(args, "steps", None),
        allow_large=args.allow_large,
        names=FLAGS if command.height is not None else {**FLAGS, **RETAKE_FLAGS},
    )
    if "audio" in command.features:
        checked.audio_sample_rate = _check_audio(args, checked)
    if "ic_lora" in command.features:
        checked.references = [_reference_spec(spec, checked.frames) for spec in args.reference]
    _check_device(args)
    return checked


# ----------------------------------------------------------------------------------------------------------------------
# Model and output


def refuse_with_distilled(args: argparse.Namespace) -> None:
    """A distilled checkpoint runs its fixed sigmas with one unguided pass per step: --steps and --negative-prompt
    would be ignored (or fail after loading)."""
    for flag, value in (
        ("--steps", getattr(args, "steps", None)),
        ("--negative-prompt", getattr(args, "negative_prompt", None)),
    ):
        if value is not None:
            raise CLIError(flag, "does not apply to a distilled checkpoint (its 8 fixed sigmas, no guidance)")


# the random tiny pipeline: LTX-2 by default, or the LTX-2.3 / LTX-2.5 layout (`pipelines.tiny`)
TINY_MODELS = {"tiny": "2.0", "tiny-2.3": "2.3", "tiny-2.5": "2.5"}


def _check_model(args: argparse.Namespace, command: Command) -> str:
    model = args.model
    if model in TINY_MODELS:
        kind = "tiny"
    elif model.endswith(".safetensors"):
        if not os.path.isfile(model):
            raise CLIError("--model", f"{model}: no such file")
        _check_safetensors("--model", model)
        kind = "file"
    elif os.path.isdir(model):
        if not os.path.isfile(os.path.join(model, "model_index.json")):
            raise CLIError(
                "--model",
                f"{model}: the folder has no model_index.json, so it is not a diffusers-layout pipeline (what "
                f"save_pretrained writes). --model takes {MODEL_CHOICES}.",
            )
        kind = "folder"
    elif os.path.exists(model):
        raise CLIError("--model", f"{model}: a file, but not a .safetensors checkpoint. --model takes {MODEL_CHOICES}.")
    elif model.startswith((".", "/", "~")) or model.count("/") != 1 or not re.fullmatch(r"[\w.-]+/[\w.-]+", model):
        raise CLIError("--model", f"{model}: no such folder, and not a Hub id. --model takes {MODEL_CHOICES}.")
    else:
        kind = "hub"
    if args.text_encoder is not None and kind != "file":
        where = "the tiny model builds its own" if kind == "tiny" else "the pipeline folder holds its own"
        raise CLIError("--text-encoder", f"only applies to a single-file --model ({where})")
    if kind == "file" and args.text_encoder is None:
        raise CLIError(
            "--text-encoder",
            "a single-file checkpoint holds no text encoder: pass --text-encoder with a Gemma-3 folder or Hub id "
            "(e.g. google/gemma-3-12b-it-qat-q4_0-unquantized)",
        )
    upsampler = getattr(args, "upsampler", None)
    if kind == "file" and "upsampler" in command.features and upsampler is None:
        raise CLIError(
            "--upsampler",
            f"`{command.name}` upsamples latents x2 between its stages: with a single-file --model pass the upscaler's "
            "file too (e.g. ltx-2-spatial-upscaler-x2-1.0.safetensors)",
        )
    if upsampler is not None:
        if kind != "file":
            where = "the tiny model builds its own" if kind == "tiny" else "the folder's latent_upsampler/ is used"
            raise CLIError("--upsampler", f"only applies to a single-file --model ({where})")
        _check_file("--upsampler", upsampler)
    return kind


def _check_file(flag: str, path: str) -> None:
    if not os.path.isfile(path):
        raise CLIError(flag, f"{path}: no such file")
    _check_safetensors(flag, path)


def _check_output(output: str, suffixes: tuple[str, ...] = OUTPUT_SUFFIXES) -> Path:
    if output.endswith(("/", os.sep)):
        raise CLIError(
            "-o/--output", f"{output} is a folder: give a file name, e.g. {os.path.join(output, 'clip' + suffixes[0])}"
        )
    path = check_output_path(output, name="-o/--output", suffixes=suffixes)
    # validation asks os.access, which says yes to root on read-only file systems: try writing in the nearest folder
    # that exists (the missing ones are created before writing)
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    probe = ancestor / f".ltx2-diffusers-probe-{uuid.uuid4().hex[:8]}"
    try:
        probe.touch(exist_ok=False)
        probe.unlink()
    except OSError as error:
        raise CLIError("-o/--output", f"{output}: cannot write in {ancestor} ({error.strerror})") from None
    return path


def _check_safetensors(flag: str, path: str) -> None:
    """The file starts with a safetensors header (8-byte length + JSON): catches wrong or truncated files early."""
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if not 2 <= size <= min(100_000_000, os.path.getsize(path) - 8):
                raise ValueError(f"header length {size}")
            json.loads(f.read(size))
    except (OSError, ValueError) as error:
        raise CLIError(flag, f"{path} is not a readable .safetensors file ({error})") from None


# ----------------------------------------------------------------------------------------------------------------------
# Size, frames, fps


def _check_auto_length(args: argparse.Namespace, c: Checked) -> None:
    if "auto_length" in c.command.features and args.frames == AUTO:  # cli/duration.py
        check_model_has_head(args.model, c.model, TINY_MODELS)
        c.predict_length, c.min_seconds, c.max_seconds = True, args.min_seconds, args.max_seconds


def _check_size(args: argparse.Namespace, command: Command) -> tuple[int, int, int, float]:
    frames, height, width, fps = args.frames, args.height, args.width, args.fps
    if "auto_length" in command.features:  # --frames auto: checked for the longest clip; else the range is refused
        check_frame_rate(fps, "--fps")
        frames = check_length_range(args, fps)
    check_video_size(height, width, frames, command.size_multiple, FLAGS)
    _check_fps(fps, frames)
    return frames, height, width, fps


def _check_fps(fps: float, frames: int, flag: str = "--fps") -> None:
    check_frame_rate(fps, flag)
    # the soundtrack has round(seconds * 25) latent frames: a clip shorter than one (40 ms) has no audio
    if round(frames / fps * 25) < 1:
        raise CLIError(
            flag,
            f"{fps:g} fps makes {frames} frames last {frames / fps:.3g} s, less than the 40 ms of one "
            f"audio latent frame: use at most {frames * 25 / 0.5:g} fps",
        )


def _check_size_guard(args: argparse.Namespace, c: Checked) -> None:
    tokens = ((c.frames - 1) // 8 + 1) * (c.height // 32) * (c.width // 32)
    decoded_gib = c.frames * c.height * c.width * 3 * 4 / 2**30
    if args.allow_large or (tokens <= MAX_VIDEO_TOKENS and decoded_gib <= MAX_DECODED_GIB and c.frames <= MAX_FRAMES):
        return
    flag = "--frames" if c.frames > 257 or c.command.height is None else "--height/--width"
    flag = "--max-seconds" if c.predict_length and flag == "--frames" else flag  # the longest clip it allows
    raise CLIError(
        flag,
        f"{c.frames} frames of {c.width}x{c.height} are {tokens:,} video tokens per step and {decoded_gib:.1f} GiB of "
        f"decoded float32 frames; the size guard allows {MAX_FRAMES:,} frames, {MAX_VIDEO_TOKENS:,} tokens and "
        f"{MAX_DECODED_GIB:g} GiB (the reference's largest setting, 121 frames of 1920x1088, has 32,640 tokens and "
        "2.8 GiB): pass --allow-large to run it anyway",
    )


RETAKE_FLAGS = {  # the retake's sizes are the --video clip's
    "num_frames": "the --video clip's frame count",
    "height": "the --video clip's height",
    "width": "the --video clip's width",
    "frame_rate": "the --video clip's fps",
}


def _check_source_clip(args: argparse.Namespace) -> tuple[int, int, int, float]:
    """The --video clip's frames, size and fps (retake and video-to-audio run at the source's size)."""
    import av

    path = args.video
    if not os.path.isfile(path):
        raise CLIError("--video", f"{path}: no such file")
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise CLIError("--video", f"{path} has no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate) if stream.average_rate else float("nan")
            height, width = stream.codec_context.height, stream.codec_context.width
            frames = sum(1 for _ in container.decode(stream))
    except av.error.FFmpegError as error:
        raise CLIError("--video", f"{path} is not a video FFmpeg can decode ({error})") from None
    if frames < 1:
        raise CLIError("--video", f"{path} has no frames")
    check_video_size(height, width, frames, names=RETAKE_FLAGS)  # a retake runs at the source's size
    _check_fps(fps, frames, RETAKE_FLAGS["frame_rate"])
    return frames, height, width, fps


def _check_retake(args: argparse.Namespace) -> tuple[int, int, int, float]:
    """The source clip (`_check_source_clip`) and the window."""
    frames, height, width, fps = _check_source_clip(args)
    duration = frames / fps
    for flag, value in (("--start", args.start), ("--end", args.end)):
        if not math.isfinite(value):
            raise CLIError(flag, f"{value} is not a finite number of seconds")
    if not 0 <= args.start < duration:
        raise CLIError(
            "--start", f"{args.start:g} s is outside the clip, which lasts {duration:.4g} s: use [0, {duration:.4g})"
        )
    if not args.end > args.start:
        raise CLIError(
            "--end",
            f"{args.end:g} s: the window [{args.start:g}, {args.end:g}) is empty; --end must be greater than --start",
        )
    return frames, height, width, fps


def _check_extend(args: argparse.Namespace) -> tuple[int, int, int, float]:
    """The --video clip read and checked as the extension will read it (context, new frames, soundtrack); the
    size checks then see one segment, context + new frames at the clip's size, and the clip's fps."""
    import inspect

    from ..pipelines.pipeline_ltx2_av_extend import LTX2AVExtendPipeline, check_extension, read_clip

    if not os.path.isfile(args.video):
        raise CLIError("--video", f"{args.video}: no such file")
    clip = read_clip(args.video, None, None, None, name="--video")
    defaults = inspect.signature(LTX2AVExtendPipeline.__call__).parameters  # the flags' defaults are the call's
    context = defaults["context_frames"].default if args.context_frames is None else args.context_frames
    new = defaults["num_frames"].default if args.new_frames is None else args.new_frames
    check_extension(clip, context, new, args.backwards, not args.no_audio_context, "pil")
    return context + new, *clip.frames.shape[1:3], clip.frame_rate


def _check_dub_it(args: argparse.Namespace) -> tuple[int, int, int, float]:
    """The --reference-video clip read as the Dub-It pipeline reads it (frames snapped down to 8k + 1, its fps, an
    audible soundtrack), the output size, and one LoRA only: the --ic-lora."""
    from ..pipelines.pipeline_ltx2_av_dubit import read_dub_it_reference

    if args.lora:
        raise CLIError("--lora", "Dub-It takes exactly one LoRA, its IC-LoRA: pass it with --ic-lora alone")
    if not os.path.isfile(args.reference_video):
        raise CLIError("--reference-video", f"{args.reference_video}: no such file")
    try:
        reference = read_dub_it_reference(args.reference_video)
    except ValueError as error:
        raise CLIError("--reference-video", str(error)) from None
    check_video_size(args.height, args.width, reference.num_frames, 64, FLAGS)
    check_strength(args.reference_strength, "--reference-strength")
    return reference.num_frames, args.height, args.width, reference.frame_rate


# ----------------------------------------------------------------------------------------------------------------------
# text-to-audio: a WAV file, a length in frames at a frame rate, no video


def _check_text_to_audio(args: argparse.Namespace, command: Command) -> Checked:
    checked = Checked(command, _check_model(args, command), _check_output(args.output, (".wav",)))
    check_frame_rate(args.fps, "--fps")
    frames = check_length_range(args, args.fps)  # --frames auto: the longest clip the range allows
    check_frame_count(frames, "--frames")
    _check_fps(args.fps, frames)
    checked.frames, checked.fps = frames, args.fps
    if frames > MAX_FRAMES and not args.allow_large:
        raise CLIError("--frames", f"{frames} frames: the size guard allows {MAX_FRAMES}; pass --allow-large")
    _check_auto_length(args, checked)
    if args.vae_tiling is not None:
        flag = "--vae-tiling" if args.vae_tiling else "--no-vae-tiling"
        raise CLIError(flag, "does not apply to `text-to-audio`: there is no video to decode")
    if not 0 <= args.seed < 2**63:
        raise CLIError("--seed", f"{args.seed} is outside [0, 2**63): pass a non-negative seed")
    if args.steps is not None:
        check_num_inference_steps(args.steps, "--steps", args.allow_large, "--allow-large")
    if args.kind == "distilled":
        refuse_with_distilled(args)
    checked.loras = [_lora_spec("--lora", spec) for spec in args.lora]
    check_prompts(args.prompt, args.negative_prompt, enhance_prompt=args.enhance_prompt, names=FLAGS)
    _check_device(args)
    return checked


# ----------------------------------------------------------------------------------------------------------------------
# Input files


def _split_number(spec: str, cast, flag: str, what: str) -> tuple[str, object | None]:
    """`PATH:NUMBER` -> (PATH, number); `PATH` alone -> (PATH, None). Splits at the last ':' (paths may hold ':')."""
    path, sep, tail = spec.rpartition(":")
    if not sep or not path or os.path.exists(spec):
        return spec, None
    try:
        return path, cast(tail)
    except ValueError:
        raise CLIError(flag, f"{spec}: {tail!r} is not a valid {what}") from None


def _lora_spec(flag: str, spec: str) -> tuple[str, float]:
    path, scale = _split_number(spec, float, flag, "scale (PATH[:SCALE], e.g. style.safetensors:0.8)")
    scale = 1.0 if scale is None else scale
    if not math.isfinite(scale):
        raise CLIError(flag, f"{spec}: the scale must be a finite number, got {scale}")
    if not os.path.isfile(path):
        raise CLIError(flag, f"{path}: no such file")
    _check_safetensors(flag, path)
    return path, scale


def _check_image_file(flag: str, path: str) -> None:
    """The file decodes as the pipeline will read it (`inputs.image_to_uint8`: 16-bit PNGs keep their grey levels)."""
    from ..pipelines.inputs import image_to_uint8

    height, width = image_to_uint8(path, name=flag).shape[:2]  # its errors name the flag
    if width < 2 or height < 2:
        raise CLIError(flag, f"{path} is {width}x{height}: an image needs at least 2x2 pixels")


def _keyframe_spec(spec: str) -> tuple[str, int, float]:
    """PATH:FRAME[:STRENGTH], split from the right (paths may hold ':')."""
    head, _, last = spec.rpartition(":")
    inner, _, middle = head.rpartition(":")
    if inner and re.fullmatch(r"-?\d+", middle) and _is_float(last):
        return inner, int(middle), float(last)
    if head and re.fullmatch(r"-?\d+", last):
        return head, int(last), 1.0
    raise CLIError("--keyframe", f"{spec}: expected PATH:FRAME[:STRENGTH] (e.g. first.png:0 or last.png:120:0.9)")


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_images(args: argparse.Namespace, c: Checked) -> None:
    image = getattr(args, "image", None)
    if image is not None:
        _check_image_file("--image", image)
    if getattr(args, "image_strength", None) is not None and image is None:
        raise CLIError("--image-strength", "only applies with --image")
    for spec in getattr(args, "keyframe", []):
        path, frame, strength = _keyframe_spec(spec)
        _check_image_file("--keyframe", path)
        c.keyframes.append((path, frame, strength))  # frames and strengths: check_call_inputs
    if c.command.name == "keyframes" and not c.keyframes:
        raise CLIError("--keyframe", "the keyframes subcommand needs at least one PATH:FRAME[:STRENGTH]")
    if getattr(args, "image_crf", None) is not None and image is None and not c.keyframes:
        raise CLIError("--image-crf", "only applies with --image or --keyframe")


def _check_audio(args: argparse.Namespace, c: Checked) -> int:
    import av

    path = args.audio
    if not os.path.isfile(path):
        raise CLIError("--audio", f"{path}: no such file")
    try:
        with av.open(path) as container:
            if not container.streams.audio:
                raise CLIError("--audio", f"{path} has no audio stream")
            stream = container.streams.audio[0]
            rate = stream.rate
            seconds = sum(frame.samples for frame in container.decode(stream)) / rate
    except av.error.FFmpegError as error:
        raise CLIError("--audio", f"{path} is not audio FFmpeg can decode ({error})") from None
    if rate not in AAC_SAMPLE_RATES:
        raise CLIError(
            "--audio",
            f"{path} is sampled at {rate} Hz, which AAC cannot store in the output: resample it "
            f"to 48000 or 44100 Hz first",
        )
    if not math.isfinite(args.audio_start) or not 0 <= args.audio_start < seconds:
        raise CLIError("--audio-start", f"{args.audio_start:g} s is outside {path}, which lasts {seconds:.3g} s")
    # The video follows the soundtrack, so it must cover the clip in audio latent frames (25 per second): the clip
    # needs round(seconds * 25), a waveform gives floor(seconds * 25) + 1 (the audio VAE's causal padding).
    needed, available = c.frames / c.fps, seconds - args.audio_start
    if int(min(available, needed) * 25) + 1 < round(needed * 25):
        raise CLIError(
            "--audio",
            f"{path} has {available:.3g} s of sound after --audio-start {args.audio_start:g}, but {c.frames} frames at "
            f"{c.fps:g} fps last {needed:.3g} s: pass fewer --frames or an earlier --audio-start",
        )
    return rate


def _reference_spec(spec: str, frames: int) -> tuple[str, float]:
    import av

    path, strength = _split_number(spec, float, "--reference", "strength (VIDEO[:STRENGTH], e.g. pose.mp4:0.8)")
    strength = check_strength(1.0 if strength is None else strength, f"--reference {spec}: the strength")
    if not os.path.isfile(path):
        raise CLIError("--reference", f"{path}: no such file")
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise CLIError("--reference", f"{path} has no video stream")
            count = sum(1 for _ in container.decode(container.streams.video[0]))
    except av.error.FFmpegError as error:
        raise CLIError("--reference", f"{path} is not a video FFmpeg can decode ({error})") from None
    used = min(count, frames)  # the pipeline takes at most --frames frames of it
    if (used - 1) % 8:
        raise CLIError(
            "--reference",
            f"{path} gives {used} frames (at most --frames={frames}); the video VAE needs 8k + 1: trim it to "
            f"{(used - 1) // 8 * 8 + 1} frames",
        )
    return path, strength


# ----------------------------------------------------------------------------------------------------------------------
# Device


def resolve_device(args: argparse.Namespace) -> tuple[str, str]:
    """(device, dtype name) after the defaults: cuda when available, bf16 on cuda and fp32 on cpu."""
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    return device, args.dtype or ("bf16" if device.startswith("cuda") else "fp32")


def _check_device(args: argparse.Namespace) -> None:
    import torch

    if args.device is not None:
        try:
            device = torch.device(args.device)
        except (RuntimeError, ValueError):
            raise CLIError("--device", f"{args.device!r} is not a torch device (e.g. cpu, cuda, cuda:1)") from None
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise CLIError("--device", f"{args.device}: CUDA is not available here (use --device cpu)")
            if device.index is not None and device.index >= torch.cuda.device_count():
                raise CLIError("--device", f"{args.device}: there are {torch.cuda.device_count()} CUDA devices")
        elif device.type not in ("cpu", "mps"):
            raise CLIError("--device", f"{args.device}: the CLI runs on cpu, cuda or mps")
    device, dtype = resolve_device(args)
    if args.offload and not device.startswith("cuda"):
        raise CLIError("--offload", f"moves components between the CPU and a GPU; the device is {device}")
    if args.vram is not None:
        _check_vram(args, device)
    from .distributed import check as check_distributed

    check_distributed(args)
    if args.fp8:
        if device.startswith("cuda"):
            capability = torch.cuda.get_device_capability(torch.device(device))
            if capability < (8, 9):
                raise CLIError("--fp8", f"needs CUDA capability 8.9+ (Ada, Hopper); {device} has {capability}")
            if DTYPES[dtype] != "bfloat16":
                raise CLIError("--fp8", f"computes in bf16 on CUDA: drop --dtype {args.dtype}")


def _check_vram(args: argparse.Namespace, device: str) -> None:
    from ..memory.planner import parse_budget

    try:
        parse_budget(args.vram)
    except (TypeError, ValueError) as error:
        raise CLIError("--vram", str(error).replace("budget=", "")) from None
    if not device.startswith("cuda"):
        raise CLIError("--vram", f"budgets GPU memory; the device is {device} (use --device cuda)")
    if args.offload:
        raise CLIError("--vram", "places every component itself: drop --offload")
    if args.vae_tiling is False:
        raise CLIError("--vram", "picks the VAE tiles itself: drop --no-vae-tiling")
