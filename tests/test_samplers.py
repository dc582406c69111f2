"""Euler-ancestral and CFG++ (`schedulers/samplers.py`) against ltx-pipelines 1.2.0's loops (spec 1.2 §10 G6).

The goldens (tests/goldens/samplers/, written by scripts/goldens/samplers.py with the 1.2.0 oracle) hold the loops'
final samples on a toy denoiser (guided x0 = 0.5 x, unconditional x0 = 0.3 x) over the distilled sigmas, with frozen
and partly conditioned tokens, in float32 and bfloat16. Ours run on the same inputs and must match bit for bit; the
deterministic Euler and res2s samplers are checked against the same file.
"""

import inspect
import json
from functools import partial
from importlib import import_module
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from ltx2_diffusers.schedulers.samplers import (
    ancestral_sigmas,
    cfg_pp_sample,
    cfg_pp_step,
    euler_ancestral_sample,
    euler_ancestral_step,
)
from ltx2_diffusers.schedulers.scheduling_ltx2 import SamplerStream, euler_sample, res2s_sample

GOLDENS = Path(__file__).parent / "goldens" / "samplers" / "samplers.safetensors"
GUIDED, UNCOND = 0.5, 0.3  # the generator's toy denoiser

SAMPLERS = {
    "euler": euler_sample,
    "euler_ancestral": partial(euler_ancestral_sample, eta=1.0, noise_seed=10010),
    "euler_ancestral_eta0.5_snoise0.8": partial(euler_ancestral_sample, eta=0.5, s_noise=0.8, noise_seed=3),
    "euler_ancestral_eta0": partial(euler_ancestral_sample, eta=0.0),
    "cfg_pp": partial(cfg_pp_sample, eta=1.0, noise_seed=10010),
    "cfg_pp_eta0": partial(cfg_pp_sample, eta=0.0),
    "res2s": partial(res2s_sample, noise_seed=-1),
}


@pytest.fixture(scope="module")
def goldens() -> dict[str, torch.Tensor]:
    return load_file(GOLDENS)


def toy_model(samples: tuple[torch.Tensor, ...], sigma: float, with_uncond: bool = False) -> tuple[torch.Tensor, ...]:
    guided = tuple(x * GUIDED for x in samples)
    return (*guided, *(x * UNCOND for x in samples)) if with_uncond else guided


def streams_of(goldens, dtype: torch.dtype) -> list[SamplerStream]:
    return [
        SamplerStream(
            goldens[f"{m}.latent"].to(dtype), goldens[f"{m}.denoise_mask"], goldens[f"{m}.clean_latent"].to(dtype)
        )
        for m in ("video", "audio")
    ]


