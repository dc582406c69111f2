#!/usr/bin/env python
"""Convert Lightricks' LTX-2 / LTX-2.3 single-file checkpoints to a diffusers pipeline folder, and back.

    python scripts/convert_checkpoint.py ORIGINAL.safetensors OUTPUT_DIR [--upsampler FILE] [--text-encoder DIR]
        [--dtype keep|bf16|fp32] [--upcast-fp8] [--kind dev|distilled] [--allow-unknown]
        [--push_to_hub REPO_ID [--private] [--revision BRANCH]]
    python scripts/convert_checkpoint.py --reverse DIFFUSERS_DIR OUTPUT.safetensors [--upsampler-output FILE]
    python scripts/convert_checkpoint.py --reverse --split DIFFUSERS_DIR OUTPUT_DIR [--kind dev|distilled]
        [--text-encoder-file GEMMA4_WITH_PROJ.safetensors]   (LTX-2.5: the released split per-component files)
    python scripts/convert_checkpoint.py TRANSFORMER.safetensors OUTPUT_DIR --text-encoder-file TE.safetensors
        (LTX-2.5's split transformer file: its connectors' projection comes from the text-encoder file)
    python scripts/convert_checkpoint.py UPSCALER.safetensors OUTPUT_DIR        (an upscaler file alone: a model folder)

Tensors stream one at a time (peak memory far below the checkpoint size); nothing is left at the output path if the
conversion fails, and --overwrite replaces only a previous output of this script, never an input. See docs/conversion.md
("Safety"). The work is done by ltx2_diffusers.loaders.single_file (split files: loaders.split_files).
"""

import argparse
import sys

from ltx2_diffusers.conversion import MODEL_CLASSES, convert_diffusers_to_original, convert_original_to_diffusers
from ltx2_diffusers.hub import add_push_arguments, check_push, push_folder
from ltx2_diffusers.loaders.single_file import DEFAULT_MAX_SHARD_SIZE, DTYPE_CHOICES
from ltx2_diffusers.loaders.split_files import convert_diffusers_to_split_files


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", help="original .safetensors file (or, with --reverse, a diffusers folder)")
    parser.add_argument("output", nargs="?", help="output folder (or, with --reverse, the .safetensors file to write)")
    parser.add_argument("--reverse", action="store_true", help="diffusers folder -> original single file")
    parser.add_argument("--split", action="store_true", help="with --reverse: LTX-2.5's split files into OUTPUT_DIR")
    parser.add_argument(
        "--text-encoder-file",
        help="LTX-2.5's text-encoder file (Gemma-4 + projection): read for the projection, or with --reverse --split "
        "copied around the folder's projection",
    )
    parser.add_argument("--upsampler", help="a Lightricks latent upscaler file, converted into latent_upsampler/")
    parser.add_argument("--upsampler-output", help="with --reverse: write latent_upsampler/ to this original file")
    parser.add_argument("--text-encoder", help="local Gemma-3 folder copied into text_encoder/ and tokenizer/")
    parser.add_argument("--link-text-encoder", action="store_true", help="symlink the Gemma files instead of copying")
    parser.add_argument("--dtype", choices=list(DTYPE_CHOICES), default="keep", help="floating tensors' dtype")
    parser.add_argument("--upcast-fp8", action="store_true", help="convert fp8 tensors (to --dtype, bf16 for keep)")
    parser.add_argument("--kind", choices=["dev", "distilled"], help="scheduler; default: from the file name")
    parser.add_argument("--allow-unknown", action="store_true", help="keep keys no component claims instead of failing")
    parser.add_argument("--max-shard-size", type=float, default=DEFAULT_MAX_SHARD_SIZE / 1e9, help="GB per shard")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a previous output of this script (never an input or a folder holding other files)",
    )
    add_push_arguments(parser)
    args = parser.parse_args(argv)
    if args.push_to_hub and args.reverse:
        parser.error("--push_to_hub uploads a converted folder; with --reverse there is none (push the folder itself)")
    if args.split and not args.reverse:
        parser.error("--split writes split files from a diffusers folder: add --reverse (a split transformer file "
                     "converts forward with --text-encoder-file)")  # fmt: skip
    if args.reverse and args.text_encoder_file and not args.split:
        parser.error("--text-encoder-file with --reverse only applies to --split (a monolith holds its own projection)")
    if args.split and args.dtype != "keep":
        parser.error("--split copies every tensor in its dtype (the file names state it): save the pipeline in the "
                     "dtype you want, and drop --dtype")  # fmt: skip
    if args.split:  # what only the forward conversion reads would be ignored
        given = {"--upsampler": args.upsampler, "--text-encoder": args.text_encoder,
                 "--link-text-encoder": args.link_text_encoder, "--upcast-fp8": args.upcast_fp8,
                 "--allow-unknown": args.allow_unknown,
                 "--max-shard-size": args.max_shard_size != DEFAULT_MAX_SHARD_SIZE / 1e9}  # fmt: skip
        for flag in (flag for flag, value in given.items() if value):
            parser.error(f"{flag} only applies to the forward conversion; --reverse --split ignores it: drop it")
    if args.split and args.upsampler_output:
        parser.error("--upsampler-output writes a monolith's upscaler beside it; with --split convert the upscaler "
                     "folder on its own (--reverse latent_upsampler/ FILE)")  # fmt: skip
    if (args.private or args.revision) and not args.push_to_hub:
        parser.error("--private and --revision only apply with --push_to_hub REPO_ID")
    if args.upsampler and not args.reverse and args.output is None:  # --upsampler FILE OUTPUT_DIR: the upscaler alone
        args.source, args.output = None, args.source
    if args.output is None:
        parser.error("the output path is required")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.push_to_hub:  # the repo id, the token and offline mode before minutes of conversion
            check_push(args.push_to_hub, None)
        if args.split:
            report = convert_diffusers_to_split_files(
                args.source,
                args.output,
                kind=args.kind,
                text_encoder_file=args.text_encoder_file,
                overwrite=args.overwrite,
                classes=MODEL_CLASSES,
            )
        elif args.reverse:
            report = convert_diffusers_to_original(
                args.source,
                args.output,
                upsampler_output=args.upsampler_output,
                dtype=args.dtype,
                overwrite=args.overwrite,
            )
        else:
            report = convert_original_to_diffusers(
                args.source,
                args.output,
                upsampler=args.upsampler,
                text_encoder=args.text_encoder,
                link_text_encoder=args.link_text_encoder,
                kind=args.kind,
                dtype=args.dtype,
                upcast_fp8=args.upcast_fp8,
                allow_unknown=args.allow_unknown,
                max_shard_size=int(args.max_shard_size * 1e9),
                overwrite=args.overwrite,
                text_encoder_file=args.text_encoder_file,
            )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # disk full, permission denied, ...: the file system's words and the path, no traceback
        where = f" ({error.filename})" if error.filename else ""
        print(f"error: {error.strerror or error}{where}; nothing was written at {args.output}.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted; nothing was written at {args.output}.", file=sys.stderr)
        return 130
    print(report)
    if args.push_to_hub:
        try:
            url = push_folder(args.output, args.push_to_hub, private=args.private or None, revision=args.revision)
        except Exception as error:  # the conversion stands; only the upload failed
            print(f"error: the upload to {args.push_to_hub} failed ({error}); the converted folder {args.output} is "
                  f"complete: push it with `ltx2-diffusers push {args.output} {args.push_to_hub}`.", file=sys.stderr)
            return 1
        print(f"pushed to {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
