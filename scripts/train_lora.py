#!/usr/bin/env python
"""Train a LoRA for an LTX-2 / LTX-2.3 transformer, in the shape of diffusers' `examples/` training scripts.

    python scripts/train_lora.py --pretrained_model_name_or_path Lightricks/LTX-2 \
        --train_data_dir data/ --resolution_buckets 768x512x49 --mode t2av --output_dir out/ --max_train_steps 2000
    accelerate launch scripts/train_lora.py ...      (several processes; see docs/training.md)

The model: a diffusers folder, its Hub id, or a Lightricks single file (+ --text_encoder_path, a Gemma folder).
1. Cache: video latents, audio latents and text contexts of every sample into --cache_dir (skips what is cached);
   the validation prompts are encoded then too, and Gemma is freed.
2. Train: peft LoRA on the transformer, ltx-trainer's objective (ltx2_diffusers/training/objective.py), accelerate
   for devices, mixed precision, gradient accumulation and checkpoints (`checkpoint-N/`, --resume_from_checkpoint);
   --fp8_base keeps the frozen base in FP8 (the LoRA trains live over it), --offload_blocks N streams N blocks from
   the host; --vram picks checkpointing / 8-bit AdamW / FP8 / offloading; --validation_prompt writes clips as it goes.
3. Write OUTPUT_DIR/pytorch_lora_weights.safetensors (diffusers / peft names), OUTPUT_DIR/comfyui_lora_weights.
   safetensors (ltx-trainer / ComfyUI names), OUTPUT_DIR/training_log.jsonl (one JSON object per optimizer step) and
   the model card OUTPUT_DIR/README.md; --push_to_hub uploads the LoRA, the card and the last validation clip.
A bad input file or flag stops the command with one line naming it (exit status 1 for a file, 2 for a flag).
"""

import argparse
import dataclasses
import importlib.util
import json
import logging
import re
import shutil
import sys
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration, set_seed
from peft.utils import set_peft_model_state_dict
from safetensors.torch import load_file, save_file

from ltx2_diffusers.hub import check_push
from ltx2_diffusers.models.fp8 import fp8_layer_names
from ltx2_diffusers.pipelines.presets import model_version_from_config
from ltx2_diffusers.pipelines.validation import check_video_size
from ltx2_diffusers.training.buckets import batch_for_step, parse_audio_durations, parse_buckets, reference_bucket
from ltx2_diffusers.training.data import cache_dataset, cached_shape_key, is_cached, load_cached, plan_cache
from ltx2_diffusers.training.distributed import (
    check_distributed,
    keep_fp8_out_of_ddp,
    process_mean,
    sigma_bucket_losses,
)
from ltx2_diffusers.training.lora import (
    LORA_TARGET_PRESETS,
    adapter_state_dict,
    export_lora,
    lora_config,
    resolve_lora_targets,
)
from ltx2_diffusers.training.memory import (
    AUDIO_TOKENS_PER_SECOND,
    MemoryPlan,
    ModelSizes,
    block_frozen_bytes,
    bucket_tokens,
    check_bitsandbytes,
    frozen_bytes,
    make_optimizer,
    plan_memory,
)
from ltx2_diffusers.training.metadata import DataError
from ltx2_diffusers.training.models import (
    check_offload_blocks,
    load_pipeline,
    load_transformer,
    offload_frozen_blocks,
    resolve_model_source,
    transformer_on_meta,
)
from ltx2_diffusers.training.objective import MODES, SigmaSampler, TrainingMode, get_mode
from ltx2_diffusers.training.publish import LoRACard, push_lora, write_lora_card
from ltx2_diffusers.training.step import collate, sample_generator, training_loss
from ltx2_diffusers.training.validation import ValidationSettings, encode_validation_prompts, run_validation

logger = logging.getLogger("train_lora")

