"""Per-sample perturbations for one batched transformer call (guidance passes share a batch).

The guidance passes of a step (conditional, unconditional, STG-perturbed, modality-isolated) run as one batch; each
sample says which perturbations apply to it. A mask is a (B,) float tensor with 1.0 where the perturbation applies to
that sample and 0.0 where it does not. A mask left as None means "no sample is perturbed" (never "all samples").
"""

from dataclasses import dataclass

import torch


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
