import math

import numpy as np
import pytest
import torch
from ltx_core.components.noisers import GaussianNoiser
from ltx_core.components.patchifiers import AudioPatchifier, VideoLatentPatchifier
from ltx_core.conditioning import VideoConditionByKeyframeIndex, VideoConditionByLatentIndex
from ltx_core.conditioning.types.attention_strength_wrapper import ConditioningItemAttentionStrengthWrapper
from ltx_core.conditioning.types.reference_video_cond import VideoConditionByReferenceLatent
from ltx_core.tools import AudioLatentTools, VideoLatentTools
from ltx_core.types import AudioLatentShape, VideoLatentShape
from PIL import Image

from ltx2_diffusers.models.autoencoder_kl_ltx2_audio import pack_audio_latents, unpack_audio_latents
from ltx2_diffusers.pipelines.conditioning import (
    LatentState,
    add_noise,
    append_keyframes,
    append_reference,
    attention_strength_from_mask,
    audio_latent_state,
    clear_conditioning,
    keyframe_positions,
    mask_from_frames,
    patchify_video,
    replace_frames,
    unpatchify_video,
    video_latent_state,
)
from ltx2_diffusers.pipelines.inputs import image_to_pixels, video_to_pixels

C, F, H, W, FPS = 16, 3, 4, 6, 24.0  # tiny latent grid: 3 latent frames = 17 pixel frames
GRID = (F, H, W)


def core_video_tools(batch=1):
    return VideoLatentTools(VideoLatentPatchifier(1), VideoLatentShape(batch, C, F, H, W), FPS)


def core_video_state(batch=1, dtype=torch.bfloat16):
    return core_video_tools(batch).create_initial_state("cpu", dtype)


def ours_video_state(batch=1, dtype=torch.bfloat16):
    return video_latent_state(batch, F, H, W, FPS, num_channels=C, dtype=dtype)


def assert_same_state(ours: LatentState, core, exact_positions=True):
    torch.testing.assert_close(ours.latent, core.latent, rtol=0, atol=0)
    torch.testing.assert_close(ours.clean_latent, core.clean_latent, rtol=0, atol=0)
    torch.testing.assert_close(ours.denoise_mask, core.denoise_mask, rtol=0, atol=0)
    torch.testing.assert_close(ours.positions, core.positions, rtol=0, atol=0)
    if core.attention_mask is None:
        assert ours.attention_mask is None
    else:
        torch.testing.assert_close(ours.attention_mask, core.attention_mask, rtol=0, atol=0)


def test_patchify_round_trips_and_matches_ltx_core():
    video = torch.randn(2, C, F, H, W)
    tokens = patchify_video(video)
    torch.testing.assert_close(tokens, VideoLatentPatchifier(1).patchify(video), rtol=0, atol=0)
    torch.testing.assert_close(unpatchify_video(tokens, F, H, W), video, rtol=0, atol=0)
    audio = torch.randn(2, 8, 7, 16)
    tokens = pack_audio_latents(audio)
    torch.testing.assert_close(tokens, AudioPatchifier(1).patchify(audio), rtol=0, atol=0)
    torch.testing.assert_close(unpack_audio_latents(tokens), audio, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"expected \(B, 3\*4\*6, C\)"):
        unpatchify_video(tokens, F, H, W)


def test_initial_states_and_noise_match_ltx_core():
    assert_same_state(ours_video_state(2), core_video_state(2))
    audio_tools = AudioLatentTools(AudioPatchifier(1), AudioLatentShape(2, 8, 7, 16))
    core_audio = audio_tools.create_initial_state("cpu", torch.bfloat16)
    ours_audio = audio_latent_state(2, 7, dtype=torch.bfloat16)
    assert_same_state(ours_audio, core_audio)

    # one generator, video then audio, conditioning tokens included, as the reference pipelines draw
    image = torch.randn(1, C, 1, H, W).bfloat16()
    core_state = VideoConditionByLatentIndex(image, 0.6, 0).apply_to(core_video_state(), core_video_tools())
    core_gen = torch.Generator().manual_seed(10)
    noiser = GaussianNoiser(core_gen)
    core_v, core_a = noiser(core_state), noiser(core_audio)
    ours_state = replace_frames(ours_video_state(), image, strength=0.6, grid=GRID, reference="1.0")
    ours_gen = torch.Generator().manual_seed(10)
    assert_same_state(add_noise(ours_state, ours_gen, reference="1.0"), core_v)
    assert_same_state(add_noise(ours_audio, ours_gen, reference="1.0"), core_a)
    core_scaled = GaussianNoiser(torch.Generator().manual_seed(3))(core_state, noise_scale=0.909375)
    assert_same_state(
        add_noise(ours_state, torch.Generator().manual_seed(3), noise_scale=0.909375, reference="1.0"), core_scaled
    )


@pytest.mark.parametrize("strength, latent_index, frames", [(1.0, 0, 1), (0.6, 0, 1), (0.8, 1, 2)])
def test_replace_frames_matches_latent_index_condition(strength, latent_index, frames):
    latent = torch.randn(1, C, frames, H, W).bfloat16()
    core = VideoConditionByLatentIndex(latent, strength, latent_index).apply_to(core_video_state(), core_video_tools())
    ours = replace_frames(
        ours_video_state(), latent, strength=strength, grid=GRID, latent_index=latent_index, reference="1.0"
    )
    assert_same_state(ours, core)