ADAPTER_FILE = "adapter_model.safetensors"  # the raw peft adapter (fp32) inside each checkpoint-N folder
LOG_FILE = "training_log.jsonl"
SAVE_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    model = parser.add_argument_group("model and data")
    model.add_argument(
        "--pretrained_model_name_or_path",
        required=True,
        help="a diffusers-layout LTX-2 folder, its Hub id, or a Lightricks single .safetensors file",
    )
    model.add_argument(
        "--text_encoder_path",
        default=None,
        help="with a single file: the Gemma-3 folder or Hub id (config, weights, tokenizer)",
    )
    model.add_argument(
        "--trigger_word",
        default=None,
        help="put at the start of every caption when caching (and named in the model card)",
    )
    model.add_argument("--train_data_dir", required=True, help="media + metadata.jsonl (file_name, text)")
    model.add_argument("--cache_dir", default=None, help="cached latents/embeddings (default: DATA/.ltx2_cache)")
    model.add_argument("--resolution_buckets", required=True, help='"WxHxF;WxHxF", e.g. "768x512x49;512x512x1"')
    model.add_argument("--audio_durations", default=None,
                       help='"2.0;4.0": the seconds audio files (wav, flac, ...) are cut to (--mode audio)')  # fmt: skip
    model.add_argument("--max_sequence_length", type=int, default=1024, help="caption tokens (multiple of 128)")
    model.add_argument("--cache_only", action="store_true", help="stop after caching")
    model.add_argument("--mode", default="t2av", help=f"what is trained: {', '.join(MODES)}")
    model.add_argument("--first_frame_conditioning_p", type=float, default=None,
                       help="probability that a sample's first frame is given clean (default: the mode's, i2v 0.5)")  # fmt: skip
    model.add_argument("--reference_downscale_factor", type=int, default=1,
                       help="ic_lora: references are cached at the bucket's size divided by this")  # fmt: skip
    lora = parser.add_argument_group("LoRA")
    lora.add_argument("--rank", type=int, default=32)
    lora.add_argument("--lora_alpha", type=float, default=32.0)
    lora.add_argument("--lora_dropout", type=float, default=0.0)
    lora.add_argument("--lora_targets", default=None,
                      help=f"{' | '.join(LORA_TARGET_PRESETS)} or a comma list of module names (default: the mode's: "
                      "video for t2v and ic_lora, audio for audio, all otherwise)")  # fmt: skip
    lora.add_argument("--lora_save_dtype", choices=sorted(SAVE_DTYPES), default="bf16")
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--learning_rate", type=float, default=1e-4)
    opt.add_argument("--lr_scheduler", choices=("linear", "constant"), default="linear",
                     help="linear: ltx-trainer's, factor 1 -> 0.1 over max_train_steps")  # fmt: skip
    opt.add_argument("--max_train_steps", type=int, required=True)
    opt.add_argument("--train_batch_size", type=int, default=1)
    opt.add_argument("--gradient_accumulation_steps", type=int, default=1)
    opt.add_argument("--max_grad_norm", type=float, default=1.0)
    opt.add_argument("--adam_beta1", type=float, default=0.9)
    opt.add_argument("--adam_beta2", type=float, default=0.999)
    opt.add_argument("--adam_weight_decay", type=float, default=0.01)
    opt.add_argument("--adam_epsilon", type=float, default=1e-8)
    opt.add_argument("--gradient_checkpointing", action="store_true")
    opt.add_argument("--use_8bit_adam", action="store_true", help="bitsandbytes' AdamW8bit (ltx-trainer's adamw8bit)")
    opt.add_argument(
        "--vram",
        type=float,
        default=None,
        help="GPU memory budget in GiB: turns on gradient checkpointing, then 8-bit AdamW, then FP8 base weights, then "
        "block offloading, as needed",
    )
    opt.add_argument("--fp8_base", action="store_true",
                     help="store the frozen block linears in FP8 (e4m3, torch._scaled_mm on Hopper / Ada, emulated on "
                     "CPU; needs --mixed_precision bf16 on CUDA); the LoRA trains in float32 over them")  # fmt: skip
    opt.add_argument("--offload_blocks", type=int, default=0, metavar="N",
                     help="stream the frozen weights of the last N blocks from pinned host memory, forward and "
                     "backward (the LoRA stays on the device; 3 or more save memory; DDP too, not FSDP)")  # fmt: skip
    opt.add_argument("--mixed_precision", choices=("no", "fp16", "bf16"), default=None)
    opt.add_argument("--seed", type=int, default=42)
    opt.add_argument("--timestep_sampling", choices=("shifted_logit_normal", "uniform"), default="shifted_logit_normal")
    opt.add_argument("--logit_std", type=float, default=1.0)
    opt.add_argument("--uniform_prob", type=float, default=0.1)
    opt.add_argument("--sigma_eps", type=float, default=1e-3)
    out = parser.add_argument_group("output and checkpoints")
    out.add_argument("--output_dir", required=True)
    out.add_argument("--checkpointing_steps", type=int, default=250)
    out.add_argument("--checkpoints_total_limit", type=int, default=None)
    out.add_argument("--resume_from_checkpoint", default=None, help='a checkpoint-N folder, or "latest"')
    val = parser.add_argument_group("validation")
    val.add_argument(
        "--validation_prompt",
        action="append",
        default=None,
        help="generate a clip for this prompt while training (repeat the flag for several)",
    )
    val.add_argument("--validation_steps", type=int, default=100, help="every N optimizer steps, and after the last")
    val.add_argument("--validation_image", default=None, help="a first frame for the validation clips (i2v)")
    val.add_argument("--validation_width", type=int, default=None, help="default: the first bucket's")
    val.add_argument("--validation_height", type=int, default=None)
    val.add_argument("--validation_num_frames", type=int, default=None)
    val.add_argument("--validation_num_inference_steps", type=int, default=30)
    val.add_argument(
        "--validation_guidance_scale",
        type=float,
        default=None,
        help="classifier-free guidance of both streams (default: the model version's)",
    )
    val.add_argument(
        "--validation_stg_scale",
        type=float,
        default=None,
        help="spatio-temporal guidance of both streams (default: the model version's)",
    )
    hub = parser.add_argument_group("Hub")
    hub.add_argument("--push_to_hub", action="store_true", help="upload the LoRA, its card and a validation clip")
    hub.add_argument("--hub_model_id", default=None, help="the repo to push to, namespace/name")
    hub.add_argument("--hub_token", default=None, help="default: the logged-in token (HF_TOKEN, `hf auth login`)")
    hub.add_argument("--hub_private", action="store_true", help="create the repo private")
    args = parser.parse_args(argv)
    try:  # every flag is checked before anything is loaded
        check_args(args)
    except ValueError as error:
        raise UsageError(str(error)) from None
    return args


