import pytest
import torch
from ltx_core.components.diffusion_steps import EulerDiffusionStep, Res2sDiffusionStep
from ltx_core.components.schedulers import LTX2Scheduler as CoreLTX2Scheduler
from ltx_core.utils import to_denoised, to_velocity

from ltx2_diffusers.schedulers.scheduling_ltx2 import (
    DISTILLED_SIGMAS,
    STAGE_2_DISTILLED_SIGMAS,
    LTX2Scheduler,
    SamplerStream,
    blend_clean,
    euler_step,
    ltx2_shift,
    ltx2_sigmas,
    res2s_sample,
    x0_from_velocity,
)
from ltx2_diffusers.schedulers.scheduling_ltx2 import to_velocity as our_to_velocity

# spec §6.1 reference values, float32 rounded to 5 decimals
SIGMAS_40 = [1.0, 0.99645, 0.99274, 0.98885, 0.98478, 0.98051, 0.97603, 0.97131, 0.96635, 0.96112, 0.95559, 0.94975,
             0.94357, 0.93701, 0.93004, 0.92261, 0.91470, 0.90623, 0.89716, 0.88741, 0.87691, 0.86556, 0.85327,
             0.83991, 0.82532, 0.80934, 0.79176, 0.77231, 0.75070, 0.72652, 0.69931, 0.66845, 0.63315, 0.59238,
             0.54477, 0.48843, 0.42072, 0.33781, 0.23394, 0.1, 0.0]  # fmt: skip
SIGMAS_30 = [1.0, 0.99496, 0.98960, 0.98391, 0.97784, 0.97136, 0.96442, 0.95698, 0.94897, 0.94034, 0.93099, 0.92085,
             0.90981, 0.89774, 0.88448, 0.86986, 0.85365, 0.83558, 0.81532, 0.79243, 0.76636, 0.73642, 0.70166,
             0.66081, 0.61214, 0.55315, 0.48016, 0.38754, 0.26612, 0.1, 0.0]  # fmt: skip
SIGMAS_15_HQ = [1.0, 0.99349, 0.98602, 0.97734, 0.96715, 0.95501, 0.94031, 0.92214, 0.89910, 0.86892, 0.82771, 0.76803,
                0.67390, 0.50338, 0.1, 0.0]  # fmt: skip


@pytest.mark.parametrize(
    "steps, tokens, expected", [(40, 4096, SIGMAS_40), (30, 4096, SIGMAS_30), (15, 16 * 17 * 30, SIGMAS_15_HQ)]
)
def test_sigmas_match_spec_values_and_ltx_core(steps, tokens, expected):
    ours = ltx2_sigmas(steps, num_tokens=tokens)
    assert ours.dtype == torch.float32 and ours.shape == (steps + 1,)
    torch.testing.assert_close(ours, torch.tensor(expected), rtol=0, atol=1e-5)
    latent = None if tokens == 4096 else torch.empty(1, 128, 16, 17, 30, device="meta")
    core = CoreLTX2Scheduler().execute(steps=steps, latent=latent)
    torch.testing.assert_close(ours, core, rtol=0, atol=0)  # bit for bit


def test_shift_anchors():
    assert ltx2_shift(1024) == pytest.approx(0.95)
    assert ltx2_shift(4096) == pytest.approx(2.05)
    assert ltx2_shift(8160) == pytest.approx(3.50521, abs=1e-5)


def test_sigmas_without_stretch_and_other_shift_match_ltx_core():
    core = CoreLTX2Scheduler().execute(steps=7, latent=torch.empty(1, 1, 2, 8, 8), stretch=False)
    torch.testing.assert_close(ltx2_sigmas(7, num_tokens=128, terminal=None), core, rtol=0, atol=0)


@pytest.mark.parametrize(
    "bad, match", [(dict(num_steps=0), "num_steps"), (dict(num_steps=4, terminal=1.5), "terminal")]
)
def test_sigmas_reject_bad_arguments(bad, match):
    with pytest.raises(ValueError, match=match):
        ltx2_sigmas(**bad)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_euler_step_matches_ltx_core(dtype):
    sample = torch.randn(2, 24, 16).to(dtype)
    denoised = torch.randn(2, 24, 16).to(dtype)
    sigmas = ltx2_sigmas(30)
    for i in (0, 11, 28, 29):
        expected = EulerDiffusionStep().step(sample, denoised, sigmas, i)
        ours = euler_step(sample, denoised, float(sigmas[i]), float(sigmas[i + 1]))
        assert ours.dtype == dtype
        torch.testing.assert_close(ours, expected, rtol=0, atol=0)
        torch.testing.assert_close(euler_step(sample, denoised, sigmas[i], sigmas[i + 1]), expected, rtol=0, atol=0)


