"""The call conventions every LTX-2 pipeline shares, written once: prompts and their embeddings, prompt enhancement,
the step callback with a running index across stages, diffusers' scalar guidance keywords, sigmas / timesteps, and
the output. Each pipeline's `__call__` calls these in its numbered steps.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import replace

import torch
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.utils import logging
from torch import Tensor

from .condition_encoding import ImageInput, image_for_enhancement
from .denoising import TextContexts
from .guidance import GuidanceScales, GuidanceSchedule
from .pipeline_output import LTX2PipelineOutput
from .prompt_enhancement import DEFAULT_SEED
from .prompt_enhancement import enhance_prompt as enhance_prompt_with_gemma
from .text_encoding import PromptEmbeddings, encode_prompts

logger = logging.get_logger(__name__)

OUTPUT_TYPES = ("pil", "np", "pt", "latent")
CALLBACK_TENSOR_INPUTS = ("video_latents", "audio_latents")


def check_output_type(output_type: str) -> None:
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"output_type must be one of 'pil', 'np', 'pt', 'latent', got {output_type!r}")


def as_list(prompt: str | Sequence[str] | None) -> list[str] | None:
    return None if prompt is None else [prompt] if isinstance(prompt, str) else list(prompt)


def check_prompts(
    prompts: list[str] | None,
    negative_prompts: list[str] | None,
    prompt_embeds: PromptEmbeddings | None,
    enhance_prompt: bool,
) -> int:
    """The number of prompts, from `prompt` or `prompt_embeds` (exactly one of them)."""
    if (prompts is None) == (prompt_embeds is None):
        raise ValueError("pass prompt or prompt_embeds (from pipe.encode_prompt), exactly one of them")
    if prompt_embeds is not None:
        if not isinstance(prompt_embeds, PromptEmbeddings):
            raise TypeError(
                f"prompt_embeds must be the PromptEmbeddings that pipe.encode_prompt(prompt) returns, got "
                f"{type(prompt_embeds).__name__}"
            )
        if enhance_prompt:
            raise ValueError("enhance_prompt rewrites a prompt string: pass prompt=, not prompt_embeds=")
        count = len(prompt_embeds)
    else:
        if len(prompts) == 0:
            raise ValueError("prompt is an empty list: pass at least one prompt")
        if not all(isinstance(p, str) for p in prompts):
            raise TypeError(f"prompt must be a string or a list of strings, got {prompts!r}")
        count = len(prompts)
    if negative_prompts is not None and len(negative_prompts) not in (1, count):
        raise ValueError(
            f"got {len(negative_prompts)} negative prompts for {count} prompts: pass one, or one per prompt"
        )
    return count


def maybe_enhance_prompt(
    pipe, prompts: list[str], enabled: bool, image: ImageInput | None, seed: int | None, generator, device
) -> list[str]:
    """The reference's opt-in prompt enhancement: Gemma rewrites the FIRST prompt (seeing `image` when given), sampled
    with `seed` (None: the generator's seed, as the reference passes its pipeline seed; 10 without a generator)."""
    if not enabled:
        return prompts
    if pipe.text_encoder is None:
        raise ValueError("enhance_prompt needs the pipeline's text_encoder (Gemma), which is None")
    first_generator = generator[0] if isinstance(generator, list) else generator
    if seed is None:
        seed = DEFAULT_SEED if first_generator is None else first_generator.initial_seed()
    enhanced = enhance_prompt_with_gemma(
        pipe.text_encoder,
        pipe.tokenizer,
        prompts[0],
        image=None if image is None else image_for_enhancement(image),
        processor=pipe.processor,
        seed=seed,
        device=device,
    )
    logger.info(f"enhanced prompt: {enhanced}")
    return [enhanced, *prompts[1:]]


def prompt_contexts(
    pipe,
    prompts: list[str] | None,
    negative_prompts: list[str] | None,
    *,
    prompt_embeds: PromptEmbeddings | None,
    negative_prompt_embeds: PromptEmbeddings | None,
    needs_negative: bool,
    num_videos_per_prompt: int,
    device: torch.device,
    dtype: torch.dtype,
) -> TextContexts:
    """Prompts (or precomputed embeddings) -> the transformer's contexts, each prompt `num_videos_per_prompt` times.

    What is missing is encoded with Gemma, positives and negatives in one batch; negatives only when `needs_negative`
    (a classifier-free guidance scale != 1). Without a text_encoder every needed embedding must be given."""
    count = len(prompt_embeds) if prompt_embeds is not None else len(prompts)
    texts = list(prompts) if prompt_embeds is None else []
    encode_negatives = needs_negative and negative_prompt_embeds is None
    if encode_negatives:
        texts += negative_prompts * count if len(negative_prompts) == 1 else negative_prompts
    if texts:
        if pipe.text_encoder is None:
            raise ValueError(
                "the pipeline has no text_encoder: pass prompt_embeds (and negative_prompt_embeds when guidance uses "
                "a negative prompt) from pipe.encode_prompt, or load the text encoder"
            )
        encoded = encode_prompts(pipe.text_encoder, pipe.tokenizer, pipe.connectors, texts, device=device, dtype=dtype)
        if prompt_embeds is None:
            prompt_embeds = encoded[:count]
        if encode_negatives:
            negative_prompt_embeds = encoded[len(encoded) - count :]
    positive = _checked_embeds(prompt_embeds, count, "prompt_embeds", device, dtype)
    contexts = TextContexts(positive.video_context, positive.audio_context)
    if needs_negative:
        negative = _checked_embeds(negative_prompt_embeds, count, "negative_prompt_embeds", device, dtype)
        contexts = TextContexts(contexts.video, contexts.audio, negative.video_context, negative.audio_context)
    return repeat_contexts(contexts, num_videos_per_prompt)


def _checked_embeds(embeds: PromptEmbeddings, count: int, name: str, device, dtype) -> PromptEmbeddings:
    if not isinstance(embeds, PromptEmbeddings):
        raise TypeError(f"{name} must be the PromptEmbeddings that pipe.encode_prompt returns, got {type(embeds)}")
    if len(embeds) not in (1, count):
        raise ValueError(f"{name} holds {len(embeds)} prompts for {count} prompts: pass one, or one per prompt")
    if len(embeds) == 1 and count > 1:
        embeds = embeds.repeat_interleave(count)
    return PromptEmbeddings(
        embeds.video_context.to(device, dtype), embeds.audio_context.to(device, dtype), embeds.attention_mask.to(device)
    )


def repeat_contexts(contexts: TextContexts, times: int) -> TextContexts:
    """Each prompt's contexts `times` times in a row (B -> B * times), for num_videos_per_prompt."""
    if not isinstance(times, int) or times < 1:
        raise ValueError(f"num_videos_per_prompt must be a positive int, got {times!r}")

    def repeat(context: Tensor | None) -> Tensor | None:
        return None if context is None else context.repeat_interleave(times, dim=0)

    return TextContexts(
        repeat(contexts.video), repeat(contexts.audio), repeat(contexts.negative_video), repeat(contexts.negative_audio)
    )


def needs_uncond(*guidances: GuidanceScales | GuidanceSchedule) -> bool:
    """True when any scale of any of these guidances runs classifier-free guidance (so negatives are needed)."""
    for guidance in guidances:
        scales = [s for _, s in guidance.bins] if isinstance(guidance, GuidanceSchedule) else [guidance]
        if any(s.needs_uncond for s in scales):
            return True
    return False


# ----------------------------------------------------------------------------------------------------------------------
# Callbacks


def callback_tensor_names(callback_on_step_end, names: Sequence[str]) -> list[str]:
    """diffusers' PipelineCallback objects bring their own tensor names; every name must be one the pipelines pass."""
    if isinstance(callback_on_step_end, PipelineCallback | MultiPipelineCallbacks):
        names = callback_on_step_end.tensor_inputs
    for name in names:
        if name not in CALLBACK_TENSOR_INPUTS:
            raise ValueError(f"callback tensor {name!r} is not one of {list(CALLBACK_TENSOR_INPUTS)}")
    return list(names)


class StepCallbacks:
    """diffusers' `callback_on_step_end(pipe, step_index, timestep, {name: tensor})` as the denoising loops' callback,
    with ONE running step index across every stage of a call (stage 1's steps, then stage 2's)."""

    def __init__(self, pipe, callback_on_step_end: Callable | None, names: Sequence[str]):
        self.pipe, self.callback, self.names, self.step_index = pipe, callback_on_step_end, list(names), 0

    def __call__(self, stage_step: int, sigma: float, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
        step_index = self.step_index
        self.step_index += 1
        if self.callback is None:
            return {}
        chosen = {name: tensors[name] for name in self.names}
        return self.callback(self.pipe, step_index, sigma * 1000.0, chosen) or {}


# ----------------------------------------------------------------------------------------------------------------------
# diffusers' call surface


_VIDEO_SCALARS = {
    "guidance_scale": "cfg",
    "stg_scale": "stg",
    "modality_scale": "modality",
    "guidance_rescale": "rescale",
}


def guidance_from_keywords(
    video_guidance: GuidanceScales | GuidanceSchedule | None,
    audio_guidance: GuidanceScales | GuidanceSchedule | None,
    defaults: tuple[GuidanceScales, GuidanceScales],
    scalars: dict[str, float | Sequence[int] | None],
) -> tuple[GuidanceScales | GuidanceSchedule, GuidanceScales | GuidanceSchedule]:
    """diffusers' scalar keywords (`guidance_scale`, `stg_scale`, `modality_scale`, `guidance_rescale`, their `audio_`
    variants, `spatio_temporal_guidance_blocks` for both) mapped onto the `GuidanceScales` defaults. Giving both forms
    for one modality (a GuidanceScales and a scalar) is an error."""
    given = {name: value for name, value in scalars.items() if value is not None}
    blocks = given.pop("spatio_temporal_guidance_blocks", None)
    result = []
    for prefix, explicit, default in (("", video_guidance, defaults[0]), ("audio_", audio_guidance, defaults[1])):
        fields = {field: given[prefix + key] for key, field in _VIDEO_SCALARS.items() if prefix + key in given}
        if blocks is not None:
            fields["stg_blocks"] = tuple(blocks)
        modality = "audio" if prefix else "video"
        if explicit is not None:
            if fields:
                names = [prefix + k for k in _VIDEO_SCALARS if prefix + k in given] + (
                    ["spatio_temporal_guidance_blocks"] if blocks is not None else []
                )
                raise ValueError(
                    f"{modality}_guidance and {', '.join(names)} both set the {modality} guidance: pass the "
                    f"GuidanceScales or the scalar keywords, not both"
                )
            result.append(explicit)
        else:
            result.append(replace(default, **fields) if fields else default)
    return result[0], result[1]


def guidance_keywords(
    guidance_scale=None,
    stg_scale=None,
    modality_scale=None,
    guidance_rescale=None,
    audio_guidance_scale=None,
    audio_stg_scale=None,
    audio_modality_scale=None,
    audio_guidance_rescale=None,
    spatio_temporal_guidance_blocks=None,
) -> dict:
    """The scalar guidance keywords, by name (a helper so that every pipeline passes the same set)."""
    keywords = dict(locals())
    for name, value in keywords.items():
        if name != "spatio_temporal_guidance_blocks" and value is not None:
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
    return keywords


def resolve_sigmas(
    scheduler,
    num_inference_steps: int | None,
    sigmas: Sequence[float] | Tensor | None,
    timesteps: Sequence[float] | Tensor | None,
    default_steps: int,
    num_tokens: int | None = None,
) -> Tensor:
    """The (N + 1,) schedule of a stage, as a value: explicit `sigmas` (ending in 0) or diffusers' `timesteps`
    (1000 * sigma per step), else the scheduler's (a distilled scheduler's fixed sigmas, else `num_inference_steps`,
    default `default_steps`, of the shifted schedule)."""
    fixed = scheduler.config.fixed_sigmas is not None
    if num_inference_steps is None and sigmas is None and timesteps is None and not fixed:
        num_inference_steps = default_steps
    return scheduler.get_sigmas(num_inference_steps, sigmas, num_tokens=num_tokens, timesteps=timesteps)


def pipeline_output(pipe, frames, audio, sample_rate: int | None, return_dict: bool) -> LTX2PipelineOutput | tuple:
    """The end of every call: offloading hooks reset (only here, once per call), then the output."""
    pipe.maybe_free_model_hooks()
    if not return_dict:
        return frames, audio
    return LTX2PipelineOutput(frames=frames, audio=audio, audio_sample_rate=sample_rate)
