"""LTX2LatentUpsamplerModel against ltx-core 1.0.0's LatentUpsampler (every variant) and diffusers' in-tree class."""

import pytest
import torch
from diffusers.pipelines.ltx2.latent_upsampler import LTX2LatentUpsamplerModel as DiffusersUpsampler
from ltx_core.model.upsampler import LatentUpsamplerConfigurator

from ltx2_diffusers import LTX2LatentUpsamplerModel
from ltx2_diffusers.loaders.metadata import original_upsampler_config, upsampler_config_from_original
from ltx2_diffusers.loaders.upsampler_keys import diffusers_to_original_keys, original_to_diffusers_keys
from ltx2_diffusers.models.latent_upsampler import pixel_shuffle, upsample_latents

CHANNELS, MID = 16, 32
# Original (ltx-core metadata) configs of every variant; shapes (F, H, W) -> expected output shape.
VARIANTS = {
    "spatial_x2": dict(spatial_upsample=True, temporal_upsample=False, spatial_scale=2.0, rational_resampler=False),
    "spatial_x1.5_rational": dict(spatial_scale=1.5, rational_resampler=True),
    "spatial_x2_rational": dict(spatial_scale=2.0, rational_resampler=True),
    "temporal_x2": dict(spatial_upsample=False, temporal_upsample=True),
    "spatiotemporal_x2": dict(spatial_upsample=True, temporal_upsample=True),
    "spatial_x2_dims2": dict(dims=2),
}
EXPECTED_SHAPE = {
    "spatial_x2": (2, CHANNELS, 3, 8, 12),
    "spatial_x1.5_rational": (2, CHANNELS, 3, 6, 9),
    "spatial_x2_rational": (2, CHANNELS, 3, 8, 12),
    "temporal_x2": (2, CHANNELS, 5, 4, 6),
    "spatiotemporal_x2": (2, CHANNELS, 5, 8, 12),
    "spatial_x2_dims2": (2, CHANNELS, 3, 8, 12),
}


def _original_config(name: str) -> dict:
    return {"in_channels": CHANNELS, "mid_channels": MID, "num_blocks_per_stage": 2, **VARIANTS[name]}


def _randomize(module: torch.nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            scale = 0.3 if "norm" in name else 0.1
            param.copy_(
                (1.0 if name.endswith("norm1.weight") or name.endswith("norm2.weight") else 0.0)
                + scale * torch.randn(param.shape, generator=generator)
            )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("name", list(VARIANTS))
def test_matches_ltx_core(name, dtype):
    original_config = _original_config(name)
    reference = LatentUpsamplerConfigurator.from_config(original_config).eval()
    _randomize(reference, seed=1)
    config = upsampler_config_from_original(original_config)
    ours = LTX2LatentUpsamplerModel(**config).eval()
    names = original_to_diffusers_keys(reference.state_dict(), config=config)
    ours.load_state_dict({names[k]: v for k, v in reference.state_dict().items()}, strict=True)

    latents = torch.randn(2, CHANNELS, 3, 4, 6, generator=torch.Generator().manual_seed(2)).to(dtype)
    ours, reference = ours.to(dtype), reference.to(dtype)
    with torch.no_grad():
        got, expected = ours(latents), reference(latents)
    assert got.shape == EXPECTED_SHAPE[name] and got.dtype == dtype
    # fp32: the 1e-5 parity bar; bf16 (the pipelines' dtype): bit-identical.
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5 if dtype == torch.float32 else 0.0)
    assert diffusers_to_original_keys(ours.state_dict(), config=config) == {k: k for k in ours.state_dict()}
    assert upsampler_config_from_original(original_upsampler_config(config)) == config


