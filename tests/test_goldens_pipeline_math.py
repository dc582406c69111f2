"""Our pipeline maths with reference="1.2" against ltx-core / ltx-pipelines 1.2.0, through golden tensors that
`scripts/goldens/pipeline_math.py` wrote with that version (tests/goldens/MANIFEST.json; delta spec §10 G5, G7, G8, G9,
G16). ltx-core 1.2.0 is not imported: the goldens are the oracle, so these run wherever the suite runs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.gemma4 import GEMMA4_HIDDEN_SIZE, GEMMA4_NUM_HIDDEN_STATES, build_tiny_gemma4
from safetensors.torch import load_file

from ltx2_diffusers import LTX2TextConnectors
from ltx2_diffusers.pipelines.conditioning import (
    add_noise,
    append_keyframes,
    append_reference,
    replace_frames,
    video_latent_state,
    video_positions_dtype,
)
from ltx2_diffusers.pipelines.guidance import GuidanceScales, combine_guidance
from ltx2_diffusers.pipelines.presets import checkpoint_model_version, sampling_preset
from ltx2_diffusers.pipelines.text_encoding import gemma_hidden_states, tokenize_prompts

GOLDENS = Path(__file__).parent / "goldens" / "pipeline_math"
SETTINGS = json.loads((GOLDENS / "golden.json").read_text())["files"]


def test_manifest_names_the_generator_and_the_reference():
    manifest = json.loads((GOLDENS.parent / "MANIFEST.json").read_text())
    assert manifest["reference"] == "Lightricks/LTX-2 v1.2.0" and manifest["reference_commit"] == "d151147"
    area = manifest["areas"]["pipeline_math"]
    assert area["generator"] == "scripts/goldens/pipeline_math.py" and area["oracle"]["ltx-core"] == "1.2.0"
    assert set(area["files"]) == {p.name for p in GOLDENS.iterdir()} - {"golden.json"}
    assert area["bytes"] < 400_000


@pytest.mark.parametrize("name", ["video", "audio", "hq_video"])
def test_guidance_in_float32_equals_multimodal_guider_1_2(name):
    """G5: 1.2.0 combines bf16 predictions in float32 and rounds once; 1.0.0's bf16 arithmetic differs visibly."""
    golden = load_file(GOLDENS / "g5_guidance.safetensors")
    params = SETTINGS["g5_guidance.safetensors"]["settings"][name]
    scales = GuidanceScales(**{**params, "stg_blocks": tuple(params["stg_blocks"])})
    passes = [golden[k] for k in ("cond", "uncond", "ptb", "mod")]
    ours = combine_guidance(*passes, scales, reference="1.2")
    assert ours.dtype == torch.bfloat16
    torch.testing.assert_close(ours, golden[f"out_{name}"], rtol=0, atol=0)
    old = combine_guidance(*passes, scales, reference="1.0")
    assert (old != golden[f"out_{name}"]).float().mean().item() > 0.1  # the switch changes the result


def _conditioned(case: str, dtype: torch.dtype):
    golden = load_file(GOLDENS / "g7_conditioning.safetensors")
    settings = SETTINGS["g7_conditioning.safetensors"]["settings"]
    grid, fps = tuple(settings["grid"]), settings["fps"]
    initial = golden["initial"].to(dtype) if case == "s0909" else None
    state = video_latent_state(
        1, *grid, fps, num_channels=settings["channels"], dtype=dtype, initial_latent=initial,
        positions_dtype=video_positions_dtype(dtype, "1.2"),  # 1.2.0 keeps positions float32 in bf16 runs too
    )  # fmt: skip
    state = replace_frames(state, golden["image"].to(dtype), strength=0.6, grid=grid, reference="1.2")
    state = append_keyframes(
        state, golden["keyframe"].to(dtype), frame_index=9, strength=0.6, fps=fps, grid=grid, reference="1.2"
    )
    state = append_reference(
        state, golden["reference"].to(dtype), fps=fps, grid=grid, strength=0.7, downscale_factor=2, reference="1.2"
    )
    noised = add_noise(state, torch.Generator().manual_seed(3), settings["noise_scales"][case], reference="1.2")
    return golden, state, noised


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("case", ["s1", "s0909"])
def test_conditioning_and_noiser_equal_ltx_core_1_2(case, dtype):
    """G7: the latent keeps its value under an image (zeros for appended tokens), the keyframe spans one pixel frame,
    and the noiser lerps from clean_latent in float32 - at full noise and at the refinement stage's 0.909375."""
    golden, state, noised = _conditioned(case, dtype)
    prefix = f"{case}_{'fp32' if dtype == torch.float32 else 'bf16'}"
    for name in ("latent", "clean_latent", "denoise_mask", "keyframes_mask"):
        torch.testing.assert_close(getattr(state, name), golden[f"{prefix}_conditioned_{name}"], rtol=0, atol=0)
    torch.testing.assert_close(state.positions, golden[f"{prefix}_conditioned_positions"], rtol=0, atol=0)
    torch.testing.assert_close(noised.latent, golden[f"{prefix}_noised_latent"], rtol=0, atol=0)
    keyframe_times = state.positions[0, 0, 18:24]  # the keyframe's 6 tokens, after the 18 of the grid: frame 9 only
    assert torch.allclose(keyframe_times.float(), torch.tensor([9 / 24, 10 / 24]).expand(6, 2), atol=1e-6)


