"""LTX-2.5's duration head: diffusers 0.42.1's format both ways with equal outputs, the original file's keys, the
8k + 1 frame snapping (trap 24) and every error."""

import logging

import pytest
import torch
from diffusers.pipelines.ltx2.duration_head import LTX2DurationHead as DiffusersDurationHead

from ltx2_diffusers.loaders import duration_head_keys
from ltx2_diffusers.models.duration_head import LTX2DurationHead, frames_for_seconds, predict_num_frames

TINY = {"video_cross_attention_dim": 24, "audio_cross_attention_dim": 16, "pooler_hidden_dim": 16, "num_queries": 2,
        "num_pooler_heads": 4, "mlp_hidden_dim": 8}


@pytest.fixture(scope="module")
def heads():
    torch.manual_seed(0)
    theirs = DiffusersDurationHead(**TINY).eval()
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.randn(p.shape) * 0.3)
        theirs.mlp_out.bias.fill_(1.0)
    ours = LTX2DurationHead(**TINY).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return theirs, ours


@torch.no_grad()
def test_diffusers_head_loads_into_ours_and_back_with_equal_outputs(heads, tmp_path):
    theirs, ours = heads
    video, audio = torch.randn(2, 7, 24), torch.randn(2, 5, 16)
    for args in ((video, audio), (video, None), (None, audio)):
        torch.testing.assert_close(ours(*args), theirs(*args), atol=1e-6, rtol=1e-6)
    assert ours(video, audio).shape == (2,) and (ours(video, audio) > 0).all()  # exp: always positive seconds
    ours.save_pretrained(tmp_path)
    back = DiffusersDurationHead.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(back(video, audio), theirs(video, audio), atol=0, rtol=0)
    again = LTX2DurationHead.from_pretrained(tmp_path)
    assert {k: again.config[k] for k in TINY} == TINY


def test_original_keys_round_trip_exactly(heads):
    _, ours = heads
    original = duration_head_keys.diffusers_to_original(ours.state_dict())
    assert set(original) == {
        f"duration_head.{name}" for name in (
            "video_input_proj.weight", "video_input_proj.bias", "video_modality_emb", "audio_input_proj.weight",
            "audio_input_proj.bias", "audio_modality_emb", "attention_pooler.query_tokens",
            "attention_pooler.cross_attn.in_proj_weight", "attention_pooler.cross_attn.in_proj_bias",
            "attention_pooler.cross_attn.out_proj.weight", "attention_pooler.cross_attn.out_proj.bias",
            "mlp_hidden.weight", "mlp_hidden.bias", "mlp_out.weight", "mlp_out.bias")}
    assert original["duration_head.attention_pooler.cross_attn.in_proj_weight"].shape == (48, 16)
    back = duration_head_keys.original_to_diffusers(original)
    assert back.keys() == ours.state_dict().keys()
    assert all(torch.equal(back[k], v) for k, v in ours.state_dict().items())
    metadata = duration_head_keys.config_to_original(ours.config)
    assert duration_head_keys.config_from_original(metadata, original) == TINY


def test_from_single_file(heads, tmp_path):
    import json

    from safetensors.torch import save_file

    _, ours = heads
    original = duration_head_keys.diffusers_to_original(ours.state_dict())
    config = json.dumps(duration_head_keys.config_to_original(ours.config))
    save_file({k: v.contiguous() for k, v in original.items()}, tmp_path / "head.safetensors", metadata={"config": config})
    loaded = LTX2DurationHead.from_single_file(tmp_path / "head.safetensors")
    assert {k: loaded.config[k] for k in TINY} == TINY
    loaded_state = loaded.state_dict()
    assert all(torch.equal(loaded_state[k], v) for k, v in ours.state_dict().items())


