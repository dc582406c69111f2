"""The `hdr` subcommand: SDR videos -> scene-linear HDR EXR frames (and an HLG mp4) through the HDR IC-LoRA
(ltx-pipelines 1.2.0's `python -m ltx_pipelines.hdr_ic_lora`). Its flags, its checks before any model loads and its run
(parser.py holds its flags; checks.py and run.py hand over to the two functions here).

    ltx2-diffusers hdr "a sunlit kitchen" -o out/ --input clip.mp4 --hdr-lora hdr.safetensors --hlg

writes out/clip_exr/frame_00000.exr ... (and out/clip.mp4, BT.2020 / HLG 10-bit HEVC) for each input video.
"""

import argparse
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..pipelines.validation import check_call_inputs
from .checks import FLAGS, _check_device, _check_model, _check_size_guard, _lora_spec, resolve_device
from .parser import DTYPES, CLIError
from .run import load_pipeline, pipeline_class, prepare

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv")


@dataclass
class HDRChecked:
    """The `hdr` arguments after checking (the runner reads `Checked`'s names: command, model, loras, ...)."""

    command: object
    model: str
    output: Path
    inputs: list[tuple[Path, int, int, float]]  # (video, height, width, fps) each
    frames: int
    height: int  # the largest input's, for the memory plan
    width: int
    fps: float
    ic_lora: tuple[str, float]
    loras: list[tuple[str, float]] = field(default_factory=list)
    distilled_lora: None = None
    keyframes: list = field(default_factory=list)


def _videos(path: str) -> list[Path]:
    source = Path(path)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise CLIError("--input", f"{path}: no such file or folder")
    videos = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        exr = any(source.glob("*.exr"))
        why = (
            " (it holds EXR frames: the HDR IC-LoRA re-grades SDR Rec.709 video, it takes no HDR input)" if exr else ""
        )
        raise CLIError("--input", f"{path} holds no {'/'.join(VIDEO_SUFFIXES)} videos{why}")
    return videos


def _probe(path: Path) -> tuple[int, int, int, float]:
    """(frames, height, width, fps) of a video, decoded as the pipeline will read it."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise CLIError("--input", f"{path} has no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate) if stream.average_rate else 24.0
            frames = sum(1 for _ in container.decode(stream))
            return frames, stream.codec_context.height, stream.codec_context.width, fps
    except av.error.FFmpegError as error:
        raise CLIError("--input", f"{path} is not a video FFmpeg can decode ({error})") from None


def check_hdr(args: argparse.Namespace, command) -> HDRChecked:
    """Every `hdr` argument, before any model loads: the LoRA, each input (it decodes, gives 8k + 1 usable frames, its
    size or --height/--width is a multiple of 64), the output folder (EXR frames never overwritten), OpenEXR."""
    from ..pipelines.pipeline_ltx2_av_hdr_ic_lora import aligned  # the pipeline's rule (imports torch, as checks do)
    from .distributed import launch

    if not args.prompt.strip():
        raise CLIError("prompt", "the prompt is empty: say what to generate")
    if launch() is not None:
        raise CLIError("--input", "`hdr` does not run under torchrun yet (each rank would write the frames): run it as "
                       "one process")  # fmt: skip
    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise CLIError("-o/--output", f"{output} is a file: `hdr` writes a folder of EXR frames per input video")
    inputs = []
    for video in _videos(args.input):
        if any((output / f"{video.stem}_exr").glob("*.exr")):
            raise CLIError("-o/--output", f"{output / (video.stem + '_exr')} already holds EXR frames: pick another -o")
        count, height, width, fps = _probe(video)
        height = height if args.height is None else args.height
        width = width if args.width is None else args.width
        fps = fps if args.fps is None else args.fps
        for flag, value in (("--height", height), ("--width", width)):
            if value < 1:
                raise CLIError(flag, f"{value}: the output needs at least one pixel")
        if args.hlg and (height % 2 or width % 2):
            raise CLIError("--hlg", f"4:2:0 HEVC needs an even height and width; {video} gives {width}x{height}")
        check_call_inputs(  # the generated size: the next multiples of 64 (the frames are cropped back)
            prompt=args.prompt, height=aligned(height), width=aligned(width), num_frames=args.frames, frame_rate=fps,
            size_multiple=64, allow_large=args.allow_large, names=FLAGS,
        )  # fmt: skip
        used = min(count, args.frames)  # the pipeline reads at most --frames (--high-quality: then doubles them)
        if (used - 1) % 8:
            raise CLIError(
                "--input", f"{video} gives {used} frames; the video VAE needs 8k + 1: trim it or set --frames"
            )
        inputs.append((video, height, width, fps))
    _, height, width, fps = max(inputs, key=lambda i: i[1] * i[2])  # the largest sizes the memory plan
    height, width = aligned(height), aligned(width)
    checked = HDRChecked(
        command, _check_model(args, command), output, inputs, args.frames, height, width, fps,
        _lora_spec("--hdr-lora", args.hdr_lora), [_lora_spec("--lora", spec) for spec in args.lora],
    )  # fmt: skip
    _check_size_guard(args, checked)
    if not 0 <= args.seed < 2**63:
        raise CLIError("--seed", f"{args.seed} is outside [0, 2**63): pass a non-negative seed")
    try:
        import OpenEXR  # noqa: F401
    except ImportError:
        raise CLIError(
            "-o/--output", 'writing EXR frames needs the OpenEXR package: pip install "ltx2-diffusers[hdr]"'
        ) from None
    _check_device(args)
    return checked


def run_hdr(args: argparse.Namespace, c: HDRChecked) -> str:
    """Load once, then each input video: the pipeline's linear frames -> EXR frames in --exr-space (+ HLG mp4)."""
    import torch

    from ..utils.hdr import HDRColorSpace, from_rec709_linear
    from ..utils.hdr_io import write_exr_frames, write_hlg_mp4

    start = time.perf_counter()
    device, dtype_name = resolve_device(args)
    cls = pipeline_class(c.command.name, c.command.pipeline)
    pipe = load_pipeline(
        cls, args.model, c.model, getattr(torch, DTYPES[dtype_name]), text_encoder=args.text_encoder,
        kind="distilled", upsampler=getattr(args, "upsampler", None),
    )  # fmt: skip
    if getattr(pipe, "latent_upsampler", None) is None:
        raise CLIError("--model", f"{args.model} has no latent_upsampler/, which `hdr` needs in stage 2")
    prepare(pipe, args, c, device)  # the HDR LoRA loads as c.ic_lora (`load_ic_lora`)
    space = HDRColorSpace(args.exr_space)
    # --reference-version: the release whose numerics to follow; left out, the pipeline's default applies
    version = {} if args.reference_version is None else {"reference": args.reference_version}
    written = []
    for video, height, width, fps in c.inputs:
        generator = torch.Generator(device=device).manual_seed(args.seed)  # each video as if run alone
        frames = pipe(
            str(video), args.prompt, num_frames=c.frames, height=height, width=width, frame_rate=fps,
            high_quality=args.high_quality, generator=generator, allow_large=args.allow_large, **version,
        ).frames[0]  # fmt: skip
        folder = write_exr_frames(c.output / f"{video.stem}_exr", from_rec709_linear(frames, space), space)[0].parent
        written.append(f"{os.path.abspath(folder)} ({frames.shape[0]} EXR frames, {space.exr_tag})")
        if args.hlg:
            written.append(os.path.abspath(write_hlg_mp4(c.output / f"{video.stem}.mp4", frames, fps)))
    return f"wrote {', '.join(map(str, written))}; took {time.perf_counter() - start:.1f} s"
