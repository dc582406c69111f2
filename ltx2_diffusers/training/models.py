"""Where the weights come from (`--pretrained_model_name_or_path`), and the loads each training phase needs.

A source is a diffusers-layout folder, a Hub repo id of one (its snapshot: the Hugging Face cache, downloaded unless
offline), or a Lightricks single file (`ltx-2-19b-dev.safetensors`, a local path, `ORG/NAME/FILE.safetensors` or its
huggingface.co URL), which holds no Gemma: then `--text_encoder_path` names a Gemma folder (config, weights and
tokenizer in one folder, e.g. `google/gemma-3-12b-it`).

Each phase loads only what it uses: caching the transformer-less pipeline with Gemma (and no vocoder), training the
transformer alone, validation the decoders and connectors around the training transformer (no Gemma: the validation
prompts were encoded once, before training).
"""

import os
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoTokenizer, Gemma3ForConditionalGeneration

from ..conversion import MODEL_CLASSES
from ..hub import local_or_snapshot_folder, resolve_single_file
from ..loaders.plan import plan_checkpoint
from ..memory.placement import BlockStreamer, stream_for_training
from ..models.transformer_ltx2 import LTX2VideoTransformer3DModel
from ..pipelines.pipeline_ltx2_av import LTX2AVPipeline
from ..schedulers.scheduling_ltx2 import LTX2Scheduler
from .distributed import check_offload_distributed, keep_frozen_out_of_ddp

# The pipeline folders a training run reads from a Hub snapshot (not the repos' original single files).
SNAPSHOT_PATTERNS = (
    "model_index.json",
    "README.md",
    *(f"{name}/*" for name in ("transformer", "vae", "audio_vae", "vocoder", "connectors", "text_encoder",
                               "tokenizer", "scheduler")),
)  # fmt: skip


@dataclass(frozen=True)
class ModelSource:
    """name: as the user gave it (the card's base model when a Hub id); path: the local folder or file;
    single_file: a Lightricks single file; text_encoder_path: its Gemma folder."""

    name: str
    path: str
    single_file: bool
    text_encoder_path: str | None = None

    @property
    def hub_id(self) -> str | None:
        """The Hub repo trained on (for the card), None for local paths."""
        return None if os.path.exists(self.name) or self.single_file else self.name


def is_single_file(name: str) -> bool:
    return name.endswith(".safetensors") or os.path.isfile(name)


def resolve_model_source(name: str, text_encoder_path: str | None = None) -> ModelSource:
    """--pretrained_model_name_or_path (+ --text_encoder_path) -> a local ModelSource. Errors say what was given
    and what is expected; a Hub id or file missing offline names the cache."""
    if is_single_file(name):
        if text_encoder_path is None:
            raise ValueError(
                f"--pretrained_model_name_or_path {name} is a single file, which holds no Gemma text encoder: pass "
                "--text_encoder_path with a Gemma-3 folder (config, weights and tokenizer), e.g. google/gemma-3-12b-it"
            )
        return ModelSource(name, resolve_single_file(name), True, text_encoder_path)
    if text_encoder_path is not None:
        raise ValueError(
            f"--text_encoder_path is only for a single-file --pretrained_model_name_or_path; {name} is a pipeline "
            "folder or Hub repo, whose own text_encoder/ is used: drop --text_encoder_path"
        )
    folder = local_or_snapshot_folder(name, SNAPSHOT_PATTERNS)
    if not os.path.isfile(os.path.join(folder, "model_index.json")):
        raise ValueError(
            f"--pretrained_model_name_or_path {name}: {folder} has no model_index.json, so it is not a diffusers "
            "pipeline folder; give the folder of a saved LTX-2 pipeline, its Hub id, or a Lightricks single file"
        )
    return ModelSource(name, folder, False)


def load_transformer(source: ModelSource, dtype: torch.dtype) -> LTX2VideoTransformer3DModel:
    """The transformer alone, in `dtype` (training never loads the other components)."""
    if source.single_file:
        return LTX2VideoTransformer3DModel.from_single_file(source.path, torch_dtype=dtype)
    return LTX2VideoTransformer3DModel.from_pretrained(source.path, subfolder="transformer", dtype=dtype)


