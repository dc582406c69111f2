import pytest
import torch
from ltx_core.components.guiders import MultiModalGuider, MultiModalGuiderFactory, MultiModalGuiderParams
from ltx_core.guidance.perturbations import BatchedPerturbationConfig, PerturbationType
from ltx_core.types import LatentState

from ltx2_diffusers.models.perturbations import Perturbations
from ltx2_diffusers.pipelines.guidance import (
    GuidanceScales,
    GuidanceSchedule,
    combine_guidance,
    guidance_at,
    plan_guidance,
)

LTX2_VIDEO = GuidanceScales(cfg=3.0, stg=1.0, modality=3.0, rescale=0.7, stg_blocks=(2,))
LTX2_AUDIO = GuidanceScales(cfg=7.0, stg=1.0, modality=3.0, rescale=0.7, stg_blocks=(2,))
HQ_VIDEO = GuidanceScales(cfg=3.0, stg=0.0, modality=3.0, rescale=0.45)
HQ_AUDIO = GuidanceScales(cfg=7.0, stg=0.0, modality=3.0, rescale=1.0)
NUM_BLOCKS = 4


def core_params(s: GuidanceScales) -> MultiModalGuiderParams:
    return MultiModalGuiderParams(
        cfg_scale=s.cfg, stg_scale=s.stg, stg_blocks=list(s.stg_blocks), rescale_scale=s.rescale,
        modality_scale=s.modality, skip_step=s.skip_step,
    )  # fmt: skip


@pytest.mark.parametrize("scales", [LTX2_VIDEO, LTX2_AUDIO, HQ_VIDEO, GuidanceScales(cfg=2.5), GuidanceScales()])
def test_combine_matches_multimodal_guider_in_bf16(scales):
    cond, uncond, perturbed, isolated = (torch.randn(1, 40, 16).bfloat16() for _ in range(4))
    expected = MultiModalGuider(core_params(scales)).calculate(cond, uncond, perturbed, isolated)
    ours = combine_guidance(cond, uncond, perturbed, isolated, scales, reference="1.0")
    assert ours.dtype == torch.bfloat16
    torch.testing.assert_close(ours, expected, rtol=0, atol=0)


def test_combine_with_passes_that_did_not_run_matches_reference_zeros():
    cond, uncond = torch.randn(1, 30, 8).bfloat16(), torch.randn(1, 30, 8).bfloat16()
    scales = GuidanceScales(cfg=4.0, rescale=0.5)
    expected = MultiModalGuider(core_params(scales)).calculate(cond, uncond, 0.0, 0.0)
    torch.testing.assert_close(
        combine_guidance(cond, uncond, None, None, scales, reference="1.0"), expected, rtol=0, atol=0
    )
    with pytest.raises(ValueError, match=r"None for \['uncond'\]"):
        combine_guidance(cond, None, None, None, scales)


def test_rescale_is_per_sample():
    cond, uncond = torch.randn(2, 30, 8), torch.randn(2, 30, 8)
    cond[1] *= 5.0
    scales = GuidanceScales(cfg=3.0, rescale=0.7)
    both = combine_guidance(cond, uncond, None, None, scales, reference="1.0")
    for i in range(2):
        alone = combine_guidance(cond[i : i + 1], uncond[i : i + 1], None, None, scales, reference="1.0")
        torch.testing.assert_close(both[i : i + 1], alone)


def test_schedule_bins_match_guider_factory():
    strong, mid, weak = GuidanceScales(cfg=5.0), GuidanceScales(cfg=3.0), GuidanceScales(cfg=1.5)
    ours = GuidanceSchedule.from_dict({0.5: mid, 1.0: strong, 0.1: weak})
    factory = MultiModalGuiderFactory.from_dict(
        {0.5: core_params(mid), 1.0: core_params(strong), 0.1: core_params(weak)}
    )
    for sigma in (1.2, 1.0, 0.99, 0.5, 0.4999, 0.1, 0.05, 0.0):
        assert guidance_at(ours, sigma).cfg == factory.params(sigma).cfg_scale, sigma
    assert guidance_at(strong, 0.3) is strong


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(stg=1.0), ValueError, "stg_blocks is empty"),
        (dict(skip_step=-1), ValueError, "skip_step"),
        (dict(cfg=float("nan")), ValueError, "cfg must be a finite number"),
        (dict(stg_blocks=(1, -2)), TypeError, "non-negative"),
    ],
)
def test_scales_reject_bad_values(kwargs, error, match):
    with pytest.raises(error, match=match):
        GuidanceScales(**kwargs)


