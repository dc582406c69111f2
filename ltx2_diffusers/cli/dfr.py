"""The `dfr` subcommand: LTX-2.5 keyframe-slot generation, detailing and temporal x2 rounds (ltx-pipelines 1.2.0's
`python -m ltx_pipelines.dfr_pipeline`). Its flags, its checks before any model loads and its run.

    ltx2-diffusers dfr "a hummingbird at a flower" -o bird.mp4 --model tiny-2.5 --frames 9 --height 64 --width 64 \
        --temporal-upsample-rounds 1

writes bird.mp4 with (frames - 1) * 2^rounds + 1 frames at fps * 2^rounds and stage 1's soundtrack.
"""

import argparse
import time
from dataclasses import dataclass

from ..pipelines.validation import check_call_inputs
from .checks import (
    FLAGS,
    Checked,
    _check_device,
    _check_images,
    _check_model,
    _check_output,
    _check_safetensors,
    _check_size,
    _check_size_guard,
    _lora_spec,
    resolve_device,
)
from .distributed import launch
from .parser import DTYPES, CLIError, Command
from .run import call_arguments, check_call, describe_output, load_pipeline, prepare, write

DETAILING_ADAPTER = "detailing"


@dataclass
class DFRChecked(Checked):
    """`Checked` plus the DFR flags."""

    rounds: int = 0
    temporal_upsampler: str | None = None
    detailing_lora: tuple[str, float] | None = None

    @property
    def output_frames(self) -> int:
        return (self.frames - 1) * 2**self.rounds + 1

    @property
    def output_fps(self) -> float:
        return self.fps * 2**self.rounds


def check_dfr(args: argparse.Namespace, command: Command) -> DFRChecked:
    """Every `dfr` argument before any model loads: those every two-stage command has (`checks.check_args`'s rules)
    and the temporal upsampler (a readable file for rounds > 0 unless the model is tiny) and the detailing LoRA."""
    if not args.prompt.strip():
        raise CLIError("prompt", "the prompt is empty: say what to generate")
    if launch() is not None:
        raise CLIError("--temporal-upsample-rounds", "`dfr` does not run under torchrun yet: run it as one process")
    c = DFRChecked(command, _check_model(args, command), _check_output(args.output))
    c.frames, c.height, c.width, c.fps = _check_size(args, command)
    c.rounds = args.temporal_upsample_rounds
    # the size guard and the work estimate see the clip the last round writes
    guard = DFRChecked(command, c.model, c.output, c.output_frames, c.height, c.width, c.output_fps)
    _check_size_guard(args, guard)
    if not 0 <= args.seed < 2**63:
        raise CLIError("--seed", f"{args.seed} is outside [0, 2**63): pass a non-negative seed")
    c.loras = [_lora_spec("--lora", spec) for spec in args.lora]
    if args.distilled_lora:
        c.distilled_lora = _lora_spec("--distilled-lora", args.distilled_lora)
    if args.detailing_lora:
        c.detailing_lora = _lora_spec("--detailing-lora", args.detailing_lora)
    if args.temporal_upsampler is not None:
        if c.rounds == 0:
            raise CLIError("--temporal-upsampler", "only applies with --temporal-upsample-rounds 1 or 2")
        _check_safetensors("--temporal-upsampler", args.temporal_upsampler)
        c.temporal_upsampler = args.temporal_upsampler
    elif c.rounds > 0 and c.model != "tiny":
        raise CLIError(
            "--temporal-upsampler",
            "temporal rounds need the temporal x2 upscaler: pass its file "
            "(ltx-2.5-latent-temporal-upscaler-x2-bf16-1.0.safetensors)",
        )
    _check_images(args, c)
    check_call_inputs(
        prompt=args.prompt, height=c.height, width=c.width, num_frames=c.frames, frame_rate=c.fps,
        size_multiple=command.size_multiple, image=args.image,
        image_strength=1.0 if args.image_strength is None else args.image_strength, image_crf=args.image_crf,
        keyframes=c.keyframes, allow_large=args.allow_large, names=FLAGS,
    )  # fmt: skip
    _check_device(args)
    return c


def _temporal_upsampler(c: DFRChecked, torch_dtype):
    """The temporal x2 upsampler: from its file, or for a tiny model a random tiny one."""
    import torch

    from ..models.latent_upsampler import LTX2LatentUpsamplerModel
    from ..pipelines.tiny import TINY_LATENT_UPSAMPLER_CONFIG

    if c.temporal_upsampler is not None:
        return LTX2LatentUpsamplerModel.from_single_file(c.temporal_upsampler, torch_dtype=torch_dtype)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        config = {**TINY_LATENT_UPSAMPLER_CONFIG, "spatial_upsample": False, "temporal_upsample": True}
        return LTX2LatentUpsamplerModel(**config).to(torch_dtype).eval()


def run_dfr(args: argparse.Namespace, c: DFRChecked) -> str:
    """Load, generate, write the mp4 at fps * 2^rounds; returns the summary line."""
    import numpy as np
    import torch

    from ..pipelines.pipeline_ltx2_av_dfr import LTX2AVDFRPipeline

    start = time.perf_counter()
    cls = LTX2AVDFRPipeline
    # the distilled LoRA is on in every stage (the common `stage_2_adapter` keywords do not apply)
    kw = [k for k in call_arguments(args, c) if not k[0].startswith("stage_2_adapter")]
    kw.append(("temporal_upsample_rounds", c.rounds, "--temporal-upsample-rounds"))
    check_call(cls, c.command.name, kw)
    device, dtype_name = resolve_device(args)
    torch_dtype = getattr(torch, DTYPES[dtype_name])
    pipe = load_pipeline(
        cls, args.model, c.model, torch_dtype, text_encoder=args.text_encoder, kind=c.command.kind,
        upsampler=args.upsampler, with_processor=bool(args.enhance_prompt and args.image),
    )  # fmt: skip
    if getattr(pipe, "latent_upsampler", None) is None:
        raise CLIError("--model", f"{args.model} has no latent_upsampler/, which `dfr` needs in stage 2")
    if c.rounds > 0:
        pipe.register_modules(temporal_upsampler=_temporal_upsampler(c, torch_dtype))
    prepare(pipe, args, c, device)  # fused LoRAs, the distilled adapter, placement
    if c.detailing_lora is not None:
        try:
            name = pipe.load_detailing_lora(c.detailing_lora[0], DETAILING_ADAPTER, c.detailing_lora[1])
        except (ValueError, KeyError) as error:
            raise CLIError("--detailing-lora", str(error).strip("'\"")) from None
        kw.append(("detailing_adapter", name, "--detailing-lora"))
    generator = torch.Generator(device=device).manual_seed(args.seed)  # noise drawn on the device, as the reference
    output = pipe(**{keyword: value for keyword, value, _ in kw}, generator=generator, output_type="pil")
    frames, audio = np.stack([np.asarray(frame) for frame in output.frames[0]]), output.audio[0]
    written = write(frames, audio, output.audio_sample_rate, c.output_fps, c.output)
    return describe_output(written, frames, audio, output.audio_sample_rate, c.output_fps, time.perf_counter() - start)
