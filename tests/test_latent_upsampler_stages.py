"""The stage-1 size of a two-stage run for each spatial latent upsampler (x2, and the rational x1.5 of LTX-2.3's
`ltx-2.3-spatial-upscaler-x1.5-1.0.safetensors`): the stage-1 latent upsamples to exactly the output's latent.
(The x1.5 network itself is checked against ltx-core in test_latent_upsampler.py; 1.2.0's upsampler maths is
1.0.0's: only its loader entry point changed.)"""

import pytest
import torch

from ltx2_diffusers import LTX2LatentUpsamplerModel
from ltx2_diffusers.models.latent_upsampler import stage_1_size

SMALL = dict(in_channels=16, mid_channels=32, num_blocks_per_stage=1)


@pytest.mark.parametrize(
    "config, ratio, output, stage_1",
    [
        (dict(use_rational_resampler=False), (2, 1), (128, 192), (64, 96)),
        (dict(rational_spatial_scale=2.0), (2, 1), (128, 192), (64, 96)),
        (dict(rational_spatial_scale=1.5), (3, 2), (192, 288), (128, 192)),
        (dict(rational_spatial_scale=1.5), (3, 2), (1056, 1536), (704, 1024)),
    ],
)
def test_stage_1_latent_upsamples_to_the_output_latent(config, ratio, output, stage_1):
    upsampler = LTX2LatentUpsamplerModel(**SMALL, **config).eval()
    assert upsampler.spatial_ratio == ratio and upsampler.spatial_scale == ratio[0] / ratio[1]
    assert stage_1_size(*output, upsampler.spatial_ratio) == stage_1
    if output[0] > 300:
        return  # the size rule alone: the network on a 33 x 48 latent is too slow for a unit test
    latent = torch.randn(1, 16, 2, stage_1[0] // 32, stage_1[1] // 32)
    with torch.no_grad():
        assert upsampler(latent).shape == (1, 16, 2, output[0] // 32, output[1] // 32)


def test_odd_stage_1_latents_would_not_scale_by_exactly_one_and_a_half():
    upsampler = LTX2LatentUpsamplerModel(**SMALL, rational_spatial_scale=1.5).eval()
    with torch.no_grad():
        assert upsampler(torch.randn(1, 16, 1, 3, 5)).shape[-2:] == (5, 8)  # ceil(4.5), ceil(7.5): why 96 | sides


def test_temporal_upsampler_ratio_and_errors():
    temporal = LTX2LatentUpsamplerModel(**SMALL, spatial_upsample=False, temporal_upsample=True)
    assert temporal.spatial_ratio == (1, 1) and temporal.spatial_scale == 1.0
    with pytest.raises(ValueError, match=r"needs an upsampler that enlarges \(scale > 1\), got 1/1"):
        stage_1_size(128, 128, temporal.spatial_ratio)
    with pytest.raises(ValueError, match=r"height=1024 is not a multiple of 96: with a x1.5 .* Use 960 or 1056"):
        stage_1_size(1024, 1536, (3, 2))
    with pytest.raises(ValueError, match=r"width=96 is not a multiple of 64: with a x2 .* Use 64 or 128"):
        stage_1_size(128, 96)
