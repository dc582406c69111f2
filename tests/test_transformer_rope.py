"""Token positions and RoPE tables against ltx-core 1.0.0 (the oracle) and diffusers' in-tree coordinates."""

import pytest
import torch
from diffusers.models.transformers.transformer_ltx2 import LTX2AudioVideoRotaryPosEmbed
from ltx_core.components.patchifiers import AudioPatchifier, VideoLatentPatchifier
from ltx_core.model.transformer.rope import (
    LTXRopeType,
    apply_rotary_emb,
    generate_freq_grid_np,
    generate_freq_grid_pytorch,
    precompute_freqs_cis,
)
from ltx_core.tools import AudioLatentTools, VideoLatentTools
from ltx_core.types import AudioLatentShape, VideoLatentShape

from ltx2_diffusers.models.rope import (
    apply_rope,
    audio_positions,
    rope_cos_sin,
    rope_frequencies,
    video_positions,
)


def ltx_core_video_positions(frames, height, width, fps, dtype, batch=2):
    tools = VideoLatentTools(VideoLatentPatchifier(1), VideoLatentShape(batch, 128, frames, height, width), fps=fps)
    return tools.create_initial_state(device="cpu", dtype=dtype).positions


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("fps", [24.0, 25.0, 30.0])
def test_video_positions_match_ltx_core(dtype, fps):
    expected = ltx_core_video_positions(5, 3, 4, fps, dtype)
    positions = video_positions(2, 5, 3, 4, fps, dtype=dtype)
    assert positions.shape == (2, 3, 5 * 3 * 4, 2) and positions.dtype == dtype
    torch.testing.assert_close(positions, expected, rtol=0, atol=0)


def test_video_positions_values_and_diffusers_coords():
    positions = video_positions(1, 3, 2, 2, 24.0)
    # token 0: frame 0 -> pixel frames [0, 1); token 4 (f=1, h=0, w=0): [1, 9) / 24 s; h=1 -> [32, 64) px
    torch.testing.assert_close(positions[0, 0, 0], torch.tensor([0.0, 1 / 24]))
    torch.testing.assert_close(positions[0, 0, 4], torch.tensor([1 / 24, 9 / 24]))
    torch.testing.assert_close(positions[0, 1, 2], torch.tensor([32.0, 64.0]))
    rope = LTX2AudioVideoRotaryPosEmbed(dim=64, modality="video")
    diffusers_coords = rope.prepare_video_coords(2, 3, 2, 2, torch.device("cpu"), fps=24.0)
    torch.testing.assert_close(video_positions(2, 3, 2, 2, 24.0), diffusers_coords, rtol=0, atol=0)


def test_audio_positions_match_ltx_core_and_diffusers():
    tools = AudioLatentTools(AudioPatchifier(16), AudioLatentShape(2, 8, 7, 16))
    expected = tools.create_initial_state(device="cpu", dtype=torch.bfloat16).positions
    positions = audio_positions(2, 7)
    assert positions.shape == (2, 1, 7, 2) and positions.dtype == torch.float32
    torch.testing.assert_close(positions, expected, rtol=0, atol=0)
    # token 0 covers mel frame [0, 1) -> [0, 0.01) s; token i >= 1 covers [4i - 3, 4i + 1) mel frames
    torch.testing.assert_close(positions[0, 0, 0], torch.tensor([0.0, 0.01]))
    torch.testing.assert_close(positions[0, 0, 2], torch.tensor([0.05, 0.09]))
    rope = LTX2AudioVideoRotaryPosEmbed(dim=64, modality="audio", scale_factors=[4])
    torch.testing.assert_close(positions, rope.prepare_audio_coords(2, 7, torch.device("cpu")), rtol=0, atol=0)


def test_position_errors_name_the_bad_value():
    with pytest.raises(ValueError, match="latent_frames=0"):
        video_positions(1, 0, 2, 2, 24.0)
    with pytest.raises(ValueError, match="fps must be positive, got 0"):
        video_positions(1, 1, 2, 2, 0)
    with pytest.raises(ValueError, match="audio_latent_frames=0"):
        audio_positions(1, 0)


