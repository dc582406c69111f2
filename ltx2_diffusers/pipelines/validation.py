"""Argument checks for every pipeline call and the CLI, run before any weights load and before any work starts.

`check_call_inputs(...)` checks a whole call at once and returns the batch size; the small `check_*` functions it is
made of are public for arguments only one pipeline has. Every error is a ValueError (a TypeError for a wrong Python
type) that names the argument, says what was wrong and what to pass instead; `names` maps argument names to what the
caller calls them (the CLI: {"num_frames": "--frames", ...}), so the CLI prints its own flags.

Torch-free (tensors and generators are recognised by their attributes), so the CLI can check a command line before it
imports torch. Sizes follow the video VAE: height and width multiples of 32 (64 for the two-stage pipelines, whose
stage 1 runs at half size), num_frames = 8k + 1 (spec §0.1, §9).
"""

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path

OUTPUT_TYPES: tuple[str, ...] = ("pil", "np", "pt", "latent")
CALLBACK_TENSOR_INPUTS: tuple[str, ...] = ("video_latents", "audio_latents")
VAE_TIME_SCALE, VAE_SPACE_SCALE = 8, 32  # pixel frames per latent frame (after the first), pixels per latent pixel
AUDIO_LATENTS_PER_SECOND = 25  # 16 kHz mel, hop 160, 4x temporal compression (spec §3)

# Refused without allow_large=True. LTX-2's largest advertised clip, 4K (2176 x 3840) for 20 s (481 frames), is
# 61 x 68 x 120 = 497,760 video tokens and about 48 GB of float32 output frames; both limits sit just above it.
MAX_VIDEO_TOKENS = 2**19  # 524,288 per sample: self-attention's cost grows with its square
MAX_OUTPUT_BYTES = 64 * 2**30  # decoded float32 frames of the whole batch
MAX_INFERENCE_STEPS = 1000

GUIDANCE_SCALARS: tuple[str, ...] = ("guidance_scale", "stg_scale", "modality_scale", "guidance_rescale")
GUIDANCE_KEYWORDS: tuple[str, ...] = (
    *GUIDANCE_SCALARS,
    *(f"audio_{name}" for name in GUIDANCE_SCALARS),
    "spatio_temporal_guidance_blocks",
)


def _number_type_error(name: str, value: object, kind: str) -> TypeError:
    if isinstance(value, str):
        hint = f" (a string): pass the number, {name}={value.strip()}" if value.strip() else " (an empty string)"
        return TypeError(f"{name}={value!r} is not {kind}{hint}")
    return TypeError(f"{name}={value!r} is {type(value).__name__}, not {kind}")


def _is_tensor_like(value: object) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype")


# ----------------------------------------------------------------------------------------------------------------------
# Numbers


def check_int(value: object, name: str, minimum: int = 1) -> int:
    """An int (not a bool, float or string) >= minimum."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise _number_type_error(name, value, "an int")
    if value < minimum:
        raise ValueError(f"{name}={value} must be >= {minimum}")
    return int(value)


def check_number(value: object, name: str, low: float | None = None, high: float | None = None) -> float:
    """A finite real number (not a bool or string) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise _number_type_error(name, value, "a number")
    if not math.isfinite(value):
        raise ValueError(f"{name}={value!r} must be a finite number")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"[{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        raise ValueError(f"{name}={value} is outside {bounds}")
    return float(value)


def check_strength(value: object, name: str) -> float:
    """A conditioning strength in [0, 1]: 1 keeps the conditioning frames clean, 0 lets the model replace them."""
    strength = check_number(value, name)
    if not 0.0 <= strength <= 1.0:
        raise ValueError(
            f"{name}={value} is outside [0, 1]: 1.0 keeps the conditioning frames clean, 0.0 lets the model replace "
            "them entirely"
        )
    return strength


# ----------------------------------------------------------------------------------------------------------------------
# Prompts


