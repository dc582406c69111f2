"""Multimodal guidance on x0 predictions (spec §6.2), and the plan that runs all its passes in one transformer call.

Per modality (video and audio have their own scales):
    x0 = c + (cfg - 1)(c - u) + stg (c - p) + (modality - 1)(c - m),   then the optional std rescale,
with c the conditional prediction, u the one with the negative prompt, p the one with self-attention skipped in the
STG blocks and m the one with audio<->video cross-attention switched off in every block.

ltx-pipelines runs these as up to 4 separate batch-1 transformer calls. Here `plan_guidance` lays them out as groups
of one batch (cond, then uncond, perturbed, isolated, each `batch_size` samples) with per-sample `Perturbations`, and
`GuidancePlan.split` cuts the batched output back into per-pass predictions for `combine_guidance`.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from ..models.perturbations import Perturbations
from .presets import check_reference

PASSES: tuple[str, ...] = ("cond", "uncond", "perturbed", "isolated")  # batch order of the pass groups


@dataclass(frozen=True)
class GuidanceScales:
    """Guidance for one modality at one step (ltx-core's `MultiModalGuiderParams`; neutral values by default)."""

    cfg: float = 1.0  # classifier-free guidance against the negative prompt
    stg: float = 0.0  # spatio-temporal guidance: self-attention skipped in `stg_blocks`
    modality: float = 1.0  # extra pass with audio<->video attention switched off
    rescale: float = 0.0  # pull the result's std back towards the conditional prediction's
    stg_blocks: tuple[int, ...] = ()
    skip_step: int = 0  # n > 0: guide only every (n + 1)-th step, reuse the previous guided x0 in between

    def __post_init__(self):
        if isinstance(self.stg_blocks, list):  # accept the reference's list form, store a hashable tuple
            object.__setattr__(self, "stg_blocks", tuple(self.stg_blocks))
        if not all(isinstance(b, int) and b >= 0 for b in self.stg_blocks):
            raise TypeError(f"GuidanceScales.stg_blocks must be non-negative block indices, got {self.stg_blocks!r}")
        for name in ("cfg", "stg", "modality", "rescale"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"GuidanceScales.{name} must be a finite number, got {value!r}")
        if not isinstance(self.skip_step, int) or self.skip_step < 0:
            raise ValueError(
                f"GuidanceScales.skip_step must be an int >= 0 (0 = guide every step), got {self.skip_step!r}"
            )
        if self.needs_perturbed and not self.stg_blocks:
            raise ValueError(
                f"GuidanceScales.stg={self.stg} but stg_blocks is empty, so the STG pass would equal the conditional "
                "one. Name the blocks to perturb (LTX-2: (29,), LTX-2.3: (28,)) or set stg=0."
            )

    # The reference decides which passes run with math.isclose, and combines with the exact scales.
    @property
    def needs_uncond(self) -> bool:
        return not math.isclose(self.cfg, 1.0)

    @property
    def needs_perturbed(self) -> bool:
        return not math.isclose(self.stg, 0.0)

    @property
    def needs_isolated(self) -> bool:
        return not math.isclose(self.modality, 1.0)

    def skips(self, step_index: int) -> bool:
        """True where this step reuses the previous guided x0 (`skip_step` = n: all steps but every (n + 1)-th)."""
        return self.skip_step > 0 and step_index % (self.skip_step + 1) != 0


@dataclass(frozen=True)
class GuidanceSchedule:
    """Guidance scales binned by sigma (ltx-core's `MultiModalGuiderFactory.from_dict`).

    bins: (sigma_upper_bound, scales) pairs. A step at sigma uses the bin with the smallest upper bound >= sigma, or
    the largest bin when sigma lies above all of them. Example: {1.0: strong, 0.5: weak} guides strongly for
    sigma in (0.5, 1] and weakly at and below 0.5.
    """

    bins: tuple[tuple[float, GuidanceScales], ...]

    def __post_init__(self):
        if not self.bins:
            raise ValueError("GuidanceSchedule needs at least one (sigma_upper_bound, GuidanceScales) bin")
        bounds = [float(b) for b, _ in self.bins]
        if len(set(bounds)) != len(bounds):
            raise ValueError(f"GuidanceSchedule has repeated sigma bounds: {bounds}")
        for _, scales in self.bins:
            if not isinstance(scales, GuidanceScales):
                raise TypeError(f"GuidanceSchedule bins hold GuidanceScales, got {type(scales).__name__}")
        ordered = tuple(sorted(((float(b), s) for b, s in self.bins), key=lambda item: item[0], reverse=True))
        object.__setattr__(self, "bins", ordered)

    @classmethod
    def from_dict(cls, scales_by_sigma: Mapping[float, GuidanceScales]) -> "GuidanceSchedule":
        return cls(tuple(scales_by_sigma.items()))

    def at(self, sigma: float) -> GuidanceScales:
        sigma = float(sigma)
        covering = [scales for bound, scales in self.bins if bound >= sigma]
        return covering[-1] if covering else self.bins[0][1]


def guidance_at(guidance: GuidanceScales | GuidanceSchedule, sigma: float) -> GuidanceScales:
    """The scales in effect at noise level `sigma` (constant scales are returned as they are)."""
    return guidance.at(sigma) if isinstance(guidance, GuidanceSchedule) else guidance


def combine_guidance(
    cond: Tensor,
    uncond: Tensor | None,
    perturbed: Tensor | None,
    isolated: Tensor | None,
    scales: GuidanceScales,
    reference: str = "1.2",
) -> Tensor:
    """x0 = c + (cfg - 1)(c - u) + stg (c - p) + (modality - 1)(c - m), then the rescale; shapes (B, T, C).

    Pass None for a pass that did not run (its scale must then be neutral). With the reference's operation order;
    reference "1.2": in float32, the result cast back to the predictions' dtype (1.2.0's `MultiModalGuider`, delta spec
    §5.3); "1.0": in the predictions' dtype (bf16 in the pipelines), as 1.0.0 does (spec §13.4).
    The rescale std is taken per sample: the reference guides one sample per call, a batch-wide std would couple
    prompts.
    """
    check_reference(reference)
    missing = {
        "uncond": uncond is None and scales.needs_uncond,
        "perturbed": perturbed is None and scales.needs_perturbed,
    }
    missing["isolated"] = isolated is None and scales.needs_isolated
    if any(missing.values()):
        names = [name for name, is_missing in missing.items() if is_missing]
        raise ValueError(f"combine_guidance got None for {names}, but {scales} needs those passes")
    dtype = cond.dtype
    uncond = cond if uncond is None else uncond
    perturbed = cond if perturbed is None else perturbed
    isolated = cond if isolated is None else isolated
    if reference == "1.2":
        cond, uncond, perturbed, isolated = cond.float(), uncond.float(), perturbed.float(), isolated.float()
    x0 = (
        cond
        + (scales.cfg - 1) * (cond - uncond)
        + scales.stg * (cond - perturbed)
        + (scales.modality - 1) * (cond - isolated)
    )
    if scales.rescale != 0:
        dims = tuple(range(1, x0.ndim))
        ratio = cond.std(dim=dims, keepdim=True) / x0.std(dim=dims, keepdim=True)
        x0 = x0 * (scales.rescale * ratio + (1 - scales.rescale))
    return x0.to(dtype)


@dataclass(frozen=True)
class GuidancePlan:
    """The transformer call of one guided step: which passes run, in which batch layout, with which perturbations.

    The batch is pass-major: `passes[k]` occupies samples [k·batch_size, (k+1)·batch_size). "uncond" samples take the
    negative contexts, all others the positive ones (`contexts`). `perturbations` holds (num_samples,) masks.
    video_skips / audio_skips: this modality reuses its previous guided x0 this step (`skip_step`); when both skip,
    `passes` is empty and there is no transformer call at all.
    """

    passes: tuple[str, ...]
    batch_size: int
    perturbations: Perturbations
    video_skips: bool = False
    audio_skips: bool = False

    @property
    def num_samples(self) -> int:
        return len(self.passes) * self.batch_size

    def samples_of(self, name: str) -> slice:
        """The batch rows of pass `name`."""
        if name not in self.passes:
            raise ValueError(f"pass {name!r} is not in this plan (passes: {self.passes})")
        k = self.passes.index(name)
        return slice(k * self.batch_size, (k + 1) * self.batch_size)

    def repeat(self, x: Tensor) -> Tensor:
        """(B, ...) -> (num_samples, ...): the same latents / timesteps / positions for every pass."""
        self._check_batch(x, "repeat")
        return x.repeat(len(self.passes), *([1] * (x.ndim - 1)))

    def contexts(self, positive: Tensor, negative: Tensor | None) -> Tensor:
        """(B, S, D) positive and negative text contexts -> (num_samples, S, D) in the plan's layout."""
        self._check_batch(positive, "contexts")
        if "uncond" in self.passes:
            if negative is None:
                raise ValueError("this step runs an unconditional pass (cfg != 1) but no negative context was given")
            self._check_batch(negative, "contexts")
        return torch.cat([negative if name == "uncond" else positive for name in self.passes], dim=0)

    def split(self, output: Tensor) -> dict[str, Tensor]:
        """(num_samples, ...) transformer output -> {pass name: (B, ...)} for the passes that ran."""
        if output.shape[0] != self.num_samples:
            raise ValueError(
                f"output has {output.shape[0]} samples, the plan lays out {self.num_samples} "
                f"({len(self.passes)} passes x batch {self.batch_size})"
            )
        return {name: output[self.samples_of(name)] for name in self.passes}

    def guide(self, output: Tensor, scales: GuidanceScales, reference: str = "1.2") -> Tensor:
        """split + combine_guidance for one modality's batched x0 output -> (B, ...) guided x0."""
        parts = self.split(output)
        return combine_guidance(
            parts["cond"], parts.get("uncond"), parts.get("perturbed"), parts.get("isolated"), scales, reference
        )

    def _check_batch(self, x: Tensor, what: str) -> None:
        if x.shape[0] != self.batch_size:
            raise ValueError(f"GuidancePlan.{what}: expected batch {self.batch_size}, got shape {tuple(x.shape)}")


def plan_guidance(
    video: GuidanceScales,
    audio: GuidanceScales,
    step_index: int,
    batch_size: int = 1,
    device: torch.device | str | None = None,
) -> GuidancePlan:
    """Decide the passes of step `step_index` (as ltx-pipelines' `multi_modal_guider_denoising_func`) and lay them out.

    cond always; uncond if either modality has cfg != 1; perturbed if either has stg != 0 (the self-attention of each
    modality whose stg != 0 is skipped in that modality's `stg_blocks`); isolated if either has modality != 1 (a2v and
    v2a cross-attention off in every block). `video`/`audio` are the scales in effect at this step (`guidance_at`).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    video_skips, audio_skips = video.skips(step_index), audio.skips(step_index)
    if video_skips != audio_skips:
        # 1.0.0 then runs the skipped modality's stream frozen (Modality.enabled=False) in the cond, perturbed and
        # isolated passes but not in the uncond pass; one batched call with the current Perturbations cannot say that.
        raise ValueError(
            f"step {step_index}: video skip_step={video.skip_step} and audio skip_step={audio.skip_step} make only one "
            "modality skip this step, which the batched guidance call does not support. Use the same skip_step for "
            "video and audio."
        )
    if video_skips:
        return GuidancePlan((), batch_size, Perturbations(), video_skips=True, audio_skips=True)

    passes = ["cond"]
    if video.needs_uncond or audio.needs_uncond:
        passes.append("uncond")
    if video.needs_perturbed or audio.needs_perturbed:
        passes.append("perturbed")
    if video.needs_isolated or audio.needs_isolated:
        passes.append("isolated")
    passes = tuple(passes)

    def mask_for(name: str | None) -> Tensor | None:
        if name not in passes:
            return None
        mask = torch.zeros(len(passes) * batch_size, device=device)
        k = passes.index(name)
        mask[k * batch_size : (k + 1) * batch_size] = 1.0
        return mask

    perturbations = Perturbations(
        video_stg_blocks=video.stg_blocks if video.needs_perturbed else (),
        audio_stg_blocks=audio.stg_blocks if audio.needs_perturbed else (),
        video_stg_mask=mask_for("perturbed") if video.needs_perturbed else None,
        audio_stg_mask=mask_for("perturbed") if audio.needs_perturbed else None,
        skip_a2v_mask=mask_for("isolated"),
        skip_v2a_mask=mask_for("isolated"),
    )
    return GuidancePlan(passes, batch_size, perturbations)
