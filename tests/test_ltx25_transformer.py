"""LTX-2.5 transformer and connectors: diffusers 0.42.1's format both ways, the `reference` switch (ltx-core 1.2.0 /
1.0.0 audio<->video AdaLN), and LTX-2.5 original files (metadata, lossless conversion, from_single_file).

Numerics against ltx-core 1.2.0 are in test_goldens_transformer.py; against 1.0.0 in test_transformer_parity.py.
"""

import json
from pathlib import Path

import pytest
import torch
from diffusers.models.transformers.transformer_ltx2 import LTX2VideoTransformer3DModel as DiffusersTransformer
from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors as DiffusersTextConnectors
from safetensors import safe_open
from safetensors.torch import save_file

from ltx2_diffusers import LTX2TextConnectors, LTX2VideoTransformer3DModel, conversion
from ltx2_diffusers.loaders import metadata as md
from ltx2_diffusers.loaders.connector_keys import diffusers_to_original_keys as connector_original_keys

GOLDEN_25 = Path(__file__).parent / "goldens" / "transformer" / "ltx25.safetensors"
FRAMES, HEIGHT, WIDTH = 2, 3, 4
VIDEO_TOKENS, AUDIO_TOKENS, TEXT_TOKENS = FRAMES * HEIGHT * WIDTH, 5, 7
# LTX-2.3 layout + every LTX-2.5 option; equal head counts (ltx-core 1.2.0 asserts them)
LTX25 = dict(
    in_channels=8, out_channels=8, num_attention_heads=2, attention_head_dim=8, cross_attention_dim=16,
    audio_in_channels=8, audio_out_channels=8, audio_num_attention_heads=2, audio_attention_head_dim=4,
    audio_cross_attention_dim=8, num_layers=2, caption_channels=12, rope_type="split", gated_attn=True,
    audio_gated_attn=True, cross_attn_mod=True, audio_cross_attn_mod=True, use_prompt_embeddings=False,
    perturbed_attn=True, ff_bias=False, use_keyframes_abs_pos_embedding=True,
)  # fmt: skip
# LTX-2.5's connectors: V2 layout at Gemma-4's hidden size (a tiny stand-in: 24 wide, 3 layers + embeddings)
CONNECTORS_25 = dict(
    caption_channels=24, text_proj_in_factor=4, video_connector_num_attention_heads=2,
    video_connector_attention_head_dim=8, video_connector_num_layers=2, video_connector_num_learnable_registers=8,
    video_gated_attn=True, audio_connector_num_attention_heads=2, audio_connector_attention_head_dim=4,
    audio_connector_num_layers=1, audio_connector_num_learnable_registers=8, audio_gated_attn=True,
    connector_rope_base_seq_len=64, rope_type="split", per_modality_projections=True, video_hidden_dim=16,
    audio_hidden_dim=8, proj_bias=True,
)  # fmt: skip


