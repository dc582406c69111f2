import av
import numpy as np
import pytest
import torch
from PIL import Image

from ltx2_diffusers.pipelines.inputs import image_to_uint8
from ltx2_diffusers.utils.media import (
    export_to_video_with_audio,
    h264_round_trip,
    load_audio,
    load_video,
)

AAC_FRAME = 1024  # samples per AAC frame: the encoder pads the last one


def _clip(num_frames=17, height=64, width=96, seed=0):
    """A smooth moving gradient (random noise would not survive yuv420p chroma subsampling)."""
    f, y, x = np.meshgrid(np.arange(num_frames), np.arange(height), np.arange(width), indexing="ij")
    rgb = np.stack([x * 255 / width, y * 255 / height, (f * 16 + seed * 40) % 256 + 0 * x], axis=-1)
    return rgb.astype(np.uint8)


def _tone(seconds, sample_rate):
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 660 * t)]).astype(np.float32)


def _read_back(path):
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio
        info = {
            "codec": video.codec_context.name,
            "size": (video.width, video.height),
            "fps": float(video.average_rate),
            "frames": sum(1 for _ in container.decode(video=0)),
        }
        if audio:
            stream = audio[0]
            info |= {
                "audio_codec": stream.codec_context.name,
                "sample_rate": stream.rate,
                "channels": stream.codec_context.channels,
                "audio_seconds": float(stream.duration * stream.time_base),
            }
    return info


@pytest.mark.parametrize("sample_rate, layout", [(24000, "np-uint8"), (48000, "torch-float-pt"), (24000, "pil")])
def test_export_writes_h264_and_aac_that_read_back(tmp_path, sample_rate, layout):
    frames = _clip()
    if layout == "torch-float-pt":  # the pipeline's "pt" output: (B, F, 3, H, W) float in [0, 1]
        given = torch.from_numpy(frames).permute(0, 3, 1, 2).unsqueeze(0).float() / 255
    elif layout == "pil":
        given = [[Image.fromarray(f) for f in frames]]
    else:
        given = frames
    seconds = 17 / 24
    audio = _tone(seconds, sample_rate)
    path = export_to_video_with_audio(given, torch.from_numpy(audio), sample_rate, 24, tmp_path / "out.mp4")
    info = _read_back(path)
    assert info["codec"] == "h264" and info["size"] == (96, 64) and info["frames"] == 17 and info["fps"] == 24.0
    assert info["audio_codec"] == "aac" and info["sample_rate"] == sample_rate and info["channels"] == 2
    assert abs(info["audio_seconds"] - seconds) <= AAC_FRAME / sample_rate

    waveform, rate = load_audio(path)
    assert rate == sample_rate and waveform.shape[0] == 2 and waveform.dtype == torch.float32
    assert abs(waveform.shape[1] / rate - seconds) <= 2 * AAC_FRAME / sample_rate  # plus the encoder's priming
    decoded, fps = load_video(path)
    assert decoded.shape == (17, 64, 96, 3) and fps == 24.0
    assert np.abs(decoded.astype(float) - frames.astype(float)).mean() < 6  # lossy, but the same picture


def test_export_fractional_fps_and_silent_video(tmp_path):
    path = export_to_video_with_audio(_clip(9), None, None, 24000 / 1001, tmp_path / "silent.mp4")
    with av.open(path) as container:
        assert not container.streams.audio
        assert (
            container.streams.video[0].average_rate == 24000 / 1001
            or abs(float(container.streams.video[0].average_rate) - 23.976) < 1e-3
        )


@pytest.mark.parametrize(
    "frames, audio, rate, match",
    [
        (_clip(3, 33, 64), None, None, "must be even"),
        (np.zeros((3, 32, 32), np.uint8), None, None, r"\(F, H, W, 3\)"),
        (np.full((3, 32, 32, 3), 2.0, np.float32), None, None, r"float frames must lie in \[0, 1\]"),
        (np.zeros((2, 3, 32, 32, 3), np.uint8), None, None, "batch of 2 videos"),
        (_clip(3, 32, 32), np.zeros((3, 100), np.float32), 24000, "mono or stereo"),
        (_clip(3, 32, 32), np.zeros((2, 100), np.float32), None, "audio needs its sample_rate"),
        ([], None, None, "frames is empty"),
    ],
)
def test_export_rejects_bad_input(tmp_path, frames, audio, rate, match):
    with pytest.raises(ValueError, match=match):
        export_to_video_with_audio(frames, audio, rate, 24, tmp_path / "bad.mp4")