def _prompt_list(prompt: object, name: str) -> list[str]:
    if isinstance(prompt, str):
        return [prompt]
    if not isinstance(prompt, list | tuple):
        raise TypeError(f"{name} must be a string or a list of strings, got {type(prompt).__name__} {prompt!r}")
    if len(prompt) == 0:
        raise ValueError(f"{name} is an empty list: pass at least one prompt")
    for i, item in enumerate(prompt):
        if not isinstance(item, str):
            raise TypeError(f"{name}[{i}] is {type(item).__name__} {item!r}: every prompt must be a string")
    return list(prompt)


def check_prompts(
    prompt: object,
    negative_prompt: object = None,
    *,
    prompt_embeds: object = None,
    negative_prompt_embeds: object = None,
    num_videos_per_prompt: int = 1,
    enhance_prompt: bool = False,
    names: Mapping[str, str] | None = None,
) -> int:
    """Prompts (or precomputed embeddings) -> the batch size, prompts x num_videos_per_prompt. Embeddings are the
    `PromptEmbeddings` of `pipe.encode_prompt` (a `video_context` and a length) or a (batch, tokens, channels) tensor;
    `enhance_prompt` needs a prompt string."""
    n = names or {}
    name, negative_name = n.get("prompt", "prompt"), n.get("negative_prompt", "negative_prompt")
    videos = check_int(num_videos_per_prompt, n.get("num_videos_per_prompt", "num_videos_per_prompt"))
    if prompt is not None and prompt_embeds is not None:
        raise ValueError(f"both {name} and prompt_embeds were given: pass one (prompt_embeds skips the text encoder)")
    if prompt is None and prompt_embeds is None:
        raise ValueError(f"{name} is None: pass a string or a list of strings (or precomputed prompt_embeds)")
    if prompt is not None:
        num_prompts = len(_prompt_list(prompt, name))
    else:
        if enhance_prompt:
            raise ValueError("enhance_prompt rewrites a prompt string: pass prompt=, not prompt_embeds=")
        num_prompts = _embeds_batch(prompt_embeds, "prompt_embeds")
    if negative_prompt is not None and negative_prompt_embeds is not None:
        raise ValueError(f"both {negative_name} and negative_prompt_embeds were given: pass one")
    if negative_prompt is not None:
        negatives = _prompt_list(negative_prompt, negative_name)
        if len(negatives) not in (1, num_prompts):
            raise ValueError(
                f"{negative_name} has {len(negatives)} entries for {num_prompts} prompts: pass one, or one per prompt"
            )
    if negative_prompt_embeds is not None:
        negatives = _embeds_batch(negative_prompt_embeds, "negative_prompt_embeds")
        if negatives not in (1, num_prompts):
            raise ValueError(
                f"negative_prompt_embeds has batch {negatives} for {num_prompts} prompts: pass one, or one per prompt"
            )
    return num_prompts * videos


def _embeds_batch(embeds: object, name: str) -> int:
    """The number of prompts in precomputed embeddings: `PromptEmbeddings` (len) or a (batch, tokens, channels) tensor."""
    if hasattr(embeds, "video_context") and hasattr(embeds, "__len__"):
        return len(embeds)
    if _is_tensor_like(embeds) and len(embeds.shape) == 3:
        return int(embeds.shape[0])
    raise TypeError(
        f"{name} must be the PromptEmbeddings that pipe.encode_prompt(prompt) returns, got {type(embeds).__name__}"
    )


# ----------------------------------------------------------------------------------------------------------------------
# Sizes, frames, frame rate


