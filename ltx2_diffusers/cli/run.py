"""Running a checked subcommand: the pipeline's call keywords, loading (tiny, single file, folder or Hub id), LoRAs,
FP8, placement, the call, and the atomic write of the clip."""

import argparse
import inspect
import os
import time
from pathlib import Path

from . import distributed
from .checks import Checked, refuse_with_distilled, resolve_device
from .duration import describe_prediction, require_head
from .parser import DTYPES, MODEL_CHOICES, CLIError

# The LoRA adapters the CLI loads, by name
DISTILLED_ADAPTER = "distilled"


def pipeline_class(command_name: str, class_name: str) -> type:
    """The pipeline class of a subcommand (imports torch and diffusers, loads no weights)."""
    import ltx2_diffusers

    return getattr(ltx2_diffusers, class_name)


def call_arguments(args: argparse.Namespace, c: Checked) -> list[tuple[str, object, str]]:
    """(keyword, value, the flag that set it) for the pipeline call; images are read here (`inputs.image_to_uint8`,
    as the pipelines read them), the model is not."""
    from ..pipelines.inputs import image_to_uint8

    f = c.command.features
    kw: list[tuple[str, object, str]] = [("prompt", args.prompt, "prompt")]
    if args.reference_version is not None:
        kw.append(("reference", args.reference_version, "--reference-version"))
    num_frames = None if c.predict_length else c.frames  # --frames auto: None, the duration head picks it
    if c.command.height is not None:
        kw += [("height", c.height, "--height"), ("width", c.width, "--width")]
        kw += [("num_frames", num_frames, "--frames"), ("frame_rate", c.fps, "--fps")]
    for keyword, value, flag in (("min_seconds", c.min_seconds, "--min-seconds"), ("max_seconds", c.max_seconds,
                                                                                   "--max-seconds")):  # fmt: skip
        if value is not None:
            kw.append((keyword, value, flag))
    if "steps" in f and args.steps is not None:
        kw.append(("num_inference_steps", args.steps, "--steps"))
    if "negative" in f and args.negative_prompt is not None:
        kw.append(("negative_prompt", args.negative_prompt, "--negative-prompt"))
    if "enhance" in f and args.enhance_prompt:
        kw += [("enhance_prompt", True, "--enhance-prompt"), ("enhance_prompt_seed", args.seed, "--enhance-prompt")]
    if getattr(args, "image", None) is not None:
        strength = 1.0 if args.image_strength is None else args.image_strength
        image = image_to_uint8(args.image, name="--image")
        kw += [("image", image, "--image"), ("image_strength", strength, "--image-strength")]
    if c.keyframes:
        keyframes = [(image_to_uint8(p, name="--keyframe"), frame, s) for p, frame, s in c.keyframes]
        kw.append(("keyframes", keyframes, "--keyframe"))
    if getattr(args, "image_crf", None) is not None:
        kw.append(("image_crf", args.image_crf, "--image-crf"))
    if "audio" in f:
        kw += [("audio", args.audio, "--audio"), ("audio_start_time", args.audio_start, "--audio-start")]
    if "ic_lora" in f:
        kw.append(("reference_videos", list(c.references), "--reference"))
        if args.skip_stage_2:
            kw.append(("skip_stage_2", True, "--skip-stage-2"))
    if "duration" in f:
        kw += [("num_frames", num_frames, "--frames"), ("frame_rate", c.fps, "--fps")]
    if "dubit" in f:  # frames and fps come from the reference clip
        kw += [("reference_video", args.reference_video, "--reference-video"), ("height", c.height, "--height")]
        kw += [("width", c.width, "--width"), ("reference_strength", args.reference_strength, "--reference-strength")]
    if "v2a" in f:
        kw.append(("video", args.video, "--video"))
    if "retake" in f:
        kw += [("video", args.video, "--video"), ("start_time", args.start, "--start"), ("end_time", args.end, "--end")]
        kw += [("regenerate_video", not args.keep_video, "--keep-video")]
        kw += [("regenerate_audio", not args.keep_audio, "--keep-audio")]
    if "extend" in f:
        kw += [("video", args.video, "--video"), ("backwards", args.backwards, "--backwards")]
        kw += [("audio_context", not args.no_audio_context, "--no-audio-context")]
        for keyword, value, flag in (
            ("num_frames", args.new_frames, "--new-frames"),
            ("context_frames", args.context_frames, "--context-frames"),
            ("num_extensions", args.extensions, "--extensions"),
        ):
            if value is not None:
                kw.append((keyword, value, flag))
    if "temporal" in f and c.temporal_upsampler is not None:
        kw.append(("temporal_upsample", True, "--temporal-upsampler"))
    if c.distilled_lora is not None:
        path, scale = c.distilled_lora
        if c.command.name == "hq":  # the HQ pipeline sets the adapter's strength per stage (0.25, then 0.5)
            kw.append(("distilled_adapter", DISTILLED_ADAPTER, "--distilled-lora"))
        else:
            kw += [("stage_2_adapter", DISTILLED_ADAPTER, "--distilled-lora")]
            kw += [("stage_2_adapter_scale", scale, "--distilled-lora")]
    return kw