@pytest.mark.parametrize("double_precision", [True, False])
def test_frequency_grid_matches_ltx_core(double_precision):
    generate = generate_freq_grid_np if double_precision else generate_freq_grid_pytorch
    for num_axes, dim in [(3, 4096), (1, 2048), (3, 96)]:
        expected = generate(10000.0, num_axes, dim)
        torch.testing.assert_close(
            rope_frequencies(10000.0, num_axes, dim, double_precision=double_precision), expected
        )


# (positions builder, dim, heads, max_pos): video self-attention (3 axes, needs padding), audio, cross-modal time axis
CASES = {
    "video": (lambda dtype: video_positions(2, 3, 2, 3, 24.0, dtype=dtype), 96, 4, [20, 2048, 2048]),
    "audio": (lambda dtype: audio_positions(2, 9), 64, 4, [20]),
    "cross": (lambda dtype: video_positions(2, 3, 2, 3, 25.0, dtype=dtype)[:, 0:1], 32, 4, [20]),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("rope_type", ["split", "interleaved"])
@pytest.mark.parametrize("positions_dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("double_precision", [True, False])
def test_rope_tables_and_rotation_match_ltx_core(case, rope_type, positions_dtype, double_precision):
    build, dim, heads, max_pos = CASES[case]
    positions = build(positions_dtype)
    reference_type = LTXRopeType(rope_type)
    grid = generate_freq_grid_np if double_precision else generate_freq_grid_pytorch
    ref_cos, ref_sin = precompute_freqs_cis(
        positions,
        dim=dim,
        out_dtype=torch.float32,
        max_pos=max_pos,
        use_middle_indices_grid=True,
        num_attention_heads=heads,
        rope_type=reference_type,
        freq_grid_generator=grid,
    )
    cos, sin = rope_cos_sin(positions, dim, heads, max_pos, rope_type=rope_type, double_precision=double_precision)
    tokens = positions.shape[2]
    head_dim = dim // heads
    assert cos.shape == (2, heads, tokens, head_dim // 2 if rope_type == "split" else head_dim)
    if rope_type == "split":
        torch.testing.assert_close(cos, ref_cos, rtol=0, atol=0)
        torch.testing.assert_close(sin, ref_sin, rtol=0, atol=0)
    else:  # the reference keeps interleaved tables flat over the inner dim: (B, T, dim)
        torch.testing.assert_close(cos.transpose(1, 2).flatten(2), ref_cos, rtol=0, atol=0)
        torch.testing.assert_close(sin.transpose(1, 2).flatten(2), ref_sin, rtol=0, atol=0)

    q = torch.randn(2, tokens, dim)  # the reference rotates (B, T, H*d)
    expected = apply_rotary_emb(q, (ref_cos, ref_sin), reference_type)
    rotated = apply_rope(q.unflatten(-1, (heads, -1)).transpose(1, 2), cos, sin, rope_type)
    torch.testing.assert_close(rotated.transpose(1, 2).flatten(2), expected, rtol=1e-6, atol=1e-6)


def test_bf16_positions_change_the_tables():
    # the reference's bf16 rounding of video seconds is visible in the tables: computing in float32 differs
    fp32 = rope_cos_sin(video_positions(1, 9, 1, 1, 24.0), 96, 4, [20, 2048, 2048])[0]
    bf16 = rope_cos_sin(video_positions(1, 9, 1, 1, 24.0, dtype=torch.bfloat16), 96, 4, [20, 2048, 2048])[0]
    assert (fp32 - bf16).abs().max() > 1e-4


def test_rope_errors():
    positions = audio_positions(1, 3)
    with pytest.raises(ValueError, match="rope_type must be one of"):
        rope_cos_sin(positions, 64, 4, [20], rope_type="rotary")
    with pytest.raises(ValueError, match="1 axes but max_pos has 3 entries"):
        rope_cos_sin(positions, 64, 4, [20, 2048, 2048])
