"""utils/hdr.py (colour math) and utils/hdr_io.py (EXR frames, HLG mp4).

(1) Against ltx-core / ltx-pipelines 1.2.0 without the oracle: tests/goldens/hdr/hdr.safetensors, written by
    scripts/goldens/hdr.py from the reference's own functions. (2) Against published constants: ARRI's LogC3 and
    AMPAS' ACEScct values for 18 % grey, BT.2100's HLG, matrices derived from the standards' chromaticities, BT.2020's
    10-bit code levels. (3) EXR files round-trip and read the reference writer's file (skipped without OpenEXR).
"""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from ltx2_diffusers.utils import hdr
from ltx2_diffusers.utils.hdr import HDRColorSpace

GOLDENS = Path(__file__).parent / "goldens" / "hdr"


@pytest.fixture(scope="module")
def golden():
    return load_file(GOLDENS / "hdr.safetensors")


def close(actual, expected, rtol=1e-5, atol=1e-6):
    torch.testing.assert_close(actual.float(), expected.float(), rtol=rtol, atol=atol)


# ----------------------------------------------------------------------------------------------------------------------
# (1) The reference's values


@pytest.mark.parametrize(
    "name, function, source",
    [
        ("logc3_encode", hdr.logc3_encode, "linear"),
        ("logc3_decode", hdr.logc3_decode, "codes"),
        ("acescct_encode", hdr.acescct_encode, "linear"),
        ("acescct_decode", hdr.acescct_decode, "codes"),
        ("rec709_to_acescg", hdr.rec709_to_acescg, "rgb"),
        ("acescg_to_rec709", hdr.acescg_to_rec709, "rgb"),
        ("rec709_to_rec2020", lambda x: hdr.apply_matrix(x, hdr.REC709_TO_REC2020), "rgb"),
        ("acescg_to_rec2020", lambda x: hdr.apply_matrix(x, hdr.ACESCG_TO_REC2020), "rgb"),
        # the HDR IC-LoRA pipeline's output: VAE codes in [0, 1] -> LogC3 decode (Rec.709), negative light clamped
        ("logc3_to_linear", lambda x: hdr.logc3_decode(x).clamp(min=0.0), "decoded"),
        # retake --hdr's working space: scene-linear Rec.709 / ACEScg -> ACEScct codes, and ACEScct -> linear ACEScg
        ("srgb_linear_to_working", lambda x: hdr.from_rec709_linear(x, HDRColorSpace.ACESCCT), "rgb"),
        ("acescg_to_working", hdr.acescct_encode, "rgb"),
        ("acescct_to_acescg_linear", lambda x: hdr.acescct_decode(x).clamp(min=0.0), "decoded"),
        ("hlg_signal", lambda x: hdr.hlg_signal(hdr.apply_matrix(x, hdr.REC709_TO_REC2020)), "rgb"),
    ],
)
def test_matches_reference(golden, name, function, source):
    close(function(golden[f"in.{source}"]), golden[f"out.{name}"])


def test_hlg_planes_match_reference(golden):
    from ltx2_diffusers.utils.hdr_io import hlg_planes

    for ours, name in zip(hlg_planes(golden["in.rgb"]), "yuv"):
        reference = golden[f"out.hlg_{name}"]
        assert ours.dtype == torch.uint16 and ours.shape == reference.shape
        # float32 sums in another order may land a code on the other side of .5: at most one code, rarely
        difference = (ours.int() - reference).abs()
        assert difference.max() <= 1 and (difference > 0).float().mean() < 0.05


# ----------------------------------------------------------------------------------------------------------------------
# (2) Published constants