def test_readers(tmp_path):
    rgba = Image.fromarray(np.zeros((10, 12, 4), np.uint8), mode="RGBA")
    rgba.save(tmp_path / "a.png")
    assert image_to_uint8(tmp_path / "a.png").shape == (10, 12, 3)  # alpha dropped
    with pytest.raises(ValueError, match="missing.png'. no such file"):
        image_to_uint8(tmp_path / "missing.png")
    path = export_to_video_with_audio(_clip(9, 32, 32), None, None, 24, tmp_path / "v.mp4")
    frames, _ = load_video(path, max_frames=4)
    assert frames.shape == (4, 32, 32, 3)
    with pytest.raises(ValueError, match="has no audio stream"):
        load_audio(path)

    with_audio = export_to_video_with_audio(_clip(9, 32, 32), _tone(1.0, 16000), 16000, 24, tmp_path / "va.mp4")
    window, rate = load_audio(with_audio, start_time=0.25, max_duration=0.5)
    assert rate == 16000 and window.shape == (2, 8000)


def test_h264_round_trip_keeps_the_picture():
    image = np.tile(np.linspace(0, 255, 33, dtype=np.uint8)[None, :, None], (21, 1, 3))
    out = h264_round_trip(image, crf=18)
    assert out.shape == (20, 32, 3) and out.dtype == np.uint8  # cropped to even
    assert np.abs(out.astype(int) - image[:20, :32].astype(int)).max() < 20
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        h264_round_trip(image.astype(np.float32), crf=18)


# ----------------------------------------------------------------------------------------------------------------------
# Hardening: every bad input is a ValueError before anything is written; writes are atomic


def _nothing_written(folder):
    return list(folder.iterdir()) == []


@pytest.mark.parametrize(
    "frames, audio, rate, fps, match",
    [
        (np.zeros((0, 32, 32, 3), np.uint8), None, None, 24, "no frame"),
        (np.zeros((3, 0, 0, 3), np.uint8), None, None, 24, r"0x0 \(WxH\)"),
        (np.full((3, 32, 32, 3), np.nan, np.float32), None, None, 24, "9216 NaN/Inf values out of 9216"),
        (torch.full((3, 32, 32, 3), float("inf")), None, None, 24, "NaN/Inf values"),
        (_clip(3, 32, 32), np.full((2, 100), np.nan, np.float32), 24000, 24, "200 NaN/Inf samples"),
        (_clip(3, 32, 32), np.array([[0.0, np.inf]], np.float32), 24000, 24, "1 NaN/Inf samples"),
        (_clip(3, 32, 32), np.zeros((0, 100), np.float32), 24000, 24, "no channels or no samples"),
        (_clip(3, 32, 32), np.zeros((2, 0), np.float32), 24000, 24, "no channels or no samples"),
        (_clip(3, 32, 32), np.zeros((2, 100), np.float32), 7, 24, r"sample_rate=7 Hz cannot be written as AAC"),
        (_clip(3, 32, 32), np.zeros((2, 100), np.float32), 1e9, 24, r"sample_rate=1000000000.0 Hz"),
        (_clip(3, 32, 32), None, None, float("inf"), "fps must be a finite number > 0"),
        (_clip(3, 32, 32), None, None, 0, "fps must be a finite number > 0"),
        (_clip(3, 32, 32), None, None, float("nan"), "fps must be a finite number > 0"),
        (_clip(3, 33, 31), None, None, 24, r"31x33 \(WxH\) must be even .* to 30x32 first"),
    ],
)
def test_export_refuses_before_writing(tmp_path, frames, audio, rate, fps, match):
    with pytest.raises(ValueError, match=match):
        export_to_video_with_audio(frames, audio, rate, fps, tmp_path / "bad.mp4")
    assert _nothing_written(tmp_path)