class UsageError(ValueError):
    """A bad flag value; the command line prints its one-line message and exits with status 2."""


def check_args(args: argparse.Namespace) -> None:
    training_mode(args)  # an unknown mode, or a first-frame probability the mode cannot take
    if args.lora_targets is not None and not args.lora_targets.strip(" ,"):
        raise ValueError(
            f"--lora_targets {args.lora_targets!r} names no module; use one of {list(LORA_TARGET_PRESETS)}"
        )
    for bucket in parse_buckets(args.resolution_buckets):
        reference_bucket(bucket, args.reference_downscale_factor)
    parse_audio_durations(args.audio_durations)
    for name in ("max_train_steps", "train_batch_size", "gradient_accumulation_steps", "checkpointing_steps"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.max_sequence_length < 128 or args.max_sequence_length % 128:
        raise ValueError(f"--max_sequence_length must be a multiple of 128 (the connectors' registers), got "
                         f"{args.max_sequence_length}")  # fmt: skip
    if args.use_8bit_adam:
        check_bitsandbytes()
    if args.vram is not None and args.vram <= 0:
        raise ValueError(f"--vram must be a positive number of GiB, got {args.vram}")
    if args.offload_blocks < 0:
        raise ValueError(f"--offload_blocks must be >= 0 (0: every block resident), got {args.offload_blocks}")
    if args.validation_prompt:
        if training_mode(args).reference:
            raise ValueError("--validation_prompt with --mode ic_lora: validation with a reference video is not built "
                             "yet; drop --validation_prompt")  # fmt: skip
        validation_settings(args)
    if args.push_to_hub:
        if args.hub_model_id is None:
            raise ValueError("--push_to_hub needs --hub_model_id namespace/name (the repo to create or update)")
        check_push(args.hub_model_id, args.hub_token)  # id, token, offline: before hours of training


def validation_settings(args: argparse.Namespace) -> ValidationSettings | None:
    """--validation_* flags; sizes default to the first bucket's (checked as the pipelines check them)."""
    if not args.validation_prompt:
        return None
    bucket = parse_buckets(args.resolution_buckets)[0]
    settings = ValidationSettings(
        prompts=tuple(args.validation_prompt),
        every_steps=args.validation_steps,
        width=args.validation_width or bucket.width,
        height=args.validation_height or bucket.height,
        num_frames=args.validation_num_frames or bucket.num_frames,
        num_inference_steps=args.validation_num_inference_steps,
        guidance_scale=args.validation_guidance_scale,
        stg_scale=args.validation_stg_scale,
        seed=args.seed,
        image=args.validation_image,
    )
    check_video_size(settings.height, settings.width, settings.num_frames)
    return settings


def check_model(args: argparse.Namespace, mode: TrainingMode, source, weight_dtype: torch.dtype) -> None:
    """Before caching, on the transformer built on the meta device (no weights read): every LoRA target matches a
    layer, and with --vram the memory plan fits (it sets --gradient_checkpointing / --use_8bit_adam / --fp8_base)."""
    transformer = transformer_on_meta(source)
    transformer.requires_grad_(False)
    try:  # a target that matches no layer of this transformer
        targets = resolve_lora_targets(args.lora_targets or mode.lora_targets, transformer)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.vram is not None:
        fp8_layers = fp8_layer_names(transformer)  # what --fp8_base converts (counted whether or not it is on)
        if args.fp8_base:  # as training builds it: FP8 layers first, then the adapters over them
            transformer.enable_fp8()
        transformer.add_adapter(lora_config(args.rank, args.lora_alpha, targets, args.lora_dropout))
        plan = memory_plan(args, mode, transformer, weight_dtype, fp8_layers)
        args.gradient_checkpointing, args.use_8bit_adam = plan.gradient_checkpointing, plan.use_8bit_adam
        args.fp8_base, args.offload_blocks = plan.fp8_base, plan.streamed_blocks
        logger.info(f"--vram {args.vram:g}: {plan.describe()}")
        if args.use_8bit_adam:  # chosen by the plan: bitsandbytes must be there
            try:
                check_bitsandbytes()
            except ValueError as error:
                raise UsageError(f"{error} (--vram {args.vram:g} needs 8-bit AdamW)") from None
    try:  # block offloading, asked for or planned
        check_offload_blocks(args.offload_blocks, transformer.config.num_layers, vram=args.vram)
    except ValueError as error:
        raise UsageError(str(error)) from None


def memory_plan(args: argparse.Namespace, mode: TrainingMode, transformer, weight_dtype: torch.dtype,
                fp8_layers: list[str]) -> MemoryPlan:  # fmt: skip
    """--vram: `plan_memory` on the transformer with its adapters (the frozen weights in `weight_dtype`, or with
    `fp8_layers` in FP8) and the largest bucket, per process."""
    buckets = parse_buckets(args.resolution_buckets)
    factor = args.reference_downscale_factor if mode.reference else None
    tokens = [bucket_tokens(b.width, b.height, b.num_frames, mode.needs_audio, factor) for b in buckets]
    video_tokens, audio_tokens = max(tokens, key=lambda t: t[0] * 4 + t[1])
    durations = parse_audio_durations(args.audio_durations)  # audio-only files: 25 tokens a second
    if durations and mode.needs_audio:
        audio_tokens = max(audio_tokens, round(max(d.seconds for d in durations) * AUDIO_TOKENS_PER_SECOND))
    config = transformer.config
    parameters = list(transformer.parameters())
    base_bytes, fp8_base_bytes = frozen_bytes(transformer, weight_dtype, fp8_layers)
    block_bytes, fp8_block_bytes = block_frozen_bytes(transformer, weight_dtype, fp8_layers)
    sizes = ModelSizes(
        base_bytes=base_bytes, fp8_base_bytes=fp8_base_bytes, block_bytes=block_bytes, fp8_block_bytes=fp8_block_bytes,
        lora_params=sum(p.numel() for p in parameters if p.requires_grad), num_layers=config.num_layers,
        video_width=config.num_attention_heads * config.attention_head_dim if mode.has_video else 0,
        audio_width=config.audio_num_attention_heads * config.audio_attention_head_dim,
        video_tokens=video_tokens, audio_tokens=audio_tokens, batch_size=args.train_batch_size,
    )  # fmt: skip
    try:
        return plan_memory(args.vram, sizes, gradient_checkpointing=args.gradient_checkpointing,
                           use_8bit_adam=args.use_8bit_adam, fp8_base=args.fp8_base,
                           can_8bit_adam=importlib.util.find_spec("bitsandbytes") is not None,
                           streamed_blocks=args.offload_blocks)  # fmt: skip
    except ValueError as error:
        raise UsageError(str(error)) from None


def training_mode(args: argparse.Namespace) -> TrainingMode:
    """--mode, with --first_frame_conditioning_p when given (checked by TrainingMode)."""
    mode = get_mode(args.mode)
    if args.first_frame_conditioning_p is not None:
        mode = dataclasses.replace(mode, first_frame_p=args.first_frame_conditioning_p)
    return mode


def find_checkpoint(output_dir: Path, spec: str | None) -> Path | None:
    """--resume_from_checkpoint: None, "latest" (the highest checkpoint-N in output_dir, None if there is none), or
    a folder (which must exist)."""
    if spec is None:
        return None
    if spec != "latest":
        path = Path(spec) if Path(spec).is_absolute() or Path(spec).exists() else output_dir / spec
        if not (path / ADAPTER_FILE).is_file():
            raise UsageError(f"--resume_from_checkpoint {spec}: {path} is not a checkpoint folder (no {ADAPTER_FILE})")
        return path
    found = [p for p in output_dir.glob("checkpoint-*") if re.fullmatch(r"checkpoint-\d+", p.name)]
    return max(found, key=lambda p: int(p.name.split("-")[1])) if found else None


def load_models(args: argparse.Namespace, cache_dir: Path, accelerator: Accelerator,
                weight_dtype: torch.dtype, validation: ValidationSettings | None):  # fmt: skip
    """Phase 1: cache what is missing and encode the validation prompts (main process; the pipeline without its
    transformer and vocoder), then return the transformer alone: training never holds Gemma, the connectors or the
    VAEs. Returns (the model source, the transformer or None with --cache_only, the planned samples, the validation
    prompt embeddings or None)."""
    buckets = parse_buckets(args.resolution_buckets)
    factor = args.reference_downscale_factor
    # every process checks the inputs
    durations = parse_audio_durations(args.audio_durations)
    planned = plan_cache(args.train_data_dir, cache_dir, buckets, factor, args.trigger_word, durations)
    audio_files = [item.sample.where for item in planned if item.info.is_audio]
    if audio_files and training_mode(args).has_video:
        raise DataError(f"{audio_files[0]}: an audio file, but --mode {args.mode} trains video; use --mode audio, or "
                        "drop the line")  # fmt: skip
    missing = [item for item in planned if not is_cached(item, args.max_sequence_length)]
    try:  # a Hub id is downloaded here (once the data checked out), by the main process first
        with accelerator.main_process_first():
            source = resolve_model_source(args.pretrained_model_name_or_path, args.text_encoder_path)
    except ValueError as error:
        raise UsageError(str(error)) from None
    check_model(args, training_mode(args), source, weight_dtype)  # targets and --vram, before hours of caching
    prompts = None
    needs_prompts = validation is not None and not args.cache_only
    if (missing or needs_prompts) and accelerator.is_main_process:
        pipe = load_pipeline(source, weight_dtype, vocoder=False).to(accelerator.device)
        if missing:
            report = cache_dataset(
                pipe, args.train_data_dir, cache_dir, buckets, device=accelerator.device,
                max_sequence_length=args.max_sequence_length, reference_downscale_factor=factor,
                trigger_word=args.trigger_word, audio_durations=durations,
            )  # fmt: skip
            logger.info(f"cached {len(report.written)} samples, {len(report.skipped)} were cached already")
        if needs_prompts:
            prompts = encode_validation_prompts(pipe, validation, accelerator.device, args.max_sequence_length)
        del pipe
    accelerator.wait_for_everyone()
    if args.cache_only:
        return source, None, planned, None
    return source, load_transformer(source, weight_dtype), planned, prompts


def main(argv: list[str] | None = None) -> Path | None:
    args = parse_args(argv)
    mode = training_mode(args)
    output_dir = Path(args.output_dir)
    cache_dir = Path(args.cache_dir) if args.cache_dir else Path(args.train_data_dir) / ".ltx2_cache"
    accelerator = Accelerator(
        mixed_precision=args.mixed_precision,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        project_config=ProjectConfiguration(project_dir=str(output_dir)),
        # adapters of a stream a mode does not run (audio in t2v) get no gradient: DDP must not wait for them
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    logging.basicConfig(level=logging.INFO if accelerator.is_main_process else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s")  # fmt: skip
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)

    resume = find_checkpoint(output_dir, args.resume_from_checkpoint)  # a wrong folder fails before any loading
    validation = validation_settings(args)
    try:  # FSDP where accelerate cannot run it, or with what it cannot shard
        check_distributed(accelerator, fp8_base=args.fp8_base, validation=validation is not None)
    except ValueError as error:
        accelerator.wait_for_everyone()  # every process refuses alike: none leaves while another still connects
        raise UsageError(str(error)) from None

    # 1. Cache, then the transformer alone
    # frozen weights in the mixed-precision dtype, as diffusers' scripts and ltx-trainer (bf16) load them
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)
    source, transformer, planned, validation_prompts = load_models(
        args, cache_dir, accelerator, weight_dtype, validation
    )
    if transformer is None:
        return None
    samples = [item.cache_path for item in planned]
    shape_keys = [cached_shape_key(path, mode.needs_audio) for path in samples]

    # 2. LoRA adapters (fp32 on the frozen base), optimizer, schedule. Seeded here, after caching: the adapters'
    # initial A must not depend on whether this run had samples to encode.
    set_seed(args.seed)
    transformer.requires_grad_(False)
    base_dtype = transformer.dtype  # the frozen weights' dtype; the adapters are float32
    try:  # a target that matches no layer of this transformer
        targets = resolve_lora_targets(args.lora_targets or mode.lora_targets, transformer)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.fp8_base:  # the frozen block linears in FP8, before the adapters: peft puts FP8LoraLinear over them
        if accelerator.device.type == "cuda" and base_dtype != torch.bfloat16:
            raise UsageError(f"--fp8_base on CUDA computes in bfloat16 (torch._scaled_mm), but the model is in "
                             f"{base_dtype}: add --mixed_precision bf16")  # fmt: skip
        config = transformer.enable_fp8()
        logger.info(f"FP8 base: {config.num_fp8_layers} block linears in float8_e4m3fn")
    transformer.add_adapter(lora_config(args.rank, args.lora_alpha, targets, args.lora_dropout))
    if args.fp8_base:  # the same on every process, named as peft left them: DDP must not broadcast float8
        keep_fp8_out_of_ddp(transformer)
    trainable = [p for p in transformer.parameters() if p.requires_grad]
    for parameter in trainable:
        parameter.data = parameter.data.float()
    if args.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    transformer.train()
    if args.offload_blocks:  # in place of accelerate's move to the device: the streamed weights stay on the host
        # (and out of DDP, which synchronises the LoRA alone)
        offload_frozen_blocks(transformer, args.offload_blocks, accelerator.device)
        logger.info(f"block offloading: the frozen weights of the last {args.offload_blocks} blocks stream from the host")
    optimizer = make_optimizer(
        trainable, use_8bit_adam=args.use_8bit_adam, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
        weight_decay=args.adam_weight_decay, eps=args.adam_epsilon,
    )  # fmt: skip
    # The prepared scheduler steps once per process per optimizer step (accelerate), so its length is scaled by the
    # process count; ltx-trainer does not, and its decay ends early under N processes (trap T9).
    total = args.max_train_steps * accelerator.num_processes
    if args.lr_scheduler == "linear":
        schedule = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0, end_factor=0.1, total_iters=total)
    else:
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    transformer, optimizer, schedule = accelerator.prepare(
        transformer, optimizer, schedule, device_placement=[not args.offload_blocks, None, None]
    )
    trainable = [p for p in transformer.parameters() if p.requires_grad]  # FSDP2 put DTensor parameters in their place

    # 3. Checkpoints hold the adapter (not the frozen base), plus accelerate's optimizer / schedule / RNG state; under
    # FSDP accelerate also saves and loads the sharded model itself (base included), before these hooks
    def save_hook(models, weights, folder):
        for model in models:
            state = adapter_state_dict(accelerator.unwrap_model(model))  # every process: FSDP gathers the shards
            if accelerator.is_main_process:
                save_file({k: v.detach().float().cpu().contiguous() for k, v in state.items()},
                          str(Path(folder) / ADAPTER_FILE))  # fmt: skip
        while weights:
            weights.pop()

    def load_hook(models, folder):  # under FSDP accelerate hands no model here: it loaded them itself
        while models:
            model = models.pop()
            result = set_peft_model_state_dict(
                accelerator.unwrap_model(model), load_file(str(Path(folder) / ADAPTER_FILE))
            )
            if result.unexpected_keys:
                raise ValueError(f"{folder}: adapter keys {result.unexpected_keys[:4]} do not fit this LoRA config")

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)

    first_step = 0
    if args.resume_from_checkpoint == "latest" and resume is None:
        logger.info(f"no checkpoint-N folder in {output_dir}: starting a new run")
    if resume is not None:
        accelerator.load_state(str(resume))
        first_step = int(resume.name.split("-")[1])
        logger.info(f"resumed from {resume} at step {first_step}")
    if accelerator.is_main_process:
        _truncate_log(output_dir / LOG_FILE, first_step)

    # 4. Train
    sampler = SigmaSampler(args.timestep_sampling, args.logit_std, args.sigma_eps, args.uniform_prob)
    unwrapped = accelerator.unwrap_model(transformer)
    batch_size = args.train_batch_size  # per process
    step = first_step
    while step < args.max_train_steps:
        lr = schedule.get_last_lr()[0]  # the rate this optimizer step uses
        losses, video_losses, audio_losses, sample_losses, sample_sigmas = [], [], [], [], []
        # The optimizer step's global batch: B samples x N processes x A accumulation micro-steps from one bucket.
        # Micro-step m of process p takes slots [(m N + p) B, (m N + p + 1) B), and each sample draws from the
        # generator of its slot, so any split of the same global batch draws the same numbers.
        per_micro = batch_size * accelerator.num_processes
        global_batch = batch_for_step(shape_keys, per_micro * args.gradient_accumulation_steps, args.seed, step)
        for micro in range(args.gradient_accumulation_steps):
            first = micro * per_micro + accelerator.process_index * batch_size
            slots = range(first, first + batch_size)
            batch = collate([load_cached(samples[global_batch[k]]) for k in slots], mode, accelerator.device)
            generators = [sample_generator(args.seed, step, k) for k in slots]
            with accelerator.accumulate(transformer):
                result = training_loss(transformer, batch, mode, sampler, generators, dtype=base_dtype)
                loss = result.loss.mean()
                accelerator.backward(loss)
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(trainable, args.max_grad_norm)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
            losses.append(loss.detach())
            if result.video is not None:
                video_losses.append(result.video.detach().mean())
            if result.audio is not None:
                audio_losses.append(result.audio.detach().mean())
            sample_losses.append(result.loss.detach())
            sample_sigmas.append(result.video_sigma if result.video_sigma is not None else result.audio_sigma)
        step += 1
        record = {"step": step, "loss": process_mean(accelerator, losses), "lr": lr}
        if video_losses:
            record["video_loss"] = process_mean(accelerator, video_losses)
        if audio_losses:
            record["audio_loss"] = process_mean(accelerator, audio_losses)
        record.update(sigma_bucket_losses(accelerator, sample_losses, sample_sigmas))
        if accelerator.is_main_process:
            with open(output_dir / LOG_FILE, "a") as log:
                log.write(json.dumps(record) + "\n")
        if step % args.checkpointing_steps == 0 or step == args.max_train_steps:
            _save_checkpoint(accelerator, output_dir, step, args.checkpoints_total_limit)
        if validation is not None and validation.due(step, args.max_train_steps):
            if accelerator.is_main_process:  # the live adapter, its current weights; decoders loaded and freed
                clips = run_validation(unwrapped, source, *validation_prompts, validation, step, output_dir,
                                       accelerator.device, base_dtype)  # fmt: skip
                logger.info(f"validation clips at step {step}: {', '.join(map(str, clips))}")
            accelerator.wait_for_everyone()

    # 5. The LoRA files, the card, the push
    accelerator.wait_for_everyone()
    state = adapter_state_dict(unwrapped)  # every process: FSDP gathers the shards
    if accelerator.is_main_process:
        metadata = {"ltx2_training_mode": mode.name, "base_model": str(args.pretrained_model_name_or_path)}
        if mode.reference:  # read by the IC-LoRA pipeline (LTX2LoRA.reference_downscale_factor)
            metadata["reference_downscale_factor"] = str(args.reference_downscale_factor)
        if args.trigger_word:
            metadata["trigger_word"] = args.trigger_word
        paths = export_lora(unwrapped, output_dir, dtype=SAVE_DTYPES[args.lora_save_dtype], metadata=metadata,
                            state=state)  # fmt: skip
        clip = sorted((output_dir / "validation").glob(f"step_{args.max_train_steps:06d}_*.mp4"))[:1]
        card = LoRACard(
            mode.name, mode.description, model_version_from_config(unwrapped.config), source.hub_id, args.rank,
            args.max_train_steps, args.trigger_word, (args.validation_prompt or [None])[0],
            clip[0].relative_to(output_dir).as_posix() if clip else None,
        )  # fmt: skip
        write_lora_card(output_dir, card)
        logger.info(f"wrote {paths[0]} and {paths[1]}")
        if args.push_to_hub:
            url = push_lora(output_dir, card, args.hub_model_id, token=args.hub_token, private=args.hub_private or None,
                            clip=clip[0] if clip else None)  # fmt: skip
            logger.info(f"pushed to {url}")
    accelerator.end_training()
    return output_dir


def _truncate_log(path: Path, last_step: int) -> None:
    """Keep the log lines of steps <= last_step (all of a resumed run's past, none of a fresh run's)."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= last_step]
    path.write_text("".join(line + "\n" for line in kept))


def _save_checkpoint(accelerator: Accelerator, output_dir: Path, step: int, limit: int | None) -> None:
    if accelerator.is_main_process and limit is not None:
        existing = sorted((p for p in output_dir.glob("checkpoint-*") if re.fullmatch(r"checkpoint-\d+", p.name)),
                          key=lambda p: int(p.name.split("-")[1]))  # fmt: skip
        for old in existing[: max(0, len(existing) - limit + 1)]:
            shutil.rmtree(old)
    accelerator.save_state(str(output_dir / f"checkpoint-{step}"))


if __name__ == "__main__":
    try:
        main()
    except DataError as error:  # a bad input file: one line naming it
        sys.exit(f"error: {error}")
    except UsageError as error:  # a bad flag: one line, argparse's exit status
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