def test_velocity_helpers_match_ltx_core():
    sample, other = torch.randn(1, 10, 8).bfloat16(), torch.randn(1, 10, 8).bfloat16()
    mask = torch.ones(1, 10, 1)
    mask[:, :3] = 0.0
    mask[:, 3:5] = 0.4
    timesteps = mask * torch.tensor(0.7)
    torch.testing.assert_close(x0_from_velocity(sample, other, timesteps), to_denoised(sample, other, timesteps))
    ours = x0_from_velocity(sample, other, timesteps)
    torch.testing.assert_close(ours[:, :3], sample[:, :3], rtol=0, atol=0)  # t = 0: conditioning tokens stay clean
    torch.testing.assert_close(our_to_velocity(sample, other, 0.7), to_velocity(sample, torch.tensor(0.7), other))
    with pytest.raises(ValueError, match="sigma is 0"):
        our_to_velocity(sample, other, 0.0)


def test_conditioning_tokens_keep_their_clean_value_through_euler():
    from ltx_pipelines.utils.helpers import post_process_latent

    clean = torch.randn(1, 12, 4).bfloat16()
    mask = torch.ones(1, 12, 1)
    mask[:, :4] = 0.0
    sample = torch.where(mask.bool(), torch.randn(1, 12, 4).bfloat16(), clean)
    model_x0 = torch.randn(1, 12, 4).bfloat16()
    blended = blend_clean(model_x0, mask, clean)
    torch.testing.assert_close(blended, post_process_latent(model_x0, mask, clean), rtol=0, atol=0)
    nxt = euler_step(sample, blended, 0.8, 0.5)
    torch.testing.assert_close(nxt[:, :4], clean[:, :4], rtol=0, atol=0)


def test_scheduler_wrapper_dev_and_distilled(tmp_path):
    sched = LTX2Scheduler()
    sched.set_timesteps(40)
    torch.testing.assert_close(sched.sigmas, ltx2_sigmas(40), rtol=0, atol=0)
    torch.testing.assert_close(sched.timesteps, ltx2_sigmas(40)[:-1] * 1000)
    sched.set_timesteps(40, num_tokens=8160)  # token-count shift is off by default: ignored
    torch.testing.assert_close(sched.sigmas, ltx2_sigmas(40), rtol=0, atol=0)

    token_shift = LTX2Scheduler(use_token_count_shift=True)
    token_shift.set_timesteps(15, num_tokens=8160)
    torch.testing.assert_close(token_shift.sigmas, ltx2_sigmas(15, num_tokens=8160), rtol=0, atol=0)

    distilled = LTX2Scheduler.distilled()
    distilled.save_pretrained(tmp_path)
    loaded = LTX2Scheduler.from_pretrained(tmp_path)
    loaded.set_timesteps()
    torch.testing.assert_close(loaded.sigmas, torch.tensor(DISTILLED_SIGMAS))
    with pytest.raises(ValueError, match="fixes 8 steps"):
        loaded.set_timesteps(30)
    loaded.set_timesteps(sigmas=STAGE_2_DISTILLED_SIGMAS)
    assert loaded.num_inference_steps == 3

    sample, denoised = torch.randn(1, 6, 4).bfloat16(), torch.randn(1, 6, 4).bfloat16()
    out = sched.step(denoised, sample, step_index=3)
    torch.testing.assert_close(out.prev_sample, EulerDiffusionStep().step(sample, denoised, ltx2_sigmas(40), 3))
    with pytest.raises(ValueError, match="step_index=40"):
        sched.step(denoised, sample, step_index=40)


def test_scheduler_rejects_bad_sigma_lists():
    with pytest.raises(ValueError, match="decrease strictly"):
        LTX2Scheduler(fixed_sigmas=[1.0, 0.5, 0.7, 0.0])
    with pytest.raises(ValueError, match="needs num_inference_steps"):
        LTX2Scheduler().set_timesteps()