def test_export_refuses_integer_audio(tmp_path):
    with pytest.raises(TypeError, match="audio must be a float waveform in \\[-1, 1\\], got int16"):
        export_to_video_with_audio(_clip(3, 32, 32), np.zeros((2, 100), np.int16), 24000, 24, tmp_path / "i.mp4")
    assert _nothing_written(tmp_path)


@pytest.mark.parametrize("name", ["clip.gif", "clip", "clip.webm", "clip.MP3"])
def test_export_refuses_a_suffix_that_is_not_an_h264_aac_container(tmp_path, name):
    with pytest.raises(ValueError, match=r"is not a container for H.264 \+ AAC; use one of .mp4, .mov, .mkv"):
        export_to_video_with_audio(_clip(3, 32, 32), None, None, 24, tmp_path / name)
    assert _nothing_written(tmp_path)


@pytest.mark.parametrize(("suffix", "format_name"), [(".mov", "mov"), (".mkv", "matroska"), (".MP4", "mp4")])
def test_export_picks_the_container_from_the_suffix(tmp_path, suffix, format_name):
    path = export_to_video_with_audio(_clip(9, 32, 32), _tone(0.4, 48000), 48000, 24, tmp_path / f"clip{suffix}")
    with av.open(path) as container:
        assert format_name in container.format.name.split(",")
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.audio[0].codec_context.name == "aac"


def test_export_refuses_a_folder_or_a_missing_folder(tmp_path):
    (tmp_path / "x.mp4").mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder"):
        export_to_video_with_audio(_clip(3, 32, 32), None, None, 24, tmp_path / "x.mp4")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_to_video_with_audio(_clip(3, 32, 32), None, None, 24, tmp_path / "no" / "x.mp4")
    assert [p.name for p in tmp_path.iterdir()] == ["x.mp4"]


def test_export_is_atomic_on_encoder_errors_and_ctrl_c(tmp_path, monkeypatch):
    """An error half way leaves no partial file, and an existing clip at the path stays as it was."""
    import ltx2_diffusers.utils.media as media

    (tmp_path / "old.mp4").write_bytes(b"the previous clip")
    real_encode = media._encode

    for error in (RuntimeError("encoder failed"), KeyboardInterrupt()):

        def failing(path, *args, error=error):
            real_encode(path, *args)  # the partial file exists in full, hidden beside the output
            assert path.parent == tmp_path and path.name.startswith(".old.mp4.") and path.stat().st_size > 0
            raise error

        monkeypatch.setattr(media, "_encode", failing)
        with pytest.raises(type(error)):
            export_to_video_with_audio(_clip(3, 32, 32), None, None, 24, tmp_path / "old.mp4")
        assert [p.name for p in tmp_path.iterdir()] == ["old.mp4"]
        assert (tmp_path / "old.mp4").read_bytes() == b"the previous clip"
    monkeypatch.setattr(media, "_encode", real_encode)
    export_to_video_with_audio(_clip(3, 32, 32), None, None, 24, tmp_path / "old.mp4")  # replaced on success
    assert _read_back(tmp_path / "old.mp4")["frames"] == 3 and [p.name for p in tmp_path.iterdir()] == ["old.mp4"]


def test_export_follows_the_umask(tmp_path):
    import os

    old = os.umask(0o027)
    try:
        path = export_to_video_with_audio(_clip(3, 32, 32), None, None, 24, tmp_path / "u.mp4")
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o640


def test_image_reader_reads_16_bit_png_without_clipping(tmp_path):
    """Pillow opens 16-bit grayscale PNGs as "I;16", whose convert("RGB") clips everything above 255 to white."""
    values = np.array([[0, 257, 32768, 65535]], np.uint16).repeat(2, axis=0)
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    rgb = image_to_uint8(tmp_path / "g16.png")
    assert rgb.shape == (2, 4, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 1, 128, 255])
    assert (rgb[..., 0] == rgb[..., 2]).all()


def test_image_reader_refuses_files_it_cannot_decode(tmp_path):
    (tmp_path / "notes.png").write_text("not a png")
    with pytest.raises(ValueError, match="is not an image PIL can read"):
        image_to_uint8(tmp_path / "notes.png")
