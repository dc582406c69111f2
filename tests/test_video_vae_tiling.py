"""Video VAE tiling: tiles, ramps and chunks equal ltx-core 1.0.0's `tiled_decode` / `tiled_encode` (spec §2.6)."""

import pytest
import torch
from helpers.video_vae import build_pair
from ltx_core.model.video_vae import SpatialTilingConfig, TemporalTilingConfig, TilingConfig
from ltx_core.model.video_vae.tiling import compute_trapezoidal_mask_1d
from ltx_core.model.video_vae.video_vae import split_temporal_latents, split_with_symmetric_overlaps

from ltx2_diffusers.models.autoencoder_kl_ltx2 import denormalize_latents, normalize_latents
from ltx2_diffusers.models.video_vae_tiling import (
    VideoTilingConfig,
    split_latent_frames_causal,
    split_symmetric,
    trapezoid_mask,
)


@pytest.fixture(scope="module")
def pair():
    ref_encoder, ref_decoder, ours, _, _ = build_pair("ltx2", "zeros", "reflect")
    return ref_encoder, ref_decoder, ours


@pytest.mark.parametrize("length,size,overlap", [(16, 8, 3), (5, 2, 1), (24, 16, 2), (7, 3, 1), (4, 8, 3)])
def test_splits_match_ltx_core(length, size, overlap):
    ref = split_with_symmetric_overlaps(size, overlap)(length)
    ours = split_symmetric(length, size, overlap)
    assert [tuple(t) for t in ours] == list(zip(ref.starts, ref.ends, ref.left_ramps, ref.right_ramps))
    ref = split_temporal_latents(size, overlap)(length)
    ours = split_latent_frames_causal(length, size, overlap)
    assert [tuple(t) for t in ours] == list(zip(ref.starts, ref.ends, ref.left_ramps, ref.right_ramps))


@pytest.mark.parametrize("length,left,right,from_zero", [(57, 25, 24, True), (352, 64, 0, False), (10, 0, 12, False)])
def test_trapezoid_matches_ltx_core(length, left, right, from_zero):
    assert torch.equal(
        trapezoid_mask(length, left, right, from_zero), compute_trapezoidal_mask_1d(length, left, right, from_zero)
    )


def test_default_decode_chunks_for_121_frames():
    # spec §2.6: 16 latent frames -> tiles [0,8), [4,13), [9,16) -> frames [0,57), [32,97), [72,121)
    from ltx2_diffusers.models.video_vae_tiling import decode_tile_plan

    temporal, rows, cols = decode_tile_plan((1, 128, 16, 16, 24), VideoTilingConfig(), 8, 32, torch.device("cpu"))
    assert [(t.source.start, t.source.stop) for t in temporal] == [(0, 8), (4, 13), (9, 16)]
    assert [(t.target.start, t.target.stop) for t in temporal] == [(0, 57), (32, 97), (72, 121)]
    assert [(r.source.start, r.source.stop) for r in rows] == [(0, 11), (9, 16)]  # shorter axis: round(16 * 16/24)
    assert [(c.source.start, c.source.stop) for c in cols] == [(0, 16), (14, 24)]


@pytest.mark.parametrize("tile_frames,overlap_frames", [(16, 8), (24, 8)])
@torch.no_grad()
def test_tiled_decode_and_stream_match_ltx_core(pair, tile_frames, overlap_frames):
    _, ref_decoder, ours = pair
    latents = torch.randn(1, 8, 5, 4, 5, generator=torch.Generator().manual_seed(11))  # 33 x 128 x 160 pixels
    tiling = TilingConfig(SpatialTilingConfig(96, 32), TemporalTilingConfig(tile_frames, overlap_frames))
    expected = list(ref_decoder.tiled_decode(latents, tiling))
    assert len(expected) > 1

    ours.enable_tiling(96, 32, tile_frames, overlap_frames)
    try:
        raw = denormalize_latents(latents, ours.latents_mean, ours.latents_std)
        chunks = list(ours.decode_stream(raw))
        assert [c.shape for c in chunks] == [c.shape for c in expected]
        for chunk, ref_chunk in zip(chunks, expected):
            torch.testing.assert_close(chunk, ref_chunk, atol=1e-5, rtol=0)
        torch.testing.assert_close(ours.decode(raw).sample, torch.cat(chunks, dim=2), atol=0, rtol=0)
        # tiles differ from the untiled decode: the test would not pass with tiling ignored
        assert (ours.decoder(raw) - torch.cat(chunks, dim=2)).abs().max() > 1e-3
    finally:
        ours.enable_auto_tiling()


@torch.no_grad()
def test_tiled_encode_matches_ltx_core(pair):
    ref_encoder, _, ours = pair
    video = torch.rand(1, 3, 25, 160, 160, generator=torch.Generator().manual_seed(12)) * 2 - 1
    tiling = TilingConfig(SpatialTilingConfig(128, 64), TemporalTilingConfig(24, 16))
    expected = ref_encoder.tiled_encode(video, tiling)
    ours.enable_tiling(128, 64, 24, 16)
    try:
        latents = normalize_latents(ours.encode(video).latent_dist.mode(), ours.latents_mean, ours.latents_std)
    finally:
        ours.enable_auto_tiling()
    assert latents.shape == expected.shape == (1, 8, 4, 5, 5)
    torch.testing.assert_close(latents, expected, atol=1e-5, rtol=0)


def test_auto_tiling_threshold(pair):
    _, _, ours = pair
    assert ours.use_tiling is None
    assert not ours._tiles(121, 512, 512) or ours.tiling.auto_min_pixels < 121 * 512 * 512
    assert ours._tiles(121, 512, 768) and not ours._tiles(17, 64, 64)
    ours.disable_tiling()
    assert not ours._tiles(121, 1024, 1536)
    ours.enable_auto_tiling()


def test_tiling_config_errors(pair):
    with pytest.raises(ValueError, match=r"tile_size_pixels=500.*multiple of 32"):
        VideoTilingConfig(tile_size_pixels=500)
    with pytest.raises(ValueError, match=r"tile_size_frames=64, tile_overlap_frames=64"):
        VideoTilingConfig(tile_overlap_frames=64)
    _, _, ours = pair
    ours.enable_tiling(96, 32, 16, 8)
    try:
        with pytest.raises(ValueError, match=r"tiled encode needs tile_overlap_pixels >= 64"):
            ours.encode(torch.zeros(1, 3, 9, 128, 128))
    finally:
        ours.enable_auto_tiling()