def check_call(cls: type, command_name: str, kw: list[tuple[str, object, str]]) -> None:
    """Refuse a flag whose keyword the pipeline's `__call__` does not take, before any weights load."""
    parameters = inspect.signature(cls.__call__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    for keyword, _, flag in kw:
        if keyword not in parameters:
            raise CLIError(flag, f"does not apply to `{command_name}`: {cls.__name__} takes no {keyword}=")


# ----------------------------------------------------------------------------------------------------------------------
# Loading


def load_pipeline(
    cls: type,
    model: str,
    model_kind: str,
    torch_dtype,
    *,
    text_encoder: str | None = None,
    kind: str | None = None,
    upsampler: str | None = None,
    with_processor: bool = False,
):
    """--model -> a `cls` pipeline: the tiny random one, a Lightricks single file (+ Gemma folder, + upsampler file),
    or a diffusers-layout folder / Hub id. `kind` ("dev" / "distilled") replaces the scheduler when given."""
    if model_kind == "tiny":
        return _tiny(cls, torch_dtype, kind, model)
    if model_kind == "file":
        from transformers import AutoTokenizer, Gemma3ForConditionalGeneration, Gemma3Processor

        gemma = Gemma3ForConditionalGeneration.from_pretrained(text_encoder, torch_dtype=torch_dtype)
        extra = {} if upsampler is None else {"latent_upsampler": upsampler}
        return cls.from_single_file(
            model,
            text_encoder=gemma,
            tokenizer=AutoTokenizer.from_pretrained(text_encoder),
            processor=Gemma3Processor.from_pretrained(text_encoder) if with_processor else None,
            kind=kind,
            torch_dtype=torch_dtype,
            **extra,
        )
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return cls.from_pretrained(model, torch_dtype=torch_dtype, kind=kind)
    except (HFValidationError, RepositoryNotFoundError, LocalEntryNotFoundError) as error:
        # RepositoryNotFoundError covers gated repos too; the Hub's own first line says which case it is
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        where = "a local folder, and it could not be loaded" if model_kind == "folder" else "loadable"
        raise CLIError(
            "--model", f"{model}: not {where} from the Hub ({reason}). --model takes {MODEL_CHOICES}."
        ) from None


def load_temporal_upsampler(path: str, torch_dtype):
    """--temporal-upsampler's single file, refused (CLIError) unless it doubles frames and keeps the size."""
    from ..models.latent_upsampler import LTX2LatentUpsamplerModel
    from ..pipelines.temporal_upsampling import check_temporal_upsampler

    try:
        upsampler = LTX2LatentUpsamplerModel.from_single_file(path, torch_dtype=torch_dtype)
        check_temporal_upsampler(upsampler, "file")
    except (ValueError, KeyError) as error:
        raise CLIError("--temporal-upsampler", str(error).strip("'\"")) from None
    return upsampler


def _tiny(cls: type, torch_dtype, kind: str | None, model: str = "tiny"):
    """The random tiny pipeline of `cls` (`--model tiny`, `tiny-2.3`, `tiny-2.5`: the model version's layout): the
    components its constructor takes, the scheduler of `kind`."""
    import torch

    from ..pipelines.pipeline_base import scheduler_for_kind
    from ..pipelines.tiny import build_tiny_pipeline, build_tiny_two_stage_pipeline
    from .checks import TINY_MODELS

    accepted = inspect.signature(cls.__init__).parameters
    any_name = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    build = build_tiny_two_stage_pipeline if "latent_upsampler" in accepted or any_name else build_tiny_pipeline
    base = build(model_version=TINY_MODELS[model])
    components = {name: value for name, value in base.components.items() if any_name or name in accepted}
    if kind is not None:
        components["scheduler"] = scheduler_for_kind(kind)
    pipe = cls(**components)
    if torch_dtype == torch.float32:
        return pipe
    # diffusers 0.42's ModelMixin.to(dtype) warns "modules ... should be kept in float32: []" for every model, even
    # with an empty list: five lines of noise on the README command
    from diffusers.utils import logging as diffusers_logging

    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()
    try:
        return pipe.to(torch_dtype)
    finally:
        diffusers_logging.set_verbosity(verbosity)


def prepare(pipe, args: argparse.Namespace, c: Checked, device: str) -> None:
    """LoRAs (fused, then adapters), FP8, placement, VAE tiling and the progress bar."""
    import torch

    from ..loaders.lora import fuse_lora, load_lora_adapter
    from ..pipelines.temporal_upsampling import doubled_num_frames

    flag = "--lora"
    try:  # a LoRA of another model (names, shapes) is found here, once the transformer exists
        if c.loras:  # fused into the bf16 weights, before FP8 quantises them
            fuse_lora(pipe.transformer, [(path, scale) for path, scale in c.loras])
        if args.shard_weights:  # the sharded models go to the device shard by shard (enable_parallelism)
            for name, component in pipe.components.items():
                if isinstance(component, torch.nn.Module) and name not in ("transformer", "text_encoder"):
                    component.to(device)
        elif not args.offload and args.vram is None:
            pipe.to(device)
        if args.fp8:  # before the adapters: they stay live over the FP8 layers (models/fp8_lora.py)
            pipe.transformer.enable_fp8()
        flag = "--distilled-lora"
        if c.distilled_lora is not None:
            load_lora_adapter(pipe.transformer, c.distilled_lora[0], DISTILLED_ADAPTER)
        flag = "--ic-lora"
        if c.ic_lora is not None:
            pipe.load_ic_lora(c.ic_lora[0], strength=c.ic_lora[1])
    except (ValueError, KeyError) as error:
        raise CLIError(flag, str(error).strip("'\"")) from None
    if args.vram is not None:  # the planner places every weight; a call that cannot fit is refused before any moves
        # FP8 must go on before adapters load (they stay live over FP8 layers): with adapters, only --fp8 chooses it
        adapters = c.distilled_lora is not None or c.ic_lora is not None
        fp8 = True if args.fp8 else (False if adapters else "auto")
        frames, fps = c.frames, c.fps
        if c.temporal_upsampler is not None:  # planned for the clip stage 2 makes: 2(N - 1) + 1 frames at 2 fps
            frames, fps = doubled_num_frames(c.frames), 2 * c.fps
        try:
            pipe.enable_memory_budget(
                args.vram, device=device, fp8=fp8, height=c.height, width=c.width, num_frames=frames, frame_rate=fps
            )
        except ValueError as error:
            raise CLIError("--vram", str(error)) from None
    elif args.offload:
        pipe.enable_model_cpu_offload(device=device)
    if device.startswith("cuda"):
        # cuDNN then runs the VAE's convs without layout conversions (docs/video_vae.md: about 1.3x faster decodes)
        pipe.vae.to(memory_format=torch.channels_last_3d)
    if args.vae_tiling is True:
        pipe.enable_vae_tiling()
    elif args.vae_tiling is False:
        pipe.disable_vae_tiling()
    pipe.set_progress_bar_config(disable=False, desc="denoising")


# ----------------------------------------------------------------------------------------------------------------------
# The run


def run(args: argparse.Namespace, c: Checked) -> str:
    """Load, generate, write; returns the summary line. Everything that can be checked without weights was."""

    start = time.perf_counter()
    cls = pipeline_class(c.command.name, c.command.pipeline)
    kw = call_arguments(args, c)
    check_call(cls, c.command.name, kw)
    device, dtype_name = resolve_device(args)
    launch, device = distributed.start(args, device)  # under torchrun: this rank's device, the process group
    try:
        return _run(args, c, cls, kw, device, dtype_name, launch, start)
    finally:
        distributed.finish(launch)


def _run(args, c: Checked, cls: type, kw, device: str, dtype_name: str, launch, start: float) -> str:
    import numpy as np
    import torch

    torch_dtype = getattr(torch, DTYPES[dtype_name])
    kind = c.command.kind or getattr(args, "kind", None)
    pipe = load_pipeline(
        cls,
        args.model,
        c.model,
        torch_dtype,
        text_encoder=args.text_encoder,
        kind=kind,
        upsampler=getattr(args, "upsampler", None),
        with_processor=bool(getattr(args, "enhance_prompt", False) and getattr(args, "image", None)),
    )
    if "upsampler" in c.command.features and getattr(pipe, "latent_upsampler", None) is None:
        raise CLIError("--model", f"{args.model} has no latent_upsampler/, which `{c.command.name}` needs in stage 2")
    if c.temporal_upsampler is not None:  # before placement, which moves it with the rest
        pipe.register_modules(temporal_upsampler=load_temporal_upsampler(c.temporal_upsampler, torch_dtype))
    if getattr(pipe.scheduler.config, "fixed_sigmas", None) is not None:  # a folder whose scheduler is distilled
        refuse_with_distilled(args)
    if c.predict_length:  # a Hub id's components are only known now (others were checked before loading)
        require_head(pipe, args.model)
    prepare(pipe, args, c, device)
    distributed.enable(pipe, args, launch)
    generator = torch.Generator(device=device).manual_seed(args.seed)  # noise drawn on the device, as the reference
    if "t2a" in c.command.features:  # sound alone: a WAV file
        output = pipe(**{keyword: value for keyword, value, _ in kw}, generator=generator, output_type="pt")
        audio, rate = output.audio[0], output.audio_sample_rate
        if launch is not None and launch.rank != 0:
            return f"rank {launch.rank}: done (rank 0 writes {c.output})"
        written = write(None, audio, rate, None, c.output, write_wav)
        predicted = f"the duration head chose {audio.shape[-1] / rate:.2f} s; " if c.predict_length else ""
        return (
            f"{predicted}wrote {os.path.abspath(written)}: stereo audio at {rate} Hz ({audio.shape[-1] / rate:.2f} s, "
            f"16-bit PCM); took {time.perf_counter() - start:.1f} s"
        )
    output = pipe(**{keyword: value for keyword, value, _ in kw}, generator=generator, output_type="pil")
    # "pil": uint8 frames made as the reference's decode_video makes them (truncated, in the decoder's dtype)
    frames, audio = np.stack([np.asarray(frame) for frame in output.frames[0]]), output.audio[0]
    rate = output.audio_sample_rate
    if launch is not None and launch.rank != 0:
        return f"rank {launch.rank}: done (rank 0 writes {c.output})"
    fps = c.fps if c.temporal_upsampler is None else 2 * c.fps  # --temporal-upsampler: the clip doubled in time
    written = write(frames, audio, rate, fps, c.output)
    summary = describe_output(written, frames, audio, rate, fps, time.perf_counter() - start)
    if c.predict_length:
        chosen = len(frames) if c.temporal_upsampler is None else (len(frames) - 1) // 2 + 1  # before doubling
        summary = f"{describe_prediction(chosen, c.fps, c.min_seconds, c.max_seconds)}\n{summary}"
    return summary


def write(frames, audio, sample_rate: int, fps: float, path: Path, writer=None) -> str:
    """Create the output's missing folders and write the clip atomically; on failure, remove the folders made here.
    writer(frames, audio, sample_rate, fps, path): default `export_to_video_with_audio`."""
    from ..utils.media import export_to_video_with_audio

    missing = []
    folder = path.absolute().parent
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return (writer or export_to_video_with_audio)(frames, audio, sample_rate, fps, path)
    except BaseException as error:
        for made in missing:  # innermost first; only folders that are still empty
            try:
                made.rmdir()
            except OSError:
                break
        if isinstance(error, ValueError | OSError):
            raise WriteError(f"{path}: nothing written: {error}") from None
        raise


def write_wav(frames, audio, sample_rate: int, fps, path: Path) -> str:
    """A (2, S) float waveform in [-1, 1] -> a 16-bit PCM stereo WAV, written to a temporary name and renamed (no
    partial file on failure). NaN or infinite samples are refused (ValueError)."""
    import wave

    import numpy as np

    samples = np.asarray(audio.float().cpu() if hasattr(audio, "cpu") else audio, dtype=np.float32)
    if samples.ndim != 2 or samples.shape[0] != 2:
        raise ValueError(f"audio must be a (2, S) stereo waveform, got shape {samples.shape}")
    if not np.isfinite(samples).all():
        raise ValueError("the waveform holds NaN or infinite samples")
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").T  # (S, 2): interleaved frames
    partial = path.with_name(f".{path.name}.partial")
    try:
        with wave.open(str(partial), "wb") as file:
            file.setnchannels(2)
            file.setsampwidth(2)
            file.setframerate(int(sample_rate))
            file.writeframes(np.ascontiguousarray(pcm).tobytes())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return str(path)


class WriteError(Exception):
    """The clip was generated but could not be written (NaN output, encoder or disk error): exit status 1."""


def describe_output(path: str, frames, audio, sample_rate: int, fps: float, seconds_taken: float) -> str:
    """The CLI's last line: where the clip is, its size, frame count and length, the audio track, the time it took.
    frames: (F, H, W, 3); audio: (C, S) at `sample_rate`."""
    num_frames, height, width = frames.shape[:3]
    return (
        f"wrote {os.path.abspath(path)}: {num_frames} frames of {width}x{height} at {fps:g} fps "
        f"({num_frames / fps:.2f} s), stereo audio at {sample_rate} Hz ({audio.shape[-1] / sample_rate:.2f} s); "
        f"took {seconds_taken:.1f} s"
    )
