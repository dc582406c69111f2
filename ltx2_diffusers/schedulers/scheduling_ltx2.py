"""LTX-2 flow-matching schedule and steps (spec §0.2, §6.1, §6.5, §6.6).

Rectified flow: x_sigma = (1 - sigma) x0 + sigma eps, sigma in [0, 1]; the transformer predicts the velocity
v = eps - x0. Every step here works on x0 ("denoised") predictions, as ltx-core does: guidance is combined on x0, then
an Euler (or res2s) step moves the sample to the next sigma.

Everything is a pure function of its arguments. `LTX2Scheduler` is a thin diffusers wrapper that stores the config (so a
pipeline folder can save it) and the sigmas of the last `set_timesteps` call; its `step` takes the step index
explicitly, there is no hidden cursor.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput
from torch import Tensor

from ..pipelines.presets import DISTILLED_SIGMAS, STAGE_2_DISTILLED_SIGMAS  # noqa: F401  (re-exported)

# The distilled checkpoints were trained for DISTILLED_SIGMAS (8 steps) and STAGE_2_DISTILLED_SIGMAS (the two-stage
# refinement's 3 steps from the upsampled stage-1 latent re-noised to 0.909375), spec §6.1. They live with the other
# defaults in the torch-free presets (one copy of every default value) and are re-exported here.

# The shift mu is linear in the token count through these anchors (and extrapolates outside them).
BASE_SHIFT_NUM_TOKENS = 1024
MAX_SHIFT_NUM_TOKENS = 4096


def ltx2_shift(num_tokens: int, base_shift: float = 0.95, max_shift: float = 2.05) -> float:
    """mu(N) = base_shift + (N - 1024) (max_shift - base_shift) / (4096 - 1024); not clamped (spec §6.1 step 3)."""
    slope = (max_shift - base_shift) / (MAX_SHIFT_NUM_TOKENS - BASE_SHIFT_NUM_TOKENS)
    return num_tokens * slope + (base_shift - slope * BASE_SHIFT_NUM_TOKENS)  # the reference's evaluation order


def ltx2_sigmas(
    num_steps: int,
    num_tokens: int = MAX_SHIFT_NUM_TOKENS,
    base_shift: float = 0.95,
    max_shift: float = 2.05,
    terminal: float | None = 0.1,
) -> Tensor:
    """The LTX-2 schedule: (num_steps + 1,) float32 sigmas from 1.0 down to 0.0 (ltx-core's `LTX2Scheduler`).

    With s = linspace(1, 0, num_steps + 1) and mu = ltx2_shift(num_tokens):
        sigma = e^mu / (e^mu + 1/s - 1)            (0 stays 0)
        sigma <- 1 - (1 - sigma) (1 - terminal) / (1 - sigma_last)   over the non-zero sigmas,
    so sigma_0 stays 1 and the last non-zero sigma becomes exactly `terminal` (None: no stretch).

    num_tokens: video tokens F'·H'·W'. Every ltx-pipelines 1.0.0 pipeline except the HQ one leaves it at 4096 (mu = 2.05)
    whatever the resolution (spec §13.14); pass the real count for the token-count shift (the HQ pipeline does).
    """
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive int, got {num_steps!r}")
    if num_tokens < 1:
        raise ValueError(f"num_tokens must be >= 1 (video tokens F'*H'*W'), got {num_tokens}")
    if terminal is not None and not 0.0 < terminal < 1.0:
        raise ValueError(f"terminal must be in (0, 1) or None (no stretch), got {terminal}")
    mu = ltx2_shift(num_tokens, base_shift, max_shift)
    s = torch.linspace(1.0, 0.0, num_steps + 1)
    # float32 throughout, with the reference's operation order, so the schedule matches it bit for bit.
    sigmas = torch.where(s != 0, math.exp(mu) / (math.exp(mu) + (1 / s - 1)), 0.0)
    if terminal is not None:
        nonzero = sigmas != 0
        one_minus = 1.0 - sigmas[nonzero]
        sigmas[nonzero] = 1.0 - one_minus / (one_minus[-1] / (1.0 - terminal))
    return sigmas.to(torch.float32)


def x0_from_velocity(sample: Tensor, velocity: Tensor, timesteps: Tensor | float) -> Tensor:
    """x0 = x - v t, in float32, cast back to `sample`'s dtype (ltx-core's `X0Model`, spec §0.2).

    sample, velocity: (B, T, C). timesteps: per-token sigma, sigma · denoise_mask, (B, T, 1) float32 (or a float): a
    conditioning token with mask 0 gets t = 0, so its x0 is its own (clean) value.
    """
    if isinstance(timesteps, Tensor):
        timesteps = timesteps.to(torch.float32)
    return (sample.to(torch.float32) - velocity.to(torch.float32) * timesteps).to(sample.dtype)


def to_velocity(sample: Tensor, denoised: Tensor, sigma: float | Tensor) -> Tensor:
    """v = (x - x0) / sigma in float32, rounded to `sample`'s dtype (bf16 in the pipelines; spec §13.3).

    sample, denoised: same shape. sigma: the step's global noise level (a float, or a 0-dim tensor read once).
    """
    sigma = float(sigma)
    if sigma == 0.0:
        raise ValueError("sigma is 0: the velocity (x - x0) / sigma is undefined at the end of the schedule")
    return ((sample.to(torch.float32) - denoised.to(torch.float32)) / sigma).to(sample.dtype)


def blend_clean(denoised: Tensor, denoise_mask: Tensor, clean: Tensor) -> Tensor:
    """x0 · m + clean · (1 - m), in float32 and back to `denoised`'s dtype (ltx-pipelines' `post_process_latent`).

    denoised, clean: (B, T, C); denoise_mask: (B, T, 1) float32, 1 for generated tokens, 1 - strength for conditioning
    tokens. Applied to every x0 before a step, so a fully conditioned token (m = 0) keeps its clean value.
    """
    return (denoised * denoise_mask + clean.float() * (1 - denoise_mask)).to(denoised.dtype)


def euler_step(sample: Tensor, denoised: Tensor, sigma: float | Tensor, sigma_next: float | Tensor) -> Tensor:
    """One Euler step on an x0 prediction: x' = x + v (sigma_next - sigma), v = (x - x0) / sigma (spec §6.5).

    sample, denoised: (B, T, C) (any shape; same for both), `denoised` already blended with `blend_clean`, so
    conditioning tokens (x = x0 = clean) do not move. sigma, sigma_next: global noise levels (floats or 0-dim tensors).
    As 1.0.0 does: the velocity is rounded to the sample dtype before the update, the update runs in float32 with
    dt rounded to float32, and the result is cast back to the sample dtype (spec §13.3).
    """
    velocity = to_velocity(sample, denoised, sigma)
    dt = torch.tensor(float(sigma_next), dtype=torch.float32) - torch.tensor(float(sigma), dtype=torch.float32)
    return (sample.to(torch.float32) + velocity.to(torch.float32) * dt).to(sample.dtype)


# ----------------------------------------------------------------------------------------------------------------------
# res2s: the HQ pipeline's second-order exponential Runge-Kutta sampler with SDE re-noising (spec §6.5, §6.6)


def phi(j: int, z: float) -> float:
    """phi_j(z) = (e^z - sum_{k<j} z^k / k!) / z^j, with phi_j(0) = 1 / j! (exponential integrators)."""
    if abs(z) < 1e-10:
        return 1.0 / math.factorial(j)
    return (math.exp(z) - sum(z**k / math.factorial(k) for k in range(j))) / z**j


def res2s_coefficients(h: float, c2: float = 0.5) -> tuple[float, float, float]:
    """(a21, b1, b2) of res_2s for a step of log-size h = log(sigma / sigma_next), substep at c2:
    a21 = c2 phi1(-c2 h), b2 = phi2(-h) / c2, b1 = phi1(-h) - b2."""
    b2 = phi(2, -h) / c2
    return c2 * phi(1, -h * c2), phi(1, -h) - b2, b2


def sde_step(sample: Tensor, denoised: Tensor, sigma: Tensor, sigma_next: Tensor, noise: Tensor) -> Tensor:
    """Move to sigma_next and re-noise: half of sigma_next comes back as fresh noise (ltx-core's Res2sDiffusionStep).

    sigma_up = 0.5 sigma_next, sigma_res = sqrt(sigma_next^2 - sigma_up^2), alpha = 1 - sigma_next + sigma_res,
    sigma_down = sigma_res / alpha; eps = (x - x0) / (sigma - sigma_next); x' = alpha (x - sigma eps + sigma_down eps)
    + sigma_up noise. `denoised` is the deterministic estimate at sigma_next; it is returned as is when sigma_next = 0.
    sigma, sigma_next: 0-dim tensors; their dtype sets the coefficients' precision (the reference's substep passes
    float64, its step float32). sample, denoised, noise: float64, same shape. Returns `denoised`'s dtype.
    """
    sigma_up = torch.clamp(sigma_next * 0.5, max=sigma_next * 0.9999)
    sigma_residual = (sigma_next**2 - sigma_up**2).clamp(min=0) ** 0.5
    alpha = (1 - sigma_next) + sigma_residual
    sigma_down = sigma_residual / alpha
    sigma_down = torch.where(torch.isnan(sigma_down), sigma_next.to(sigma_down.dtype), sigma_down)
    sigma_up, alpha = torch.nan_to_num(sigma_up, 0.0), torch.nan_to_num(alpha, 1.0)
    if bool(sigma_up == 0) or bool(sigma_next == 0):
        return denoised
    eps = (sample - denoised) / (sigma - sigma_next)
    return (alpha * (sample - sigma * eps + sigma_down * eps) + sigma_up * noise).to(denoised.dtype)


def res2s_noise(like: Tensor, generator: torch.Generator) -> Tensor:
    """Standard-normal float64 noise shaped like `like`, standardised per sample and then over the last two dims, as
    ltx-pipelines' `_get_new_noise` (which runs one sample: its whole-tensor step is the per-sample one here, so a
    batch's first sample gets the noise it gets alone). Drawn on the generator's device."""
    noise = torch.randn(like.shape, generator=generator, dtype=torch.float64, device=generator.device)
    per_sample = tuple(range(1, noise.ndim))
    noise = (noise - noise.mean(dim=per_sample, keepdim=True)) / noise.std(dim=per_sample, keepdim=True)
    return (noise - noise.mean(dim=(-2, -1), keepdim=True)) / noise.std(dim=(-2, -1), keepdim=True)


@dataclass(frozen=True)
class SamplerStream:
    """One stream (video or audio) for a sampler: sample (B, T, C), denoise_mask (B, T, 1) float32, clean (B, T, C).

    Every x0 prediction is blended with `clean` by the mask (`blend_clean`), so conditioning tokens stay clean."""

    sample: Tensor
    denoise_mask: Tensor
    clean: Tensor


# k-diffusion's boundary: a sampler is `sample(model_x0, streams, sigmas, callback)`. model_x0(samples, sigma) returns
# one (unblended) x0 prediction per stream; callback(step_index, sigma, samples) runs after every step and returns the
# samples to go on with (the same, or replacements).
ModelX0 = Callable[[tuple[Tensor, ...], float], tuple[Tensor, ...]]
SamplerCallback = Callable[[int, float, tuple[Tensor, ...]], tuple[Tensor, ...]]
Sampler = Callable[[ModelX0, Sequence[SamplerStream], Tensor, SamplerCallback | None], tuple[Tensor, ...]]


def euler_sample(
    model_x0: ModelX0, streams: Sequence[SamplerStream], sigmas: Tensor, callback: SamplerCallback | None = None
) -> tuple[Tensor, ...]:
    """Euler on x0 predictions from sigmas[0] to sigmas[-1] (ltx-pipelines' `euler_denoising_loop`):
    for sigma, sigma_next in pairwise(sigmas): x = euler_step(x, blend_clean(model_x0(x, sigma)), sigma, sigma_next).

    sigmas: (N + 1,) float32, read as host floats (no device sync inside the loop). Returns one sample per stream."""
    sigmas = torch.as_tensor(sigmas, dtype=torch.float32).cpu()
    samples = tuple(stream.sample for stream in streams)
    for i in range(len(sigmas) - 1):
        x0 = model_x0(samples, float(sigmas[i]))
        samples = tuple(
            euler_step(x, blend_clean(d, s.denoise_mask, s.clean), sigmas[i], sigmas[i + 1])
            for x, d, s in zip(samples, x0, streams, strict=True)
        )
        if callback is not None:
            samples = callback(i, float(sigmas[i]), samples)
    return samples


def res2s_sample(
    model_x0: ModelX0,
    streams: Sequence[SamplerStream],
    sigmas: Tensor,
    callback: SamplerCallback | None = None,
    *,
    noise_seed: int = -1,
    substep_noise_seed: int | None = None,
    bongmath: bool = True,
    bongmath_max_iter: int = 100,
    model_dtype: torch.dtype | None = None,
) -> tuple[Tensor, ...]:
    """res_2s with SDE noise (the HQ pipeline's sampler, ltx-pipelines' `res2s_audio_video_denoising_loop`).

    model_x0(samples, sigma) -> x0 predictions (guided), one per stream, for samples in `model_dtype` (None: the
    first stream's dtype). The masks/clean latents of `streams` are blended into every x0 (`blend_clean`). sigmas: the
    schedule (float32); a final 0 is replaced by [0.0011, 0] and a last prediction at 0.0011 gives the result (as part
    of the last step); the callback runs after each of the N steps. The SDE noise comes from two generators seeded
    `noise_seed` (steps) and `substep_noise_seed` (default noise_seed + 10000) on the samples' device; the reference
    never passes a seed, so its noise is the same for every user seed. Arithmetic in float64 as the reference.
    Returns the final samples, one per stream, in `model_dtype`.
    """
    model_dtype = streams[0].sample.dtype if model_dtype is None else model_dtype
    sigmas = torch.as_tensor(sigmas, dtype=torch.float32).cpu()
    if substep_noise_seed is None:
        substep_noise_seed = noise_seed + 10000
    device = streams[0].sample.device
    step_generator = torch.Generator(device=device).manual_seed(noise_seed)
    substep_generator = torch.Generator(device=device).manual_seed(substep_noise_seed)
    num_full_steps = len(sigmas) - 1
    if sigmas[-1] == 0:  # a tiny last sigma instead of 0: log(sigma / sigma_next) must stay finite
        sigmas = torch.cat([sigmas[:-1], torch.tensor([0.0011, 0.0], device=sigmas.device)])
    log_steps = -torch.log(sigmas[1:].double().cpu() / sigmas[:-1].double().cpu())

    def denoise_blended(samples: tuple[Tensor, ...], sigma: float) -> tuple[Tensor, ...]:
        return tuple(blend_clean(x0, s.denoise_mask, s.clean) for x0, s in zip(model_x0(samples, sigma), streams))

    def renoise(generator, stream, sample, target, sigma, sigma_next):
        noise = res2s_noise(stream.sample, generator)
        return blend_clean(sde_step(sample, target, sigma, sigma_next, noise), stream.denoise_mask, stream.clean)

    samples = tuple(s.sample for s in streams)
    for i in range(num_full_steps):
        sigma, sigma_next = sigmas[i].double(), sigmas[i + 1].double()
        anchors = [x.clone().double() for x in samples]
        x0_1 = denoise_blended(samples, float(sigmas[i]))
        h = log_steps[i].item()
        a21, b1, b2 = res2s_coefficients(h)
        sigma_mid = torch.sqrt(sigma * sigma_next)
        eps_1 = [x0.double() - a for x0, a in zip(x0_1, anchors)]
        mids = [a.double() + h * a21 * e for a, e in zip(anchors, eps_1)]
        mids = [
            renoise(substep_generator, s, a, m, sigma, sigma_mid)
            for s, a, m in zip(streams, anchors, mids, strict=True)
        ]
        if bongmath and h < 0.5 and sigma > 0.03:  # re-anchor x so that x_mid = x + h a21 eps_1 holds after re-noising
            for _ in range(bongmath_max_iter):
                anchors = [m - h * a21 * e for m, e in zip(mids, eps_1)]
                eps_1 = [x0.double() - a for x0, a in zip(x0_1, anchors)]
        x0_2 = denoise_blended(tuple(m.to(model_dtype) for m in mids), float(sigma_mid))
        nexts = [a + h * (b1 * e1 + b2 * (x0.double() - a)) for a, e1, x0 in zip(anchors, eps_1, x0_2)]
        # the step-level re-noise reads the float32 schedule, the substep one float64 sigmas: as the reference
        nexts = [renoise(step_generator, s, a, n, sigmas[i], sigmas[i + 1]) for s, a, n in zip(streams, anchors, nexts)]
        samples = tuple(n.to(model_dtype) for n in nexts)
        if i == num_full_steps - 1 and sigmas[-1] == 0:  # the last step ends with a prediction at the tiny sigma
            samples = tuple(x0.to(model_dtype) for x0 in denoise_blended(samples, float(sigmas[num_full_steps])))
        if callback is not None:
            samples = callback(i, float(sigmas[i]), samples)
    return samples


# ----------------------------------------------------------------------------------------------------------------------
# diffusers wrapper


@dataclass
class LTX2SchedulerOutput(BaseOutput):
    """prev_sample: the sample at the next sigma, same shape and dtype as the input sample."""

    prev_sample: Tensor


class LTX2Scheduler(SchedulerMixin, ConfigMixin):
    """Flow-matching Euler scheduler with the LTX-2 schedule, in diffusers' shape (saved as `scheduler/` in a pipeline).

    Two kinds, chosen by the config:
    - "dev" (shifted): `ltx2_sigmas(num_inference_steps, num_tokens, base_shift, max_shift, shift_terminal)`, with
      num_tokens = `default_num_tokens` (4096, mu = 2.05, what ltx-pipelines does) unless `use_token_count_shift` is
      set and `set_timesteps` gets the real token count.
    - "distilled": `fixed_sigmas` holds the explicit list (e.g. `DISTILLED_SIGMAS`); `set_timesteps` then uses it.

    State: only `sigmas` / `timesteps` from the last `set_timesteps`; `step` takes the step index explicitly.
    """

    order = 1

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        base_shift: float = 0.95,
        max_shift: float = 2.05,
        shift_terminal: float | None = 0.1,
        use_token_count_shift: bool = False,
        default_num_tokens: int = MAX_SHIFT_NUM_TOKENS,
        fixed_sigmas: list[float] | None = None,
    ):
        if fixed_sigmas is not None:
            check_sigmas(fixed_sigmas)
        self.sigmas: Tensor | None = None
        self.timesteps: Tensor | None = None
        self.num_inference_steps: int | None = None

    @classmethod
    def distilled(cls, sigmas: Sequence[float] = DISTILLED_SIGMAS) -> "LTX2Scheduler":
        """A scheduler that always uses the explicit list `sigmas` (the distilled checkpoints' 8 steps by default)."""
        return cls(fixed_sigmas=[float(s) for s in sigmas])

    def get_sigmas(
        self,
        num_inference_steps: int | None = None,
        sigmas: Sequence[float] | Tensor | None = None,
        num_tokens: int | None = None,
        timesteps: Sequence[float] | Tensor | None = None,
    ) -> Tensor:
        """The (N + 1,) float32 schedule, ending in 0, as a value (the scheduler is not changed). Pipelines use this.

        num_inference_steps: N, for the shifted schedule (must equal len(fixed_sigmas) - 1 for a distilled config,
            and len(sigmas) - 1 with explicit sigmas).
        sigmas: an explicit list ending in 0 (N + 1 values), used as is (overrides the config's schedule).
        timesteps: diffusers' form of an explicit schedule, 1000 * sigma for each of the N steps (no final 0);
            give sigmas or timesteps, not both.
        num_tokens: video tokens F'·H'·W'; used only when the config sets `use_token_count_shift`.
        """
        cfg = self.config
        if timesteps is not None:
            if sigmas is not None:
                raise ValueError("pass sigmas or timesteps (1000 * sigma per step), not both")
            steps = torch.as_tensor(timesteps, dtype=torch.float32).flatten()
            sigmas = torch.cat([steps / cfg.num_train_timesteps, steps.new_zeros(1)])
        if sigmas is None and cfg.fixed_sigmas is not None:
            sigmas = cfg.fixed_sigmas
            if num_inference_steps is not None and num_inference_steps != len(sigmas) - 1:
                raise ValueError(
                    f"num_inference_steps={num_inference_steps}, but this scheduler's config fixes {len(sigmas) - 1} "
                    f"steps (fixed_sigmas={list(sigmas)}). Pass num_inference_steps=None, or explicit sigmas=."
                )
        elif sigmas is not None:
            sigmas = torch.as_tensor(sigmas, dtype=torch.float32).flatten()
            if float(sigmas[-1]) != 0.0:
                raise ValueError(
                    f"sigmas must end at 0 (the clean sample): got {sigmas.tolist()}. Append 0.0; diffusers' form "
                    "without the final 0 is `timesteps=` (1000 * sigma per step)."
                )
            if num_inference_steps is not None and num_inference_steps != len(sigmas) - 1:
                raise ValueError(
                    f"num_inference_steps={num_inference_steps} disagrees with the {len(sigmas)} sigmas given "
                    f"({len(sigmas) - 1} steps): pass one of them, or make them agree"
                )
        if sigmas is not None:
            sigmas = torch.as_tensor(sigmas, dtype=torch.float32).flatten()
            check_sigmas(sigmas.tolist())
            return sigmas
        if num_inference_steps is None:
            raise ValueError("set_timesteps needs num_inference_steps or sigmas=")
        tokens = num_tokens if (cfg.use_token_count_shift and num_tokens is not None) else cfg.default_num_tokens
        return ltx2_sigmas(num_inference_steps, tokens, cfg.base_shift, cfg.max_shift, cfg.shift_terminal)

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: str | torch.device | None = None,
        sigmas: Sequence[float] | Tensor | None = None,
        num_tokens: int | None = None,
        timesteps: Sequence[float] | Tensor | None = None,
    ) -> None:
        """Set `sigmas` ((N + 1,) float32, ending in 0) and `timesteps` (1000 · sigmas[:-1]): `get_sigmas`, stored for
        diffusers-style loops that call `step`. The pipelines pass sigmas as values and do not use this state."""
        sigmas = self.get_sigmas(num_inference_steps, sigmas, num_tokens, timesteps)
        self.sigmas = sigmas.to(device)
        self.timesteps = self.sigmas[:-1] * self.config.num_train_timesteps
        self.num_inference_steps = len(sigmas) - 1

    def step(
        self, denoised: Tensor, sample: Tensor, step_index: int, return_dict: bool = True
    ) -> LTX2SchedulerOutput | tuple[Tensor]:
        """Euler from sigmas[step_index] to sigmas[step_index + 1] on the x0 prediction `denoised` (see `euler_step`).

        denoised, sample: (B, T, C) tokens (or any equal shapes); blend conditioning tokens first (`blend_clean`).
        """
        if self.sigmas is None:
            raise ValueError("call set_timesteps before step")
        if not 0 <= step_index < len(self.sigmas) - 1:
            raise ValueError(f"step_index={step_index} is outside [0, {len(self.sigmas) - 2}] for these sigmas")
        sigmas = self.sigmas.cpu()  # one host copy: sigmas are read as floats (spec §13.3)
        prev = euler_step(sample, denoised, sigmas[step_index], sigmas[step_index + 1])
        return LTX2SchedulerOutput(prev_sample=prev) if return_dict else (prev,)


def check_sigmas(sigmas: Sequence[float]) -> None:
    """An explicit schedule must have at least 2 values in [0, 1], strictly decreasing."""
    values = [float(s) for s in sigmas]
    if len(values) < 2:
        raise ValueError(f"a sigma schedule needs at least 2 values (start and end), got {values}")
    if any(not 0.0 <= s <= 1.0 for s in values) or any(a <= b for a, b in zip(values, values[1:])):
        raise ValueError(f"sigmas must lie in [0, 1] and decrease strictly, got {values}")


def as_ltx2_scheduler(scheduler: SchedulerMixin) -> "LTX2Scheduler":
    """An `LTX2Scheduler` for `scheduler`: itself, or one converted from diffusers' `FlowMatchEulerDiscreteScheduler`.

    A FlowMatch config with dynamic shifting (diffusers' LTX-2 dev repos) keeps its base_shift / max_shift /
    shift_terminal, applied the reference's way (a fixed 4096-token shift, spec §13.14); one without (diffusers'
    default, and its distilled repos) becomes the reference's dev schedule. For the distilled 8 steps use
    `LTX2Scheduler.distilled()`, `kind="distilled"` when loading, or pass `sigmas=DISTILLED_SIGMAS`.
    """
    if isinstance(scheduler, LTX2Scheduler):
        return scheduler
    from diffusers import FlowMatchEulerDiscreteScheduler

    if isinstance(scheduler, FlowMatchEulerDiscreteScheduler):
        if scheduler.config.use_dynamic_shifting:
            return LTX2Scheduler.from_config(scheduler.config)
        return LTX2Scheduler()
    raise TypeError(
        f"scheduler must be an LTX2Scheduler (the reference's schedule and x0 Euler steps) or diffusers' "
        f"FlowMatchEulerDiscreteScheduler (converted), got {type(scheduler).__name__}. Use LTX2Scheduler() or "
        "LTX2Scheduler.distilled()."
    )
