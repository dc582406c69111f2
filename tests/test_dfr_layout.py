"""The DFR layout arithmetic (pipelines/dfr_layout.py) against ltx-pipelines 1.2.0's `dfr_layout`.

tests/goldens/dfr/layout.json (scripts/goldens/dfr.py) holds the reference's canvas for every 8k + 1 frame count from
9 to 257 and the tiles of temporal rounds 1 and 2 after it; the literal values below restate a few of them.
"""

import json
from pathlib import Path

import pytest
import torch

from ltx2_diffusers.pipelines.dfr_layout import (
    keyframe_canvas,
    nearest_latent_frames,
    output_num_frames,
    segment_length,
    stitch_tiles,
    temporal_tiles,
    tile_noise_seed,
)

LAYOUT = json.loads((Path(__file__).parent / "goldens" / "dfr" / "layout.json").read_text())


def _as_rows(tiles) -> list[list]:
    return [
        [t.pixel_start, t.pixel_end, t.latent_start, t.latent_stop, list(t.anchors), list(t.slots), t.drop_latents]
        for t in tiles
    ]


def _rounds(canvas) -> list[dict]:
    """Both rounds after a canvas, as the reference's generator walks them: seams doubled, the new slots added."""
    rounds, frames, seams = [], canvas.num_frames, list(canvas.slot_positions)
    for round_index in (1, 2):
        frames, seams = 2 * (frames - 1) + 1, [2 * p for p in seams]
        tiles = temporal_tiles(seams, frames, 2**round_index)
        rounds.append({"frames": frames, "seams": seams, "tiles": _as_rows(tiles)})
        seams = sorted({*seams, *(s for t in tiles for s in t.slots)})
    return rounds


@pytest.mark.parametrize(
    ("content", "segment"),
    [(24, 24), (32, 32), (40, 24), (48, 24), (56, 32), (96, 32), (16, 24), (8, 24), (120, 24), (160, 32)],
)
def test_segment_length_pads_least_and_prefers_the_longer_on_ties(content, segment):
    assert segment_length(content) == segment


def test_canvas_and_tiles_literal_values():
    canvas = keyframe_canvas(41)  # 40 frames: pads 8 with S = 24, 24 with S = 32
    assert (canvas.num_frames, canvas.segment_length, canvas.slot_positions) == (49, 24, (24, 48))
    assert keyframe_canvas(121).slot_positions == (24, 48, 72, 96, 120)
    assert keyframe_canvas(97).slot_positions == (32, 64, 96)  # 96: both pad 0, the longer segment wins
    first, second = _rounds(canvas)
    assert first["tiles"] == [[0, 48, 0, 7, [48], [24], 0], [0, 96, 0, 13, [48, 96], [24, 72], 7]]
    assert second["frames"] == 193 and second["seams"] == [48, 96, 144, 192]
    assert second["tiles"][2:] == [
        [48, 144, 6, 19, [48, 96, 144], [72, 120], 7],
        [96, 192, 12, 25, [96, 144, 192], [120, 168], 7],
    ]


def test_every_canvas_and_tile_equals_the_references():
    assert len(LAYOUT) == 32
    for num_frames, expected in LAYOUT.items():
        canvas = keyframe_canvas(int(num_frames))
        assert [canvas.num_frames, canvas.segment_length, list(canvas.slot_positions)] == expected["canvas"], num_frames
        assert _rounds(canvas) == expected["rounds"], num_frames


def test_tiles_meet_at_shared_keyframes_and_stitch_gapless():
    for num_frames in (9, 41, 121, 257):
        canvas = keyframe_canvas(num_frames)
        frames, seams = 2 * (canvas.num_frames - 1) + 1, [2 * p for p in canvas.slot_positions]
        for num_tiles in (1, 2, 4):
            tiles = temporal_tiles(seams, frames, num_tiles)
            assert len(tiles) == min(num_tiles, len(seams))
            for before, after in zip(tiles, tiles[1:]):
                assert before.pixel_end in after.anchors  # the seam is an anchor of both tiles
                assert after.latent_start + after.drop_latents == before.latent_stop  # no gap, no overlap
            latents = [torch.arange(t.latent_start, t.latent_stop).view(1, 1, -1, 1, 1).float() for t in tiles]
            stitched = stitch_tiles(latents, tiles).flatten()
            assert torch.equal(stitched, torch.arange((frames - 1) // 8 + 1).float())


def test_output_frames_seeds_and_slot_starts():
    assert [output_num_frames(41, r) for r in (0, 1, 2)] == [41, 81, 161]
    assert [tile_noise_seed(42, r, t) for r, t in ((1, 0), (1, 1), (2, 0), (2, 3))] == [1042, 1043, 2042, 2045]
    assert nearest_latent_frames([24, 72, 3, 500], 13) == [3, 9, 0, 12]


def test_bad_layouts_are_refused():
    with pytest.raises(ValueError, match=r"num_frames=40 is not of the form 8k \+ 1 .* Use 33 or 41"):
        keyframe_canvas(40)
    with pytest.raises(ValueError, match="must end on the last frame 96"):
        temporal_tiles([48, 88], 97, 2)
    with pytest.raises(ValueError, match=r"segment \[48, 56\] .* at least two latent frames"):
        temporal_tiles([48, 56], 57, 2)
    with pytest.raises(ValueError, match=r"tile latent of shape \(1, 1, 3, 1, 1\)"):
        stitch_tiles([torch.zeros(1, 1, 3, 1, 1)], temporal_tiles([48], 49, 1))


def test_layout_equals_ltx_pipelines_1_2_when_installed():
    reference = pytest.importorskip("ltx_pipelines.dfr_layout")  # ltx-pipelines >= 1.2.0 only
    for num_frames in range(9, 258, 8):
        frames, segment, positions = reference.resolve_canvas(num_frames)
        canvas = keyframe_canvas(num_frames)
        assert (canvas.num_frames, canvas.segment_length, list(canvas.slot_positions)) == (frames, segment, positions)
