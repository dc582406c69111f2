"""scripts/convert_checkpoint.py's engine: tiny Lightricks files (LTX-2, LTX-2.3) -> pipeline folders that load
strictly into our classes and compute what ltx-core computes; folder -> file is lossless; bad files fail cleanly."""

import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest
import torch
from helpers.conversion import GEMMA_STATES, GEMMA_WIDTH, UPSAMPLER_CONFIG, write_checkpoint, write_upsampler
from helpers.real_files import file_metadata, raw_tensors, write_upscaler
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import ltx2_diffusers
from ltx2_diffusers import conversion
from ltx2_diffusers.loaders import metadata as md
from ltx2_diffusers.loaders import safetensors_io as sio
from ltx2_diffusers.loaders import single_file as sf

VERSIONS = [md.LTX2, md.LTX2_3]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", params=VERSIONS)
def converted(request, tmp_path_factory):
    """(version, ltx-core modules, original file, upsampler module, upsampler file, folder, report)."""
    root = tmp_path_factory.mktemp(f"ltx{request.param}")
    checkpoint = root / "ltx-tiny-dev.safetensors"
    modules = write_checkpoint(checkpoint, request.param)
    upsampler_file = root / "upscaler.safetensors"
    upsampler = write_upsampler(upsampler_file)
    report = conversion.convert_original_to_diffusers(checkpoint, root / "folder", upsampler=upsampler_file)
    return request.param, modules, checkpoint, upsampler, upsampler_file, root / "folder", report


def load(folder: Path, component: str):
    """A component from the folder, then checked strictly: every tensor of the class came from the folder."""
    class_name = json.loads((folder / component / "config.json").read_text())["_class_name"]
    model = getattr(ltx2_diffusers, class_name).from_pretrained(folder, subfolder=component).eval()
    weights = sio.read_folder_weights(folder / component)
    assert set(weights) == set(model.state_dict())
    return model


def raw_bytes(path: Path) -> dict[str, bytes]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k).contiguous().view(-1).view(torch.uint8).numpy().tobytes() for k in f.keys()}


def test_folder_layout_and_report(converted):
    version, _, checkpoint, _, _, folder, report = converted
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "LTX2AVPipeline"
    vocoder = "LTX2Vocoder" if version == md.LTX2 else "LTX2VocoderWithBWE"
    assert index["vocoder"] == ["ltx2_diffusers", vocoder]
    assert index["transformer"] == ["ltx2_diffusers", "LTX2VideoTransformer3DModel"]
    assert "latent_upsampler" not in index and (folder / "latent_upsampler" / "config.json").is_file()  # as on the Hub
    assert index["text_encoder"] == [None, None] and index["scheduler"] == ["ltx2_diffusers", "LTX2Scheduler"]
    assert report.model_version == version and report.kind == "dev"
    total = sum(c["tensors"] + len(c["extra_tensors"]) for n, c in report.components.items() if n != "latent_upsampler")
    with safe_open(str(checkpoint), framework="pt") as f:
        assert total == len(list(f.keys()))  # every tensor of the file went somewhere
    assert report.components["vae"]["extra_tensors"] == [
        "vae.per_channel_statistics.channel",
        "vae.per_channel_statistics.mean-of-stds",
    ]
    assert "vae" in str(report) and "kept aside" in str(report)
    scheduler = ltx2_diffusers.LTX2Scheduler.from_pretrained(folder, subfolder="scheduler")
    assert scheduler.config.fixed_sigmas is None  # "dev" in the file name: the shifted schedule


@torch.no_grad()
def test_transformer_matches_ltx_core(converted):
    from _transformer_helpers import make_inputs

    version, modules, *_, folder, _ = converted
    ours = load(folder, "transformer")
    layout = "ltx2" if version == md.LTX2 else "ltx23"
    inputs = make_inputs(layout, 2, video_sigma=[0.9, 0.4])
    generator = torch.Generator().manual_seed(5)
    widths = (16, 8) if version == md.LTX2_3 else (16, 16)  # LTX-2: both contexts at Gemma's width (16 here)
    inputs = dataclasses.replace(
        inputs,
        video_context=torch.randn(2, 7, widths[0], generator=generator),
        audio_context=torch.randn(2, 7, widths[1], generator=generator),
    )
    from ltx_core.guidance.perturbations import BatchedPerturbationConfig

    expected = modules["transformer"](*inputs.ltx_core(), BatchedPerturbationConfig.empty(2))
    got = ours(**inputs.ours())
    assert expected[0].abs().max() > 0.1
    torch.testing.assert_close(got[0], expected[0], rtol=0, atol=1e-4)
    torch.testing.assert_close(got[1], expected[1], rtol=0, atol=1e-4)


