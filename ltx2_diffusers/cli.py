"""The `ltx2-diffusers` command: prompt (and optional image) -> mp4 with sound.

    ltx2-diffusers generate "a cat" -o cat.mp4 --model tiny --frames 17 --height 128 --width 128 --steps 2

`--model` takes a Hub id or a local diffusers-layout folder (loaded into LTX2AVPipeline), a Lightricks single-file
checkpoint (`.safetensors`), or `tiny`: a small random pipeline built offline with the real compression ratios.
"""

import argparse
import os
import sys

DEFAULT_IMAGE_CRF = 33  # ltx_pipelines.utils.constants.DEFAULT_IMAGE_CRF; the pipeline's is pinned to it in a test

DTYPES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "float16", "float16": "float16", "fp32": "float32"}
DTYPES["float32"] = "float32"


EXAMPLES = """examples:
  ltx2-diffusers generate "a cat" -o cat.mp4 --model tiny --frames 17 --height 128 --width 128 --steps 2
      (random tiny model, offline, seconds: checks the install)
  ltx2-diffusers generate "a jazz pianist in a smoky club" -o piano.mp4 --model Lightricks/LTX-2
  ltx2-diffusers generate "she turns and smiles" -o smile.mp4 --image face.png \\
      --model ltx-2.3-22b-dev.safetensors --text-encoder google/gemma-3-12b-it-qat-q4_0-unquantized"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ltx2-diffusers",
        description="LTX-2 / LTX-2.3 audio+video generation.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser(
        "generate",
        help="generate a video with sound from a prompt (and an optional image)",
        description="Generate an mp4 (H.264 + stereo AAC) from a prompt, one stage, with the reference's defaults "
        "for the model version (ltx-pipelines' one-stage pipeline).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gen.add_argument("prompt", help="what to generate")
    gen.add_argument("-o", "--output", required=True, help="output .mp4 path")
    gen.add_argument(
        "--model",
        default="Lightricks/LTX-2",
        help="Hub id, local diffusers folder, single-file .safetensors checkpoint, or 'tiny' (random, offline)",
    )
    gen.add_argument("--text-encoder", help="Gemma-3 folder or Hub id, needed with a single-file --model")
    gen.add_argument(
        "--kind",
        choices=("dev", "distilled"),
        help="dev (shifted schedule, guided) or distilled (fixed 8 sigmas, no guidance). Default: from the "
        "checkpoint's name for single files; for folders / Hub ids the folder's own LTX2Scheduler, else 'distilled' "
        "when the name says so (diffusers-layout repos store a generic scheduler), else dev",
    )
    gen.add_argument("--image", help="image for the first frame (image-to-video)")
    gen.add_argument("--image-strength", type=float, default=1.0, help="1 keeps the image exactly, lower lets it move")
    gen.add_argument(
        "--image-crf",
        type=int,
        default=DEFAULT_IMAGE_CRF,
        help=f"H.264 quality of the round trip the image goes through first, mimicking the training data's "
        f"compression (default {DEFAULT_IMAGE_CRF}, as ltx-pipelines; 0 skips it)",
    )
    gen.add_argument("--frames", type=int, default=121, help="number of frames, 8k + 1 (default 121)")
    gen.add_argument("--height", type=int, default=512, help="multiple of 32 (default 512)")
    gen.add_argument("--width", type=int, default=768, help="multiple of 32 (default 768)")
    gen.add_argument("--fps", type=float, default=24.0, help="frame rate (default 24)")
    gen.add_argument(
        "--steps",
        type=int,
        default=None,
        help="denoising steps (default: 40 for LTX-2, 30 for LTX-2.3; distilled checkpoints: their fixed 8)",
    )
    gen.add_argument("--seed", type=int, default=10, help="random seed (default 10, as ltx-pipelines)")
    gen.add_argument("--negative-prompt", default=None, help="default: the reference's negative prompt")
    gen.add_argument(
        "--enhance-prompt",
        action="store_true",
        help="let Gemma rewrite the prompt into a detailed description first (seeded by --seed; with --image it "
        "sees the image, which needs a Gemma3Processor: the pipeline's `processor`, or --text-encoder's folder)",
    )
    gen.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    gen.add_argument("--dtype", default=None, choices=sorted(DTYPES), help="default: bf16 on cuda, fp32 on cpu")
    gen.add_argument("--offload", action="store_true", help="model CPU offload: one component on the GPU at a time")
    tiling = gen.add_mutually_exclusive_group()
    tiling.add_argument(
        "--vae-tiling",
        dest="vae_tiling",
        action="store_const",
        const=True,
        help="always decode the video in overlapping tiles (least memory). Default: tile only clips of more than "
        "64x512x512 output pixels (the default 121x512x768 is tiled), decode smaller ones whole",
    )
    tiling.add_argument(
        "--no-vae-tiling",
        dest="vae_tiling",
        action="store_const",
        const=False,
        help="never tile: decode the clip in one call, as ltx-pipelines' one-stage pipeline does (most memory)",
    )
    return parser


def load_pipeline(
    model: str, torch_dtype, text_encoder: str | None = None, kind: str | None = None, with_processor: bool = False
):
    """--model -> LTX2AVPipeline: 'tiny', a single .safetensors file, or a diffusers-layout folder / Hub id.
    with_processor: for a single file, also load the Gemma3Processor from `text_encoder` (image prompt enhancement)."""
    import torch

    from .pipelines.pipeline_ltx2_av import LTX2AVPipeline

    if model == "tiny":
        from .pipelines.tiny import build_tiny_pipeline

        pipe = build_tiny_pipeline()
        if torch_dtype == torch.float32:
            return pipe
        # diffusers 0.42's ModelMixin.to(dtype) warns "modules ... should be kept in float32: []" for every model, even
        # with an empty list (`_keep_in_fp32_modules or []` is never None): five lines of noise on the README command
        from diffusers.utils import logging as diffusers_logging

        verbosity = diffusers_logging.get_verbosity()
        diffusers_logging.set_verbosity_error()
        try:
            return pipe.to(torch_dtype)
        finally:
            diffusers_logging.set_verbosity(verbosity)
    if model.endswith(".safetensors"):
        if not os.path.isfile(model):
            raise SystemExit(f"error: --model {model}: no such file")
        if text_encoder is None:
            raise SystemExit(
                "error: a single-file checkpoint holds no text encoder: pass --text-encoder with a Gemma-3 folder or "
                "Hub id (e.g. google/gemma-3-12b-it-qat-q4_0-unquantized)"
            )
        from transformers import AutoTokenizer, Gemma3ForConditionalGeneration, Gemma3Processor

        gemma = Gemma3ForConditionalGeneration.from_pretrained(text_encoder, torch_dtype=torch_dtype)
        tokenizer = AutoTokenizer.from_pretrained(text_encoder)
        return LTX2AVPipeline.from_single_file(
            model,
            text_encoder=gemma,
            tokenizer=tokenizer,
            processor=Gemma3Processor.from_pretrained(text_encoder) if with_processor else None,
            kind=kind,
            torch_dtype=torch_dtype,
        )
    return _from_folder_or_hub(LTX2AVPipeline, model, torch_dtype, kind)


MODEL_CHOICES = "a Hub id (e.g. Lightricks/LTX-2), a diffusers-layout folder, a .safetensors single file, or 'tiny'"


def _from_folder_or_hub(pipeline_class, model: str, torch_dtype, kind: str | None = None):
    """A local diffusers folder or a Hub id; anything else stops with what --model accepts instead of a traceback.
    kind: "dev" / "distilled" replaces the folder's scheduler; None: `LTX2AVPipeline.from_pretrained`'s rule (the
    folder's own LTX2Scheduler, else the kind the name says, else dev)."""
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError, RepositoryNotFoundError

    if os.path.isdir(model):
        if not os.path.isfile(os.path.join(model, "model_index.json")):
            raise SystemExit(
                f"error: --model {model}: the folder has no model_index.json, so it is not a diffusers-layout pipeline "
                f"(what save_pretrained writes). --model takes {MODEL_CHOICES}."
            )
    elif os.path.exists(model):
        raise SystemExit(
            f"error: --model {model}: a file, but not a .safetensors checkpoint. --model takes {MODEL_CHOICES}."
        )
    elif model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise SystemExit(f"error: --model {model}: no such folder. --model takes {MODEL_CHOICES}.")
    try:
        return pipeline_class.from_pretrained(model, torch_dtype=torch_dtype, kind=kind)
    except (HFValidationError, RepositoryNotFoundError, LocalEntryNotFoundError) as error:
        # RepositoryNotFoundError covers gated repos too; the Hub's own first line says which case it is
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SystemExit(
            f"error: --model {model}: not a local folder, and it could not be loaded from the Hub ({reason}). "
            f"--model takes {MODEL_CHOICES}."
        ) from None


def describe_output(path: str, frames, audio, sample_rate: int, fps: float, seconds_taken: float) -> str:
    """The CLI's last line: where the clip is, its size, frame count and length, the audio track, the time it took.
    frames: (F, H, W, 3); audio: (2, S) at `sample_rate`."""
    num_frames, height, width = frames.shape[:3]
    return (
        f"wrote {os.path.abspath(path)}: {num_frames} frames of {width}x{height} at {fps:g} fps "
        f"({num_frames / fps:.2f} s), stereo audio at {sample_rate} Hz ({audio.shape[-1] / sample_rate:.2f} s); "
        f"took {seconds_taken:.1f} s"
    )


def generate(args: argparse.Namespace) -> str:
    """Run `generate` and return the summary line `main` prints (see `describe_output`)."""
    import time

    import numpy as np
    import torch

    from .utils.media import export_to_video_with_audio

    start = time.perf_counter()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype_name = args.dtype or ("bf16" if device.startswith("cuda") else "fp32")
    torch_dtype = getattr(torch, DTYPES[dtype_name])
    with_processor = args.enhance_prompt and args.image is not None
    pipe = load_pipeline(args.model, torch_dtype, args.text_encoder, args.kind, with_processor)
    pipe.set_progress_bar_config(disable=False, desc="denoising")
    if args.offload:
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    if device.startswith("cuda"):
        # cuDNN then runs the VAE's convs without layout conversions (docs/video_vae.md: about 1.3x faster decodes)
        pipe.vae.to(memory_format=torch.channels_last_3d)
    if args.vae_tiling is True:
        pipe.enable_vae_tiling()
    elif args.vae_tiling is False:
        pipe.disable_vae_tiling()
    image = None
    if args.image is not None:
        from .utils.media import load_image

        image = load_image(args.image)
    generator = torch.Generator(device=device).manual_seed(args.seed)  # noise is drawn on the device, as the reference
    output = pipe(
        args.prompt,
        args.negative_prompt,
        image=image,
        image_strength=args.image_strength,
        image_crf=args.image_crf,
        enhance_prompt=args.enhance_prompt,
        enhance_prompt_seed=args.seed,
        height=args.height,
        width=args.width,
        num_frames=args.frames,
        frame_rate=args.fps,
        num_inference_steps=args.steps,
        generator=generator,
        output_type="pil",  # uint8 frames made as the reference's decode_video makes them (truncated, same dtype)
    )
    frames, audio = np.stack([np.asarray(frame) for frame in output.frames[0]]), output.audio[0]
    path = export_to_video_with_audio(frames, audio, output.audio_sample_rate, args.fps, args.output)
    return describe_output(path, frames, audio, output.audio_sample_rate, args.fps, time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = generate(args)
    except ValueError as error:  # bad sizes, frame counts, strengths: say what to change, without a traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
