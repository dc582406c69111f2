"""Per-sample perturbations for one batched transformer call (guidance passes share a batch).

The guidance passes of a step (conditional, unconditional, STG-perturbed, modality-isolated) run as one batch; each
sample says which perturbations apply to it. A mask is a (B,) float tensor with 1.0 where the perturbation applies to
that sample and 0.0 where it does not. A mask left as None means "no sample is perturbed" (never "all samples").
`perturbation_plan` turns them, or diffusers' `spatio_temporal_guidance_blocks` / `perturbation_mask`, into one
`BlockPerturbation` per transformer block.
"""

from dataclasses import dataclass

import torch
from torch import Tensor

from .transformer_ltx2_block import BlockPerturbation


@dataclass(frozen=True)
class Perturbations:
    """Which samples of a batch are perturbed, and in which blocks.

    video_stg_blocks / audio_stg_blocks: blocks whose video / audio self-attention is replaced by its value path (the
        softmax is skipped: spatio-temporal guidance, STG) for the samples selected by video_stg_mask / audio_stg_mask.
    skip_a2v_mask / skip_v2a_mask: samples whose audio->video / video->audio cross-attention is switched off in every
        block (modality isolation).
    """

    video_stg_blocks: tuple[int, ...] = ()
    audio_stg_blocks: tuple[int, ...] = ()
    video_stg_mask: torch.Tensor | None = None  # (B,)
    audio_stg_mask: torch.Tensor | None = None  # (B,)
    skip_a2v_mask: torch.Tensor | None = None  # (B,)
    skip_v2a_mask: torch.Tensor | None = None  # (B,)

    def __post_init__(self):
        for name in ("video_stg_blocks", "audio_stg_blocks"):
            blocks = getattr(self, name)
            if not isinstance(blocks, tuple) or not all(isinstance(b, int) and b >= 0 for b in blocks):
                raise TypeError(f"Perturbations.{name} must be a tuple of non-negative block indices, got {blocks!r}")
        for name in ("video_stg_mask", "audio_stg_mask", "skip_a2v_mask", "skip_v2a_mask"):
            mask = getattr(self, name)
            if mask is not None and mask.ndim != 1:
                raise ValueError(f"Perturbations.{name} must have shape (batch_size,), got {tuple(mask.shape)}")


def perturbation_plan(
    num_layers: int,
    batch_size: int,
    dtype: torch.dtype,
    device: torch.device,
    has_audio: bool,
    perturbations: Perturbations | None,
    stg_blocks: list[int] | tuple[int, ...] | None,
    perturbation_mask: Tensor | None,
    isolate_modalities: bool,
) -> list[BlockPerturbation]:
    """One BlockPerturbation per block. Only host-side facts decide what runs; masks only multiply."""

    def keep(mask: Tensor | None, name: str, shape: tuple[int, ...], perturbed_value: float) -> Tensor | None:
        if mask is None:
            return None
        mask = mask.reshape(-1) if mask.numel() == batch_size else mask
        if mask.shape != (batch_size,):
            raise ValueError(f"{name} must have one value per sample, shape ({batch_size},); got {tuple(mask.shape)}")
        mask = mask.to(device=device, dtype=dtype)
        return (mask if perturbed_value == 0.0 else 1 - mask).view(batch_size, *shape)

    video_keep = audio_keep = a2v_keep = v2a_keep = None
    video_blocks: tuple[int, ...] = ()
    audio_blocks: tuple[int, ...] = ()
    if perturbations is not None:
        if stg_blocks or perturbation_mask is not None:
            raise ValueError(
                "Pass either perturbations or diffusers' spatio_temporal_guidance_blocks/perturbation_mask, not both"
            )
        p = perturbations
        video_keep = keep(p.video_stg_mask, "Perturbations.video_stg_mask", (1, 1, 1), 1.0)
        audio_keep = keep(p.audio_stg_mask, "Perturbations.audio_stg_mask", (1, 1, 1), 1.0)
        a2v_keep = keep(p.skip_a2v_mask, "Perturbations.skip_a2v_mask", (1, 1), 1.0)
        v2a_keep = keep(p.skip_v2a_mask, "Perturbations.skip_v2a_mask", (1, 1), 1.0)
        video_blocks, audio_blocks = p.video_stg_blocks, p.audio_stg_blocks
    elif stg_blocks:
        # diffusers' documented meaning, which its LTX2Pipeline relies on (its STG pass sends no mask): blocks
        # without a mask perturb every sample. Our own `perturbations` never reads a missing mask that way.
        if perturbation_mask is None:
            perturbation_mask = torch.zeros(batch_size)
        video_keep = audio_keep = keep(perturbation_mask, "perturbation_mask", (1, 1, 1), 0.0)
        # diffusers perturbs the blocks whose index is in the list and ignores the rest: its pipelines pass
        # [28] (the 22B's STG block) by default, also to smaller models
        video_blocks = audio_blocks = tuple(b for b in stg_blocks if 0 <= b < num_layers)
    elif perturbation_mask is not None:
        raise ValueError("perturbation_mask was given without spatio_temporal_guidance_blocks: it would do nothing")
    for name, blocks in (
        ("Perturbations.video_stg_blocks", video_blocks),
        ("Perturbations.audio_stg_blocks", audio_blocks),
    ):
        if any(not 0 <= b < num_layers for b in blocks):
            raise ValueError(
                f"{name} {list(blocks)} must lie in [0, {num_layers - 1}] (this model has {num_layers} blocks); "
                "drop the other indices"
            )
    run_cross = has_audio and not isolate_modalities
    return [
        BlockPerturbation(
            video_keep=video_keep if i in video_blocks else None,
            audio_keep=audio_keep if i in audio_blocks else None,
            a2v_keep=a2v_keep,
            v2a_keep=v2a_keep,
            run_a2v=run_cross,
            run_v2a=run_cross,
        )
        for i in range(num_layers)
    ]
