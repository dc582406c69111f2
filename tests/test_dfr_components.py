"""LTX2AVDFRPipeline's optional `temporal_upsampler` component. save_pretrained / from_pretrained keep it: the folder
`temporal_upsampler/` is written when one is set and read back into our `LTX2LatentUpsamplerModel`; without one,
model_index.json records it as absent and the loaded pipeline has None (temporal rounds then say what to load). It is
in the CPU-offload sequence with the other models."""

import json

import pytest
import torch

from ltx2_diffusers import LTX2AVDFRPipeline
from ltx2_diffusers.models.latent_upsampler import LTX2LatentUpsamplerModel
from ltx2_diffusers.models.transformer_ltx2 import LTX2VideoTransformer3DModel
from ltx2_diffusers.pipelines.tiny import TINY_LATENT_UPSAMPLER_CONFIG, build_tiny_pipeline, tiny_transformer_config


@pytest.fixture(scope="module")
def components() -> dict:
    """The tiny LTX-2.5 pipeline's components with both upsamplers; a one-block transformer, and no text side or
    diffusion decoder (optional, and not what these tests check): quick to write and read."""
    components = build_tiny_pipeline(seed=0, model_version="2.5", duration_head=False).components
    torch.manual_seed(1)
    transformer = LTX2VideoTransformer3DModel(**{**tiny_transformer_config("2.5"), "num_layers": 1}).eval()
    spatial = LTX2LatentUpsamplerModel(**TINY_LATENT_UPSAMPLER_CONFIG).eval()
    temporal = LTX2LatentUpsamplerModel(
        **{**TINY_LATENT_UPSAMPLER_CONFIG, "spatial_upsample": False, "temporal_upsample": True}
    ).eval()
    return components | {
        "transformer": transformer, "latent_upsampler": spatial, "temporal_upsampler": temporal,
        "text_encoder": None, "tokenizer": None, "processor": None, "diffusion_decoder": None,
    }  # fmt: skip


def test_temporal_upsampler_round_trip(components, tmp_path):
    pipe = LTX2AVDFRPipeline(**components)
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["temporal_upsampler"] == ["ltx2_diffusers", "LTX2LatentUpsamplerModel"]
    assert (tmp_path / "temporal_upsampler" / "config.json").is_file()
    loaded = LTX2AVDFRPipeline.from_pretrained(tmp_path, dtype=torch.bfloat16)
    temporal = loaded.temporal_upsampler
    assert isinstance(temporal, LTX2LatentUpsamplerModel) and temporal.dtype == torch.bfloat16
    assert temporal.config.temporal_upsample and not temporal.config.spatial_upsample
    expected = pipe.temporal_upsampler.state_dict()
    got = temporal.state_dict()
    assert got.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(got[name], tensor.to(torch.bfloat16)), name
    assert not loaded.latent_upsampler.config.temporal_upsample  # the two upsamplers did not swap folders


def test_a_pipeline_saved_without_temporal_upsampler_loads_none(components, tmp_path):
    LTX2AVDFRPipeline(**{**components, "temporal_upsampler": None}).save_pretrained(tmp_path)
    assert json.loads((tmp_path / "model_index.json").read_text())["temporal_upsampler"] == [None, None]
    assert not (tmp_path / "temporal_upsampler").exists()
    loaded = LTX2AVDFRPipeline.from_pretrained(tmp_path)
    assert loaded.temporal_upsampler is None and loaded.latent_upsampler is not None


def test_every_model_is_in_the_cpu_offload_sequence(components):
    """diffusers' enable_model_cpu_offload hooks the models in `model_cpu_offload_seq` one after another; a model
    left out would be offloaded layer by layer instead."""
    pipe = LTX2AVDFRPipeline(**components)
    models = {name for name, value in pipe.components.items() if isinstance(value, torch.nn.Module)}
    assert "temporal_upsampler" in models
    assert models <= set(LTX2AVDFRPipeline.model_cpu_offload_seq.split("->"))
