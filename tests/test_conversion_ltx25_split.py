"""LTX-2.5's split per-component files (spec 1.2 §1.2): the transformer file (connector blocks, no projection), the
text-encoder file (holding `text_embedding_projection.*`), the conv video VAE file (bare `encoder.*` / `decoder.*` /
`per_channel_statistics.*` names) and the audio VAE + vocoder file convert and load with `from_single_file`."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ltx2_diffusers import (
    AutoencoderKLLTX2Audio,
    AutoencoderKLLTX2Video,
    LTX2TextConnectors,
    LTX2VideoTransformer3DModel,
    LTX2VocoderWithBWE,
)
from ltx2_diffusers.conversion import convert_diffusers_to_original, convert_original_to_diffusers
from ltx2_diffusers.pipelines.tiny import TINY_DURATION_HEAD_CONFIG, build_tiny_pipeline


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    """A tiny LTX-2.5 written as the monolith, then cut into the four released files."""
    root = tmp_path_factory.mktemp("ltx25")
    pipe = build_tiny_pipeline(seed=2, model_version="2.5", duration_head=False)
    pipe.register_modules(diffusion_decoder=None)  # its own file format (diffusion_decoder_keys.py)
    pipe.save_pretrained(root / "folder")
    convert_diffusers_to_original(root / "folder", root / "mono.safetensors")
    with safe_open(root / "mono.safetensors", "pt") as handle:
        metadata, tensors = handle.metadata(), {k: handle.get_tensor(k) for k in handle.keys()}
    config = json.loads(metadata["config"])

    def write(name, keep, sections, rename=lambda k: k):
        chosen = {rename(k): v for k, v in tensors.items() if keep(k)}
        meta = {"config": json.dumps({s: config[s] for s in sections}), "model_version": metadata["model_version"]}
        save_file(chosen, root / name, metadata=meta)
        return root / name

    files = {
        "transformer": write("ltx-2.5-22b-dev-transformer-bf16.safetensors", lambda k: k.startswith("model.diffusion_model."),
                             ["transformer"]),
        "vae": write("ltx-2.5-video-vae-conv-bf16.safetensors", lambda k: k.startswith("vae."), ["vae"], lambda k: k[4:]),
        "audio": write("ltx-2.5-audio-vae-bf16.safetensors", lambda k: k.startswith(("audio_vae.", "vocoder.")),
                       ["audio_vae", "vocoder"]),
    }  # fmt: skip
    projection = {k: v for k, v in tensors.items() if k.startswith("text_embedding_projection.")}
    gemma = {"language_model.model.embed_tokens.weight": torch.zeros(4, 2)}  # the bundled Gemma-4, in short
    save_file({**projection, **gemma}, root / "gemma4-12b-with-proj-ltx-2.5-bf16.safetensors", metadata={"gemma_config": "{}"})
    files["text_encoder"] = root / "gemma4-12b-with-proj-ltx-2.5-bf16.safetensors"
    assert len(projection) == 4  # the per-modality projections: video and audio aggregate embeds
    return pipe, files, root


def assert_same_weights(loaded, expected):
    ours, theirs = loaded.state_dict(), expected.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_transformer_file_needs_the_text_encoder_file_for_its_connectors(split):
    _, files, root = split
    with pytest.raises(ValueError, match=r"holds the text connectors' blocks but not their text_embedding_projection"):
        convert_original_to_diffusers(files["transformer"], root / "refused")
    assert not (root / "refused").exists()


def test_split_transformer_and_text_encoder_files_convert_and_load(split):
    pipe, files, root = split
    convert_original_to_diffusers(files["transformer"], root / "out", text_encoder_file=files["text_encoder"])
    assert_same_weights(LTX2VideoTransformer3DModel.from_pretrained(root / "out", subfolder="transformer"),
                        pipe.transformer)  # fmt: skip
    assert_same_weights(LTX2TextConnectors.from_pretrained(root / "out", subfolder="connectors"), pipe.connectors)
    index = json.loads((root / "out" / "model_index.json").read_text())
    assert index["connectors"] == ["ltx2_diffusers", "LTX2TextConnectors"]
    assert index.get("vae", [None, None]) == [None, None]  # the other files are components of their own

    assert_same_weights(LTX2VideoTransformer3DModel.from_single_file(files["transformer"]), pipe.transformer)
    connectors = LTX2TextConnectors.from_single_file(files["transformer"], text_encoder_file=files["text_encoder"])
    assert_same_weights(connectors, pipe.connectors)
    assert connectors.config.text_proj_in_factor == 3


def test_split_video_vae_and_audio_files_load(split):
    pipe, files, root = split
    assert_same_weights(AutoencoderKLLTX2Video.from_single_file(files["vae"]), pipe.vae)
    assert_same_weights(AutoencoderKLLTX2Audio.from_single_file(files["audio"]), pipe.audio_vae)
    assert_same_weights(LTX2VocoderWithBWE.from_single_file(files["audio"]), pipe.vocoder)
    convert_original_to_diffusers(files["vae"], root / "vae-out")
    assert_same_weights(AutoencoderKLLTX2Video.from_pretrained(root / "vae-out", subfolder="vae"), pipe.vae)


def test_split_file_errors(split, tmp_path):
    _, files, root = split
    with pytest.raises(ValueError, match=r"holds its own text_embedding_projection.\* tensors, so text_encoder_file="):
        convert_original_to_diffusers(root / "mono.safetensors", tmp_path / "a", text_encoder_file=files["text_encoder"])
    with pytest.raises(ValueError, match=r"holds no text-connector blocks"):
        convert_original_to_diffusers(files["audio"], tmp_path / "b", text_encoder_file=files["text_encoder"])
    with pytest.raises(ValueError, match=r"holds no text_embedding_projection.\* tensors: not an LTX-2.5 text-enc"):
        LTX2TextConnectors.from_single_file(files["transformer"], text_encoder_file=files["audio"])
    with pytest.raises(ValueError, match=r"AutoencoderKLLTX2Audio takes none: drop it"):
        AutoencoderKLLTX2Audio.from_single_file(files["audio"], text_encoder_file=files["text_encoder"])
    with safe_open(files["vae"], "pt") as handle:
        metadata, tensors = handle.metadata(), {k: handle.get_tensor(k) for k in handle.keys()}
    config = json.loads(metadata["config"])
    config["vae"]["_class_name"] = "CausalDiffusionVAE"
    save_file(tensors, tmp_path / "diffusion-vae.safetensors", metadata={**metadata, "config": json.dumps(config)})
    with pytest.raises(ValueError, match=r"decoder is a CausalDiffusionVAE \(LTX-2.5's diffusion decoder\)"):
        AutoencoderKLLTX2Video.from_single_file(tmp_path / "diffusion-vae.safetensors")


def test_duration_head_and_diffusion_vae_files_load(tmp_path):
    from ltx2_diffusers import LTX2DurationHead, LTX2VideoDiffusionDecoderModel
    from ltx2_diffusers.loaders import diffusion_decoder_keys, duration_head_keys
    from ltx2_diffusers.loaders.from_single_file import load_component_from_single_file

    pipe = build_tiny_pipeline(seed=6, model_version="2.5")
    head, decoder = pipe.duration_head, pipe.diffusion_decoder
    with torch.no_grad():
        decoder.latents_mean.normal_(), decoder.latents_std.uniform_(0.5, 1.5)
    head_file = tmp_path / "ltx-2.5-duration-head-bf16.safetensors"
    save_file(duration_head_keys.diffusers_to_original(head.state_dict()), head_file,
              metadata={"config": json.dumps(duration_head_keys.config_to_original(head.config))})  # fmt: skip
    vae_file = tmp_path / "ltx-2.5-video-vae-bf16.safetensors"
    tensors = {**diffusion_decoder_keys.diffusers_to_original(decoder.state_dict()),
               "encoder.conv_in.conv.weight": torch.zeros(4, 3)}  # the conv encoder beside it: not the decoder's
    save_file(tensors, vae_file, metadata={"config": json.dumps({"vae": diffusion_decoder_keys.config_to_original(
        decoder.config)}), "model_version": "2.5.0"})  # fmt: skip

    loaded_head = load_component_from_single_file(LTX2DurationHead, head_file, torch_dtype=torch.float32)
    assert_same_weights(loaded_head, head)
    assert {k: loaded_head.config[k] for k in TINY_DURATION_HEAD_CONFIG} == TINY_DURATION_HEAD_CONFIG
    loaded_decoder = load_component_from_single_file(LTX2VideoDiffusionDecoderModel, vae_file)
    assert_same_weights(loaded_decoder, decoder)
    with pytest.raises(ValueError, match=r"holds no duration_head.\* tensors: not an LTX-2.5 duration-head file"):
        load_component_from_single_file(LTX2DurationHead, vae_file)
    with pytest.raises(ValueError, match=r"config.vae is a convolutional CausalVideoAutoencoder"):
        load_component_from_single_file(LTX2VideoDiffusionDecoderModel, head_file)  # no config.vae section


def test_pipeline_from_split_files(split, tmp_path):
    from ltx2_diffusers import LTX2AVPipeline, LTX2DurationHead, LTX2VideoDiffusionDecoderModel
    from ltx2_diffusers.conversion import MODEL_CLASSES
    from ltx2_diffusers.loaders import diffusion_decoder_keys, duration_head_keys
    from ltx2_diffusers.loaders.from_single_file import pipeline_from_split_files

    pipe, files, _ = split
    other = build_tiny_pipeline(seed=6, model_version="2.5")  # a decoder and a head of the tiny 2.5's sizes
    save_file(duration_head_keys.diffusers_to_original(other.duration_head.state_dict()), tmp_path / "head.safetensors",
              metadata={"config": json.dumps(duration_head_keys.config_to_original(other.duration_head.config))})
    save_file(diffusion_decoder_keys.diffusers_to_original(other.diffusion_decoder.state_dict()),
              tmp_path / "vae.safetensors", metadata={"config": json.dumps(
                  {"vae": diffusion_decoder_keys.config_to_original(other.diffusion_decoder.config)})})  # fmt: skip
    classes = {**MODEL_CLASSES, "LTX2VideoDiffusionDecoderModel": LTX2VideoDiffusionDecoderModel,
               "LTX2DurationHead": LTX2DurationHead}  # fmt: skip
    loaded = pipeline_from_split_files(
        transformer=files["transformer"], text_encoder_file=files["text_encoder"], video_vae=files["vae"],
        audio_vae=files["audio"], diffusion_vae=tmp_path / "vae.safetensors", duration_head=tmp_path / "head.safetensors",
        classes=classes, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, pipeline_class=LTX2AVPipeline,
    )  # fmt: skip
    for name in ("transformer", "connectors", "vae", "audio_vae", "vocoder"):
        assert_same_weights(getattr(loaded, name), getattr(pipe, name))
    assert_same_weights(loaded.diffusion_decoder, other.diffusion_decoder)
    assert_same_weights(loaded.duration_head, other.duration_head)
    assert loaded.model_version == "2.5" and loaded.kind == "dev" and loaded.video_decoder is loaded.diffusion_decoder
    out = loaded("a cat", height=64, width=64, min_seconds=0.5, max_seconds=1.0, num_inference_steps=1,
                 generator=torch.Generator().manual_seed(0), output_type="latent")  # fmt: skip
    assert out.frames.shape == (1, 128, 3, 2, 2)  # [12, 24] frames at 24 fps: 17


def test_pipelines_from_split_files(split):
    from ltx2_diffusers import LTX2AVPipeline
    from ltx2_diffusers.pipelines.pipeline_ltx2_av_two_stage import LTX2AVTwoStagePipeline
    from ltx2_diffusers.pipelines.tiny import build_tiny_two_stage_pipeline

    pipe, files, _ = split
    upsampler = build_tiny_two_stage_pipeline(model_version="2.5", duration_head=False).latent_upsampler
    paths = {"transformer": files["transformer"], "text_encoder_file": files["text_encoder"],
             "video_vae": files["vae"], "audio_vae": files["audio"]}  # fmt: skip
    two = LTX2AVTwoStagePipeline.from_split_files(**paths, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                                                  latent_upsampler=upsampler, kind="distilled")  # fmt: skip
    assert two.latent_upsampler is upsampler and two.kind == "distilled" and two.model_version == "2.5"
    assert two.diffusion_decoder is None and two.duration_head is None and two.video_decoder is two.vae
    assert_same_weights(two.connectors, pipe.connectors)
    with pytest.raises(ValueError, match=r"LTX2AVPipeline has no latent_upsampler: drop latent_upsampler="):
        LTX2AVPipeline.from_split_files(**paths, latent_upsampler=upsampler)