@pytest.fixture(scope="module")
def text_golden():
    return load_file(GOLDENS / "g8_text.safetensors")


def test_tokenization_gives_one_bos_like_ltx_gemma_tokenizer_1_2(text_golden, caplog):
    """G8: Gemma-4's tokenizer adds no <bos>; 1.2.0 strips, prepends exactly one, cuts, and left-pads."""
    _, tokenizer = build_tiny_gemma4()
    prompts = SETTINGS["g8_text.safetensors"]["settings"]["prompts"]
    ids, mask = tokenize_prompts(tokenizer, prompts, max_sequence_length=64, reference="1.2")
    assert torch.equal(ids, text_golden["input_ids"]) and torch.equal(mask, text_golden["attention_mask"])
    assert (ids == tokenizer.bos_token_id).sum(dim=1).tolist() == [1, 1]
    assert "only the first 64 are used" in caplog.text  # the second prompt is cut
    old_ids, _ = tokenize_prompts(tokenizer, prompts, max_sequence_length=64, reference="1.0")
    assert (old_ids == tokenizer.bos_token_id).sum().item() == 0  # 1.0.0 relied on the tokenizer for it


def test_gemma4_hidden_states_and_features_equal_ltx_core_1_2(text_golden):
    """G8/G9: one Gemma-4 forward for both prompts (embeddings + 2 layers, the last after the final norm), then the
    V2 features (per-token RMS, rescaled per projection) and V1 features (masked range norm) per prompt."""
    gemma, _ = build_tiny_gemma4()
    ids, mask = text_golden["input_ids"], text_golden["attention_mask"]
    states = gemma_hidden_states(gemma, ids, mask)
    assert len(states) == GEMMA4_NUM_HIDDEN_STATES
    torch.testing.assert_close(torch.stack(states, dim=-1), text_golden["hidden_states"], rtol=0, atol=1e-5)

    common = dict(
        caption_channels=GEMMA4_HIDDEN_SIZE,
        text_proj_in_factor=GEMMA4_NUM_HIDDEN_STATES,
        video_connector_num_attention_heads=2,
        video_connector_attention_head_dim=16,
        video_connector_num_layers=1,
        audio_connector_num_attention_heads=2,
        audio_connector_num_layers=1,
        rope_type="split",
    )
    v2 = LTX2TextConnectors(
        **common,
        audio_connector_attention_head_dim=8,
        per_modality_projections=True,
        video_hidden_dim=32,
        audio_hidden_dim=16,
        proj_bias=True,
    ).eval()
    v1 = LTX2TextConnectors(**common, audio_connector_attention_head_dim=16).eval()
    with torch.no_grad():
        v2.video_text_proj_in.weight.copy_(text_golden["v2_video_proj.weight"])
        v2.video_text_proj_in.bias.copy_(text_golden["v2_video_proj.bias"])
        v2.audio_text_proj_in.weight.copy_(text_golden["v2_audio_proj.weight"])
        v2.audio_text_proj_in.bias.copy_(text_golden["v2_audio_proj.bias"])
        v1.text_proj_in.weight.copy_(text_golden["v1_proj.weight"])
        golden_states = list(text_golden["hidden_states"].unbind(-1))
        for row in range(2):
            layers, keep = [s[row : row + 1] for s in golden_states], mask[row : row + 1].bool()
            video, audio = v2.extract_features(layers, keep)
            torch.testing.assert_close(video, text_golden[f"v2_video_{row}"], rtol=0, atol=1e-5)
            torch.testing.assert_close(audio, text_golden[f"v2_audio_{row}"], rtol=0, atol=1e-5)
            features, _ = v1.extract_features(layers, keep)
            torch.testing.assert_close(features, text_golden[f"v1_{row}"], rtol=0, atol=1e-5)


def test_checkpoint_model_version_picks_ltx_pipelines_1_2_rows():
    """G16: `detect_params` and the ancestral-sampler gate of 1.2.0 for synthetic `model_version` headers."""
    rows = json.loads((GOLDENS / "g16_metadata.json").read_text())
    for metadata, expected in rows.items():
        if (2, 4) <= tuple(expected["parsed"]) < (2, 5):
            with pytest.raises(ValueError, match=r"LTX-2.4 build, for which this package has no preset"):
                checkpoint_model_version(metadata)
            continue
        version = checkpoint_model_version(metadata or None)
        dev, distilled = sampling_preset(version, "dev"), sampling_preset(version, "distilled")
        got = (dev.num_inference_steps, dev.image_crf, list(dev.video_guidance.stg_blocks))
        assert got == (expected["num_inference_steps"], expected["default_image_crf"], expected["video_stg_blocks"])
        assert (distilled.sampler == "euler_ancestral") == expected["distilled_ancestral"], metadata


def test_make_goldens_refuses_a_folder_that_is_not_an_ltx2_checkout(tmp_path):
    script = Path(__file__).parent.parent / "scripts" / "make_goldens.py"
    result = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 1
    assert f"{tmp_path} is not an LTX-2 checkout: expected packages/ltx-core/src/ltx_core" in result.stderr