def test_res2s_matches_ltx_pipelines_loop():
    from ltx_core.types import LatentState
    from ltx_pipelines.utils.samplers import res2s_audio_video_denoising_loop

    torch.manual_seed(0)
    video = torch.randn(1, 12, 8).bfloat16()
    audio = torch.randn(1, 5, 8).bfloat16()
    video_mask = torch.ones(1, 12, 1)
    video_mask[:, :4] = 0.0
    clean_video = torch.where(video_mask.bool(), torch.zeros_like(video), video)
    target_v, target_a = torch.randn(1, 12, 8), torch.randn(1, 5, 8)

    def toy_x0(x, sigma, target):  # a smooth deterministic "model" in bf16, like the transformer's output
        return (x.float() * (1 - sigma) * 0.3 + target * (1 - 0.5 * sigma)).bfloat16()

    def core_fn(video_state, audio_state, sigmas, step_index):
        s = float(sigmas[step_index])
        return toy_x0(video_state.latent, s, target_v), toy_x0(audio_state.latent, s, target_a)

    sigmas = ltx2_sigmas(4, num_tokens=8160)
    v_state = LatentState(video, video_mask, torch.zeros(1, 3, 12, 2), clean_video)
    a_state = LatentState(audio, torch.ones(1, 5, 1), torch.zeros(1, 1, 5, 2), audio.clone())
    core_v, core_a = res2s_audio_video_denoising_loop(sigmas, v_state, a_state, Res2sDiffusionStep(), core_fn)

    streams = [SamplerStream(video, video_mask, clean_video), SamplerStream(audio, torch.ones(1, 5, 1), audio.clone())]
    ours_v, ours_a = res2s_sample(
        lambda xs, s: (toy_x0(xs[0], s, target_v), toy_x0(xs[1], s, target_a)), streams, sigmas
    )
    torch.testing.assert_close(ours_v, core_v.latent, rtol=0, atol=0)
    torch.testing.assert_close(ours_a, core_a.latent, rtol=0, atol=0)


def test_diffusers_flow_match_config_loads_with_reference_schedule():
    from diffusers import FlowMatchEulerDiscreteScheduler

    theirs = FlowMatchEulerDiscreteScheduler(
        base_shift=0.95, max_shift=2.05, shift_terminal=0.1, use_dynamic_shifting=True
    )
    ours = LTX2Scheduler.from_config(theirs.config)
    ours.set_timesteps(30, num_tokens=6144)  # the reference's fixed 4096-token shift, whatever the resolution
    torch.testing.assert_close(ours.sigmas, torch.tensor(SIGMAS_30), rtol=0, atol=1e-5)


def test_get_sigmas_takes_diffusers_timesteps_and_refuses_disagreements():
    scheduler = LTX2Scheduler()
    torch.testing.assert_close(scheduler.get_sigmas(timesteps=[1000.0, 725.0]), torch.tensor([1.0, 0.725, 0.0]))
    assert scheduler.sigmas is None  # a value, not state
    with pytest.raises(ValueError, match="pass sigmas or timesteps"):
        scheduler.get_sigmas(sigmas=[1.0, 0.0], timesteps=[1000.0])
    with pytest.raises(ValueError, match=r"sigmas must end at 0 .* Append 0.0"):
        scheduler.get_sigmas(sigmas=[1.0, 0.5])
    with pytest.raises(ValueError, match="num_inference_steps=3 disagrees with the 3 sigmas given"):
        scheduler.get_sigmas(3, sigmas=[1.0, 0.5, 0.0])
    assert scheduler.get_sigmas(2, sigmas=[1.0, 0.5, 0.0]).tolist() == [1.0, 0.5, 0.0]


def test_a_diffusers_flow_match_scheduler_is_converted_not_refused():
    from diffusers import DDIMScheduler, FlowMatchEulerDiscreteScheduler

    from ltx2_diffusers.schedulers.scheduling_ltx2 import as_ltx2_scheduler

    dev = FlowMatchEulerDiscreteScheduler(
        base_shift=0.95, max_shift=2.05, shift_terminal=0.1, use_dynamic_shifting=True
    )
    converted = as_ltx2_scheduler(dev)
    assert isinstance(converted, LTX2Scheduler) and converted.config.fixed_sigmas is None
    torch.testing.assert_close(converted.get_sigmas(30), torch.tensor(SIGMAS_30), rtol=0, atol=1e-5)
    plain = as_ltx2_scheduler(FlowMatchEulerDiscreteScheduler())  # diffusers' default: the reference's dev schedule
    torch.testing.assert_close(plain.get_sigmas(40), ltx2_sigmas(40), rtol=0, atol=0)
    with pytest.raises(TypeError, match="got DDIMScheduler"):
        as_ltx2_scheduler(DDIMScheduler())
