"""Stochastic Euler samplers of ltx-core / ltx-pipelines 1.2.0: Euler-ancestral and CFG++ (spec 1.2 §9 traps 22-23).

Both are k-diffusion samplers over x0 predictions, `sample(model_x0, streams, sigmas, callback, ...)` like
`scheduling_ltx2.euler_sample`, so `denoising.denoise(sampler=...)` runs them on the guided transformer:

    denoise(..., sampler=partial(euler_ancestral_sample, eta=1.0, noise_seed=seed + 10000))   # LTX-2.5 distilled

Rectified flow: x_sigma = (1 - sigma) x0 + sigma eps, alpha = 1 - sigma. Each step moves deterministically to a lower
noise level sigma_down and re-noises with fresh Gaussian noise to sigma_next; eta = 0 is plain Euler (no noise).
As the reference: every x0 is blended with the clean latents by the denoise mask first (`blend_clean`), the step runs
in float32, the re-noised sample is blended again (frozen tokens stay clean) and stored in the samples' dtype; the
last step (sigma_next = 0) returns the blended x0 itself. Noise: `torch.randn` in the samples' dtype from one
generator seeded `noise_seed` on the samples' device, video before audio at every step (the streams' order).
"""

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .scheduling_ltx2 import ModelX0, SamplerCallback, SamplerStream, blend_clean

# ----------------------------------------------------------------------------------------------------------------------
# Steps (pure functions; sigmas are float32 0-dim tensors, samples float32)


def euler_ancestral_step(
    x: Tensor, denoised: Tensor, sigma: Tensor, sigma_next: Tensor, noise: Tensor | None, eta: float, s_noise: float
) -> Tensor:
    """One rectified-flow ancestral step (ltx-core 1.2.0's `EulerAncestralDiffusionStep`, spec trap 22):

        sigma_down = sigma_next (1 + (sigma_next / sigma - 1) eta)                   (eta = 1: sigma_next^2 / sigma)
        x'         = (sigma_down / sigma) x + (1 - sigma_down / sigma) x0           (Euler to sigma_down)
        x_next     = (alpha_next / alpha_down) x' + s_noise eps sqrt(max(sigma_next^2 - sigma_down^2
                     alpha_next^2 / alpha_down^2, 0))                                 (re-noise to sigma_next)

    The rescale by alpha_next / alpha_down keeps x_next at noise level sigma_next in rectified flow; this is why it
    is not k-diffusion's variance-exploding `get_ancestral_step`, which `cfg_pp_step` uses. eta = 0: no noise
    (`noise` may be None). sigma_next must be > 0 (the sampler returns x0 at the last step).
    """
    sigma_down = sigma_next * (1.0 + (sigma_next / sigma - 1.0) * eta)
    ratio = sigma_down / sigma
    x_next = ratio * x + (1.0 - ratio) * denoised
    if eta > 0:
        if noise is None:
            raise ValueError("euler_ancestral_step with eta > 0 adds noise: pass noise")
        alpha_next, alpha_down = 1.0 - sigma_next, 1.0 - sigma_down
        renoise = (sigma_next**2 - sigma_down**2 * alpha_next**2 / alpha_down**2).clamp(min=0) ** 0.5
        x_next = (alpha_next / alpha_down) * x_next + noise * s_noise * renoise
    return x_next


def ancestral_sigmas(sigma_from: Tensor, sigma_to: Tensor, eta: float) -> tuple[Tensor, Tensor]:
    """(sigma_down, sigma_up) of a DDIM / variance-exploding ancestral step (k-diffusion's `get_ancestral_step`):
    sigma_up = min(eta sqrt(sigma_to^2 (sigma_from^2 - sigma_to^2) / sigma_from^2), sigma_to),
    sigma_down = sqrt(sigma_to^2 - sigma_up^2). eta = 0: (sigma_to, 0)."""
    if not eta:
        return sigma_to, torch.zeros_like(sigma_to)
    variance = sigma_to**2 * (sigma_from**2 - sigma_to**2).clamp(min=0) / sigma_from**2
    sigma_up = (eta * variance**0.5).clamp(max=sigma_to)
    return (sigma_to**2 - sigma_up**2).clamp(min=0) ** 0.5, sigma_up


def cfg_pp_step(
    x: Tensor,
    denoised: Tensor,
    uncond: Tensor,
    sigma: Tensor,
    sigma_next: Tensor,
    noise: Tensor | None,
    eta: float,
    s_noise: float,
) -> Tensor:
    """One CFG++ step (Chung et al. 2024, arXiv:2406.08070; ltx-core 1.2.0's `EulerCfgPpDiffusionStep`, trap 23):
    the direction back to noise comes from the UNconditional x0, the target from the guided one.

        d = (x - alpha_s x0_uncond) / sigma_s,       alpha = max(1 - sigma, float32 eps)
        (sigma_down', sigma_up) = ancestral_sigmas(sigma_s / alpha_s, sigma_t / alpha_t, eta)   (sigma / alpha space)
        x_next = alpha_t x0 + alpha_t sigma_down' d + alpha_t s_noise sigma_up eps     (the noise term: eta, s_noise > 0)
    """
    eps = torch.finfo(torch.float32).eps
    alpha, alpha_next = (1.0 - sigma).clamp(min=eps), (1.0 - sigma_next).clamp(min=eps)
    d = (x - alpha * uncond) / sigma
    sigma_down, sigma_up = ancestral_sigmas(sigma / alpha, sigma_next / alpha_next, eta)
    x_next = alpha_next * denoised + alpha_next * sigma_down * d
    if eta > 0 and s_noise > 0:
        if noise is None:
            raise ValueError("cfg_pp_step with eta > 0 and s_noise > 0 adds noise: pass noise")
        x_next = x_next + alpha_next * noise * s_noise * sigma_up
    return x_next


