"""Validation clips while training (`--validation_prompt`): the package's `LTX2AVPipeline` on the LoRA being trained.

As ltx-trainer does (spec §6.1), the prompts and the negative prompt are encoded ONCE, before training, and Gemma is
freed; each validation then loads the VAE decoder side (video VAE, audio VAE, vocoder, connectors) around the live
transformer, generates one clip per prompt from a fixed seed, writes it as an mp4 with its soundtrack, and frees those
components again. Training itself never holds Gemma or the VAEs.
"""

import gc
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..pipelines.pipeline_ltx2_av import LTX2AVPipeline
from ..pipelines.presets import DEFAULT_NEGATIVE_PROMPT
from ..pipelines.text_encoding import PromptEmbeddings, encode_prompts
from ..utils.media import export_to_video_with_audio
from .models import ModelSource, load_validation_pipeline

VALIDATION_FOLDER = "validation"


@dataclass(frozen=True)
class ValidationSettings:
    """What a validation run generates: one clip per prompt, `width` x `height` x `num_frames` at `frame_rate`, with
    `num_inference_steps` steps from `seed`. guidance_scale / stg_scale: the pipeline's scalar guidance keywords for
    both modalities (None: the model version's defaults). image: a first frame for every clip (i2v LoRAs)."""

    prompts: tuple[str, ...]
    every_steps: int
    width: int
    height: int
    num_frames: int
    frame_rate: float = 24.0
    num_inference_steps: int = 30  # ltx-trainer's validation default
    guidance_scale: float | None = None
    stg_scale: float | None = None
    seed: int = 42
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT
    image: str | None = None

    def __post_init__(self):
        if not self.prompts or any(not p.strip() for p in self.prompts):
            raise ValueError("--validation_prompt must be a non-empty prompt")
        if self.every_steps < 1 or self.num_inference_steps < 1:
            raise ValueError(
                f"--validation_steps and --validation_num_inference_steps must be >= 1, got {self.every_steps} and "
                f"{self.num_inference_steps}"
            )
        if self.image is not None and not os.path.isfile(self.image):
            raise ValueError(f"--validation_image {self.image}: no such file")

    def due(self, step: int, last_step: int) -> bool:
        """Validate after optimizer step `step` (every `every_steps`, and after the last one)."""
        return step % self.every_steps == 0 or step == last_step


@torch.no_grad()
def encode_validation_prompts(
    pipe, settings: ValidationSettings, device: torch.device, max_sequence_length: int
) -> tuple[PromptEmbeddings, PromptEmbeddings]:
    """(prompts, negative prompt) through Gemma + the connectors of `pipe` (one batch), kept on the CPU."""
    texts = [*settings.prompts, settings.negative_prompt]
    embeds = encode_prompts(
        pipe.text_encoder, pipe.tokenizer, pipe.connectors, texts, max_sequence_length=max_sequence_length,
        device=device,
    )  # fmt: skip
    on_cpu = PromptEmbeddings(embeds.video_context.cpu(), embeds.audio_context.cpu(), embeds.attention_mask.cpu())
    return on_cpu[: len(settings.prompts)], on_cpu[len(settings.prompts) :]


def validation_pipeline(
    source: ModelSource, transformer: nn.Module, dtype: torch.dtype, device: torch.device
) -> LTX2AVPipeline:
    """`models.load_validation_pipeline` with every component but `transformer` moved to `device`: training placed
    the transformer already (accelerate moved it, or `--offload_blocks` left its streamed frozen weights on the host,
    where `pipe.to(device)` must not move them). The pipeline computes on `device` (its `_execution_device`)."""
    pipe: LTX2AVPipeline = load_validation_pipeline(source, transformer, dtype)
    for name, component in pipe.components.items():
        if isinstance(component, nn.Module) and name != "transformer":
            component.to(device)
    if _indexed(pipe._execution_device) != _indexed(device):
        raise RuntimeError(
            f"the validation pipeline would compute on {pipe._execution_device}, but training runs on {device}: "
            "place the training transformer on the training device (accelerate's prepare, or offload_frozen_blocks "
            "with that device) before validating"
        )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _indexed(device: torch.device) -> torch.device:
    """`cuda` as `cuda:<current>`, so that the accelerator's device and a tensor's compare equal."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def run_validation(
    transformer: nn.Module,
    source: ModelSource,
    prompts: PromptEmbeddings,
    negative: PromptEmbeddings,
    settings: ValidationSettings,
    step: int,
    output_dir: Path,
    device: torch.device,
    dtype: torch.dtype,
) -> list[Path]:
    """Generate one clip per validation prompt with `transformer` (the LoRA active, as trained so far) and write
    `output_dir/validation/step_{step:06d}_{k}.mp4` with sound. The pipeline's other components are loaded from
    `source` (`validation_pipeline`) and freed before returning; with `--offload_blocks` the streamed blocks run their
    no-grad forward through the training streamer's slots, which hold the frozen weights unchanged for the next
    training step. Returns the clips' paths."""
    guidance = {}
    for name in ("guidance_scale", "stg_scale"):
        value = getattr(settings, name)
        if value is not None:
            guidance.update({name: value, f"audio_{name}": value})
    folder = output_dir / VALIDATION_FOLDER
    paths, pipe, was_training = [], None, transformer.training
    transformer.eval()
    try:  # training mode comes back whatever fails, loading the pipeline included
        pipe = validation_pipeline(source, transformer, dtype, device)
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(len(settings.prompts)):
            out = pipe(
                prompt_embeds=prompts[k], negative_prompt_embeds=negative, image=settings.image,
                height=settings.height, width=settings.width, num_frames=settings.num_frames,
                frame_rate=settings.frame_rate, num_inference_steps=settings.num_inference_steps,
                generator=torch.Generator(device=device).manual_seed(settings.seed), output_type="np", **guidance,
            )  # fmt: skip
            path = folder / f"step_{step:06d}_{k}.mp4"
            export_to_video_with_audio(out.frames[0], out.audio[0], out.audio_sample_rate, settings.frame_rate, path)
            paths.append(path)
    finally:
        pipe = None
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        transformer.train(was_training)
    return paths