@torch.no_grad()
def test_video_vae_matches_ltx_core(converted):
    from ltx2_diffusers.models.autoencoder_kl_ltx2 import denormalize_latents, normalize_latents

    _, modules, *_, folder, _ = converted
    ours = load(folder, "vae")
    video = torch.rand(1, 3, 9, 64, 96, generator=torch.Generator().manual_seed(4)) * 2 - 1
    expected_latents = modules["video_encoder"](video)
    latents = normalize_latents(ours.encode(video).latent_dist.mode(), ours.latents_mean, ours.latents_std)
    torch.testing.assert_close(latents, expected_latents, rtol=0, atol=1e-5)
    expected_video = modules["video_decoder"](expected_latents)
    decoded = ours.decode(denormalize_latents(expected_latents, ours.latents_mean, ours.latents_std)).sample
    assert decoded.shape == (1, 3, 9, 64, 96)
    torch.testing.assert_close(decoded, expected_video, rtol=0, atol=1e-5)


@torch.no_grad()
def test_audio_vae_vocoder_and_upsampler_match_ltx_core(converted):
    _, modules, _, upsampler, *_ = converted
    folder = converted[5]
    audio_vae, vocoder, latent_upsampler = (load(folder, c) for c in ("audio_vae", "vocoder", "latent_upsampler"))
    generator = torch.Generator().manual_seed(6)
    latents = torch.randn(1, 2, 5, 16, generator=generator)
    expected_mel = modules["audio_decoder"](latents)
    mel = audio_vae.decode(audio_vae.denormalize_latents(latents)).sample
    torch.testing.assert_close(mel, expected_mel, rtol=0, atol=1e-5)
    mel = torch.randn(1, 2, 6, 64, generator=generator)
    torch.testing.assert_close(vocoder(mel), modules["vocoder"](mel), rtol=0, atol=1e-5)
    video_latents = torch.randn(1, 8, 2, 3, 4, generator=generator)
    torch.testing.assert_close(latent_upsampler(video_latents), upsampler(video_latents), rtol=0, atol=1e-5)


@torch.no_grad()
def test_connectors_match_ltx_core(converted):
    from ltx_core.text_encoders.gemma import EmbeddingsProcessor
    from ltx_core.text_encoders.gemma.feature_extractor import FeatureExtractorV1, FeatureExtractorV2

    version, modules, *_, folder, _ = converted
    ours = load(folder, "connectors")
    projection = modules["projection"]
    if version == md.LTX2:
        extractor = FeatureExtractorV1(aggregate_embed=projection["aggregate_embed"], is_av=True)
    else:
        extractor = FeatureExtractorV2(
            video_aggregate_embed=projection["video_aggregate_embed"],
            embedding_dim=GEMMA_WIDTH,
            audio_aggregate_embed=projection["audio_aggregate_embed"],
        )
    reference = EmbeddingsProcessor(
        feature_extractor=extractor,
        video_connector=modules["video_connector"],
        audio_connector=modules["audio_connector"],
    ).eval()
    generator = torch.Generator().manual_seed(8)
    hidden_states = tuple(torch.randn(1, 128, GEMMA_WIDTH, generator=generator) * (1 + i) for i in range(GEMMA_STATES))
    mask = torch.zeros(1, 128, dtype=torch.int64)
    mask[:, -20:] = 1  # 20 real tokens, left-padded (ltx-core's register swap is right at batch size 1 only)
    expected = reference.process_hidden_states(hidden_states, mask, padding_side="left")
    video, audio, _ = ours(hidden_states, mask)
    torch.testing.assert_close(video, expected.video_encoding, rtol=0, atol=1e-5)
    torch.testing.assert_close(audio, expected.audio_encoding, rtol=0, atol=1e-5)