def transformer_on_meta(source: ModelSource) -> LTX2VideoTransformer3DModel:
    """The source's transformer built on the meta device from its config alone (no weights read): what the LoRA
    targets and the memory plan are checked against before caching."""
    if source.single_file:
        config = plan_checkpoint(source.path, MODEL_CLASSES, components=("transformer",))[0]["transformer"].config
    else:
        config = LTX2VideoTransformer3DModel.load_config(source.path, subfolder="transformer")
    with torch.device("meta"):
        return LTX2VideoTransformer3DModel.from_config(config)


def load_pipeline(
    source: ModelSource,
    dtype: torch.dtype,
    *,
    transformer: nn.Module | None = None,
    text_encoder: bool = True,
    vocoder: bool = True,
) -> LTX2AVPipeline:
    """An `LTX2AVPipeline` of the components a phase needs: `transformer` as given (None for caching), Gemma and its
    tokenizer only when `text_encoder`, the vocoder only when `vocoder`. VAEs and connectors always."""
    if not source.single_file:
        skip = {"text_encoder": None, "tokenizer": None, "processor": None} if not text_encoder else {}
        return LTX2AVPipeline.from_pretrained(
            source.path, transformer=transformer, dtype=dtype, **skip, **({} if vocoder else {"vocoder": None})
        )
    wanted = ("vae", "audio_vae", "connectors", *(("vocoder",) if vocoder else ()))
    plans = plan_checkpoint(source.path, MODEL_CLASSES, components=wanted)[0]
    missing = [name for name in wanted if name not in plans]
    if missing:
        raise ValueError(f"{source.name} holds no {missing}: training needs a file with the VAEs and text connectors")
    components = {
        name: MODEL_CLASSES[plan.class_name].from_single_file(source.path, torch_dtype=dtype)
        for name, plan in plans.items()
    }
    gemma = tokenizer = None
    if text_encoder:
        gemma = Gemma3ForConditionalGeneration.from_pretrained(source.text_encoder_path, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(source.text_encoder_path)
    # validation samples with an explicit step count: the dev schedule (the file name need not say dev/distilled)
    return LTX2AVPipeline(
        scheduler=LTX2Scheduler(), text_encoder=gemma, tokenizer=tokenizer, transformer=transformer,
        vocoder=components.pop("vocoder", None), **components,
    )  # fmt: skip


def load_validation_pipeline(source: ModelSource, transformer: nn.Module, dtype: torch.dtype) -> LTX2AVPipeline:
    """Decoders and connectors around the training `transformer`; no Gemma (prompts come as embeddings)."""
    return load_pipeline(source, dtype, transformer=transformer, text_encoder=False)


def check_offload_blocks(offload_blocks: int, num_layers: int, *, vram: float | None) -> None:
    """Before caching: block offloading (`--offload_blocks`, or picked by `--vram`) streams at most the model's blocks.
    It runs with validation (the pipeline's no-grad forwards stream through the training slots) and under DDP (every
    process streams; `distributed.keep_frozen_out_of_ddp`); FSDP refuses it (`distributed.check_offload_distributed`)."""
    if offload_blocks > num_layers:  # asked for (a --vram plan streams at most every block)
        raise ValueError(f"--offload_blocks {offload_blocks}: the transformer has {num_layers} blocks")
    check_offload_distributed(offload_blocks, vram)


def offload_frozen_blocks(transformer: nn.Module, num_blocks: int, device: torch.device | str) -> BlockStreamer:
    """--offload_blocks N: the frozen weights of the last `num_blocks` transformer blocks (FP8 ones as their FP8
    bytes) packed into pinned host memory and streamed through two device slots in forward and backward; everything
    else, the adapters of the streamed blocks included, moved to `device` (memory/placement.py `stream_for_training`).
    Call it after the adapters are added and cast to their training dtype, in place of moving the model to `device`.
    The frozen parameters and the buffers are left out of DDP (`distributed.keep_frozen_out_of_ddp`): under several
    processes DDP synchronises the LoRA alone."""
    blocks = list(transformer.transformer_blocks)
    if not 0 < num_blocks <= len(blocks):
        raise ValueError(
            f"--offload_blocks {num_blocks}: the transformer has {len(blocks)} blocks; stream 1 to {len(blocks)} of "
            "them (3 or more save memory: the two streaming slots hold two blocks)"
        )
    streamer = stream_for_training(transformer, blocks[len(blocks) - num_blocks :], device)
    keep_frozen_out_of_ddp(transformer)
    return streamer
