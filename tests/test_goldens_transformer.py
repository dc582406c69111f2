"""Our transformer and connectors against ltx-core 1.2.0's on tiny random weights (1.2 spec §10, G1, G2, G4, and G8's
connector half; G3, the audio-only model), without ltx-core:
tests/goldens/transformer/*.safetensors hold the weights (original names), the metadata, the inputs and 1.2.0's outputs,
written by scripts/goldens/transformer.py. The weights go through our key map and the config through our metadata
reader, as a Lightricks file would. Tolerance: the 1.0.0 parity tests' (atol 1e-4 on O(1) outputs, fp32).
"""

from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from ltx2_diffusers.loaders import connector_keys
from ltx2_diffusers.loaders import metadata as md
from ltx2_diffusers.loaders.transformer_keys import original_to_diffusers_keys
from ltx2_diffusers.models.connectors import LTX2TextConnectors
from ltx2_diffusers.models.perturbations import Perturbations
from ltx2_diffusers.models.transformer_ltx2 import LTX2VideoTransformer3DModel

GOLDENS = Path(__file__).parent / "goldens" / "transformer"
TOLERANCE = dict(rtol=0, atol=1e-4)
VERSIONS = ["20", "23", "25"]


def load(version: str, **overrides) -> tuple[LTX2VideoTransformer3DModel, dict, dict, dict]:
    """(our model with the golden's weights, inputs, outputs, metadata); `overrides` change the config read from it."""
    with safe_open(GOLDENS / f"ltx{version}.safetensors", "pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    config = {**md.transformer_config_from_original(md.parse_original_metadata(metadata)), **overrides}
    weights = {k: v.float() for k, v in tensors.items() if k.startswith("model.diffusion_model.")}
    if not config["use_prompt_adaln_single"]:  # the same weights without the prompt AdaLN (1.2 spec §2.1)
        weights = {k: v for k, v in weights.items() if "prompt_adaln_single." not in k}
    model = LTX2VideoTransformer3DModel(**config).eval()
    mapping = original_to_diffusers_keys(weights, config, set(model.state_dict()))
    model.load_state_dict({mapping[k]: v for k, v in weights.items()}, strict=True)
    inputs = {k.removeprefix("input."): v for k, v in tensors.items() if k.startswith("input.")}
    outputs = {k.removeprefix("output."): v for k, v in tensors.items() if k.startswith("output.")}
    return model, inputs, outputs, metadata


def run(model, inputs, keyframes=True, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return model(
            hidden_states=inputs["video"],
            audio_hidden_states=inputs["audio"],
            encoder_hidden_states=inputs["video_context"],
            audio_encoder_hidden_states=inputs["audio_context"],
            timestep=inputs["video_timesteps"] * 1000,
            audio_timestep=inputs["audio_timesteps"] * 1000,
            sigma=inputs["video_sigma"] * 1000,
            audio_sigma=inputs["audio_sigma"] * 1000,
            video_coords=inputs["video_positions"],
            audio_coords=inputs["audio_positions"],
            video_keyframes_mask=inputs["keyframes_mask"] if keyframes else None,
            return_dict=False,
            **kwargs,
        )


def assert_golden(got, outputs, case):
    video, audio = outputs[f"{case}.video"], outputs[f"{case}.audio"]
    assert video.abs().max() > 0.1 and audio.abs().max() > 0.1  # O(1) outputs: the tolerance means something
    torch.testing.assert_close(got[0], video, **TOLERANCE)
    torch.testing.assert_close(got[1], audio, **TOLERANCE)


@pytest.mark.parametrize("version", VERSIONS)
def test_metadata_gives_the_layout(version):
    model, _, _, metadata = load(version)
    cfg = model.config
    assert md.detect_model_version(metadata, md.parse_original_metadata(metadata)) == {"20": "2", "23": "2.3"}.get(
        version, "2.5"
    )
    assert cfg.use_prompt_embeddings is (version == "20")
    assert (cfg.gated_attn, cfg.cross_attn_mod) == ((version != "20"),) * 2
    assert (cfg.ff_bias, cfg.use_keyframes_abs_pos_embedding) == (version != "25", version == "25")
    assert ("transformer_blocks.0.ff.net.2.bias" in model.state_dict()) is (version != "25")


@pytest.mark.parametrize("version", VERSIONS)
def test_forward_matches_ltx_core_1_2(version):
    # unequal video/audio sigmas and a conditioned first latent frame: where 1.2.0's A<->V rule differs from 1.0.0's
    model, inputs, outputs, _ = load(version)
    got = run(model, inputs)
    assert_golden(got, outputs, "plain")
    old_rule = run(model, inputs, reference="1.0")
    assert (old_rule[0] - outputs["plain.video"]).abs().max() > 1e-3


@pytest.mark.parametrize("version", VERSIONS)
def test_per_sample_stg_and_modality_isolation_match_ltx_core_1_2(version):
    # sample 0: STG on video block 1 and audio block 0; sample 1: no audio<->video attention
    model, inputs, outputs, _ = load(version)
    perturbations = Perturbations(
        video_stg_blocks=(1,),
        audio_stg_blocks=(0,),
        video_stg_mask=torch.tensor([1.0, 0.0]),
        audio_stg_mask=torch.tensor([1.0, 0.0]),
        skip_a2v_mask=torch.tensor([0.0, 1.0]),
        skip_v2a_mask=torch.tensor([0.0, 1.0]),
    )
    assert_golden(run(model, inputs, perturbations=perturbations), outputs, "perturbed")


def test_audio_only_call_matches_ltx_core_1_2_audio_only_model():
    # G3: ltx-core 1.2.0's audio-only model (its T2A pipeline) = our model called without video
    model, inputs, outputs, _ = load("23")
    with torch.no_grad():
        video, audio = model(
            None,
            audio_hidden_states=inputs["audio"],
            audio_encoder_hidden_states=inputs["audio_context"],
            audio_timestep=inputs["audio_timesteps"] * 1000,
            audio_sigma=inputs["audio_sigma"] * 1000,
            audio_coords=inputs["audio_positions"],
            return_dict=False,
        )
    assert video is None
    torch.testing.assert_close(audio, outputs["audio_only.audio"], **TOLERANCE)
    assert (audio - outputs["plain.audio"]).abs().max() > 1e-3  # without video the audio stream differs


def test_ltx25_keyframe_marker_and_static_prompt_table():
    model, inputs, outputs, _ = load("25")
    assert inputs["keyframes_mask"][:, :12].eq(1).all() and inputs["keyframes_mask"][:, 12:].eq(0).all()
    assert model.keyframes_abs_pos_embedding.abs().max() > 0.1
    assert_golden(run(model, inputs, keyframes=False), outputs, "no_keyframes")
    assert (outputs["plain.video"] - outputs["no_keyframes.video"]).abs().max() > 1e-3
    static, inputs, outputs, _ = load("25", use_prompt_adaln_single=False)
    assert not hasattr(static, "prompt_adaln")
    assert_golden(run(static, inputs), outputs, "static_prompt")


def test_ltx25_connectors_match_ltx_core_1_2():
    # V2 features of a Gemma-4-like stack (width 8, 4 hidden states), connector_ff_bias false, two prompts of 5 and
    # 100 tokens left-padded to 128: 1.2.0's batch-safe processor (valid tokens first, registers at p mod 128)
    with safe_open(GOLDENS / "connectors25.safetensors", "pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    original = md.parse_original_metadata(metadata)
    weights = {k: v.float() for k, v in tensors.items() if not k.startswith(("input.", "output."))}
    width = original["transformer"]["caption_channels"]
    factor = weights["text_embedding_projection.video_aggregate_embed.weight"].shape[1] // width
    config = md.connectors_config_from_original(original, factor)
    assert (config["connector_ff_bias"], config["per_modality_projections"], factor) == (False, True, 4)
    model = LTX2TextConnectors(**config).eval()
    mapping = connector_keys.original_to_diffusers_keys(weights, config)
    model.load_state_dict({mapping[k]: v for k, v in weights.items()}, strict=True)
    hidden = [tensors[f"input.hidden_states.{i}"].float() for i in range(factor)]
    with torch.no_grad():
        video, audio, mask = model(hidden, tensors["input.attention_mask"])
    assert tensors["output.video"].abs().max() > 0.1
    torch.testing.assert_close(video, tensors["output.video"], **TOLERANCE)
    torch.testing.assert_close(audio, tensors["output.audio"], **TOLERANCE)
    assert torch.equal(mask, tensors["output.attention_mask"].to(mask.dtype))
