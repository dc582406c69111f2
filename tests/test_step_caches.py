"""diffusers' step caches (FirstBlockCache, MagCache, TaylorSeer) on our transformer, in tiny pipelines: exact when
nothing is skipped, both streams (video AND audio) restored from the cache when blocks are skipped, per-stage state
in the two-stage pipeline, `disable_cache` back to the uncached model (models/cache_support.py)."""

import pytest
import torch
from diffusers.hooks import FirstBlockCacheConfig, MagCacheConfig, TaylorSeerCacheConfig

from ltx2_diffusers.models.cache_support import CONTEXT_HOOK
from ltx2_diffusers.pipelines.tiny import TINY_NUM_LAYERS, build_tiny_pipeline, build_tiny_two_stage_pipeline

CALL = dict(height=64, width=64, num_frames=9, output_type="latent")  # 2x2x2 video tokens, 9 audio tokens


@pytest.fixture(scope="module")
def pipe():
    return build_tiny_pipeline()


def generate(pipe, steps: int = 3, **call):
    out = pipe("a cat", num_inference_steps=steps, generator=torch.Generator().manual_seed(0), **(CALL | call))
    return out.frames, out.audio


class BlockCalls:
    """Counts the blocks that really ran (their feed-forward), per block index."""

    def __init__(self, transformer):
        self.counts = [0] * len(transformer.transformer_blocks)
        self.handles = [
            block.ff.register_forward_hook(lambda *_, i=i: self._count(i))
            for i, block in enumerate(transformer.transformer_blocks)
        ]

    def _count(self, index):
        self.counts[index] += 1

    def remove(self):
        for handle in self.handles:
            handle.remove()


@pytest.fixture
def uncached(pipe):
    return generate(pipe)


@pytest.fixture
def cached(pipe):
    """Enables the config passed via `cached(config)`, always disabled again after the test."""
    enabled = []

    def enable(config):
        pipe.transformer.enable_cache(config)
        enabled.append(config)
        return pipe

    yield enable
    if enabled and pipe.transformer.is_cache_enabled:
        pipe.transformer.disable_cache()


def transformer_inputs(pipe, seed: int = 0):
    """Keyword arguments of one tiny transformer call with audio (batch 1, 8 video and 5 audio tokens)."""
    generator = torch.Generator().manual_seed(seed)
    cfg = pipe.transformer.config
    return dict(
        hidden_states=torch.randn(1, 8, cfg.in_channels, generator=generator),
        audio_hidden_states=torch.randn(1, 5, cfg.audio_in_channels, generator=generator),
        encoder_hidden_states=torch.randn(1, 7, cfg.caption_channels, generator=generator),
        audio_encoder_hidden_states=torch.randn(1, 7, cfg.caption_channels, generator=generator),
        timestep=torch.tensor([500.0]),
        num_frames=2,
        height=2,
        width=2,
        return_dict=False,
    )


def test_first_block_cache_threshold_zero_is_exact_and_disable_restores(pipe, uncached, cached):
    cached(FirstBlockCacheConfig(threshold=0.0))
    calls = BlockCalls(pipe.transformer)
    video, audio = generate(pipe)
    calls.remove()
    assert calls.counts == [3] * TINY_NUM_LAYERS  # every block ran at every step
    torch.testing.assert_close(video, uncached[0], rtol=0, atol=0)
    torch.testing.assert_close(audio, uncached[1], rtol=0, atol=0)
    pipe.transformer.disable_cache()
    assert not pipe.transformer.is_cache_enabled
    assert pipe.transformer._diffusers_hook.get_hook(CONTEXT_HOOK) is None
    assert all(not b._diffusers_hook.hooks for b in pipe.transformer.transformer_blocks)
    again = generate(pipe)
    torch.testing.assert_close(again[0], uncached[0], rtol=0, atol=0)
    torch.testing.assert_close(again[1], uncached[1], rtol=0, atol=0)


def test_first_block_cache_large_threshold_skips_blocks_of_both_streams(pipe, uncached, cached):
    cached(FirstBlockCacheConfig(threshold=1e6))
    calls = BlockCalls(pipe.transformer)
    video, audio = generate(pipe, steps=4)
    calls.remove()
    # block 0 runs at every step; the rest only at the first (no cached residual yet), then they are skipped
    assert calls.counts == [4] + [1] * (TINY_NUM_LAYERS - 1)
    reference = generate_uncached(pipe, steps=4)
    for got, expected in ((video, reference[0]), (audio, reference[1])):
        assert torch.isfinite(got).all()
        assert (got - expected).abs().max() > 1e-3


def generate_uncached(pipe, steps):
    config = pipe.transformer._cache_config
    pipe.transformer.disable_cache()
    try:
        return generate(pipe, steps=steps)
    finally:
        pipe.transformer.enable_cache(config)