def test_published_curve_values():
    grey = torch.tensor([0.18])
    close(hdr.logc3_encode(grey), torch.tensor([0.391007]), atol=2e-6)  # ARRI LogC3 EI 800: 18 % grey
    close(hdr.acescct_encode(grey), torch.tensor([0.4135884]), atol=1e-7)  # S-2016-001
    close(hdr.acescct_encode(torch.tensor([2.0**-7])), torch.tensor([hdr.ACESCCT_Y_BREAK]))  # the break is shared
    cut = torch.tensor([hdr.LOGC3_CUT])
    linear_side = hdr.LOGC3_E * cut + hdr.LOGC3_F
    close(hdr.LOGC3_C * torch.log10(hdr.LOGC3_A * cut + hdr.LOGC3_B) + hdr.LOGC3_D, linear_side, atol=2e-6)
    assert hdr.HLG_B == pytest.approx(0.28466892, abs=1e-8) and hdr.HLG_C == pytest.approx(0.55991073, abs=1e-8)
    close(hdr.hlg_oetf(torch.tensor([0.0, 1 / 12, 1.0])), torch.tensor([0.0, 0.5, 1.0]))  # BT.2100 table 5
    close(hdr.hlg_inverse_oetf(torch.tensor([0.75])), torch.tensor([0.26496256]), atol=1e-7)  # BT.2408 HLG white


def test_round_trips():
    light = torch.logspace(-3, 1.5, 200)
    close(hdr.logc3_decode(hdr.logc3_encode(light)), light, rtol=2e-5)
    close(hdr.acescct_decode(hdr.acescct_encode(light)), light, rtol=2e-5)
    close(hdr.hlg_inverse_oetf(hdr.hlg_oetf(light / 40)), light / 40, rtol=2e-5)
    rgb = torch.rand(5, 7, 3) * 8
    for space in HDRColorSpace:
        close(hdr.to_rec709_linear(hdr.from_rec709_linear(rgb, space), space), rgb, rtol=1e-4, atol=1e-5)


def test_matrices_follow_from_the_chromaticities():
    """Each matrix = XYZ->RGB(target) . Bradford(white) . RGB->XYZ(source), from the standards' xy values."""
    d65, aces_white = (0.3127, 0.3290), (0.32168, 0.33767)
    to_xyz, inverse = hdr.rgb_to_xyz_matrix, torch.linalg.inv
    rec709_to_acescg = inverse(to_xyz(hdr.ACESCG_CHROMATICITIES)) @ hdr.bradford_adaptation(d65, aces_white)
    rec709_to_acescg = rec709_to_acescg @ to_xyz(hdr.REC709_CHROMATICITIES)
    acescg_to_rec2020 = inverse(to_xyz(hdr.REC2020_CHROMATICITIES)) @ hdr.bradford_adaptation(aces_white, d65)
    acescg_to_rec2020 = acescg_to_rec2020 @ to_xyz(hdr.ACESCG_CHROMATICITIES)
    rec709_to_rec2020 = inverse(to_xyz(hdr.REC2020_CHROMATICITIES)) @ to_xyz(hdr.REC709_CHROMATICITIES)
    torch.testing.assert_close(hdr.REC709_TO_ACESCG, rec709_to_acescg, rtol=0, atol=1e-5)  # 5-decimal source
    torch.testing.assert_close(hdr.ACESCG_TO_REC2020, acescg_to_rec2020, rtol=0, atol=1e-7)
    torch.testing.assert_close(hdr.REC709_TO_REC2020, rec709_to_rec2020, rtol=0, atol=1e-7)
    white = torch.ones(3)  # every matrix keeps white white
    for matrix in (hdr.REC709_TO_ACESCG, hdr.ACESCG_TO_REC709, hdr.REC709_TO_REC2020, hdr.ACESCG_TO_REC2020):
        close(hdr.apply_matrix(white, matrix), white, atol=2e-5)


def test_ycbcr_code_levels():
    """BT.2020 table 5, 10 bits: black Y 64, white Y 940, neutral chroma 512; pure red Cr at its 960 maximum."""
    frames = torch.zeros(3, 2, 2, 3)
    frames[1], frames[2, ..., 0] = 1.0, 1.0
    y, cb, cr = hdr.ycbcr420_10bit(frames)
    assert y[:, 0, 0].tolist() == [64, 940, round(4 * (219 * 0.2627 + 16))]
    assert cb[:2, 0, 0].tolist() == [512, 512] and cr[:2, 0, 0].tolist() == [512, 512] and cr[2, 0, 0] == 960
    with pytest.raises(ValueError, match=r"even H and W, got shape \(1, 3, 2, 3\)"):
        hdr.ycbcr420_10bit(torch.zeros(1, 3, 2, 3))