def test_schedule_rejects_empty():
    with pytest.raises(ValueError, match="at least one"):
        GuidanceSchedule(())


def test_plan_layout_and_masks():
    plan = plan_guidance(LTX2_VIDEO, GuidanceScales(cfg=7.0, modality=3.0), step_index=0, batch_size=2)
    assert plan.passes == ("cond", "uncond", "perturbed", "isolated") and plan.num_samples == 8
    p = plan.perturbations
    assert p.video_stg_blocks == (2,) and p.audio_stg_blocks == () and p.audio_stg_mask is None
    assert p.video_stg_mask.tolist() == [0, 0, 0, 0, 1, 1, 0, 0]
    assert p.skip_a2v_mask.tolist() == p.skip_v2a_mask.tolist() == [0, 0, 0, 0, 0, 0, 1, 1]
    assert plan_guidance(GuidanceScales(), GuidanceScales(), 0).passes == ("cond",)
    hq = plan_guidance(HQ_VIDEO, HQ_AUDIO, 0)
    assert hq.passes == ("cond", "uncond", "isolated") and hq.perturbations.video_stg_mask is None


def test_plan_split_round_trip():
    plan = plan_guidance(LTX2_VIDEO, LTX2_AUDIO, step_index=3, batch_size=2)
    per_pass = {name: torch.randn(2, 5, 4) for name in plan.passes}
    batched = torch.cat([per_pass[name] for name in plan.passes])
    parts = plan.split(batched)
    assert list(parts) == list(plan.passes)
    for name in plan.passes:
        torch.testing.assert_close(parts[name], per_pass[name], rtol=0, atol=0)
    x = torch.randn(2, 5, 4)
    assert torch.equal(plan.split(plan.repeat(x))["isolated"], x)
    pos, neg = torch.randn(2, 3, 6), torch.randn(2, 3, 6)
    ctx = plan.split(plan.contexts(pos, neg))
    assert torch.equal(ctx["uncond"], neg) and torch.equal(ctx["cond"], pos) and torch.equal(ctx["perturbed"], pos)
    with pytest.raises(ValueError, match="lays out 8"):
        plan.split(torch.randn(6, 5, 4))
    with pytest.raises(ValueError, match="no negative context"):
        plan.contexts(pos, None)


def test_plan_skip_step():
    video, audio = GuidanceScales(cfg=3.0, skip_step=1), GuidanceScales(cfg=7.0, skip_step=1)
    assert plan_guidance(video, audio, 0).passes == ("cond", "uncond")
    skipped = plan_guidance(video, audio, 1)
    assert skipped.passes == () and skipped.video_skips and skipped.audio_skips
    with pytest.raises(ValueError, match="same skip_step"):
        plan_guidance(video, GuidanceScales(cfg=7.0), 1)


# --- the batched plan against ltx-pipelines' multi_modal_guider_denoising_func, with a toy transformer -------------


def _toy_forward(v_latent, a_latent, v_ctx, a_ctx, v_stg, a_stg, a2v_off, v2a_off):
    """A deterministic stand-in for the x0 model. *_stg: (B, NUM_BLOCKS) 1 where self-attention is skipped;
    a2v_off / v2a_off: (B, NUM_BLOCKS) 1 where that cross-attention is off."""
    v = v_latent.float() * 0.9 + v_ctx.float().mean(dim=(1, 2))[:, None, None]
    a = a_latent.float() * 0.8 + a_ctx.float().mean(dim=(1, 2))[:, None, None]
    for blk in range(NUM_BLOCKS):
        v = v + 0.1 * (blk + 1) * v_stg[:, blk, None, None] * v.tanh()
        a = a + 0.05 * (blk + 1) * a_stg[:, blk, None, None] * a.sin()
        v_new = v + 0.3 * (1 - a2v_off[:, blk, None, None]) * a.mean(dim=(1, 2))[:, None, None]
        a = a + 0.2 * (1 - v2a_off[:, blk, None, None]) * v.mean(dim=(1, 2))[:, None, None]
        v = v_new
    return v.bfloat16(), a.bfloat16()


