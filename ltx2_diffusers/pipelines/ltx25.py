"""What LTX-2.5 changes in a pipeline call (ltx-pipelines 1.2.0, spec 1.2 §1.4, §4.5, §6.1, trap 22).

1. The clip length: `num_frames=None` on a pipeline with a `duration_head` predicts it from the positive prompt's
   connector outputs (`models.duration_head.predict_num_frames`), within [min_seconds, max_seconds] (diffusers'
   names; default 1-20 s as the reference's `--auto-duration`), snapped to 8k + 1. Before the prompt is encoded the
   call is checked (sizes, memory budget) for the longest clip the range allows.
2. The distilled stage-1 sampler: the preset's `sampler` ("euler_ancestral" for LTX-2.5 distilled) picks
   Euler-ancestral (eta 1) with its own noise generator seeded with the pipeline seed + 10000, as the reference's
   DistilledPipeline does; the pipeline seed is the (first) generator's `initial_seed()`.
"""

from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor

from ..models.duration_head import frames_for_seconds, predict_num_frames
from ..schedulers.samplers import euler_ancestral_sample
from ..schedulers.scheduling_ltx2 import euler_sample
from .conditioning import Generators
from .presets import SamplingPreset

DEFAULT_MIN_SECONDS = 1.0
DEFAULT_MAX_SECONDS = 20.0
ANCESTRAL_SEED_OFFSET = 10000  # the reference's DistilledPipeline seeds its ancestral noise with seed + 10000


@dataclass(frozen=True)
class AutoDuration:
    """num_frames=None on a pipeline with a duration head: the range in seconds, and the frame rate."""

    min_seconds: float
    max_seconds: float
    frame_rate: float

    @property
    def longest(self) -> int:
        """The most frames a prediction can give (8k + 1): what the call is checked for before encoding."""
        return frames_for_seconds(
            self.max_seconds, self.frame_rate, self._min_frames, round(self.max_seconds * self.frame_rate)
        )

    @property
    def _min_frames(self) -> int:
        return round(self.min_seconds * self.frame_rate)

    def predict(self, pipe, video_context: Tensor | None, audio_context: Tensor) -> int:
        """The clip length for the first prompt's contexts (B, L, D); every prompt must be the same one. Text-to-audio
        passes no video context, as the reference's does."""
        rows = [c for c in (video_context, audio_context) if c is not None]
        if rows[0].shape[0] > 1 and not all(bool((c == c[:1]).all()) for c in rows):
            raise ValueError(
                f"num_frames=None predicts one clip length from one prompt, but the batch holds "
                f"{rows[0].shape[0]} different prompts: pass num_frames, or call once per prompt"
            )
        head = pipe.duration_head
        video = None if video_context is None else video_context[:1].to(head.dtype)
        return predict_num_frames(
            head, video, audio_context[:1].to(head.dtype), self.frame_rate, self.min_seconds, self.max_seconds
        )


def auto_duration(
    pipe,
    num_frames: int | None,
    frame_rate: float,
    min_seconds: float | None,
    max_seconds: float | None,
    *,
    latents: Tensor | None = None,
    audio_latents: Tensor | None = None,
) -> AutoDuration | None:
    """The clip-length prediction a call asks for: num_frames None and the pipeline has a `duration_head` -> an
    `AutoDuration`; else None (num_frames given, or the preset's default without a head). min_seconds / max_seconds
    only go with a prediction and are refused otherwise."""
    head = getattr(pipe, "duration_head", None)
    if num_frames is not None or head is None:
        if min_seconds is not None or max_seconds is not None:
            why = "num_frames is given" if num_frames is not None else "the pipeline has no duration_head"
            raise ValueError(
                f"min_seconds / max_seconds bound the predicted clip length, which is only predicted when num_frames "
                f"is None and the pipeline has a duration_head (LTX-2.5); here {why}: drop min_seconds / max_seconds"
            )
        return None
    if latents is not None or audio_latents is not None:
        raise ValueError(
            "latents / audio_latents fix the clip length, which num_frames=None would predict: pass num_frames "
            "matching the latents"
        )
    low = DEFAULT_MIN_SECONDS if min_seconds is None else float(min_seconds)
    high = DEFAULT_MAX_SECONDS if max_seconds is None else float(max_seconds)
    if not 0 < low < high:
        raise ValueError(
            f"min_seconds={low}, max_seconds={high}: the predicted duration's range needs 0 < min_seconds < "
            f"max_seconds (diffusers' rule; default 1 and 20 s)"
        )
    if round(low * frame_rate) < 1:
        raise ValueError(f"min_seconds={low} is under one frame at {frame_rate} fps; use at least {1 / frame_rate:.4g}")
    duration = AutoDuration(low, high, frame_rate)
    duration.longest  # noqa: B018 - raises when no 8k + 1 length lies in the range
    return duration


def stage_1_sampler(preset: SamplingPreset, generator: Generators):
    """The sampler of the first (or only) stage: `euler_sample`, or for the preset's "euler_ancestral" (LTX-2.5
    distilled) Euler-ancestral with eta 1 and noise seeded with the pipeline seed + 10000. The pipeline seed is the
    generator's (the first one's) `initial_seed()`; without a generator a random one is drawn from torch's RNG."""
    if preset.sampler == "euler":
        return euler_sample
    if preset.sampler != "euler_ancestral":
        raise ValueError(f"this pipeline runs the Euler samplers, not the preset's sampler {preset.sampler!r}")
    first = generator[0] if isinstance(generator, list) else generator
    seed = int(torch.randint(0, 2**62, ())) if first is None else first.initial_seed()
    return partial(euler_ancestral_sample, eta=1.0, s_noise=1.0, noise_seed=seed + ANCESTRAL_SEED_OFFSET)