@pytest.mark.parametrize(
    "config",
    [
        FirstBlockCacheConfig(threshold=0.5),
        MagCacheConfig(threshold=1.0, retention_ratio=0.0, num_inference_steps=4, mag_ratios=[1.0] * 4),
    ],
    ids=["first_block", "mag"],
)
def test_skipped_call_restores_both_streams_from_the_cache(pipe, cached, config):
    # The same inputs twice: the second call is skipped, and its video AND audio outputs must be those of the first
    # (input + cached residual of each stream). diffusers' MagCache alone passes audio through unchanged.
    transformer = cached(config).transformer
    inputs = transformer_inputs(pipe)
    calls = BlockCalls(transformer)
    with torch.no_grad():
        first = transformer(**inputs)
        second = transformer(**inputs)
    calls.remove()
    assert calls.counts[1:] == [1] * (TINY_NUM_LAYERS - 1)
    torch.testing.assert_close(second[0], first[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(second[1], first[1], rtol=1e-5, atol=1e-5)


def test_mag_cache_skips_in_a_pipeline_and_disable_restores(pipe, uncached, cached):
    cached(MagCacheConfig(threshold=1.0, retention_ratio=0.0, num_inference_steps=4, mag_ratios=[1.0] * 4))
    calls = BlockCalls(pipe.transformer)
    video, audio = generate(pipe, steps=4)
    calls.remove()
    assert calls.counts[-1] < 4  # the tail block was skipped at least once
    assert torch.isfinite(video).all() and torch.isfinite(audio).all()
    pipe.transformer.disable_cache()
    again = generate(pipe)
    torch.testing.assert_close(again[0], uncached[0], rtol=0, atol=0)
    torch.testing.assert_close(again[1], uncached[1], rtol=0, atol=0)


def test_taylorseer_predicts_and_disable_restores(pipe, uncached, cached):
    config = TaylorSeerCacheConfig(cache_interval=2, disable_cache_before_step=1, taylor_factors_dtype=torch.float32)
    transformer = cached(config).transformer
    calls = [0]
    handle = transformer.transformer_blocks[0].audio_to_video_attn.to_q.register_forward_hook(
        lambda *_: calls.__setitem__(0, calls[0] + 1)
    )
    video, audio = generate(pipe, steps=5)
    handle.remove()
    assert calls[0] < 5  # some steps predicted the cross-modal attention instead of running it
    reference = generate_uncached(pipe, steps=5)
    assert torch.isfinite(video).all() and torch.isfinite(audio).all()
    assert (video - reference[0]).abs().max() > 0
    pipe.transformer.disable_cache()
    again = generate(pipe)
    torch.testing.assert_close(again[0], uncached[0], rtol=0, atol=0)


def test_taylorseer_lite_mode_is_refused_with_its_two_head_equivalent(pipe):
    with pytest.raises(ValueError, match=r"audio head .*\(cache_identifiers=\['proj_out', 'audio_proj_out'\]"):
        pipe.transformer.enable_cache(TaylorSeerCacheConfig(use_lite_mode=True))
    assert not pipe.transformer.is_cache_enabled


def test_two_stage_keeps_one_cache_state_per_stage():
    # stage 1 (half size) and stage 2 have different token counts: each runs in its own context, so threshold 0
    # gives exactly the uncached clip (a shared state would subtract residuals of different shapes)
    pipe = build_tiny_two_stage_pipeline()
    call = dict(height=128, width=128, num_frames=9, num_inference_steps=2, output_type="latent")
    expected = pipe("a cat", generator=torch.Generator().manual_seed(0), **call)
    pipe.transformer.enable_cache(FirstBlockCacheConfig(threshold=0.0))
    got = pipe("a cat", generator=torch.Generator().manual_seed(0), **call)
    torch.testing.assert_close(got.frames, expected.frames, rtol=0, atol=0)
    torch.testing.assert_close(got.audio, expected.audio, rtol=0, atol=0)


def test_video_only_call_is_refused_by_joint_stream_caches(pipe, cached):
    transformer = cached(FirstBlockCacheConfig(threshold=0.1)).transformer
    inputs = transformer_inputs(pipe) | dict(audio_hidden_states=None, audio_encoder_hidden_states=None)
    with pytest.raises(ValueError, match=r"FirstBlockCacheConfig caches the video and audio streams together"):
        transformer(**inputs)


def test_a_context_named_by_the_caller_is_kept(pipe, cached):
    # diffusers' pipelines wrap the call in `cache_context(name)`: that state is used, not the shape-named one
    transformer = cached(FirstBlockCacheConfig(threshold=0.5)).transformer
    inputs = transformer_inputs(pipe)
    with torch.no_grad(), transformer.cache_context("cond_uncond"):
        transformer(**inputs)
    state_manager = transformer.transformer_blocks[0]._diffusers_hook.hooks["fbc_leader_block_hook"].state_manager
    assert list(state_manager._state_cache) == ["cond_uncond"]
