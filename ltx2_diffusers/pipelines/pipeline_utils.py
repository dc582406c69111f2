"""The call conventions every LTX-2 pipeline shares, written once: prompts and their embeddings, prompt enhancement,
the step callback with a running index across stages, diffusers' scalar guidance keywords on the presets' guidance,
sigmas / timesteps, and the output. Arguments are checked before these run, by `validation.check_call_inputs`. Each pipeline's `__call__` calls these in its numbered steps.
"""

from collections.abc import Callable, Sequence

import torch
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.utils import logging
from torch import Tensor

from .denoising import TextContexts
from .guidance import GuidanceScales, GuidanceSchedule
from .inputs import ImageInput
from .pipeline_output import LTX2PipelineOutput
from .presets import DEFAULT_REFERENCE, SamplingPreset, guidance_with_scalars
from .prompt_enhancement import DEFAULT_SEED
from .prompt_enhancement import enhance_prompt as enhance_prompt_with_gemma
from .text_encoding import PromptEmbeddings, encode_prompts
from .validation import GUIDANCE_SCALARS

logger = logging.get_logger(__name__)


def as_list(prompt: str | Sequence[str] | None) -> list[str] | None:
    return None if prompt is None else [prompt] if isinstance(prompt, str) else list(prompt)


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
        image=image,
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
    reference: str = DEFAULT_REFERENCE,
) -> TextContexts:
    """Prompts (or precomputed embeddings) -> the transformer's contexts, each prompt `num_videos_per_prompt` times.

    What is missing is encoded with Gemma, positives and negatives in one batch; negatives only when `needs_negative`
    (a classifier-free guidance scale != 1). Without a text_encoder every needed embedding must be given. `reference`:
    the tokenization rule (`text_encoding.tokenize_prompts`)."""
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
        encoded = encode_prompts(
            pipe.text_encoder, pipe.tokenizer, pipe.connectors, texts, device=device, dtype=dtype, reference=reference
        )
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
    """The tensors the callback receives: diffusers' PipelineCallback objects bring their own names (checked with the
    call's inputs by `validation.check_callback`)."""
    if isinstance(callback_on_step_end, PipelineCallback | MultiPipelineCallbacks):
        names = callback_on_step_end.tensor_inputs
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
        returned = self.callback(self.pipe, step_index, sigma * 1000.0, chosen)
        if returned is None:
            return {}
        if not isinstance(returned, dict):
            raise TypeError(
                f"callback_on_step_end returned a {type(returned).__name__} at step {step_index}; it returns a dict "
                f"of tensors to replace (or {{}} / None), names from {sorted(tensors)}"
            )
        unknown = sorted(set(returned) - set(tensors))
        if unknown:  # a typo would otherwise be ignored silently, step after step
            raise ValueError(
                f"callback_on_step_end returned {unknown} at step {step_index}, which this pipeline does not use: "
                f"return tensors named {sorted(tensors)}"
            )
        return returned


# ----------------------------------------------------------------------------------------------------------------------
# diffusers' call surface


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
    """diffusers' scalar guidance keywords, by name, so that every pipeline passes the same set to
    `validation.check_call_inputs(guidance_keywords=...)` and `resolve_guidance`."""
    return dict(locals())


def resolve_guidance(
    video_guidance: GuidanceScales | GuidanceSchedule | None,
    audio_guidance: GuidanceScales | GuidanceSchedule | None,
    preset: SamplingPreset,
    keywords: dict,
) -> tuple[GuidanceScales | GuidanceSchedule, GuidanceScales | GuidanceSchedule]:
    """The call's guidance: an explicit `video_guidance` / `audio_guidance` as given, else the preset's (its torch-free
    `GuidancePreset`, made a `GuidanceScales` here) with diffusers'
    scalar keywords applied (`presets.guidance_with_scalars`: `guidance_scale` -> cfg, `stg_scale` -> stg, ...,
    `spatio_temporal_guidance_blocks` -> stg_blocks of both). Both forms for one modality are refused earlier, by
    `validation.check_guidance_keywords`."""
    blocks = keywords.get("spatio_temporal_guidance_blocks")
    result = []
    for prefix, explicit, default in (
        ("", video_guidance, preset.video_guidance),
        ("audio_", audio_guidance, preset.audio_guidance),
    ):
        if explicit is not None:
            result.append(explicit)
            continue
        scalars = {name: keywords.get(prefix + name) for name in GUIDANCE_SCALARS}
        scales = guidance_with_scalars(default, **scalars, stg_blocks=blocks, prefix=prefix)
        result.append(GuidanceScales(**scales.as_kwargs()))
    return result[0], result[1]


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


_DTYPE_NAMES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "float16", "float16": "float16",
                "half": "float16", "fp32": "float32", "float32": "float32", "float": "float32"}


def as_torch_dtype(dtype: "torch.dtype | str | None") -> "torch.dtype | None":
    """`torch_dtype` / `dtype` as from_pretrained takes it: a torch dtype, or its name ("bf16", "bfloat16",
    "torch.float16", ...). Anything else is an error naming it (diffusers would load float32 without a word)."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    name = dtype.removeprefix("torch.") if isinstance(dtype, str) else None
    if name not in _DTYPE_NAMES:
        raise ValueError(
            f"torch_dtype={dtype!r} is not a dtype: pass torch.bfloat16 / torch.float16 / torch.float32 (or one of "
            f"the names {sorted(_DTYPE_NAMES)})"
        )
    return getattr(torch, _DTYPE_NAMES[name])