def test_goldens_were_made_with_the_settings_used_here():
    with safe_open(str(GOLDENS), "pt") as f:
        metadata = f.metadata()
    assert metadata["reference"] == "ltx-core / ltx-pipelines 1.2.0"
    assert (float(metadata["guided"]), float(metadata["uncond"])) == (GUIDED, UNCOND)
    loops = json.loads(metadata["loops"])
    assert set(loops) == set(SAMPLERS)
    assert loops["euler_ancestral"]["noise_seed"] == 10010 and "'eta': 1.0" in loops["euler_ancestral"]["stepper"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("name", list(SAMPLERS))
def test_samplers_match_ltx_pipelines_1_2(goldens, name, dtype):
    dtype_name = str(dtype).removeprefix("torch.")
    video, audio = SAMPLERS[name](toy_model, streams_of(goldens, dtype), goldens["sigmas"])
    assert video.dtype == audio.dtype == dtype
    torch.testing.assert_close(video.float(), goldens[f"{dtype_name}.{name}.video"], rtol=0, atol=0)
    torch.testing.assert_close(audio.float(), goldens[f"{dtype_name}.{name}.audio"], rtol=0, atol=0)


def test_frozen_tokens_stay_clean_and_the_noise_follows_the_seed(goldens):
    streams = streams_of(goldens, torch.float32)
    for sampler in (euler_ancestral_sample, cfg_pp_sample):
        first = sampler(toy_model, streams, goldens["sigmas"][:4], noise_seed=1)  # ends at 0.98125: still noisy
        again = sampler(toy_model, streams, goldens["sigmas"][:4], noise_seed=1)
        other = sampler(toy_model, streams, goldens["sigmas"][:4], noise_seed=2)
        for out, stream, frozen in zip(first, streams, (8, 2), strict=True):
            torch.testing.assert_close(out[:, :frozen], stream.clean[:, :frozen], rtol=0, atol=0)
        assert all(torch.equal(a, b) for a, b in zip(first, again))
        assert not torch.equal(first[0][:, 9:], other[0][:, 9:])


def test_steps_reduce_to_euler_and_follow_their_formulas():
    x, x0 = torch.randn(2, 5, generator=torch.Generator().manual_seed(0)), torch.full((2, 5), 0.25)
    sigma, sigma_next = torch.tensor(0.8), torch.tensor(0.5)
    euler = x + (x - x0) / sigma * (sigma_next - sigma)
    torch.testing.assert_close(euler_ancestral_step(x, x0, sigma, sigma_next, None, 0.0, 1.0), euler)
    # eta = 1: sigma_down = sigma_next^2 / sigma = 0.3125; the noise is scaled to bring x back to sigma_next
    noise = torch.ones(2, 5)
    alpha_ratio = (1 - 0.5) / (1 - 0.3125)
    renoise = (0.5**2 - 0.3125**2 * alpha_ratio**2) ** 0.5
    expected = alpha_ratio * (0.3125 / 0.8 * x + (1 - 0.3125 / 0.8) * x0) + renoise
    torch.testing.assert_close(euler_ancestral_step(x, x0, sigma, sigma_next, noise, 1.0, 1.0), expected)
    # CFG++ with eta = 0 and uncond = x0 is DDIM, which for rectified flow is Euler
    torch.testing.assert_close(cfg_pp_step(x, x0, x0, sigma, sigma_next, None, 0.0, 1.0), euler)
    down, up = ancestral_sigmas(torch.tensor(2.0), torch.tensor(1.0), 1.0)
    torch.testing.assert_close((down, up), (torch.tensor(0.5), torch.tensor(0.75).sqrt()))  # 1 - 3/4, 3/4


def test_bad_settings_are_refused(goldens):
    streams = streams_of(goldens, torch.float32)
    with pytest.raises(ValueError, match=r"eta=-0.5 must be a finite number >= 0"):
        euler_ancestral_sample(toy_model, streams, goldens["sigmas"], eta=-0.5)
    with pytest.raises(ValueError, match=r"model_x0 returned 2 predictions for 2 streams"):
        cfg_pp_sample(lambda samples, sigma, with_uncond: toy_model(samples, sigma), streams, goldens["sigmas"])
    with pytest.raises(ValueError, match=r"adds noise: pass noise"):
        euler_ancestral_step(torch.ones(1), torch.ones(1), torch.tensor(0.5), torch.tensor(0.2), None, 1.0, 1.0)


# ----------------------------------------------------------------------------------------------------------------------
# Through `denoise`, on a tiny transformer with an image-conditioned first latent frame


@pytest.fixture(scope="module")
def tiny_denoise():
    from _transformer_helpers import OUR_CONFIGS, init_every_parameter
    from helpers.pipelines import make_contexts, make_states

    from ltx2_diffusers.models.transformer_ltx2 import LTX2VideoTransformer3DModel
    from ltx2_diffusers.pipelines.denoising import denoise

    transformer = LTX2VideoTransformer3DModel(**OUR_CONFIGS["ltx2"]).eval()
    init_every_parameter(transformer, 0)
    video, audio = make_states(1, "image")
    return partial(denoise, transformer, video, audio, make_contexts(1)), video


def test_denoise_runs_euler_ancestral(tiny_denoise, goldens):
    from ltx2_diffusers.pipelines.guidance import GuidanceScales

    run, video = tiny_denoise
    sigmas, neutral = goldens["sigmas"][:5], GuidanceScales()
    with torch.no_grad():
        ancestral, _ = run(sigmas, neutral, neutral, sampler=partial(euler_ancestral_sample, noise_seed=10010))
        no_noise, _ = run(sigmas, neutral, neutral, sampler=partial(euler_ancestral_sample, eta=0.0))
        euler, _ = run(sigmas, neutral, neutral)
    frozen = video.denoise_mask[0, :, 0] == 0
    assert int(frozen.sum()) == 12  # the image's latent frame: 3 x 4 tokens
    torch.testing.assert_close(ancestral.latent[:, frozen], video.clean_latent[:, frozen], rtol=0, atol=0)
    torch.testing.assert_close(no_noise.latent, euler.latent, rtol=0, atol=1e-5)  # eta = 0 is Euler (rounding)
    assert (ancestral.latent - euler.latent).abs().max() > 0.1


@pytest.mark.skipif(
    "with_uncond" not in inspect.signature(import_module("ltx2_diffusers.pipelines.denoising").guided_x0).parameters,
    reason="needs the pipelines/denoising.py hunk (guided_x0 / guided_model with_uncond) from the extend helper's report",
)
def test_denoise_runs_cfg_pp_with_the_unconditional_prediction(tiny_denoise, goldens):
    from ltx2_diffusers.pipelines.guidance import GuidanceScales

    run, video = tiny_denoise
    sigmas, guided = goldens["sigmas"][:5], GuidanceScales(cfg=3.0)
    with torch.no_grad():
        cfg_pp, _ = run(sigmas, guided, guided, sampler=partial(cfg_pp_sample, eta=0.0))
        euler, _ = run(sigmas, guided, guided)
        frozen = video.denoise_mask[0, :, 0] == 0
        # eta = 0 draws no noise, so (as the reference) nothing re-blends after the step: frozen tokens (x0 = x at
        # their sigma 0) stay clean up to float32 rounding of alpha x0 + alpha sigma' d
        torch.testing.assert_close(cfg_pp.latent[:, frozen], video.clean_latent[:, frozen], rtol=0, atol=2e-6)
        assert (cfg_pp.latent - euler.latent).abs().max() > 1e-3  # steps along the uncond direction, not Euler's
        with pytest.raises(ValueError, match=r"steps along the unconditional prediction, which runs only when"):
            run(sigmas, GuidanceScales(), GuidanceScales(), sampler=cfg_pp_sample)
