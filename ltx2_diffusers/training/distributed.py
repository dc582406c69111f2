"""Several training processes: what the training script checks of accelerate's set-up (FSDP), and its per-step
means over processes.

FSDP: `accelerate launch --config_file fsdp.yaml` (docs/training.md) shards the transformer with FSDP2 (`fully_shard`
per `LTX2VideoTransformerBlock`); the LoRA's parameters are DTensor shards, gathered whole for checkpoints and the
exported files (`lora.adapter_state_dict`). What is refused, each with the reason:
- FSDP asked for where accelerate does not set it up. accelerate (1.16 here) turns FSDP on only for accelerator
  processes (`AcceleratorState`: MULTI_GPU, MULTI_XPU, MULTI_NPU, ...), never for MULTI_CPU: on the CPU, or with one
  process, it silently prepares DDP (or nothing) and ignores the config. torch's FSDP2 itself runs on the CPU with
  gloo (the tests drive the script's FSDP path that way, `tests/helpers/training_fsdp.py`), but not through an
  accelerate config.
- FSDP1 (`fsdp_version: 1`): the script's gathers and optimizer hand-over are written for FSDP2's DTensors.
- `--fp8_base`: FSDP2 shards and all-gathers the e4m3 weights as parameters, and its mixed-precision policy would cast
  them to bf16 (FP8Linear needs its own dtype); FP8 is a single-card saving.
- `--validation_prompt`: validation runs on the main process alone, which sharded weights cannot (every process must
  take part in each all-gather).
- `--offload_blocks` (or a `--vram` plan that streams): the streamer points the frozen block weights at host memory
  and its device slots between forwards, which FSDP's sharded parameters cannot follow.

DDP with block offloading: every process streams its own copy of the frozen blocks (host memory N times), and the
frozen parameters and the buffers are left out of DDP (`keep_frozen_out_of_ddp`), so DDP neither broadcasts the
host-resident weights nor registers them: only the LoRA's gradients are all-reduced.
"""

import os

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType


def fsdp_requested() -> bool:
    """Whether `accelerate launch` was given an FSDP config (it exports ACCELERATE_USE_FSDP=true to the processes)."""
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() in ("true", "1", "yes")


def check_distributed(accelerator: Accelerator, *, fp8_base: bool, validation: bool) -> None:
    """A ValueError for what cannot run under this accelerate set-up (the module docstring), before any loading."""
    import accelerate

    fsdp = accelerator.distributed_type == DistributedType.FSDP
    if fsdp_requested() and not fsdp:
        raise ValueError(
            f"the accelerate config asks for FSDP, but accelerate {accelerate.__version__} set up "
            f"{accelerator.distributed_type.value} on {accelerator.device.type} with {accelerator.num_processes} "
            "process(es): it runs FSDP only on GPUs (and other accelerators), never on the CPU, and would silently "
            "ignore the config. On the CPU train with DDP (`python -m torch.distributed.run --nproc_per_node N`, or "
            "an accelerate config without FSDP); use the FSDP config on GPUs"
        )
    if not fsdp:
        return
    if accelerator.state.fsdp_plugin.fsdp_version != 2:
        raise ValueError(
            f"FSDP version {accelerator.state.fsdp_plugin.fsdp_version}: the trainer shards with FSDP2; set "
            "`fsdp_version: 2` in the accelerate config (fsdp_config)"
        )
    if fp8_base:
        raise ValueError(
            "--fp8_base with FSDP: FSDP shards the FP8 weights as parameters and its mixed precision would cast them "
            "to bf16; train an FP8 base on one process per card with DDP (an accelerate config without FSDP), or drop "
            "--fp8_base"
        )
    if validation:
        raise ValueError(
            "--validation_prompt with FSDP: validation runs on the main process alone, which sharded weights cannot; "
            "drop --validation_prompt and load the saved LoRA into a pipeline afterwards"
        )


def check_offload_distributed(offload_blocks: int, vram: float | None) -> None:
    """Block offloading (asked for, or planned by --vram once the model's sizes are known) refused under FSDP."""
    if offload_blocks and fsdp_requested():
        why = f"--vram {vram:g} needs block offloading" if vram is not None else f"--offload_blocks {offload_blocks}"
        raise ValueError(
            f"{why}, but the run shards the model with FSDP: the streamed frozen weights live in host memory, outside "
            "FSDP's shards; train with DDP (an accelerate config without FSDP), or keep FSDP and drop the offloading "
            "(FSDP already splits the weights over the cards)"
        )


def keep_fp8_out_of_ddp(transformer: torch.nn.Module) -> list[str]:
    """DDP broadcasts every parameter and buffer of process 0 when it wraps the model (and the buffers before every
    forward), and gloo has no float8 type ("Invalid scalar type"). Every process quantises the same weights in the same
    way, so the FP8 layers' e4m3 weights and their scales are left out of DDP (they get no gradient either). Returns
    the names left out."""
    from ..models.fp8 import FP8Linear

    names = []
    for name, module in transformer.named_modules():
        if isinstance(module, FP8Linear):
            names += [f"{name}.{kind}" for kind in ("weight", "weight_scale")]
    return _ignore_in_ddp(transformer, names)


def keep_frozen_out_of_ddp(transformer: torch.nn.Module) -> list[str]:
    """Block offloading under DDP: the streamed blocks' frozen tensors live in host memory between their forwards (and
    in a device slot during them), where DDP's broadcast when it wraps the model, and of the buffers before every
    forward, would read or write host tensors (NCCL cannot) and rank 0's slot contents. Every process loads the same
    base, so every frozen parameter and every buffer is left out of DDP; the LoRA's parameters, the only ones with a
    gradient, are broadcast once and all-reduced as without offloading. Returns the names left out."""
    names = [name for name, parameter in transformer.named_parameters() if not parameter.requires_grad]
    return _ignore_in_ddp(transformer, names + [name for name, _ in transformer.named_buffers()])


def _ignore_in_ddp(module: torch.nn.Module, names: list[str]) -> list[str]:
    """Add `names` to what DDP leaves out of `module` when it wraps it (FP8 and offloading each add theirs)."""
    ignored = sorted({*getattr(module, "_ddp_params_and_buffers_to_ignore", ()), *names})
    torch.nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(module, ignored)
    return names


def process_mean(accelerator: Accelerator, values: list[torch.Tensor]) -> float:
    """The mean over accumulation micro-steps and processes, as one float."""
    return float(accelerator.gather(torch.stack(values).mean()[None]).mean())


def sigma_bucket_losses(accelerator: Accelerator, losses: list[torch.Tensor], sigmas: list[torch.Tensor]) -> dict:
    """ltx-trainer's per-noise-level losses: the mean per-sample loss in each quarter of [0, 1] of the video sigma
    (the audio sigma when no video is generated) that this step's samples hit, as `loss_sigma_0.25-0.50`."""
    loss = accelerator.gather(torch.cat(losses).float()).cpu()
    sigma = accelerator.gather(torch.cat(sigmas).float().to(accelerator.device)).cpu()
    edges = (0.0, 0.25, 0.5, 0.75, 1.0)
    found = {}
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (sigma >= lo) & ((sigma < hi) if hi < 1.0 else (sigma <= hi))
        if inside.any():
            found[f"loss_sigma_{lo:.2f}-{hi:.2f}"] = float(loss[inside].mean())
    return found