def nearest_frame_counts(num_frames: int) -> tuple[int, int]:
    """The valid frame counts (8k + 1) at and around num_frames: (below, above)."""
    below = max(1, (num_frames - 1) // VAE_TIME_SCALE * VAE_TIME_SCALE + 1)
    return below, below + VAE_TIME_SCALE


def check_frame_count(num_frames: object, name: str = "num_frames") -> int:
    """A frame count of the form 8k + 1 (the causal video VAE: 1 pixel frame in the first latent frame, 8 in each
    later one); the rule is written here once for every pipeline and the CLI."""
    frames = check_int(num_frames, name)
    if (frames - 1) % VAE_TIME_SCALE != 0:
        below, above = nearest_frame_counts(frames)
        raise ValueError(
            f"{name}={frames} is not of the form 8*k + 1, which the causal video VAE needs (the first latent "
            f"frame holds 1 pixel frame, each later one 8). Use {below} or {above}."
        )
    return frames


def check_video_size(
    height: object,
    width: object,
    num_frames: object,
    multiple: int = VAE_SPACE_SCALE,
    names: Mapping[str, str] | None = None,
) -> None:
    """height and width positive multiples of `multiple` (32; 64 for the two-stage pipelines), num_frames 8k + 1."""
    n = names or {}
    check_frame_count(num_frames, n.get("num_frames", "num_frames"))
    why = (
        "the video VAE compresses space 32x"
        if multiple == VAE_SPACE_SCALE
        else "the two-stage pipelines generate at half size first, which the VAE's 32x compression must divide"
    )
    for key, value in (("height", height), ("width", width)):
        name = n.get(key, key)
        size = check_int(value, name)
        if size % multiple != 0:
            lower = max(multiple, size // multiple * multiple)
            raise ValueError(
                f"{name}={size} is not a positive multiple of {multiple} ({why}). Use {lower} or {lower + multiple}."
            )


def check_frame_rate(frame_rate: object, name: str = "frame_rate") -> float:
    """A finite frame rate > 0 (frames per second; token times are frame / frame_rate)."""
    rate = check_number(frame_rate, name)
    if rate <= 0:
        raise ValueError(f"{name}={frame_rate} must be > 0 frames per second, e.g. 24")
    return rate


# ----------------------------------------------------------------------------------------------------------------------
# Conditioning images


def check_media(value: object, name: str, what: str = "image") -> None:
    """A path (that exists and is a file), a PIL image, a numpy array or a tensor (lists of frames for videos).
    Content (size, mode, range) is checked where the media is read (`inputs.py`)."""
    if isinstance(value, str | os.PathLike):
        path = os.fspath(value)
        if path == "":
            raise ValueError(f"{name} is an empty path: pass the {what} file")
        path = os.path.expanduser(path)  # as inputs.py reads it
        if os.path.isdir(path):
            raise ValueError(f"{name}={path!r} is a directory: pass an {what} file inside it")
        if not os.path.isfile(path):
            raise ValueError(f"{name}={path!r}: no such file")
        return
    if _is_tensor_like(value) or type(value).__module__.startswith("PIL."):
        return
    if what == "video" and isinstance(value, list | tuple) and value:
        return
    raise TypeError(f"{name} must be a file path, a PIL image, a numpy array or a tensor, got {type(value).__name__}")


def check_conditions(
    image: object = None,
    image_strength: object = 1.0,
    keyframes: object = (),
    num_frames: int | None = None,
    image_crf: object = None,
    names: Mapping[str, str] | None = None,
) -> None:
    """The first-frame image, its strength and CRF, and (image, frame_index, strength) keyframe triples."""
    n = names or {}
    image_name, strength_name = n.get("image", "image"), n.get("image_strength", "image_strength")
    strength = check_strength(image_strength, strength_name)
    if image is None and strength != 1.0:
        raise ValueError(f"{strength_name}={image_strength} was given without an {image_name}: pass the image too")
    if image is not None:
        check_media(image, image_name)
    if image_crf is not None:
        crf_name = n.get("image_crf", "image_crf")
        crf = check_int(image_crf, crf_name, minimum=0)
        if crf > 51:
            raise ValueError(f"{crf_name}={crf} is above 51, libx264's range (the reference uses 33; 0 skips it)")
    name = n.get("keyframes", "keyframes")
    if not isinstance(keyframes, list | tuple):
        raise TypeError(
            f"{name} must be a list of (image, frame_index, strength) tuples, got {type(keyframes).__name__}"
        )
    if len(keyframes) == 3 and not isinstance(keyframes[0], list | tuple) and isinstance(keyframes[1], Integral):
        raise TypeError(f"{name} looks like one (image, frame_index, strength) tuple: wrap it in a list, [{name}]")
    for i, keyframe in enumerate(keyframes):
        if not isinstance(keyframe, list | tuple) or len(keyframe) != 3:
            raise ValueError(
                f"{name}[{i}] must be an (image, frame_index, strength) tuple, got {keyframe!r:.80}; e.g. "
                "(img, 0, 1.0) puts img at pixel frame 0 at full strength"
            )
        key_image, frame_index, key_strength = keyframe
        check_media(key_image, f"{name}[{i}] image")
        index = check_int(frame_index, f"{name}[{i}] frame_index", minimum=0)
        if num_frames is not None and index >= num_frames:
            raise ValueError(
                f"{name}[{i}] frame_index={index} is past the clip's last frame ({num_frames - 1} for "
                f"num_frames={num_frames})"
            )
        check_strength(key_strength, f"{name}[{i}] strength")


# ----------------------------------------------------------------------------------------------------------------------
# Schedule and guidance


def check_sigmas(
    sigmas: object, num_inference_steps: object = None, name: str = "sigmas", steps_name: str = "num_inference_steps"
) -> list[float] | None:
    """An explicit schedule: >= 2 finite values in [0, 1], strictly decreasing, ending at 0.0; with
    num_inference_steps too, it must equal len(sigmas) - 1. Returns the values as floats (None for None)."""
    if sigmas is None:
        return None
    values = sigmas.tolist() if hasattr(sigmas, "tolist") else sigmas
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a list of noise levels from 1.0 down to 0.0, got {type(sigmas).__name__}")
    if len(values) < 2:
        raise ValueError(f"{name}={list(values)} needs at least 2 values (a start and 0.0)")
    for i, value in enumerate(values):
        check_number(value, f"{name}[{i}]", 0.0, 1.0)
    values = [float(v) for v in values]
    if any(a <= b for a, b in zip(values, values[1:])):
        raise ValueError(f"{name}={values} must decrease strictly (each step lowers the noise level)")
    if values[-1] != 0.0:
        raise ValueError(f"{name}={values} must end at 0.0, where the sample is clean: append 0.0")
    if num_inference_steps is not None and check_int(num_inference_steps, steps_name) != len(values) - 1:
        raise ValueError(
            f"{steps_name}={num_inference_steps} disagrees with {name}, which has {len(values) - 1} steps: pass one "
            "of them (or both in agreement)"
        )
    return values


def check_num_inference_steps(
    value: object, name: str = "num_inference_steps", allow_large: bool = False, allow_name: str = "allow_large=True"
) -> None:
    """An int >= 1, at most MAX_INFERENCE_STEPS unless allow_large (`allow_name`: how the caller spells it)."""
    steps = check_int(value, name)
    if steps > MAX_INFERENCE_STEPS and not allow_large:
        raise ValueError(
            f"{name}={steps} is above {MAX_INFERENCE_STEPS} (the reference uses 8 to 40): pass {allow_name} to run "
            "that many anyway"
        )


def _check_scales(scales: object, name: str) -> None:
    """GuidanceScales-like: cfg, stg, modality >= 0, rescale in [0, 1], finite."""
    for field in ("cfg", "stg", "modality"):
        value = check_number(getattr(scales, field), f"{name}.{field}")
        if value < 0:
            raise ValueError(
                f"{name}.{field}={value} is negative, which would push the result towards what guidance steers "
                f"away from: use a value >= 0 ({'1' if field != 'stg' else '0'} switches it off)"
            )
    check_number(scales.rescale, f"{name}.rescale", 0.0, 1.0)


def check_guidance(guidance: object, name: str) -> None:
    """None, a GuidanceScales-like object (cfg, stg, modality, rescale) or a GuidanceSchedule-like one (bins)."""
    if guidance is None:
        return
    if all(hasattr(guidance, f) for f in ("cfg", "stg", "modality", "rescale")):
        _check_scales(guidance, name)
    elif hasattr(guidance, "bins"):
        for i, (_, scales) in enumerate(guidance.bins):
            _check_scales(scales, f"{name}.bins[{i}]")
    else:
        raise TypeError(f"{name} must be a GuidanceScales or a GuidanceSchedule, got {type(guidance).__name__}")


def check_guidance_keywords(
    keywords: Mapping[str, object], video_guidance: object = None, audio_guidance: object = None
) -> None:
    """diffusers' scalar guidance keywords (guidance_scale, stg_scale, modality_scale, guidance_rescale, their
    audio_ forms, spatio_temporal_guidance_blocks): known names, sane values, and not given beside the
    GuidanceScales of the same modality."""
    for key, value in keywords.items():
        if key not in GUIDANCE_KEYWORDS:
            raise TypeError(f"unknown guidance keyword {key!r}: expected one of {', '.join(GUIDANCE_KEYWORDS)}")
        if value is None:
            continue
        if key == "spatio_temporal_guidance_blocks":
            if not isinstance(value, list | tuple):
                raise TypeError(f"{key} must be a list of transformer block indices, got {type(value).__name__}")
            for i, block in enumerate(value):
                check_int(block, f"{key}[{i}]", minimum=0)
            continue
        number = check_number(value, key)
        if number < 0:
            raise ValueError(f"{key}={value} is negative: use a value >= 0 (guidance_scale 1.0 switches CFG off)")
        if key.endswith("guidance_rescale") and number > 1:
            raise ValueError(f"{key}={value} is above 1: the rescale blends between 0 (off) and 1 (full)")
    given = {key for key, value in keywords.items() if value is not None}
    for guidance, label, keys in (
        (video_guidance, "video_guidance", [k for k in GUIDANCE_KEYWORDS if not k.startswith("audio_")]),
        (audio_guidance, "audio_guidance", [k for k in GUIDANCE_KEYWORDS if k.startswith("audio_")]),
    ):
        clash = sorted(given.intersection(keys))
        if guidance is not None and clash:
            raise ValueError(
                f"{label} and {', '.join(clash)} were both given for one modality: pass the GuidanceScales or the "
                "scalar keywords, not both"
            )


# ----------------------------------------------------------------------------------------------------------------------
# Outputs, callbacks, generators


def check_output_type(output_type: object, allowed: Sequence[str] = OUTPUT_TYPES, name: str = "output_type") -> None:
    if output_type not in allowed:
        raise ValueError(f"{name}={output_type!r} is not one of {', '.join(map(repr, allowed))}")


def check_callback(
    callback: object, tensor_inputs: object, allowed: Sequence[str] = CALLBACK_TENSOR_INPUTS
) -> list[str]:
    """callback_on_step_end (None or callable) and the tensor names it receives, each one of `allowed`. diffusers'
    `PipelineCallback` objects bring their own names (`tensor_inputs`), which replace the given ones."""
    if callback is not None and not callable(callback):
        raise TypeError(f"callback_on_step_end must be callable (pipe, step, timestep, tensors), got {callback!r:.80}")
    if callback is not None and isinstance(getattr(callback, "tensor_inputs", None), list | tuple):
        tensor_inputs = callback.tensor_inputs
    if isinstance(tensor_inputs, str) or not isinstance(tensor_inputs, Sequence):
        raise TypeError(
            f"callback_on_step_end_tensor_inputs must be a list of names, got {tensor_inputs!r:.80}; e.g. "
            f"[{allowed[0]!r}]"
        )
    unknown = [t for t in tensor_inputs if t not in allowed]
    if unknown:
        raise ValueError(
            f"callback_on_step_end_tensor_inputs has {unknown}, which this pipeline does not pass: choose from "
            f"{list(allowed)}"
        )
    return list(tensor_inputs)


def _is_generator(value: object) -> bool:
    return hasattr(value, "manual_seed") and hasattr(value, "initial_seed")


def check_generator(generator: object, batch_size: int, name: str = "generator") -> None:
    """None, one torch.Generator, or a list of exactly batch_size generators (one per sample)."""
    if generator is None or _is_generator(generator):
        return
    if isinstance(generator, list | tuple):
        if len(generator) != batch_size:
            raise ValueError(
                f"{name} is a list of {len(generator)} generators for a batch of {batch_size} (prompts x "
                "num_videos_per_prompt): pass one generator, or one per sample"
            )
        for i, item in enumerate(generator):
            if not _is_generator(item):
                raise TypeError(f"{name}[{i}] is {type(item).__name__}, not a torch.Generator")
        return
    hint = f" (for a seed, pass torch.Generator().manual_seed({generator}))" if isinstance(generator, int) else ""
    raise TypeError(f"{name} must be a torch.Generator or a list of them, got {type(generator).__name__}{hint}")


def check_output_path(path: object, name: str = "output", suffixes: Sequence[str] = (".mp4",)) -> Path:
    """Where the CLI will write: not empty, not a directory, one of `suffixes`, under a folder that exists and is
    writable or can be created (its nearest existing ancestor is a writable folder). Creates nothing."""
    if not isinstance(path, str | os.PathLike) or os.fspath(path).strip() == "":
        raise ValueError(f"{name} is empty: pass the file to write, e.g. clip{suffixes[0]}")
    target = Path(path).expanduser()
    if target.is_dir():
        raise ValueError(f"{name}={os.fspath(path)!r} is a directory: pass a file name inside it, e.g. clip.mp4")
    if target.suffix.lower() not in suffixes:
        raise ValueError(
            f"{name}={os.fspath(path)!r}: the file is written as {'/'.join(suffixes)}, so its name must end in one "
            f"of {', '.join(suffixes)}"
        )
    folder = target.absolute().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{name}={os.fspath(path)!r}: cannot write under {str(folder)!r} (not a writable folder)")
    return target


# ----------------------------------------------------------------------------------------------------------------------
# Work and memory


@dataclass(frozen=True)
class WorkEstimate:
    """A rough size of one call: latent tokens per sample and the bytes of the decoded float32 frames."""

    batch_size: int
    latent_frames: int
    latent_height: int
    latent_width: int
    audio_tokens: int
    output_bytes: int

    @property
    def video_tokens(self) -> int:
        return self.latent_frames * self.latent_height * self.latent_width


def estimate_work(height: int, width: int, num_frames: int, frame_rate: float, batch_size: int = 1) -> WorkEstimate:
    """Tokens of the largest stage (the output size) and the decoded frames' float32 bytes, for checked sizes."""
    latent_frames = (num_frames - 1) // VAE_TIME_SCALE + 1
    audio_tokens = round(num_frames / frame_rate * AUDIO_LATENTS_PER_SECOND)
    output_bytes = batch_size * num_frames * height * width * 3 * 4
    return WorkEstimate(
        batch_size, latent_frames, height // VAE_SPACE_SCALE, width // VAE_SPACE_SCALE, audio_tokens, output_bytes
    )


def check_work(estimate: WorkEstimate, allow_large: bool = False, allow_name: str = "allow_large=True") -> None:
    """Refuse requests far beyond what the models were made for, with the numbers, unless allow_large=True
    (`allow_name`: how the caller spells it, e.g. the CLI's --allow-large)."""
    if allow_large:
        return
    e = estimate
    if e.video_tokens > MAX_VIDEO_TOKENS:
        raise ValueError(
            f"the clip makes {e.video_tokens:,} video tokens per sample ({e.latent_frames} latent frames x "
            f"{e.latent_height} x {e.latent_width}), above {MAX_VIDEO_TOKENS:,} (4K for 20 s is about 500,000); "
            f"attention's time and memory grow with the square of it. Lower num_frames / height / width, or pass "
            f"{allow_name} to try anyway"
        )
    if e.output_bytes > MAX_OUTPUT_BYTES:
        raise ValueError(
            f"the decoded frames of the batch take {e.output_bytes / 2**30:,.1f} GiB as float32, above "
            f"{MAX_OUTPUT_BYTES / 2**30:.0f} GiB. Lower the batch (prompts x num_videos_per_prompt = {e.batch_size}), "
            f"num_frames, height or width, or pass {allow_name} to try anyway"
        )


# ----------------------------------------------------------------------------------------------------------------------
# A whole call


def check_call_inputs(
    *,
    prompt: object,
    negative_prompt: object = None,
    prompt_embeds: object = None,
    negative_prompt_embeds: object = None,
    num_videos_per_prompt: object = 1,
    enhance_prompt: bool = False,
    height: object,
    width: object,
    num_frames: object,
    frame_rate: object,
    size_multiple: int = VAE_SPACE_SCALE,
    image: object = None,
    image_strength: object = 1.0,
    image_crf: object = None,
    keyframes: object = (),
    num_inference_steps: object = None,
    sigmas: object = None,
    video_guidance: object = None,
    audio_guidance: object = None,
    guidance_keywords: Mapping[str, object] | None = None,
    output_type: object = "pil",
    output_types: Sequence[str] = OUTPUT_TYPES,
    callback_on_step_end: Callable | None = None,
    callback_on_step_end_tensor_inputs: object = (),
    callback_tensor_inputs: Sequence[str] = CALLBACK_TENSOR_INPUTS,
    generator: object = None,
    return_dict: object = True,
    allow_large: bool = False,
    names: Mapping[str, str] | None = None,
) -> int:
    """Check every argument of a pipeline call (or a CLI command) before any work; returns the batch size.

    size_multiple: 32 for one-stage pipelines, 64 for two-stage ones. names: argument -> the caller's name for it in
    errors (the CLI's flags). The order of checks is the order a user fixes things: prompts, sizes, conditions,
    schedule, guidance, outputs, then the work estimate.
    """
    n = names or {}
    batch_size = check_prompts(
        prompt,
        negative_prompt,
        prompt_embeds=prompt_embeds,
        negative_prompt_embeds=negative_prompt_embeds,
        num_videos_per_prompt=num_videos_per_prompt,
        enhance_prompt=enhance_prompt,
        names=n,
    )
    check_video_size(height, width, num_frames, size_multiple, n)
    rate = check_frame_rate(frame_rate, n.get("frame_rate", "frame_rate"))
    check_conditions(image, image_strength, keyframes, num_frames, image_crf, n)
    steps_name = n.get("num_inference_steps", "num_inference_steps")
    allow_name = n.get("allow_large", "allow_large=True")
    if num_inference_steps is not None:
        check_num_inference_steps(num_inference_steps, steps_name, allow_large, allow_name)
    check_sigmas(sigmas, num_inference_steps, n.get("sigmas", "sigmas"), steps_name)
    check_guidance(video_guidance, "video_guidance")
    check_guidance(audio_guidance, "audio_guidance")
    check_guidance_keywords(guidance_keywords or {}, video_guidance, audio_guidance)
    check_output_type(output_type, output_types)
    check_callback(callback_on_step_end, callback_on_step_end_tensor_inputs, callback_tensor_inputs)
    check_generator(generator, batch_size)
    if not isinstance(return_dict, bool):
        raise TypeError(f"return_dict must be True or False, got {return_dict!r}")
    check_work(estimate_work(height, width, num_frames, rate, batch_size), allow_large, allow_name)
    return batch_size