@pytest.mark.parametrize("name", [n for n in VARIANTS if n != "spatial_x2_dims2"])
def test_diffusers_folder_loads_strictly_and_back(tmp_path, name):
    config = upsampler_config_from_original(_original_config(name))
    theirs = DiffusersUpsampler(**config).eval()
    _randomize(theirs, seed=3)
    theirs.save_pretrained(tmp_path / "theirs")
    ours = LTX2LatentUpsamplerModel.from_pretrained(tmp_path / "theirs").eval()
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    latents = torch.randn(1, CHANNELS, 2, 4, 4, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = theirs(latents)
        torch.testing.assert_close(ours(latents), expected, rtol=0, atol=1e-5)
        ours.save_pretrained(tmp_path / "ours")
        back = DiffusersUpsampler.from_pretrained(tmp_path / "ours").eval()
        torch.testing.assert_close(back(latents), expected, rtol=0, atol=0)


def test_pixel_shuffle_matches_einops_orders():
    x = torch.arange(2 * 8 * 3 * 2 * 2, dtype=torch.float32).view(2, 8, 3, 2, 2)
    # "b (c p1) f h w -> b c (f p1) h w"
    expected = x.view(2, 4, 2, 3, 2, 2).permute(0, 1, 3, 2, 4, 5).reshape(2, 4, 6, 2, 2)
    assert torch.equal(pixel_shuffle(x, (2,)), expected)
    frames = x[:, :, 0]  # (2, 8, 2, 2): "b (c p1 p2) h w -> b c (h p1) (w p2)"
    expected = frames.view(2, 2, 2, 2, 2, 2).permute(0, 1, 4, 2, 5, 3).reshape(2, 2, 4, 4)
    assert torch.equal(pixel_shuffle(frames, (2, 2)), expected)


def test_upsample_latents_unnormalises_and_normalises_like_the_reference():
    config = upsampler_config_from_original(_original_config("spatial_x2"))
    ours = LTX2LatentUpsamplerModel(**config).eval()
    mean, std = torch.randn(CHANNELS), torch.rand(CHANNELS) + 0.5
    latents = torch.randn(1, CHANNELS, 2, 3, 3)
    with torch.no_grad():
        expected = ours(latents * std.view(1, -1, 1, 1, 1) + mean.view(1, -1, 1, 1, 1)) - mean.view(1, -1, 1, 1, 1)
        expected = expected / std.view(1, -1, 1, 1, 1)
        torch.testing.assert_close(upsample_latents(ours, latents, mean, std), expected, rtol=0, atol=0)


def test_bad_configs_and_inputs_fail_with_clear_messages():
    with pytest.raises(ValueError, match="both False, so the model would do nothing"):
        LTX2LatentUpsamplerModel(mid_channels=MID, spatial_upsample=False, temporal_upsample=False)
    with pytest.raises(ValueError, match=r"rational_spatial_scale=3.0 is not supported"):
        LTX2LatentUpsamplerModel(mid_channels=MID, rational_spatial_scale=3.0)
    with pytest.raises(ValueError, match="needs use_rational_resampler=True"):
        LTX2LatentUpsamplerModel(mid_channels=MID, rational_spatial_scale=1.5, use_rational_resampler=False)
    with pytest.raises(ValueError, match="multiple of the 32 GroupNorm groups"):
        LTX2LatentUpsamplerModel(mid_channels=48)
    with pytest.raises(ValueError, match="temporal_upsample needs dims=3"):
        LTX2LatentUpsamplerModel(mid_channels=MID, dims=2, spatial_upsample=False, temporal_upsample=True)
    ours = LTX2LatentUpsamplerModel(in_channels=CHANNELS, mid_channels=MID, num_blocks_per_stage=1)
    with pytest.raises(ValueError, match=r"Expected video latents \(B, 16, F, H, W\), got shape \(1, 8, 2, 4, 4\)"):
        ours(torch.zeros(1, 8, 2, 4, 4))
    with pytest.raises(ValueError, match="Unknown latent-upsampler key 'encoder.conv_in.weight'"):
        original_to_diffusers_keys(["encoder.conv_in.weight"])
    with pytest.raises(ValueError, match="names the upsampling conv upsampler.0"):
        original_to_diffusers_keys(["upsampler.conv.weight"], config={"use_rational_resampler": False})


@pytest.mark.parametrize(
    "original",
    [
        dict(mid_channels=1024, spatial_scale=2.0, rational_resampler=False),  # ltx-2-spatial-upscaler-x2-1.0
        dict(mid_channels=1024, spatial_scale=1.5, rational_resampler=True),  # ltx-2.3 x1.5
        dict(mid_channels=1024, spatial_scale=2.0, rational_resampler=True),  # diffusers' Lightricks/LTX-2 folder
        dict(mid_channels=512, spatial_upsample=False, temporal_upsample=True),  # ltx-2.3 temporal x2
    ],
)
def test_released_configs_have_diffusers_names_and_shapes(original):
    config = upsampler_config_from_original(original)
    with torch.device("meta"):
        ours = LTX2LatentUpsamplerModel(**config)
        theirs = DiffusersUpsampler(**config)
        reference = LatentUpsamplerConfigurator.from_config(original)
    shapes = {key: tuple(value.shape) for key, value in ours.state_dict().items()}
    assert shapes == {key: tuple(value.shape) for key, value in theirs.state_dict().items()}
    assert shapes == {key: tuple(value.shape) for key, value in reference.state_dict().items()}  # file names too
    if original["mid_channels"] == 1024 and not original["rational_resampler"]:
        assert round(sum(value.numel() for value in ours.parameters()) / 1e6, 1) == 497.9  # diffusers-ltx2.md §1.3
