"""training/objective.py: ltx-trainer's sigma sampler (spec §3.1 values), noising, velocity target, masked loss, streams
by role, first-frame conditioning, and the modes table."""

import pytest
import torch

from ltx2_diffusers.training.objective import (
    MODES,
    SigmaSampler,
    Stream,
    TrainingMode,
    frozen_stream,
    generated_stream,
    get_mode,
    logit_normal_shift,
    masked_loss,
    noise_latents,
    shifted_logit_normal_sigmas,
    uniform_sigmas,
    velocity_target,
)


def test_shift_is_linear_in_tokens_and_unclamped():
    # spec §3.1 table: mu(51) = 0.6016, mu(2688) = 1.5458, mu(6120) = 2.7747; anchors 1024 -> 0.95, 4096 -> 2.05
    assert logit_normal_shift(1024) == pytest.approx(0.95)
    assert logit_normal_shift(4096) == pytest.approx(2.05)
    assert logit_normal_shift(51) == pytest.approx(0.6016, abs=1e-4)
    assert logit_normal_shift(2688) == pytest.approx(1.5458, abs=1e-4)
    assert logit_normal_shift(6120) == pytest.approx(2.7747, abs=1e-4)


def test_sampler_matches_ltx_trainer_draws():
    # spec §3.1: after torch.manual_seed(0) on the CPU, five samples for n = 2688
    torch.manual_seed(0)
    sigmas = shifted_logit_normal_sigmas(5, 2688)
    expected = torch.tensor([0.953182, 0.707577, 0.115151, 0.865098, 0.481550])
    torch.testing.assert_close(sigmas, expected, atol=1e-6, rtol=0)
    assert sigmas.dtype == torch.float32


def test_sampler_by_hand_with_one_draw():
    # recompute the recipe for one sample from the same three draws
    generator = torch.Generator().manual_seed(3)
    got = shifted_logit_normal_sigmas(1, 1024, uniform_prob=0.0, generator=generator)
    generator = torch.Generator().manual_seed(3)
    z, u, _ = (
        torch.randn(1, generator=generator),
        torch.rand(1, generator=generator),
        torch.rand(1, generator=generator),
    )
    mu = 0.95
    lo, hi = torch.sigmoid(torch.tensor(mu - 2.5758)), torch.sigmoid(torch.tensor(mu + 3.0902))
    r = (torch.sigmoid(z + mu) - lo) / (hi - lo)
    r = torch.where(r >= 1e-3, r, 2e-3 - r).clamp(0, 1)
    torch.testing.assert_close(got, r)
    # uniform_prob = 1 always takes the uniform fallback (1 - eps) U + eps of the second draw
    generator = torch.Generator().manual_seed(3)
    got = shifted_logit_normal_sigmas(1, 1024, uniform_prob=1.0, generator=generator)
    torch.testing.assert_close(got, (1 - 1e-3) * u + 1e-3)


def test_sampler_distribution_and_bounds():
    generator = torch.Generator().manual_seed(0)
    sigmas = shifted_logit_normal_sigmas(200_000, 2688, generator=generator)
    assert sigmas.min() >= 0 and sigmas.max() == 1.0  # values above the upper quantile clamp to exactly 1
    assert sigmas.mean().item() == pytest.approx(0.697, abs=0.01)  # spec §3.1 table, n = 2688
    assert sigmas.median().item() == pytest.approx(0.757, abs=0.01)
    uniform = uniform_sigmas(4, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(uniform, torch.rand(4, generator=torch.Generator().manual_seed(1)))


def test_sampler_settings_are_checked():
    with pytest.raises(ValueError, match="must be 'shifted_logit_normal' or 'uniform', got 'cosmap'"):
        SigmaSampler("cosmap")
    with pytest.raises(ValueError, match="need logit_std > 0"):
        SigmaSampler(std=0.0)


def test_noising_target_and_masked_loss_by_hand():
    x0 = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])  # (B=1, T=2, C=2)
    noise = torch.tensor([[[0.0, 1.0], [-1.0, 0.0]]])
    x = noise_latents(x0, noise, torch.tensor([0.25]))
    torch.testing.assert_close(x, torch.tensor([[[0.75, 1.75], [2.0, 3.0]]]))  # 0.75 x0 + 0.25 noise
    target = velocity_target(x0, noise)
    torch.testing.assert_close(target, torch.tensor([[[-1.0, -1.0], [-4.0, -4.0]]]))
    prediction = torch.tensor([[[0.0, -1.0], [-4.0, -2.0]]])  # squared errors: (1, 0) and (0, 4)
    all_tokens = masked_loss(prediction, target, torch.tensor([[True, True]]))
    torch.testing.assert_close(all_tokens, torch.tensor([1.25]))  # (1 + 0 + 0 + 4) / 4
    second_only = masked_loss(prediction, target, torch.tensor([[False, True]]))
    torch.testing.assert_close(second_only, torch.tensor([2.0]))  # (0 + 4) / 4, divided by the kept fraction 1/2
    nothing = masked_loss(prediction, target, torch.tensor([[False, False]]))
    torch.testing.assert_close(nothing, torch.tensor([0.0]))


