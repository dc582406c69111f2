"""`--frames auto`: LTX-2.5's duration head picks the clip length from the prompt (`pipelines.ltx25`: the pipelines'
`num_frames=None`), within `--min-seconds` / `--max-seconds` (diffusers' `min_seconds` / `max_seconds`, default 1 and
20 s, as the reference's `--auto-duration`). Everything before loading is checked for the longest clip the range
allows; a model without a duration head is refused before loading where the model says so (tiny, folder, single
file), else right after. Imports neither torch nor diffusers."""

import argparse
import json
import os

from .parser import AUTO, CLIError

DEFAULT_MIN_SECONDS, DEFAULT_MAX_SECONDS = 1.0, 20.0  # pipelines.ltx25's
FRAME_STEP = 8  # clip lengths are 8k + 1 frames


def check_length_range(args: argparse.Namespace, fps: float) -> int:
    """The --min-seconds / --max-seconds of `--frames auto` (or their absence without it); returns the longest clip
    (8k + 1 frames) the range allows at `fps`, which the size checks and the memory budget take."""
    low, high = getattr(args, "min_seconds", None), getattr(args, "max_seconds", None)
    if args.frames != AUTO:
        for flag, value in (("--min-seconds", low), ("--max-seconds", high)):
            if value is not None:
                raise CLIError(flag, "bounds the predicted clip length: it only applies with --frames auto")
        return args.frames
    low = DEFAULT_MIN_SECONDS if low is None else low
    high = DEFAULT_MAX_SECONDS if high is None else high
    if not 0 < low < high:
        raise CLIError("--min-seconds/--max-seconds", f"{low:g} and {high:g} s: the range needs 0 < min < max")
    shortest, longest = round(low * fps), round(high * fps)
    if shortest < 1:
        raise CLIError("--min-seconds", f"{low:g} s is under one frame at {fps:g} fps; use at least {1 / fps:.4g}")
    longest_clip = (longest - 1) // FRAME_STEP * FRAME_STEP + 1  # the duration head's snapping floors to 8k + 1
    if longest_clip < shortest:
        raise CLIError(
            "--min-seconds/--max-seconds",
            f"{low:g}-{high:g} s at {fps:g} fps is {shortest}-{longest} frames, which holds no clip length of the "
            f"form 8k + 1: widen the range to include {longest_clip} or {longest_clip + FRAME_STEP} frames",
        )
    return longest_clip


def check_model_has_head(model: str, model_kind: str, tiny_versions: dict[str, str]) -> None:
    """Before loading: refuse `--frames auto` for a model that cannot hold LTX-2.5's duration head. A Hub id is only
    known once loaded (`require_head`)."""
    why = None
    if model_kind == "tiny" and tiny_versions[model] != "2.5":
        why = f"the tiny LTX-{tiny_versions[model]} model has none (use --model tiny-2.5)"
    elif model_kind == "file":
        why = ("a single file holds none: LTX-2.5's duration head is a file of its own "
               "(model_patches/ltx-2.5-duration-head-bf16.safetensors), loaded with from_split_files")  # fmt: skip
    elif model_kind == "folder":
        try:
            with open(os.path.join(model, "model_index.json")) as f:
                entry = json.load(f).get("duration_head")
        except (OSError, ValueError) as error:
            raise CLIError("--model", f"{model}/model_index.json cannot be read ({error})") from None
        if entry in (None, [None, None]):
            why = "its model_index.json lists no duration_head (a pipeline saved from LTX-2.5 with one does)"
    if why is not None:
        raise CLIError("--frames", f"auto predicts the clip length with LTX-2.5's duration head, but {model}: {why}. "
                                   "Pass --frames N (8k + 1)")  # fmt: skip


def require_head(pipe, model: str) -> None:
    """After loading (a Hub id): the same refusal as `check_model_has_head`."""
    if getattr(pipe, "duration_head", None) is None:
        raise CLIError("--frames", f"auto predicts the clip length with LTX-2.5's duration head, but {model} has "
                                   "none. Pass --frames N (8k + 1)")  # fmt: skip


def describe_prediction(num_frames: int, fps: float, low: float | None, high: float | None) -> str:
    """The line the CLI prints for a predicted length."""
    low = DEFAULT_MIN_SECONDS if low is None else low
    high = DEFAULT_MAX_SECONDS if high is None else high
    return (f"the duration head chose {num_frames} frames ({num_frames / fps:.2f} s at {fps:g} fps) within "
            f"{low:g}-{high:g} s")  # fmt: skip
