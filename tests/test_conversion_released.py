"""Full-size layouts without the weights: sparse files whose headers hold exactly the keys and shapes ltx-core 1.0.0's
modules have when built from the released LTX-2 / LTX-2.3 metadata (spec §1.1, §2.1, §3, §5.4), under the released
key prefixes (§8.1). Planning a conversion of them checks, at the real sizes, that every key lands in one of our
classes with the shape that class expects. Nothing is read or written but the header (the files are sparse)."""

import json
import struct

import pytest
import torch
from helpers.released_configs import released

from ltx2_diffusers import conversion
from ltx2_diffusers.loaders import metadata as md
from ltx2_diffusers.loaders import single_file as sf

# Statistics the LTX-2 (19B) files hold besides mean-of-means / std-of-means, which no implementation reads; the
# LTX-2.3 files hold only those two (checked against the released headers' key sets, issue 8).
LTX2_UNREAD_STATISTICS = (
    "vae.per_channel_statistics.channel",
    "vae.per_channel_statistics.mean-of-stds",
    "vae.per_channel_statistics.mean-of-stds_over_std-of-means",
)

DTYPE_NAMES = {torch.float32: "F32", torch.bfloat16: "BF16"}


def ltx_core_shapes(version: str, config: dict) -> dict[str, tuple[tuple[int, ...], str]]:
    """{file key: (shape, dtype)} of ltx-core's modules for this metadata, built on the meta device."""
    from ltx_core.model.audio_vae.model_configurator import (
        AudioDecoderConfigurator,
        AudioEncoderConfigurator,
        VocoderConfigurator,
    )
    from ltx_core.model.transformer.model_configurator import LTXModelConfigurator
    from ltx_core.model.video_vae import VideoDecoderConfigurator, VideoEncoderConfigurator
    from ltx_core.text_encoders.gemma.embeddings_connector import (
        AudioEmbeddings1DConnectorConfigurator,
        Embeddings1DConnectorConfigurator,
    )

    t = config["transformer"]
    flat = md.GEMMA_3_12B_HIDDEN_SIZE * md.GEMMA_3_12B_PROJ_IN_FACTOR
    with torch.device("meta"):
        if version == md.LTX2:
            projection = {"aggregate_embed": torch.nn.Linear(flat, md.GEMMA_3_12B_HIDDEN_SIZE, bias=False)}
        else:
            projection = {
                "video_aggregate_embed": torch.nn.Linear(flat, t["num_attention_heads"] * t["attention_head_dim"]),
                "audio_aggregate_embed": torch.nn.Linear(
                    flat, t["audio_num_attention_heads"] * t["audio_attention_head_dim"]
                ),
            }
        parts = {
            "model.diffusion_model.": LTXModelConfigurator.from_config(config),
            "model.diffusion_model.video_embeddings_connector.": Embeddings1DConnectorConfigurator.from_config(config),
            "model.diffusion_model.audio_embeddings_connector.": AudioEmbeddings1DConnectorConfigurator.from_config(
                config
            ),
            "text_embedding_projection.": torch.nn.ModuleDict(projection),
            "vae.encoder.": VideoEncoderConfigurator.from_config(config),
            "vae.decoder.": VideoDecoderConfigurator.from_config(config),
            "audio_vae.encoder.": AudioEncoderConfigurator.from_config(config),
            "audio_vae.decoder.": AudioDecoderConfigurator.from_config(config),
            "vocoder.": VocoderConfigurator.from_config(config),
        }
    shapes = {}
    for prefix, module in parts.items():
        for key, tensor in module.state_dict().items():
            if key.startswith("per_channel_statistics."):  # one shared copy per VAE, under the VAE's own prefix
                key, prefix_used = key, prefix.rsplit("encoder.", 1)[0].rsplit("decoder.", 1)[0]
                shapes[prefix_used + key] = (tuple(tensor.shape), "F32")
            else:
                shapes[prefix + key] = (tuple(tensor.shape), "BF16")
    if version == md.LTX2:
        shapes.update({name: ((128,), "F32") for name in LTX2_UNREAD_STATISTICS})
    return shapes


def write_sparse(path, shapes: dict[str, tuple[tuple[int, ...], str]], metadata: dict[str, str]) -> int:
    header, offset = {"__metadata__": metadata}, 0
    for key, (shape, dtype) in sorted(shapes.items()):
        nbytes = (4 if dtype == "F32" else 2) * int(torch.Size(shape).numel())
        header[key] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded)
        f.truncate(8 + len(encoded) + offset)  # sparse: no data blocks on disk
    return 8 + len(encoded) + offset


@pytest.mark.parametrize("version", [md.LTX2, md.LTX2_3])
def test_released_layout_plans_into_our_classes(tmp_path, version):
    config = released(version)
    path = tmp_path / f"ltx-{version}-dev.safetensors"
    shapes = ltx_core_shapes(version, config)
    model_version = "2.3.0" if version == md.LTX2_3 else "2.0.0"
    size = write_sparse(path, shapes, {"config": json.dumps(config), "model_version": model_version})
    plans, unknown, _, _ = sf.plan_checkpoint(path, conversion.MODEL_CLASSES)
    assert unknown == []
    assert set(plans) == set(sf.MODEL_COMPONENTS)
    planned = sum(len(p.tensors) + len(p.extras) for p in plans.values())
    assert planned == len(shapes)  # every key of the file has a place
    assert sorted(plans["vae"].extras) == (sorted(LTX2_UNREAD_STATISTICS) if version == md.LTX2 else [])
    if version == md.LTX2:  # bf16 sizes of diffusers-ltx2.md §1.3: the transformer is 37.8 GB, 43 GB in all
        assert len(plans["transformer"].tensors) == 3510
        assert abs(sum(e.nbytes for e in plans["transformer"].tensors.values()) - 37.75e9) < 0.1e9
        assert 42e9 < size < 44e9
    else:
        assert plans["vocoder"].class_name == "LTX2VocoderWithBWE"
        assert plans["connectors"].config["per_modality_projections"] is True


def test_one_component_loads_from_a_43gb_file_without_mapping_it(tmp_path):
    """The vocoder's 111 MB out of a (sparse) 43 GB LTX-2 file: no memory map of the whole file is needed."""
    import ltx2_diffusers

    config = released(md.LTX2)
    path = tmp_path / "ltx-2-19b-dev.safetensors"
    assert write_sparse(path, ltx_core_shapes(md.LTX2, config), {"config": json.dumps(config)}) > 42e9
    vocoder = ltx2_diffusers.LTX2Vocoder.from_single_file(path)
    assert vocoder.conv_in.weight.dtype == torch.bfloat16 and not vocoder.conv_in.weight.any()  # sparse = zeros
    assert sum(p.numel() for p in vocoder.parameters()) == 55_592_802