def test_original_to_folder_to_original_is_lossless(converted, tmp_path):
    _, _, checkpoint, _, upsampler_file, folder, _ = converted
    back, upsampler_back = tmp_path / "back.safetensors", tmp_path / "upscaler_back.safetensors"
    report = conversion.convert_diffusers_to_original(folder, back, upsampler_output=upsampler_back)
    for original, rebuilt in ((checkpoint, back), (upsampler_file, upsampler_back)):
        assert raw_bytes(rebuilt) == raw_bytes(original)
        with safe_open(str(original), "pt") as f, safe_open(str(rebuilt), "pt") as g:
            assert g.metadata() == f.metadata()  # stored verbatim
    assert report.components["transformer"]["class"] == "LTX2VideoTransformer3DModel"


def test_a_folder_saved_by_diffusers_exports_to_the_same_file(converted, tmp_path):
    """diffusers' in-tree classes (the Hub's diffusers folders) save the same names: the export is the original."""
    import diffusers
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder, LTX2VocoderWithBWE

    _, _, checkpoint, _, _, folder, _ = converted
    classes = {
        "LTX2TextConnectors": LTX2TextConnectors,
        "LTX2Vocoder": LTX2Vocoder,
        "LTX2VocoderWithBWE": LTX2VocoderWithBWE,
    }
    for component in sf.MODEL_COMPONENTS:
        class_name = json.loads((folder / component / "config.json").read_text())["_class_name"]
        cls = classes.get(class_name) or getattr(diffusers, class_name)
        cls.from_pretrained(folder, subfolder=component).save_pretrained(tmp_path / "hub" / component)
    report = conversion.convert_diffusers_to_original(tmp_path / "hub", tmp_path / "back.safetensors")
    assert any("no longer matches" in n for n in report.notes) is False
    original, back = load_file(str(checkpoint)), load_file(str(tmp_path / "back.safetensors"))
    dropped = {"vae.per_channel_statistics.channel", "vae.per_channel_statistics.mean-of-stds"}  # not in diffusers
    assert back.keys() == original.keys() - dropped
    # same values; diffusers' from_pretrained upcasts the connectors' bf16 registers, so compare in the file's dtype
    assert all(torch.equal(back[k].to(original[k].dtype), original[k]) for k in back)
    with safe_open(str(tmp_path / "back.safetensors"), "pt") as g, safe_open(str(checkpoint), "pt") as f:
        rebuilt, source = json.loads(g.metadata()["config"]), json.loads(f.metadata()["config"])
    assert md.component_configs_from_original(rebuilt, 3) == md.component_configs_from_original(source, 3)


def test_metadata_is_rebuilt_when_the_folder_has_none(converted, tmp_path):
    version, _, checkpoint, _, _, folder, _ = converted
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(folder, copy)
    (copy / md.ORIGINAL_METADATA_FILENAME).unlink()
    report = conversion.convert_diffusers_to_original(copy, tmp_path / "back.safetensors")
    assert any("latent_upsampler/ not exported" in n for n in report.notes)
    assert raw_bytes(tmp_path / "back.safetensors") == raw_bytes(checkpoint)
    with safe_open(str(tmp_path / "back.safetensors"), "pt") as g, safe_open(str(checkpoint), "pt") as f:
        rebuilt, original = g.metadata(), f.metadata()
    assert md.detect_model_version(rebuilt, json.loads(rebuilt["config"])) == version
    factor = 3
    assert md.component_configs_from_original(json.loads(rebuilt["config"]), factor) == (
        md.component_configs_from_original(json.loads(original["config"]), factor)
    )