def _core_toy(video, audio, perturbations):
    batch = video.latent.shape[0]
    p = perturbations or BatchedPerturbationConfig.empty(batch)

    def off(kind):
        return torch.stack([1 - p.mask(kind, blk, "cpu", torch.float32) for blk in range(NUM_BLOCKS)], dim=1)

    return _toy_forward(
        video.latent, audio.latent, video.context, audio.context,
        off(PerturbationType.SKIP_VIDEO_SELF_ATTN), off(PerturbationType.SKIP_AUDIO_SELF_ATTN),
        off(PerturbationType.SKIP_A2V_CROSS_ATTN), off(PerturbationType.SKIP_V2A_CROSS_ATTN),
    )  # fmt: skip


def _our_toy(v_latent, a_latent, v_ctx, a_ctx, perturbations: Perturbations):
    n = v_latent.shape[0]

    def per_block(mask, blocks):
        out = torch.zeros(n, NUM_BLOCKS)
        if mask is not None:
            for blk in blocks:
                out[:, blk] = mask
        return out

    all_blocks = range(NUM_BLOCKS)
    return _toy_forward(
        v_latent, a_latent, v_ctx, a_ctx,
        per_block(perturbations.video_stg_mask, perturbations.video_stg_blocks),
        per_block(perturbations.audio_stg_mask, perturbations.audio_stg_blocks),
        per_block(perturbations.skip_a2v_mask, all_blocks), per_block(perturbations.skip_v2a_mask, all_blocks),
    )  # fmt: skip


@pytest.mark.parametrize(
    "video, audio",
    [
        (LTX2_VIDEO, LTX2_AUDIO),
        (HQ_VIDEO, HQ_AUDIO),
        (GuidanceScales(), GuidanceScales(cfg=7.0, stg=2.0, stg_blocks=(0, 3))),
        (GuidanceScales(stg=1.0, stg_blocks=(1,), rescale=0.3), GuidanceScales()),
    ],
)
def test_batched_plan_equals_reference_sequential_passes(video, audio):
    from ltx_pipelines.utils.helpers import multi_modal_guider_denoising_func

    v_latent, a_latent = torch.randn(1, 12, 8).bfloat16(), torch.randn(1, 5, 8).bfloat16()
    v_pos, v_neg = torch.randn(1, 6, 16).bfloat16(), torch.randn(1, 6, 16).bfloat16()
    a_pos, a_neg = torch.randn(1, 6, 8).bfloat16(), torch.randn(1, 6, 8).bfloat16()
    v_state = LatentState(v_latent, torch.ones(1, 12, 1), torch.zeros(1, 3, 12, 2), v_latent.clone())
    a_state = LatentState(a_latent, torch.ones(1, 5, 1), torch.zeros(1, 1, 5, 2), a_latent.clone())
    denoise = multi_modal_guider_denoising_func(
        MultiModalGuider(core_params(video), v_neg), MultiModalGuider(core_params(audio), a_neg), v_pos, a_pos,
        _core_toy,
    )  # fmt: skip
    expected_v, expected_a = denoise(v_state, a_state, torch.tensor([0.8, 0.0]), 0)

    plan = plan_guidance(video, audio, step_index=0)
    out_v, out_a = _our_toy(
        plan.repeat(v_latent), plan.repeat(a_latent), plan.contexts(v_pos, v_neg), plan.contexts(a_pos, a_neg),
        plan.perturbations,
    )  # fmt: skip
    torch.testing.assert_close(plan.guide(out_v, video, reference="1.0"), expected_v, rtol=0, atol=0)
    torch.testing.assert_close(plan.guide(out_a, audio, reference="1.0"), expected_a, rtol=0, atol=0)