# ----------------------------------------------------------------------------------------------------------------------
# Samplers

StochasticStep = Callable[[Tensor, Tensor, Tensor | None, Tensor, Tensor, Tensor | None], Tensor]


def _stochastic_sample(
    model_x0: ModelX0,
    streams: Sequence[SamplerStream],
    sigmas: Tensor,
    callback: SamplerCallback | None,
    step: StochasticStep,
    draws_noise: bool,
    noise_seed: int,
    with_uncond: bool,
) -> tuple[Tensor, ...]:
    """The loop both samplers share: predict, blend, step each stream in float32 with fresh noise, blend again."""
    sigmas = torch.as_tensor(sigmas, dtype=torch.float32).cpu()
    samples = tuple(stream.sample for stream in streams)
    generator = torch.Generator(device=samples[0].device).manual_seed(noise_seed)
    n = len(streams)
    for i in range(len(sigmas) - 1):
        sigma = float(sigmas[i])
        predictions = model_x0(samples, sigma, with_uncond=True) if with_uncond else model_x0(samples, sigma)
        if len(predictions) != (2 * n if with_uncond else n):
            raise ValueError(f"model_x0 returned {len(predictions)} predictions for {n} streams")
        guided = [blend_clean(x0.float(), s.denoise_mask, s.clean) for x0, s in zip(predictions[:n], streams)]
        unconds = predictions[n:] if with_uncond else [None] * n
        if float(sigmas[i + 1]) == 0.0:  # the last step ends on the prediction itself
            samples = tuple(x0.to(s.sample.dtype) for x0, s in zip(guided, streams, strict=True))
        else:
            stepped = []
            for x, x0, uncond, stream in zip(samples, guided, unconds, streams, strict=True):
                noise = (
                    torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device) if draws_noise else None
                )
                uncond = None if uncond is None else uncond.float()
                x_next = step(x.float(), x0, uncond, sigmas[i], sigmas[i + 1], None if noise is None else noise.float())
                if draws_noise:  # fresh noise reached the frozen tokens too: back to their clean values
                    x_next = blend_clean(x_next, stream.denoise_mask, stream.clean)
                stepped.append(x_next.to(x.dtype))
            samples = tuple(stepped)
        if callback is not None:
            samples = callback(i, sigma, samples)
    return samples


def euler_ancestral_sample(
    model_x0: ModelX0,
    streams: Sequence[SamplerStream],
    sigmas: Tensor,
    callback: SamplerCallback | None = None,
    *,
    eta: float = 1.0,
    s_noise: float = 1.0,
    noise_seed: int = -1,
) -> tuple[Tensor, ...]:
    """Euler-ancestral over guided x0 predictions (ltx-pipelines 1.2.0's `euler_ancestral_denoising_loop`).

    for sigma, sigma_next in pairwise(sigmas): x = euler_ancestral_step(x, blend(model_x0(x, sigma)), ..., randn)
    eta: 1 fully ancestral (LTX-2.5's distilled stage 1, with noise_seed = seed + 10000), 0 plain Euler (no noise is
    drawn). s_noise scales the fresh noise. Returns one sample per stream, in its dtype.
    """
    _check_eta(eta, s_noise, "euler_ancestral_sample")

    def step(x, x0, _uncond, sigma, sigma_next, noise):
        return euler_ancestral_step(x, x0, sigma, sigma_next, noise, eta, s_noise)

    return _stochastic_sample(model_x0, streams, sigmas, callback, step, eta > 0, noise_seed, with_uncond=False)


def cfg_pp_sample(
    model_x0: ModelX0,
    streams: Sequence[SamplerStream],
    sigmas: Tensor,
    callback: SamplerCallback | None = None,
    *,
    eta: float = 1.0,
    s_noise: float = 1.0,
    noise_seed: int = -1,
) -> tuple[Tensor, ...]:
    """CFG++ over guided x0 predictions (ltx-pipelines 1.2.0's `euler_cfg_pp_denoising_loop`; no reference pipeline
    uses it). It calls `model_x0(samples, sigma, with_uncond=True)`, which returns the guided x0 of every stream, then
    the unconditional (negative-prompt) pass's raw x0 of every stream: guidance must have cfg != 1. The uncond x0 is
    not blended with the clean latents (as the reference). Noise is drawn only when eta > 0 and s_noise > 0.
    """
    _check_eta(eta, s_noise, "cfg_pp_sample")

    def step(x, x0, uncond, sigma, sigma_next, noise):
        return cfg_pp_step(x, x0, uncond, sigma, sigma_next, noise, eta, s_noise)

    draws = eta > 0 and s_noise > 0
    return _stochastic_sample(model_x0, streams, sigmas, callback, step, draws, noise_seed, with_uncond=True)


def _check_eta(eta: float, s_noise: float, name: str) -> None:
    for label, value in (("eta", eta), ("s_noise", s_noise)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name}: {label}={value!r} must be a finite number >= 0 (eta: 0 Euler .. 1 ancestral)")