def test_generated_stream_draws_in_ltx_trainer_order():
    x0 = torch.randn(2, 6, 4)
    sampler = SigmaSampler()
    stream = generated_stream(x0, sampler, torch.Generator().manual_seed(7))
    generator = torch.Generator().manual_seed(7)
    sigma = sampler(2, 6, generator)  # draws 1-3: sigma, with this modality's token count
    noise = torch.randn(x0.shape, generator=generator)  # then the noise
    torch.testing.assert_close(stream.sigma, sigma)
    torch.testing.assert_close(stream.latent, (1 - sigma[:, None, None]) * x0 + sigma[:, None, None] * noise)
    torch.testing.assert_close(stream.target, noise - x0)
    torch.testing.assert_close(stream.timesteps, sigma[:, None].expand(2, 6))
    assert stream.loss_mask.all()


def test_first_frame_tokens_are_clean_at_timestep_zero_and_out_of_the_loss():
    x0 = torch.randn(2, 6, 4)
    stream = generated_stream(x0, SigmaSampler(), torch.Generator().manual_seed(0), first_frame_tokens=2,
                              first_frame_p=1.0)  # fmt: skip
    torch.testing.assert_close(stream.latent[:, :2], x0[:, :2])
    assert (stream.timesteps[:, :2] == 0).all() and (stream.timesteps[:, 2:] > 0).all()
    assert stream.loss_mask.tolist() == [[False, False, True, True, True, True]] * 2
    assert (stream.sigma > 0).all()  # the sample's sigma is unchanged (spec §3.4)


def test_frozen_stream_is_clean_with_zero_sigma_and_no_loss():
    x0 = torch.randn(1, 3, 4)
    stream = frozen_stream(x0)
    assert stream.latent is x0 and stream.target is None and stream.loss_mask is None
    assert stream.sigma.tolist() == [0.0] and stream.timesteps.tolist() == [[0.0, 0.0, 0.0]]


def test_modes_are_data_and_unknown_modes_say_so():
    assert MODES["t2av"] == TrainingMode(
        "t2av", Stream.GENERATED, Stream.GENERATED, description=MODES["t2av"].description
    )
    assert MODES["t2v"].audio is Stream.ABSENT and not MODES["t2v"].needs_audio
    assert (MODES["a2v"].video, MODES["a2v"].audio) == (Stream.GENERATED, Stream.FROZEN)
    assert (MODES["v2a"].video, MODES["v2a"].audio) == (Stream.FROZEN, Stream.GENERATED)
    assert (get_mode("audio").video, get_mode("audio").audio) == (Stream.ABSENT, Stream.GENERATED)
    with pytest.raises(ValueError, match=r"unknown --mode 'x2y'\. Modes that exist: t2v, t2av, i2v, a2v, v2a, ic_lora, "
                       r"audio\.$"):  # fmt: skip
        get_mode("x2y")
    with pytest.raises(ValueError, match="generates neither video nor audio"):
        TrainingMode("none", Stream.FROZEN, Stream.ABSENT)
    with pytest.raises(ValueError, match="first-frame conditioning needs a generated video stream"):
        TrainingMode("bad", Stream.FROZEN, Stream.GENERATED, first_frame_p=0.5)
    with pytest.raises(ValueError, match="a reference video conditions a generated video stream"):
        TrainingMode("bad", Stream.FROZEN, Stream.GENERATED, reference=True)
    assert MODES["ic_lora"].reference and MODES["ic_lora"].first_frame_p == 0.2  # ltx-trainer's v2v_ic_lora.yaml