@pytest.mark.parametrize("frame_index, frames, strength", [(0, 1, 1.0), (9, 1, 0.7), (16, 1, 0.5), (8, 2, 0.9)])
def test_append_keyframes_matches_keyframe_condition(frame_index, frames, strength):
    latent = torch.randn(1, C, frames, H, W).bfloat16()
    core = VideoConditionByKeyframeIndex(latent, frame_index, strength).apply_to(core_video_state(), core_video_tools())
    ours = append_keyframes(
        ours_video_state(), latent, frame_index=frame_index, strength=strength, fps=FPS, grid=GRID, reference="1.0"
    )
    assert_same_state(ours, core)
    assert ours.positions.dtype == torch.float32 and ours.num_output_tokens == F * H * W
    if frame_index > 0 and frames == 1:  # spec §13.16: [k, k + 8) / fps, no causal shift
        time = ours.positions[0, 0, F * H * W :]
        torch.testing.assert_close(time[0], torch.tensor([frame_index / FPS, (frame_index + 8) / FPS]))
    cleared = clear_conditioning(ours)
    assert cleared.latent.shape[1] == F * H * W and cleared.attention_mask is None


def test_keyframe_positions_are_float32_pixel_frames_over_fps():
    pos = keyframe_positions(1, 1, 2, 2, frame_index=5, fps=25.0, reference="1.0")
    assert pos.shape == (1, 3, 4, 2) and pos.dtype == torch.float32
    torch.testing.assert_close(pos[0, 0, 0], torch.tensor([5 / 25, 13 / 25]))
    torch.testing.assert_close(pos[0, 1, 2], torch.tensor([32.0, 64.0]))


def test_attention_strength_masks_match_wrapper_chain():
    """Keyframe with scalar strength, then one with per-token weights, then one without a wrapper (pads with 1)."""
    k1, k2, k3 = (torch.randn(1, C, 1, H, W).bfloat16() for _ in range(3))
    weights = torch.rand(1, H * W)
    tools = core_video_tools()
    core = core_video_state()
    core = ConditioningItemAttentionStrengthWrapper(VideoConditionByKeyframeIndex(k1, 8, 1.0), 0.5).apply_to(
        core, tools
    )
    core = ConditioningItemAttentionStrengthWrapper(VideoConditionByKeyframeIndex(k2, 16, 0.8), weights).apply_to(
        core, tools
    )
    core = VideoConditionByKeyframeIndex(k3, 4, 1.0).apply_to(core, tools)

    ours = ours_video_state()
    ours = append_keyframes(
        ours, k1, frame_index=8, strength=1.0, fps=FPS, grid=GRID, attention_strength=0.5, reference="1.0"
    )
    ours = append_keyframes(
        ours, k2, frame_index=16, strength=0.8, fps=FPS, grid=GRID, attention_strength=weights, reference="1.0"
    )
    ours = append_keyframes(ours, k3, frame_index=4, strength=1.0, fps=FPS, grid=GRID, reference="1.0")
    assert_same_state(ours, core)
    n = F * H * W
    assert ours.attention_mask.shape == (1, n + 3 * H * W, n + 3 * H * W)
    assert float(ours.attention_mask[0, n, n + H * W]) == 0.0  # conditioning groups do not see each other


def test_append_reference_matches_reference_condition():
    ref = torch.randn(1, C, 2, H // 2, W // 2).bfloat16()
    item = ConditioningItemAttentionStrengthWrapper(VideoConditionByReferenceLatent(ref, 2, 1.0), 0.3)
    core = item.apply_to(core_video_state(), core_video_tools())
    ours = append_reference(
        ours_video_state(),
        ref,
        fps=FPS,
        grid=GRID,
        strength=1.0,
        downscale_factor=2,
        attention_strength=0.3,
        reference="1.0",
    )
    assert_same_state(ours, core)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda s, x: replace_frames(s, x, strength=-0.1, grid=GRID), r"strength=-0.1 is outside \[0, 1\]"),
        (lambda s, x: replace_frames(s, x[..., :3], strength=1.0, grid=GRID), r"Encode the image at the video's"),
        (lambda s, x: replace_frames(s, x, strength=1.0, grid=GRID, latent_index=3), "outside the video's 3 latent"),
        (
            lambda s, x: append_keyframes(s, x, frame_index=17, strength=1.0, fps=FPS, grid=GRID),
            r"does not fit in the video's 17 frames; use a frame index in \[0, 16\]",
        ),
        (lambda s, x: append_keyframes(s, x, frame_index=-1, strength=1.0, fps=FPS, grid=GRID), "frame_index=-1"),
        (lambda s, x: append_keyframes(s, x, frame_index=2, strength=1.5, fps=FPS, grid=GRID), "strength=1.5"),
        (
            lambda s, x: append_keyframes(
                s, x, frame_index=2, strength=1.0, fps=FPS, grid=GRID, attention_strength=torch.ones(5)
            ),
            r"attention_strength has shape \(5,\)",
        ),
        (lambda s, x: replace_frames(s, x, strength=1.0, grid=(2, H, W)), "has 48 tokens, the state 72"),
        (lambda s, x: replace_frames(s, x[:, :8], strength=1.0, grid=GRID), "8 channels"),
    ],
)
def test_bad_conditioning_input_fails_clearly(call, match):
    with pytest.raises(ValueError, match=match):
        call(ours_video_state(), torch.randn(1, C, 1, H, W))