def randomize_(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            scale = 0.3 if ("table" in name or "embedding" in name or param.ndim < 2) else param.shape[1] ** -0.5
            param.copy_(1 + 0.1 * noise if "norm_" in name else noise * scale)
    return model.eval()


def transformer_inputs(seed: int = 1, video_sigma=(0.9, 0.6), audio_sigma=(0.2, 1.0), condition_first_frame=True):
    """diffusers-style kwargs (timesteps = 1000 sigma); latent frame 0 conditioned (timestep 0) and marked."""
    generator = torch.Generator().manual_seed(seed)
    video_sigma, audio_sigma = torch.tensor(video_sigma), torch.tensor(audio_sigma)
    mask = torch.ones(2, VIDEO_TOKENS)
    if condition_first_frame:
        mask[:, : HEIGHT * WIDTH] = 0.0
    keyframes = torch.zeros(2, VIDEO_TOKENS, 1)
    keyframes[:, : HEIGHT * WIDTH] = 1.0
    return dict(
        hidden_states=torch.randn(2, VIDEO_TOKENS, 8, generator=generator),
        audio_hidden_states=torch.randn(2, AUDIO_TOKENS, 8, generator=generator),
        encoder_hidden_states=torch.randn(2, TEXT_TOKENS, 16, generator=generator),
        audio_encoder_hidden_states=torch.randn(2, TEXT_TOKENS, 8, generator=generator),
        timestep=1000 * video_sigma[:, None] * mask,
        audio_timestep=1000 * audio_sigma[:, None].expand(2, AUDIO_TOKENS),
        sigma=1000 * video_sigma,
        audio_sigma=1000 * audio_sigma,
        num_frames=FRAMES,
        height=HEIGHT,
        width=WIDTH,
        audio_num_frames=AUDIO_TOKENS,
        video_keyframes_mask=keyframes,
        use_cross_timestep=True,
        return_dict=False,
    )


def outputs(model, **kwargs):
    with torch.no_grad():
        return model(**kwargs)


def assert_same(got, expected, atol=1e-5):
    torch.testing.assert_close(got[0], expected[0], rtol=0, atol=atol)
    torch.testing.assert_close(got[1], expected[1], rtol=0, atol=atol)


# ---------------------------------------------------------------------------------------------------------------------
# diffusers 0.42.1 format


@pytest.mark.parametrize("prompt_adaln", [True, False], ids=["prompt_adaln", "static_prompt_table"])
def test_diffusers_ltx25_transformer_loads_strictly_into_ours_and_back(tmp_path, prompt_adaln):
    config = dict(LTX25, audio_ff_bias=False, use_prompt_adaln_single=prompt_adaln)
    theirs = randomize_(DiffusersTransformer(**config), seed=3)
    theirs.save_pretrained(tmp_path / "theirs")
    ours, info = LTX2VideoTransformer3DModel.from_pretrained(tmp_path / "theirs", output_loading_info=True)
    assert all(not info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs")), info
    assert set(ours.state_dict()) == set(theirs.state_dict())
    assert "transformer_blocks.0.ff.net.2.bias" not in theirs.state_dict()
    assert "transformer_blocks.0.audio_ff.net.2.bias" not in theirs.state_dict()
    assert ("prompt_adaln.linear.weight" in theirs.state_dict()) is prompt_adaln
    assert theirs.keyframes_abs_pos_embedding.shape == (1, 16)

    # diffusers' use_cross_timestep=True is ltx-core 1.0.0's A<->V rule: equal to ours with reference="1.0"
    inputs = transformer_inputs()
    expected = outputs(theirs, **inputs)
    assert_same(outputs(ours, **inputs, reference="1.0"), expected)
    # with one sigma for both streams and no conditioned token the two rules agree, so the default matches too
    plain = transformer_inputs(video_sigma=(0.7, 0.4), audio_sigma=(0.7, 0.4), condition_first_frame=False)
    assert_same(outputs(ours, **plain), outputs(theirs, **plain))

    ours.save_pretrained(tmp_path / "ours")
    assert "reference" not in json.loads((tmp_path / "ours" / "config.json").read_text())  # runtime, not config
    back, info = DiffusersTransformer.from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert all(not info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs")), info
    assert_same(outputs(back.eval(), **inputs), expected, atol=0)


def test_diffusers_ltx25_connectors_load_strictly_into_ours_and_back(tmp_path):
    theirs = randomize_(DiffusersTextConnectors(**CONNECTORS_25), seed=4)
    theirs.save_pretrained(tmp_path / "theirs")
    ours, info = LTX2TextConnectors.from_pretrained(tmp_path / "theirs", output_loading_info=True)
    assert all(not info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs")), info
    assert ours.config.connector_ff_bias is True  # diffusers' class always has the FFN biases
    generator = torch.Generator().manual_seed(5)
    hidden = torch.randn(2, 16, 24 * 4, generator=generator)  # diffusers' packed layout, feature d * L + l
    mask = torch.zeros(2, 16, dtype=torch.int64)
    mask[0, 11:], mask[1, 2:] = 1, 1  # left padding, two lengths: the batch-safe register fill
    expected = outputs(theirs, text_encoder_hidden_states=hidden, attention_mask=mask)
    got = outputs(ours, text_encoder_hidden_states=hidden, attention_mask=mask)
    torch.testing.assert_close(got[0], expected[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(got[1], expected[1], rtol=0, atol=1e-5)
    ours.save_pretrained(tmp_path / "ours")
    back, info = DiffusersTextConnectors.from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    torch.testing.assert_close(outputs(back, text_encoder_hidden_states=hidden, attention_mask=mask)[0], expected[0])


def test_connector_ff_bias_false_drops_both_connectors_ffn_biases():
    connectors = LTX2TextConnectors(**CONNECTORS_25, connector_ff_bias=False)
    names = set(connectors.state_dict())
    assert "video_connector.transformer_blocks.0.ff.net.0.proj.weight" in names
    assert not any(name.startswith(("video_connector", "audio_connector")) and ".ff." in name and
                   name.endswith(".bias") for name in names)  # fmt: skip
    assert "video_text_proj_in.bias" in names  # proj_bias is its own key


# ---------------------------------------------------------------------------------------------------------------------
# The reference switch


def test_reference_switch_default_setter_and_forward_argument():
    model = randomize_(LTX2VideoTransformer3DModel(**LTX25), seed=6)
    assert model.reference == "1.2"
    inputs = transformer_inputs()
    new, old = outputs(model, **inputs), outputs(model, **inputs, reference="1.0")
    assert (new[0] - old[0]).abs().max() > 1e-3 and (new[1] - old[1]).abs().max() > 1e-3
    model.set_reference("1.0")
    assert_same(outputs(model, **inputs), old, atol=0)
    assert_same(outputs(model, **inputs, reference="1.2"), new, atol=0)  # the argument wins for one call
    assert model.reference == "1.0"
    # plain text-to-video (one sigma, no conditioned token): both rules give the same numbers
    plain = transformer_inputs(video_sigma=(0.5, 0.3), audio_sigma=(0.5, 0.3), condition_first_frame=False)
    assert_same(outputs(model, **plain), outputs(model, **plain, reference="1.2"), atol=1e-6)
    # diffusers' legacy path ignores the reference
    legacy = {**inputs, "use_cross_timestep": False}
    assert_same(outputs(model, **legacy), outputs(model, **legacy, reference="1.2"), atol=0)
    with pytest.raises(ValueError, match=r"reference='1\.1' is not supported; expected one of \['1\.2', '1\.0'\]"):
        model.set_reference("1.1")
    with pytest.raises(ValueError, match=r"reference='2\.5' is not supported"):
        outputs(model, **inputs, reference="2.5")
    assert model.reference == "1.0"


def test_audio_sigma_drives_only_the_gate_under_1_2():
    # 1.2.0: the video stream's A2V scale/shift come from its own timesteps; the audio sigma reaches video only
    # through the A2V gate (and audio's own AdaLN). With audio<->video isolated, the audio sigma changes nothing.
    model = randomize_(LTX2VideoTransformer3DModel(**LTX25), seed=7)
    inputs = transformer_inputs()
    other = {**inputs, "audio_sigma": inputs["audio_sigma"] * 0.5}
    assert (outputs(model, **other)[0] - outputs(model, **inputs)[0]).abs().max() > 1e-4
    isolated = outputs(model, **inputs, isolate_modalities=True)[0]
    torch.testing.assert_close(outputs(model, **other, isolate_modalities=True)[0], isolated, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------------------------------
# LTX-2.5 original files


def golden_section(**updates) -> dict:
    """The golden's `config.transformer` (ltx-core 1.2.0's LTX-2.5 layout), updated."""
    with safe_open(GOLDEN_25, "pt") as f:
        return {**json.loads(f.metadata()["config"])["transformer"], **updates}


def write_ltx25_file(path: Path, section: dict, extra_tensors: dict | None = None) -> None:
    """An LTX-2.5 file as ltx-core 1.2.0 names it: the golden's weights (ltx-core's own state dict), `section` as
    `config.transformer`, model_version and the Gemma-version record of the released 2.5 files."""
    with safe_open(GOLDEN_25, "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys() if k.startswith("model.diffusion_model.")}  # noqa: SIM118
    header = {
        "config": json.dumps({"transformer": section}),
        "model_version": "2.5.0",
        "gemma_source_checkpoint": json.dumps({"gemma_version": "gemma4-12b-ltx-v1"}),
    }
    save_file({**tensors, **(extra_tensors or {})}, str(path), metadata=header)


def connector_tensors(section: dict, text_proj_in_factor: int, seed: int, projections: bool = True) -> dict:
    """Random connectors of the layout `section` describes, under their single-file names (bf16, as released)."""
    config = md.connectors_config_from_original({"transformer": section}, text_proj_in_factor)
    state = randomize_(LTX2TextConnectors(**config), seed).state_dict()
    names = connector_original_keys(state, config)
    return {names[k]: v.bfloat16().contiguous() for k, v in state.items() if projections or "text_proj_in" not in k}


# Connector keys of a 2.5-style `config.transformer`: V2 connectors at the stream widths, Gemma-4-like width 24
CONNECTOR_SECTION = dict(
    caption_channels=24, connector_num_attention_heads=2, connector_attention_head_dim=8, connector_num_layers=2,
    audio_connector_num_attention_heads=2, audio_connector_attention_head_dim=4, audio_connector_num_layers=1,
    connector_positional_embedding_max_pos=[4096], connector_apply_gated_attention=True,
)  # fmt: skip


def test_ltx25_metadata_reads_and_writes_the_new_keys():
    section = {**md.TRANSFORMER_ASSERTED, "ff_bias": False, "audio_ff_bias": False, "use_keyframes_abs_pos_embedding":
               True, "use_prompt_adaln_single": False, "connector_ff_bias": False}  # fmt: skip
    section.pop("num_vector_embeds")
    transformer = md.transformer_config_from_original({"transformer": section})
    connectors = md.connectors_config_from_original({"transformer": section})
    assert (transformer["ff_bias"], transformer["audio_ff_bias"]) == (False, False)
    assert (transformer["use_keyframes_abs_pos_embedding"], transformer["use_prompt_adaln_single"]) == (True, False)
    assert connectors["connector_ff_bias"] is False
    written = md.original_transformer_section(transformer, connectors)
    assert {k: written[k] for k in md.TRANSFORMER_2_5_KEYS} == {k: section[k] for k in md.TRANSFORMER_2_5_KEYS}
    assert written["connector_ff_bias"] is False
    # LTX-2 / LTX-2.3 sections are written exactly as before: none of the new keys
    plain = md.original_transformer_section(md.transformer_config_from_original({"transformer": section | {
        k: default for k, (_, default) in {**md.TRANSFORMER_2_5_KEYS, **md.CONNECTOR_2_5_KEYS}.items()}}), None)
    assert not set(plain) & {*md.TRANSFORMER_2_5_KEYS, *md.CONNECTOR_2_5_KEYS}
    with pytest.raises(ValueError, match=r"config\.transformer\.ff_bias='no'; expected true or false"):
        md.transformer_config_from_original({"transformer": {**section, "ff_bias": "no"}})


@pytest.mark.parametrize(
    "model_version,expected", [("2.5.0", "2.5"), ("2.4-rc2", "2.5"), ("2.6", "2.5"), (None, "2.5")]
)
def test_ltx25_model_version(model_version, expected):
    config = {"transformer": {"caption_proj_before_connector": True, "ff_bias": False}}
    metadata = {} if model_version is None else {"model_version": model_version}
    assert md.detect_model_version(metadata, config) == expected
    assert md.parse_version_tuple("2.4-rc2") == (2, 4) and md.parse_version_tuple("") == ()


def test_model_version_of_a_transformer_config():
    assert md.model_version_of_transformer(LTX25) == "2.5"
    assert md.model_version_of_transformer({**LTX25, "ff_bias": True}) == "2.5"  # the keyframe embedding alone
    assert md.model_version_of_transformer({**LTX25, "ff_bias": True, "use_keyframes_abs_pos_embedding": False}) == (
        "2.3"
    )
    assert md.model_version_of_transformer({"use_prompt_embeddings": True}) == "2"


def test_ltx25_features_under_an_older_model_version_fail():
    config = {"transformer": {"caption_proj_before_connector": True, "use_keyframes_abs_pos_embedding": True}}
    with pytest.raises(ValueError, match=r"model_version='2\.3\.0' contradicts the config, which has LTX-2\.5's"):
        md.detect_model_version({"model_version": "2.3.0"}, config)


def test_ltx25_transformer_file_converts_both_ways_byte_identically_and_loads(tmp_path):
    source = tmp_path / "ltx-2.5-22b-distilled-transformer-bf16.safetensors"
    write_ltx25_file(source, golden_section())
    report = conversion.convert_original_to_diffusers(source, tmp_path / "folder")
    assert set(report.components) == {"transformer"} and report.model_version == "2.5"
    folder_config = json.loads((tmp_path / "folder" / "transformer" / "config.json").read_text())
    assert (folder_config["ff_bias"], folder_config["use_keyframes_abs_pos_embedding"]) == (False, True)
    conversion.convert_diffusers_to_original(tmp_path / "folder", tmp_path / "back.safetensors")
    assert (tmp_path / "back.safetensors").read_bytes() == source.read_bytes()

    direct = LTX2VideoTransformer3DModel.from_single_file(source)
    folder = LTX2VideoTransformer3DModel.from_pretrained(tmp_path / "folder" / "transformer")
    assert direct.config.ff_bias is False and direct.keyframes_abs_pos_embedding.dtype == torch.bfloat16
    for name, tensor in folder.state_dict().items():
        assert torch.equal(direct.state_dict()[name], tensor), name
    # and the folder's model is diffusers' LTX-2.5 transformer
    theirs, info = DiffusersTransformer.from_pretrained(tmp_path / "folder" / "transformer", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]


def test_ltx25_file_with_connectors_converts_both_ways_byte_identically(tmp_path):
    # the connector blocks (bias-free FFN here: connector_ff_bias=false) and Gemma-4-wide V2 projections beside it
    section = golden_section(**CONNECTOR_SECTION, connector_ff_bias=False)
    source = tmp_path / "ltx-2.5-dev.safetensors"
    write_ltx25_file(source, section, connector_tensors(section, text_proj_in_factor=4, seed=8))
    report = conversion.convert_original_to_diffusers(source, tmp_path / "folder")
    assert set(report.components) == {"transformer", "connectors"}
    loaded = LTX2TextConnectors.from_pretrained(tmp_path / "folder" / "connectors")
    assert (loaded.config.connector_ff_bias, loaded.config.caption_channels, loaded.config.text_proj_in_factor) == (
        False, 24, 4,
    )  # fmt: skip
    assert "video_connector.transformer_blocks.0.ff.net.2.bias" not in loaded.state_dict()
    conversion.convert_diffusers_to_original(tmp_path / "folder", tmp_path / "back.safetensors")
    assert (tmp_path / "back.safetensors").read_bytes() == source.read_bytes()
    single = LTX2TextConnectors.from_single_file(source)
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(single.state_dict()[name], tensor), name


def test_split_ltx25_transformer_file_loads_the_transformer_without_the_projections(tmp_path):
    # The released split layout keeps the connector blocks in the transformer file and the feature projections in
    # the text-encoder file (1.2 spec §1.2): the transformer loads from it alone.
    section = golden_section(**CONNECTOR_SECTION)
    source = tmp_path / "split.safetensors"
    write_ltx25_file(source, section, connector_tensors(section, text_proj_in_factor=4, seed=9, projections=False))
    model = LTX2VideoTransformer3DModel.from_single_file(source)
    assert model.config.use_keyframes_abs_pos_embedding is True and model.config.ff_bias is False


def test_one_stream_calls_and_their_errors():
    model = randomize_(LTX2VideoTransformer3DModel(**LTX25), seed=10)
    inputs = transformer_inputs()
    audio_only = {k: v for k, v in inputs.items() if k.startswith("audio_") or k in ("return_dict",)}
    video, audio = outputs(model, hidden_states=None, **audio_only)
    assert video is None and audio.shape == (2, AUDIO_TOKENS, 8)
    # not the audio of the audio-video call, where video reaches audio through V2A (the golden test pins the values)
    assert (audio - outputs(model, **inputs)[1]).abs().max() > 1e-3
    with pytest.raises(TypeError, match=r"forward needs hidden_states \(video\), audio_hidden_states, or both"):
        outputs(model, hidden_states=None, encoder_hidden_states=inputs["encoder_hidden_states"], timestep=inputs["sigma"])
    with pytest.raises(TypeError, match="audio_hidden_states was given without audio_encoder_hidden_states"):
        outputs(model, hidden_states=None, audio_hidden_states=inputs["audio_hidden_states"], audio_timestep=inputs[
            "audio_timestep"])  # fmt: skip
    with pytest.raises(TypeError, match=r"an audio-only call needs audio_timestep \(or timestep\)"):
        outputs(model, **{**audio_only, "audio_timestep": None}, hidden_states=None)
    with pytest.raises(ValueError, match="the timestep is per token, so audio_sigma must be given"):
        outputs(model, **{**audio_only, "audio_sigma": None}, hidden_states=None)
    with pytest.raises(TypeError, match=r"forward needs timestep for the video stream"):
        outputs(model, **{**inputs, "timestep": None})
    with pytest.raises(ValueError, match="video and audio batch sizes differ: 2 and 1"):
        outputs(model, **{**inputs, "audio_hidden_states": inputs["audio_hidden_states"][:1]})