@pytest.mark.parametrize("dtype,expected", [("bf16", torch.bfloat16), ("fp32", torch.float32)])
def test_dtype_choice_and_sharding(converted, tmp_path, dtype, expected):
    _, _, checkpoint, *_ = converted
    out = tmp_path / "out"
    conversion.convert_original_to_diffusers(checkpoint, out, dtype=dtype, max_shard_size=200_000, kind="distilled")
    index = json.loads((out / "vae" / sio.WEIGHTS_INDEX_NAME).read_text())
    assert len(set(index["weight_map"].values())) > 1  # sharded the way save_pretrained does
    shard = out / "vae" / index["weight_map"]["latents_mean"]
    written = load_file(str(shard))["latents_mean"]
    original = load_file(str(checkpoint))["vae.per_channel_statistics.mean-of-means"]
    assert written.dtype == expected and torch.equal(written, original.to(expected))
    vae = ltx2_diffusers.AutoencoderKLLTX2Video.from_pretrained(out, subfolder="vae", torch_dtype=expected)
    assert vae.latents_mean.dtype == expected and torch.equal(vae.latents_mean, written)
    scheduler = json.loads((out / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["fixed_sigmas"] == md.scheduler_config("distilled")["fixed_sigmas"]


def test_fp8_tensors_kept_or_upcast(tmp_path):
    checkpoint = tmp_path / "ltx-2-fp8-dev.safetensors"
    write_checkpoint(checkpoint, md.LTX2, keep=lambda k: k.startswith(("model.diffusion_model.", "text_embedding")))
    sd = load_file(str(checkpoint))
    with safe_open(str(checkpoint), "pt") as f:
        metadata = f.metadata()
    name = "model.diffusion_model.transformer_blocks.0.attn1.to_q.weight"
    sd[name] = sd[name].to(torch.float8_e4m3fn)
    save_file(sd, str(checkpoint), metadata=metadata)
    conversion.convert_original_to_diffusers(checkpoint, tmp_path / "kept")
    conversion.convert_original_to_diffusers(checkpoint, tmp_path / "up", upcast_fp8=True)
    kept = load_file(str(tmp_path / "kept" / "transformer" / sio.WEIGHTS_NAME))
    up = load_file(str(tmp_path / "up" / "transformer" / sio.WEIGHTS_NAME))
    assert kept["transformer_blocks.0.attn1.to_q.weight"].dtype == torch.float8_e4m3fn
    assert up["transformer_blocks.0.attn1.to_q.weight"].dtype == torch.bfloat16
    assert torch.equal(up["transformer_blocks.0.attn1.to_q.weight"], sd[name].to(torch.bfloat16))
    assert up["proj_in.weight"].dtype == torch.float32  # other tensors keep their dtype under "keep"
    conversion.convert_diffusers_to_original(tmp_path / "kept", tmp_path / "back.safetensors")
    assert raw_bytes(tmp_path / "back.safetensors") == raw_bytes(checkpoint)
    other = "model.diffusion_model.transformer_blocks.0.attn1.to_k.weight"  # a scale on a weight that is not fp8
    sd[other.replace(".weight", ".weight_scale")] = torch.ones(())
    save_file(sd, str(checkpoint), metadata=metadata)
    with pytest.raises(ValueError, match=r"attn1\.to_k\.weight_scale' scales .*, a F32 tensor; only fp8 tensors"):
        conversion.convert_original_to_diffusers(checkpoint, tmp_path / "scaled")


def test_partial_file_converts_what_it_holds(tmp_path):
    checkpoint = tmp_path / "transformer-only-distilled.safetensors"
    write_checkpoint(checkpoint, md.LTX2_3, keep=lambda k: k.startswith(("model.diffusion_model.", "text_embedding")))
    report = conversion.convert_original_to_diffusers(checkpoint, tmp_path / "out")
    assert set(report.components) == {"transformer", "connectors"}
    index = json.loads((tmp_path / "out" / "model_index.json").read_text())
    assert index["vae"] == [None, None] and index["connectors"] == ["ltx2_diffusers", "LTX2TextConnectors"]
    load(tmp_path / "out", "connectors")
    conversion.convert_diffusers_to_original(tmp_path / "out", tmp_path / "back.safetensors")
    assert raw_bytes(tmp_path / "back.safetensors") == raw_bytes(checkpoint)


def test_unknown_keys_fail_unless_allowed_and_are_then_kept(tmp_path):
    checkpoint = tmp_path / "ltx-2-dev.safetensors"
    write_checkpoint(checkpoint, md.LTX2, keep=lambda k: k.startswith("vae."))
    sd = load_file(str(checkpoint))
    with safe_open(str(checkpoint), "pt") as f:
        metadata = f.metadata()
    sd["duration_head.proj.weight"] = torch.randn(3, 4)
    save_file(sd, str(checkpoint), metadata=metadata)
    with pytest.raises(
        ValueError, match=r"1 keys no LTX-2 component claims, e.g. \['duration_head.proj.weight'\].*allow"
    ):
        conversion.convert_original_to_diffusers(checkpoint, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ltx-2-dev.safetensors"]  # nothing half-written
    report = conversion.convert_original_to_diffusers(checkpoint, tmp_path / "out", allow_unknown=True)
    assert report.unknown_keys == ["duration_head.proj.weight"]
    conversion.convert_diffusers_to_original(tmp_path / "out", tmp_path / "back.safetensors")
    assert raw_bytes(tmp_path / "back.safetensors") == raw_bytes(checkpoint)
    sd["vae.decoder.extra_head.weight"] = torch.randn(2)  # under a component's prefix: that component is wrong
    save_file(sd, str(checkpoint), metadata=metadata)
    with pytest.raises(ValueError, match="vae.decoder.extra_head.weight"):
        conversion.convert_original_to_diffusers(checkpoint, tmp_path / "out2", allow_unknown=True)
    assert not (tmp_path / "out2").exists()


def test_bad_files_fail_clearly_and_leave_nothing(tmp_path):
    good = tmp_path / "good.safetensors"
    write_checkpoint(good, md.LTX2, keep=lambda k: k.startswith("vae."))
    data = good.read_bytes()
    cases = {
        "truncated.safetensors": (data[: len(data) - 100], "truncated or corrupt"),
        "corrupt.safetensors": (b"\xff" * 64, "truncated or corrupt"),
    }
    for name, (content, _) in cases.items():
        (tmp_path / name).write_bytes(content)
    save_file({"vae.encoder.conv_in.conv.weight": torch.zeros(1)}, str(tmp_path / "no_metadata.safetensors"))
    cases["no_metadata.safetensors"] = (None, "has no safetensors metadata")
    flux = {"double_blocks.0.img_attn.qkv.weight": torch.zeros(2, 2), "img_in.weight": torch.zeros(2, 2)}
    save_file(flux, str(tmp_path / "flux.safetensors"), metadata={"config": json.dumps({"depth": 19})})
    cases["flux.safetensors"] = (
        None,
        "none of the sections transformer/vae/audio_vae/vocoder.*not an LTX-2 checkpoint",
    )
    shapes = load_file(str(good))
    shapes["vae.decoder.conv_out.conv.weight"] = torch.zeros(5, 5)
    with safe_open(str(good), "pt") as f:
        save_file(shapes, str(tmp_path / "other_model.safetensors"), metadata=f.metadata())
    cases["other_model.safetensors"] = (None, "do not have the shapes the file's metadata implies")
    save_file(load_file(str(good)), str(tmp_path / "up.safetensors"), metadata={"config": json.dumps(UPSAMPLER_CONFIG)})
    # upscaler metadata, VAE weights
    cases["up.safetensors"] = (None, "num_blocks_per_stage = 1, but the weights hold 0")
    lora = {"diffusion_model.transformer_blocks.0.attn1.to_q.lora_A.weight": torch.zeros(4, 16)}
    save_file(lora, str(tmp_path / "lora.safetensors"))
    cases["lora.safetensors"] = (None, "is a LoRA file")
    before = sorted(p.name for p in tmp_path.iterdir())
    for name, (_, message) in cases.items():
        with pytest.raises(ValueError, match=message):
            conversion.convert_original_to_diffusers(tmp_path / name, tmp_path / f"out_{name}")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    with pytest.raises(ValueError, match=r"dtype='fp16'; expected one of \['keep', 'bf16', 'fp32'\]"):
        conversion.convert_original_to_diffusers(good, tmp_path / "x", dtype="fp16")
    with pytest.raises(ValueError, match="kind='turbo'"):
        conversion.convert_original_to_diffusers(good, tmp_path / "x", kind="turbo")
    with pytest.raises(ValueError, match="holds the input .*good.safetensors"):  # never the folder of the input
        conversion.convert_original_to_diffusers(good, tmp_path)


def test_pipeline_loads_from_the_folder_and_from_the_single_file(converted):
    from diffusers import DiffusionPipeline

    version, _, checkpoint, *_, folder, _ = converted
    pipe = DiffusionPipeline.from_pretrained(folder, text_encoder=None, tokenizer=None)
    assert type(pipe) is ltx2_diffusers.LTX2AVPipeline
    direct = ltx2_diffusers.LTX2AVPipeline.from_single_file(checkpoint)
    assert type(direct) is ltx2_diffusers.LTX2AVPipeline
    for name in ("transformer", "connectors", "vae", "audio_vae", "vocoder"):
        a, b = getattr(pipe, name).state_dict(), getattr(direct, name).state_dict()
        assert type(getattr(pipe, name)) is type(getattr(direct, name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert pipe.scheduler.config.fixed_sigmas == direct.scheduler.config.fixed_sigmas


def test_upscaler_alone_is_a_model_folder(tmp_path):
    upsampler_file = tmp_path / "ltx-2.3-spatial-upscaler-x1.5-1.0.safetensors"
    config = {**UPSAMPLER_CONFIG, "rational_resampler": True, "spatial_scale": 1.5}
    reference = write_upsampler(upsampler_file, config)
    conversion.convert_original_to_diffusers(None, tmp_path / "up", upsampler=upsampler_file)
    assert not (tmp_path / "up" / "model_index.json").exists()
    ours = ltx2_diffusers.LTX2LatentUpsamplerModel.from_pretrained(tmp_path / "up").eval()
    latents = torch.randn(1, 8, 2, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(ours(latents), reference(latents), rtol=0, atol=1e-5)
    conversion.convert_diffusers_to_original(tmp_path / "up", tmp_path / "back.safetensors")
    assert raw_bytes(tmp_path / "back.safetensors") == raw_bytes(upsampler_file)
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKLLTX2Video"}))
    with pytest.raises(ValueError, match="Only a latent upsampler has a Lightricks file of its own"):
        conversion.convert_diffusers_to_original(tmp_path / "vae", tmp_path / "x.safetensors")


def test_from_single_file_equals_the_converted_folder(converted):
    version, _, checkpoint, _, upsampler_file, folder, _ = converted
    for component in ("transformer", "connectors", "vae", "audio_vae", "vocoder", "latent_upsampler"):
        from_folder = load(folder, component)
        source = upsampler_file if component == "latent_upsampler" else checkpoint
        direct = sf.load_component_from_single_file(type(from_folder), source)
        a, b = from_folder.state_dict(), direct.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert not any(t.is_meta for t in [*direct.parameters(), *direct.buffers()])
        if component == "vocoder":  # computed (non-persistent) buffers work too
            mel = torch.randn(1, 2, 6, 64)
            with torch.no_grad():
                torch.testing.assert_close(direct(mel), from_folder(mel), rtol=0, atol=0)

    class Transformer(ltx2_diffusers.LTX2VideoTransformer3DModel):  # a subclass loads as the LTX-2 class it extends
        pass

    mixed = Transformer.from_single_file(checkpoint, torch_dtype=torch.bfloat16)
    assert type(mixed) is Transformer and mixed.proj_in.weight.dtype == torch.bfloat16
    wrong = ltx2_diffusers.LTX2VocoderWithBWE if version == md.LTX2 else ltx2_diffusers.LTX2Vocoder
    with pytest.raises(ValueError, match="is a latent upsampler file"):
        sf.load_component_from_single_file(ltx2_diffusers.AutoencoderKLLTX2Video, upsampler_file)
    with pytest.raises(ValueError, match="load it with that class"):
        sf.load_component_from_single_file(wrong, checkpoint)
    with pytest.raises(TypeError, match="not an LTX-2 model class"):
        sf.load_component_from_single_file(torch.nn.Linear, checkpoint)


@pytest.mark.parametrize("component", ["transformer", "connectors", "vae", "audio_vae", "vocoder", "latent_upsampler"])
def test_model_class_from_single_file_equals_the_converted_folder(converted, component):
    _, _, checkpoint, _, upsampler_file, folder, _ = converted
    from_folder = load(folder, component)
    cls = type(from_folder)
    direct = cls.from_single_file(upsampler_file if component == "latent_upsampler" else checkpoint)
    assert type(direct) is cls
    a, b = from_folder.state_dict(), direct.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    private = {k for k in from_folder.config if k.startswith("_")}
    assert {k: v for k, v in direct.config.items() if k not in private} == {
        k: v for k, v in from_folder.config.items() if k not in private
    }
    half = cls.from_single_file(
        upsampler_file if component == "latent_upsampler" else checkpoint, torch_dtype=torch.bfloat16
    )
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16}


def test_text_encoder_folder_is_copied(tmp_path):
    from ltx2_diffusers.utils.tiny_gemma import build_tiny_gemma

    gemma = tmp_path / "gemma"
    model, tokenizer = build_tiny_gemma()
    model.save_pretrained(gemma)
    tokenizer.save_pretrained(gemma)
    checkpoint = tmp_path / "vae-only-dev.safetensors"
    write_checkpoint(checkpoint, md.LTX2, keep=lambda k: k.startswith("vae."))
    conversion.convert_original_to_diffusers(checkpoint, tmp_path / "out", text_encoder=gemma)
    index = json.loads((tmp_path / "out" / "model_index.json").read_text())
    assert index["text_encoder"][0] == "transformers" and index["tokenizer"][0] == "transformers"
    import transformers

    getattr(transformers, index["text_encoder"][1]).from_pretrained(tmp_path / "out" / "text_encoder")
    getattr(transformers, index["tokenizer"][1]).from_pretrained(tmp_path / "out" / "tokenizer")


def run_cli(*args: str) -> int:
    """scripts/convert_checkpoint.py's main(), in this process (a fresh interpreter would cost seconds of imports)."""
    spec = importlib.util.spec_from_file_location("convert_checkpoint", REPO / "scripts" / "convert_checkpoint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main([str(a) for a in args])


def test_cli_both_directions(tmp_path, capsys):
    checkpoint, upsampler_file = tmp_path / "ltx-2.3-tiny-distilled.safetensors", tmp_path / "upscaler.safetensors"
    write_checkpoint(checkpoint, md.LTX2_3, keep=lambda k: k.startswith(("vae.", "vocoder.")))
    write_upsampler(upsampler_file)
    out = tmp_path / "folder"
    assert run_cli(checkpoint, out, "--upsampler", upsampler_file, "--dtype", "keep") == 0
    printed = capsys.readouterr().out
    assert "LTX2VocoderWithBWE" in printed and "LTX2LatentUpsamplerModel" in printed
    back, upsampler_back = tmp_path / "back.safetensors", tmp_path / "upscaler_back.safetensors"
    assert run_cli("--reverse", out, back, "--upsampler-output", upsampler_back) == 0
    assert raw_bytes(back) == raw_bytes(checkpoint) and raw_bytes(upsampler_back) == raw_bytes(upsampler_file)
    assert run_cli(tmp_path / "missing.safetensors", tmp_path / "x") == 2
    assert "no such file" in capsys.readouterr().err
    assert run_cli(checkpoint, out) == 2  # exists
    assert "already exists; pass overwrite=True (--overwrite)" in capsys.readouterr().err
    assert run_cli(checkpoint, out, "--overwrite", "--dtype", "bf16") == 0
    assert load_file(str(out / "vae" / sio.WEIGHTS_NAME))["latents_mean"].dtype == torch.bfloat16
    assert run_cli("--upsampler", upsampler_file, tmp_path / "up1") == 0  # the upscaler alone, two spellings
    assert run_cli(upsampler_file, tmp_path / "up2") == 0
    assert raw_bytes(tmp_path / "up1" / sio.WEIGHTS_NAME) == raw_bytes(tmp_path / "up2" / sio.WEIGHTS_NAME)
    assert json.loads((tmp_path / "up2" / "config.json").read_text())["_class_name"] == "LTX2LatentUpsamplerModel"


# ---- the released files' key sets (issue 8) -------------------------------------------------------------------------

# Statistics the LTX-2 (19B) files hold besides mean-of-means / std-of-means (no implementation reads them); the
# LTX-2.3 files hold none of them.
UNREAD_STATISTICS = {
    md.LTX2: (
        "vae.per_channel_statistics.channel",
        "vae.per_channel_statistics.mean-of-stds",
        "vae.per_channel_statistics.mean-of-stds_over_std-of-means",
    ),
    md.LTX2_3: (),
}


@pytest.mark.parametrize("version", VERSIONS)
def test_released_statistics_convert_load_and_come_back(tmp_path, version):
    checkpoint = tmp_path / "ltx-tiny-dev.safetensors"
    write_checkpoint(checkpoint, version, keep=lambda k: k.startswith("vae."))
    sd, metadata = load_file(str(checkpoint)), file_metadata(checkpoint)
    sd = {k: v for k, v in sd.items() if not k.startswith("vae.per_channel_statistics.") or k.endswith("-of-means")}
    sd.update({name: torch.rand(8) for name in UNREAD_STATISTICS[version]})
    save_file(sd, str(checkpoint), metadata=metadata)
    report = conversion.convert_original_to_diffusers(checkpoint, tmp_path / "out")
    assert report.components["vae"]["extra_tensors"] == sorted(UNREAD_STATISTICS[version])
    vae = ltx2_diffusers.AutoencoderKLLTX2Video.from_single_file(checkpoint)
    assert torch.equal(vae.latents_std, sd["vae.per_channel_statistics.std-of-means"])
    conversion.convert_diffusers_to_original(tmp_path / "out", tmp_path / "back.safetensors")
    assert raw_tensors(tmp_path / "back.safetensors") == raw_tensors(checkpoint)


@pytest.mark.parametrize(
    "rational_names,metadata_rational",
    [(True, False), (True, True), (False, False)],
    ids=["ltx2-x2-names-rational-metadata-not", "ltx2-x2-both-rational", "ltx23-x2-plain"],
)
def test_x2_upscaler_layouts_convert_load_and_come_back(tmp_path, rational_names, metadata_rational):
    """LTX-2's x2 file holds the rational resampler's names, LTX-2.3's the plain ones; at scale 2 both compute the same
    and the names decide the layout, whatever `rational_resampler` says."""
    path = tmp_path / "upscaler-x2.safetensors"
    reference = write_upscaler(path, rational_names, metadata_rational)
    report = conversion.convert_original_to_diffusers(None, tmp_path / "up", upsampler=path)
    folder = ltx2_diffusers.LTX2LatentUpsamplerModel.from_pretrained(tmp_path / "up").eval()
    direct = ltx2_diffusers.LTX2LatentUpsamplerModel.from_single_file(path)
    assert folder.config.use_rational_resampler is rational_names is direct.config.use_rational_resampler
    assert report.components["latent_upsampler"]["extra_tensors"] == []
    latents = torch.randn(1, 8, 2, 4, 4)
    with torch.no_grad():
        expected = reference(latents)
        torch.testing.assert_close(folder(latents), expected, rtol=0, atol=1e-5)
        torch.testing.assert_close(direct(latents), expected, rtol=0, atol=1e-5)
    conversion.convert_diffusers_to_original(tmp_path / "up", tmp_path / "back.safetensors")
    assert raw_tensors(tmp_path / "back.safetensors") == raw_tensors(path)
    assert file_metadata(tmp_path / "back.safetensors") == file_metadata(path)


def test_from_single_file_fills_the_model_one_tensor_at_a_time(converted, monkeypatch):
    """Built on the meta device and filled tensor by tensor: when a tensor is read, no tensor read before it is still
    alive unless it became a parameter itself (here every one is cast to bf16: none survives), so the host never holds
    a second copy of the model. The parameters land on the device asked for."""
    import weakref

    from ltx2_diffusers.loaders import from_single_file as loader

    _, _, checkpoint, *_ = converted
    read, alive_at_read = [], []
    original_read = loader.read_tensor

    def counting_read(entry, *args):
        alive_at_read.append(sum(ref() is not None for ref in read))
        tensor = original_read(entry, *args)
        read.append(weakref.ref(tensor))
        return tensor

    monkeypatch.setattr(loader, "read_tensor", counting_read)
    model = ltx2_diffusers.LTX2VideoTransformer3DModel.from_single_file(
        checkpoint, torch_dtype=torch.bfloat16, device_map={"": "cpu"}
    )
    assert len(read) == len(model.state_dict()) and max(alive_at_read) == 0
    assert {(p.device.type, p.dtype) for p in model.parameters()} == {("cpu", torch.bfloat16)}
    with pytest.raises(ValueError, match="device_map='auto' plans a placement over several devices"):
        ltx2_diffusers.LTX2VideoTransformer3DModel.from_single_file(checkpoint, device_map="auto")
    with pytest.raises(ValueError, match=r"only \{\"\": device\}"):
        ltx2_diffusers.LTX2VideoTransformer3DModel.from_single_file(checkpoint, device_map={"blocks": "cpu", "": 0})
    with pytest.raises(ValueError, match="disagree; pass one of them"):
        ltx2_diffusers.LTX2VideoTransformer3DModel.from_single_file(checkpoint, device="meta", device_map="cpu")