def test_batch_one_condition_broadcasts_to_batch():
    latent = torch.randn(1, C, 1, H, W).bfloat16()
    ours = replace_frames(ours_video_state(2), latent, strength=1.0, grid=GRID, reference="1.0")
    torch.testing.assert_close(ours.latent[0, : H * W], ours.latent[1, : H * W], rtol=0, atol=0)


# --- image / video preparation against ltx-pipelines' media_io -------------------------------------------------------


@pytest.fixture
def image_file(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(75, 131, 4), dtype=np.uint8)  # odd size, RGBA, wide
    path = tmp_path / "image.png"
    Image.fromarray(pixels, mode="RGBA").save(path)
    return path


@pytest.mark.parametrize("crf", [0, 33])
def test_image_to_pixels_matches_reference(image_file, crf):
    from ltx_pipelines.utils.media_io import load_image_conditioning

    expected = load_image_conditioning(str(image_file), 64, 96, torch.float32, torch.device("cpu"), crf=crf)
    ours = image_to_pixels(image_file, 64, 96, crf=crf)
    assert ours.shape == (1, 3, 1, 64, 96)
    torch.testing.assert_close(ours, expected, rtol=0, atol=0)
    tall = image_to_pixels(Image.open(image_file), 128, 32, crf=crf)
    torch.testing.assert_close(
        tall, load_image_conditioning(str(image_file), 128, 32, torch.float32, torch.device("cpu"), crf=crf)
    )


def test_image_to_pixels_rejects_bad_input():
    with pytest.raises(ValueError, match=r"image crf=-1 must be an int in \[0, 51\]"):
        image_to_pixels(np.zeros((8, 8, 3), np.uint8), 32, 32, crf=-1)
    with pytest.raises(ValueError, match=r"image has float values in \[2, 2\], outside \[0, 1\]"):
        image_to_pixels(np.full((8, 8, 3), 2.0, np.float32), 32, 32, crf=0)
    with pytest.raises(ValueError, match=r"image has 2 channels \(shape \(8, 8, 2\)\): expected 1, 3 or 4"):
        image_to_pixels(np.zeros((8, 8, 2), np.uint8), 32, 32, crf=0)


def test_video_to_pixels_matches_reference(tmp_path):
    from ltx_pipelines.utils.media_io import load_video_conditioning

    from ltx2_diffusers.utils.media import export_to_video_with_audio, load_video

    frames = (np.random.default_rng(1).random((9, 48, 80, 3)) * 255).astype(np.uint8)
    path = export_to_video_with_audio(frames, None, None, 24, tmp_path / "clip.mp4")
    expected = load_video_conditioning(path, 32, 32, frame_cap=5, dtype=torch.float32, device=torch.device("cpu"))
    decoded, _ = load_video(path, max_frames=5)
    torch.testing.assert_close(video_to_pixels(decoded, 32, 32), expected, rtol=0, atol=0)
    torch.testing.assert_close(video_to_pixels(path, 32, 32, max_frames=5), expected, rtol=0, atol=0)


@pytest.mark.parametrize("pixel_frames, grid", [(17, (3, 2, 3)), (1, (1, 2, 3)), (9, (1, 2, 3))])
def test_attention_strength_from_mask_matches_ic_lora_downsampling(pixel_frames, grid):
    from ltx_pipelines.ic_lora import ICLoraPipeline

    mask = torch.rand(2, 1, pixel_frames, 64, 96)
    expected = ICLoraPipeline._downsample_mask_to_latent(mask, VideoLatentShape(2, C, *grid))
    ours = attention_strength_from_mask(mask, grid)
    assert ours.shape == (2, math.prod(grid))
    torch.testing.assert_close(ours, expected, rtol=0, atol=0)


def test_mask_from_frames_matches_ic_lora_loader(tmp_path):
    from ltx_pipelines.ic_lora import _load_mask_video

    from ltx2_diffusers.utils.media import export_to_video_with_audio, load_video

    frames = (np.random.default_rng(2).random((9, 32, 64, 3)) * 255).astype(np.uint8)
    path = export_to_video_with_audio(frames, None, None, 24, tmp_path / "mask.mp4")
    expected = _load_mask_video(path, 32, 32, 9)
    decoded, _ = load_video(path, max_frames=9)
    torch.testing.assert_close(mask_from_frames(decoded, 32, 32), expected, rtol=0, atol=0)
    with pytest.raises(ValueError, match="do not map onto 3 latent frames"):
        attention_strength_from_mask(torch.rand(1, 1, 8, 32, 32), (3, 1, 1))