def test_original_config_errors(heads):
    _, ours = heads
    original = duration_head_keys.diffusers_to_original(ours.state_dict())
    with pytest.raises(ValueError, match=r"Metadata and tensors disagree .*'cross_attention_dim': \(4096, 24\)"):
        duration_head_keys.config_from_original({"transformer": {"cross_attention_dim": 4096}}, original)
    with pytest.raises(ValueError, match=r"config.duration_head has keys this converter does not know: \['depth'\]"):
        duration_head_keys.config_from_original({"duration_head": {"depth": 2}}, original)
    with pytest.raises(ValueError, match=r"lack duration_head.video_input_proj.weight"):
        duration_head_keys.config_from_original({}, {})
    with pytest.raises(ValueError, match=r"'mlp_out.weight' is not a duration-head key"):
        duration_head_keys.original_to_diffusers({"mlp_out.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"Unknown duration-head key 'duration_head.extra'"):
        duration_head_keys.original_to_diffusers({"duration_head.extra": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"has 4 rows, not 3 x hidden"):
        duration_head_keys.original_to_diffusers({"duration_head.attention_pooler.cross_attn.in_proj_bias":
                                                  torch.zeros(4)})


@pytest.mark.parametrize(("seconds", "fps", "low", "high", "frames"), [
    (3.3, 24.0, 24, 480, 73),    # round(79.2) = 79 -> floor to 8k + 1 = 73
    (5.0, 24.0, 24, 480, 113),   # 120 -> 113
    (0.2, 24.0, 24, 480, 25),    # clamped up to 24 -> floor 17 < 24 -> lifted to 25
    (60.0, 24.0, 24, 480, 473),  # clamped to 480 -> 473
    (3.0, 25.0, 50, 75, 73),     # 75 -> 73
    (0.5, 25.0, 50, 75, 57),     # 50 -> 49 < 50 -> 57
])
def test_frames_floor_to_8k_plus_1_then_lift_to_the_minimum(seconds, fps, low, high, frames):
    assert frames_for_seconds(seconds, fps, low, high) == frames


def test_no_8k_plus_1_in_range_is_an_error():
    with pytest.raises(ValueError, match=r"No clip length of the form 8k \+ 1 lies in \[24, 24\] frames .* 17 or 25"):
        frames_for_seconds(1.0, 24.0, 24, 24)


@torch.no_grad()
def test_predict_num_frames(heads, caplog):
    _, ours = heads
    video, audio = torch.randn(1, 7, 24), torch.randn(1, 5, 16)
    seconds = ours(video, audio).item()
    expected = frames_for_seconds(seconds, 24.0, 24, 480)
    assert predict_num_frames(ours, video, audio, 24.0) == expected
    with caplog.at_level(logging.WARNING):
        assert predict_num_frames(ours, video, audio, 24.0, min_seconds=seconds + 2, max_seconds=seconds + 4) in (
            frames_for_seconds(seconds, 24.0, round((seconds + 2) * 24), round((seconds + 4) * 24)),)
    assert "outside" in caplog.text


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"fps": 0.0}, r"fps=0.0; the frame rate must be positive"),
    ({"fps": 24.0, "min_seconds": 3.0, "max_seconds": 2.0}, r"min_seconds=3.0, max_seconds=2.0; expected 0 < min"),
    ({"fps": 24.0, "min_seconds": 0.01}, r"min_seconds=0.01 is under one frame at 24.0 fps"),
])
def test_predict_num_frames_errors(heads, kwargs, message):
    _, ours = heads
    with pytest.raises(ValueError, match=message):
        predict_num_frames(ours, torch.randn(1, 7, 24), None, **kwargs)


def test_head_input_errors(heads):
    _, ours = heads
    with pytest.raises(ValueError, match=r"one prompt's contexts \(batch 1\), got 2 predictions"):
        predict_num_frames(ours, torch.randn(2, 7, 24), None, 24.0)
    with pytest.raises(ValueError, match=r"needs video_tokens, audio_tokens or both .* got neither"):
        ours(None, None)
    with pytest.raises(ValueError, match=r"video_tokens of shape \(1, 7, 20\); expected \(B, S, 24\)"):
        ours(torch.randn(1, 7, 20))
    with pytest.raises(ValueError, match=r"batch sizes 1 and 2"):
        ours(torch.randn(1, 7, 24), torch.randn(2, 5, 16))
    with pytest.raises(ValueError, match=r"pooler_hidden_dim=10 is not divisible by num_pooler_heads=4"):
        LTX2DurationHead(**{**TINY, "pooler_hidden_dim": 10})