def test_channel_last_is_required():
    with pytest.raises(ValueError, match=r"channel-last \(\.\.\., 3\), got shape \(3, 4, 4\)"):
        hdr.rec709_to_acescg(torch.zeros(3, 4, 4))


# ----------------------------------------------------------------------------------------------------------------------
# (3) Files


def test_missing_openexr_says_how_to_install(monkeypatch, tmp_path):
    from ltx2_diffusers.utils import hdr_io

    monkeypatch.setitem(sys.modules, "OpenEXR", None)  # import OpenEXR now raises ImportError
    with pytest.raises(ImportError, match=r"needs the OpenEXR package.*pip install \"ltx2-diffusers\[hdr\]\""):
        hdr_io.write_exr_frames(tmp_path / "frames", torch.zeros(1, 2, 2, 3))
    assert not (tmp_path / "frames").exists()  # refused before the folder was made


def test_exr_frames_round_trip(tmp_path):
    pytest.importorskip("OpenEXR")
    from ltx2_diffusers.utils.hdr_io import exr_header, read_exr_frames, write_exr_frames

    frames = torch.rand(3, 4, 6, 3) * 40.0  # highlights far above 1 survive
    paths = write_exr_frames(tmp_path / "clip", frames, HDRColorSpace.ACESCG)
    assert [p.name for p in paths] == ["frame_00000.exr", "frame_00001.exr", "frame_00002.exr"]
    torch.testing.assert_close(read_exr_frames(tmp_path / "clip"), frames.half().float(), rtol=0, atol=0)
    header = exr_header(paths[0])
    assert header["colorSpace"] == "ACEScg"
    np.testing.assert_allclose(header["chromaticities"], hdr.ACESCG_CHROMATICITIES, atol=1e-7)
    write_exr_frames(tmp_path / "full", frames[:1], half=False)
    torch.testing.assert_close(read_exr_frames(tmp_path / "full"), frames[:1], rtol=0, atol=0)
    with pytest.raises(FileExistsError, match="already holds EXR files"):
        write_exr_frames(tmp_path / "clip", frames)


def test_reads_the_reference_writers_exr(golden):
    """A frame written by ltx-pipelines 1.2.0's `save_exr_tensor` (OpenImageIO): same pixels, same tags."""
    pytest.importorskip("OpenEXR")
    from ltx2_diffusers.utils.hdr_io import exr_header, read_exr

    torch.testing.assert_close(read_exr(GOLDENS / "reference_frame.exr"), golden["in.exr_frame"].half().float())
    assert exr_header(GOLDENS / "reference_frame.exr")["colorSpace"] == "ACEScg"


def test_hlg_mp4_is_tagged_and_decodes_to_the_planes(tmp_path):
    import av

    from ltx2_diffusers.utils.hdr_io import hlg_planes, write_hlg_mp4

    frames = torch.rand(2, 16, 32, 3) * 3.0
    path = write_hlg_mp4(tmp_path / "hlg.mp4", frames, fps=24.0, crf=0)
    with av.open(str(path)) as container:
        context = container.streams.video[0].codec_context
        assert (context.name, context.pix_fmt) == ("hevc", "yuv420p10le")
        assert (context.color_primaries, context.color_trc, context.colorspace, context.color_range) == (9, 18, 9, 1)
        decoded = [f for f in container.decode(video=0)]
    assert len(decoded) == 2
    plane = decoded[0].planes[0]
    luma = np.frombuffer(plane, dtype=np.uint16).reshape(plane.height, -1)[:, :32].astype(np.int32)
    assert np.abs(luma - hlg_planes(frames[:1])[0][0].numpy().astype(np.int32)).mean() < 6  # crf 0 is near-lossless
    assert [p.name for p in tmp_path.iterdir()] == ["hlg.mp4"]  # no partial file left
    with pytest.raises(ValueError, match="even height and width, got 15x32"):
        write_hlg_mp4(tmp_path / "odd.mp4", torch.zeros(1, 15, 32, 3), fps=24.0)
