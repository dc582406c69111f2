"""inputs.py: every media form becomes the pixels / waveform today's helpers make (so wiring it in changes no output),
16-bit and odd PIL modes are read correctly, and every bad input fails with the argument's name."""

import re
import struct
import wave
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from ltx2_diffusers.pipelines.inputs import (
    audio_waveform,
    half_size_image,
    image_to_pixels,
    image_to_uint8,
    is_prepared,
    resize_and_center_crop,
    video_frames,
    video_to_pixels,
)


def _png16(path, pixels: np.ndarray) -> None:
    """Write a 16-bit PNG (grey (H, W) or RGB (H, W, 3)) by hand: PIL cannot write 16-bit RGB."""
    height, width = pixels.shape[:2]
    color_type = 0 if pixels.ndim == 2 else 2
    rows = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    )


def _rgb(height=6, width=10, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------------------------------------------------
# Images: values


def test_16bit_grey_png_keeps_mid_grey_mid_grey(tmp_path):
    path = tmp_path / "grey16.png"
    Image.fromarray(np.full((4, 6), 32768, np.uint16)).save(path)
    with Image.open(path) as opened:
        assert opened.mode == "I;16"
        assert np.asarray(opened.convert("RGB")).max() == 255  # the bug this module fixes: PIL clips to white
    pixels = image_to_uint8(path)
    assert pixels.shape == (4, 6, 3) and pixels.dtype == np.uint8
    assert (pixels == 128).all()
    prepared = image_to_pixels(str(path), 4, 6, crf=0)
    torch.testing.assert_close(prepared, torch.full((1, 3, 1, 4, 6), 128 / 127.5 - 1.0))


def test_16bit_grey_png_round_trip_of_8bit_values(tmp_path):
    values = np.arange(256, dtype=np.uint16).reshape(16, 16)
    _png16(tmp_path / "ramp.png", values * 257)  # how 8-bit values are stored in 16 bits
    assert np.array_equal(image_to_uint8(tmp_path / "ramp.png"), np.repeat(values[..., None], 3, -1).astype(np.uint8))


def test_16bit_rgb_png_matches_pil_and_uint16_arrays(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 65536, (5, 7, 3), dtype=np.uint16)
    _png16(tmp_path / "rgb16.png", pixels)
    with Image.open(tmp_path / "rgb16.png") as opened:
        expected = np.asarray(opened)  # PIL reads 16-bit RGB as its high byte
    assert np.array_equal(expected, (pixels >> 8).astype(np.uint8))
    assert np.array_equal(image_to_uint8(tmp_path / "rgb16.png"), expected)
    assert np.array_equal(image_to_uint8(pixels), expected)
    assert np.array_equal(image_to_uint8(torch.from_numpy(pixels.astype(np.int32)).to(torch.uint16)), expected)


@pytest.mark.parametrize("mode", ["L", "P", "LA", "PA", "1", "CMYK", "YCbCr", "RGBX", "HSV"])
def test_pil_modes_as_pil_converts_them(mode):
    image = Image.fromarray(_rgb()).convert(mode)
    assert np.array_equal(image_to_uint8(image), np.asarray(image.convert("RGB")))


def test_rgba_drops_alpha_as_the_reference_does():
    rgba = np.concatenate([_rgb(), np.zeros((6, 10, 1), np.uint8)], axis=-1)  # fully transparent: still its RGB
    assert np.array_equal(image_to_uint8(Image.fromarray(rgba, "RGBA")), rgba[..., :3])
    assert np.array_equal(image_to_uint8(rgba), rgba[..., :3])


def test_mode_i_and_f_images():
    assert (image_to_uint8(Image.fromarray(np.full((3, 4), 32768, np.int32))) == 128).all()  # mode "I"
    float_image = Image.fromarray(np.full((3, 4), 0.5, np.float32))
    assert float_image.mode == "F" and (image_to_uint8(float_image) == 128).all()


@pytest.mark.parametrize(
    ("array", "value"),
    [
        (np.full((3, 4), 200, np.uint8), 200),
        (np.full((3, 4, 1), 200, np.uint8), 200),
        (np.full((3, 4), 51400, np.uint16), 200),
        (np.full((3, 4, 3), 0.5, np.float32), 128),
        (np.full((3, 4, 3), 1.0, np.float64), 255),
        (np.full((3, 4, 3), 1.0005, np.float16), 255),  # within the rounding tolerance
        (np.full((3, 4, 3), -0.0005, np.float32), 0),
    ],
)
def test_arrays_to_uint8(array, value):
    pixels = image_to_uint8(array)
    assert pixels.shape == (3, 4, 3) and pixels.dtype == np.uint8 and (pixels == value).all()


def test_float_tensor_to_uint8_rounds_back_from_minus_one_one():
    image = torch.rand(3, 6, 10) * 2 - 1
    expected = ((image + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.array_equal(image_to_uint8(image), expected)
    assert np.array_equal(image_to_uint8(image[None]), expected)
    assert np.array_equal(image_to_uint8(torch.tensor([[[-1.0]], [[0.0]], [[1.0]]])), [[[0, 128, 255]]])


def test_resize_and_center_crop_covers_then_crops_the_centre():
    frames = torch.rand(3, 37, 53, 3) * 255
    for height, width in ((32, 64), (64, 32), (37, 53), (96, 96)):
        assert resize_and_center_crop(frames, height, width).shape == (1, 3, 3, height, width)
    assert torch.equal(resize_and_center_crop(frames, 37, 53)[0].permute(1, 2, 3, 0), frames)  # own size: unchanged
    wide = torch.arange(8.0).repeat(2, 1)[..., None]  # (H=2, W=8, C=1): no resize needed, the centre 4 columns kept
    assert resize_and_center_crop(wide, 2, 4).flatten().tolist() == [2.0, 3.0, 4.0, 5.0] * 2


@pytest.mark.parametrize("crf", [0, 33])
@pytest.mark.parametrize("form", ["path", "pil", "array", "tensor", "rgba"])
def test_image_to_pixels_gives_every_form_the_same_pixels(tmp_path, form, crf):
    rgb = _rgb(30, 44, seed=2)
    Image.fromarray(rgb).save(tmp_path / "image.png")
    image = {
        "path": str(tmp_path / "image.png"),
        "pil": Image.fromarray(rgb),
        "array": rgb,
        "tensor": torch.from_numpy(rgb),
        "rgba": Image.fromarray(np.concatenate([rgb, np.full((30, 44, 1), 9, np.uint8)], -1), "RGBA"),
    }[form]
    expected = image_to_pixels(rgb, 32, 64, crf=crf)  # the reference's preparation: test_conditioning.py pins it
    assert expected.shape == (1, 3, 1, 32, 64) and expected.dtype == torch.float32
    assert torch.equal(image_to_pixels(image, 32, 64, crf=crf), expected)


def test_prepared_tensor_passes_unchanged():
    image = (torch.rand(1, 3, 32, 64) * 2 - 1).bfloat16()
    out = image_to_pixels(image, 32, 64)
    assert out.dtype == torch.bfloat16 and torch.equal(out, image.unsqueeze(2))
    assert torch.equal(image_to_pixels(image[0], 32, 64), out)
    assert is_prepared(image) and not is_prepared(image.to(torch.uint8)) and not is_prepared(np.zeros(3))


def test_half_size_image_resizes_prepared_tensors_antialiased():
    image = torch.rand(3, 64, 128) * 2 - 1
    expected = torch.nn.functional.interpolate(image[None], size=(32, 64), mode="bilinear", antialias=True)
    assert torch.equal(half_size_image(image, 64, 128), expected[0])
    assert half_size_image(image, 64, 128).shape == (3, 32, 64)
    assert torch.equal(half_size_image(image[None], 64, 128), expected)
    flat = torch.full((1, 3, 4, 4), 0.5)
    assert torch.equal(half_size_image(flat, 4, 4), torch.full((1, 3, 2, 2), 0.5))
    pil = Image.fromarray(_rgb())
    assert half_size_image(pil, 64, 128) is pil


# ----------------------------------------------------------------------------------------------------------------------
# Videos and audio: values


def test_video_forms_give_the_same_frames(tmp_path):
    from ltx2_diffusers.utils.media import export_to_video_with_audio

    frames = np.stack([np.full((16, 16, 3), 40 * i, np.uint8) for i in range(5)])
    expected = (frames, None)
    for video in (frames, torch.from_numpy(frames), [Image.fromarray(f) for f in frames], list(frames)):
        got = video_frames(video)
        assert np.array_equal(got[0], expected[0]) and got[1] is None
    assert np.array_equal(video_frames(frames, max_frames=2)[0], frames[:2])
    as_float = torch.from_numpy(frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    assert np.array_equal(video_frames(as_float)[0], frames)
    path = export_to_video_with_audio(frames, None, None, 12.0, tmp_path / "clip.mp4", crf=0)
    decoded, fps = video_frames(path, max_frames=3)
    assert decoded.shape == (3, 16, 16, 3) and fps == 12.0
    assert np.abs(decoded.astype(int) - frames[:3]).max() <= 3  # yuv420p at crf 0


def test_video_to_pixels_of_frames():
    frames = np.random.default_rng(3).integers(0, 256, (9, 20, 30, 3), dtype=np.uint8)
    assert video_to_pixels(frames, 32, 32).shape == (1, 3, 9, 32, 32)
    own_size = torch.from_numpy(frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1.0  # the retake's use
    assert torch.equal(video_to_pixels(frames), own_size)
    prepared = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    assert torch.equal(video_to_pixels(prepared, 32, 32, max_frames=5), prepared[:, :, :5])


def _wav(path, samples: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as file:
        file.setnchannels(samples.shape[0])
        file.setsampwidth(2)
        file.setframerate(rate)
        file.writeframes(samples.T.astype("<i2").tobytes())


def test_audio_forms():
    mono = np.linspace(-1, 1, 1600, dtype=np.float32)
    waveform, rate = audio_waveform(mono, 16000)
    assert waveform.shape == (1, 1600) and rate == 16000 and torch.equal(waveform[0], torch.from_numpy(mono))
    stereo = torch.rand(1, 2, 1600, dtype=torch.float64) * 2 - 1
    waveform, _ = audio_waveform(stereo, 16000)
    assert waveform.dtype == torch.float64 and torch.equal(waveform, stereo[0])  # float dtype kept
    pcm = np.array([[-32768, 0, 16384]], np.int16)
    assert torch.equal(audio_waveform(pcm, 8000)[0], torch.tensor([[-1.0, 0.0, 0.5]]))


def test_audio_window_is_cut_by_sample_counts():
    waveform = torch.rand(2, 48000) * 2 - 1
    ours, rate = audio_waveform(waveform, 16000, start_time=0.5, max_duration=1.25)
    assert rate == 16000 and torch.equal(ours, waveform[:, 8000:28000])


def test_audio_file(tmp_path):
    samples = (np.sin(np.arange(2, 3202).reshape(2, 1600) / 7) * 16000).astype(np.int16)
    _wav(tmp_path / "tone.wav", samples, 16000)
    waveform, rate = audio_waveform(tmp_path / "tone.wav", start_time=0.01, max_duration=0.05)
    assert rate == 16000 and waveform.shape == (2, 800)
    torch.testing.assert_close(waveform, torch.from_numpy(samples[:, 160:960] / 32768.0).float())


# ----------------------------------------------------------------------------------------------------------------------
# Bad inputs: each names the argument


def _files(tmp_path):
    (tmp_path / "notes.txt").write_text("not media")
    (tmp_path / "folder").mkdir()
    return tmp_path


BAD_IMAGES = [
    ("zero_pil", lambda d: Image.new("RGB", (0, 0)), ValueError, r"is 0x0: an image needs at least one pixel"),
    ("zero_array", lambda d: np.zeros((0, 5, 3), np.uint8), ValueError, r"is 5x0 \(WxH\)"),
    ("nan_array", lambda d: np.full((2, 2, 3), np.nan, np.float32), ValueError, r"holds NaN or infinite values"),
    ("0_255_floats", lambda d: np.full((2, 2, 3), 200.0), ValueError, r"outside \[0, 1\]: numpy float pixels"),
    ("tensor_range", lambda d: torch.full((3, 2, 2), 3.0), ValueError, r"outside \[-1, 1\]: torch float pixels"),
    ("tensor_nan", lambda d: torch.full((3, 2, 2), float("inf")), ValueError, r"NaN or infinite"),
    ("tensor_layout", lambda d: torch.zeros(2, 4, 4), ValueError, r"float image tensors are \(3, H, W\)"),
    ("ndim_5", lambda d: np.zeros((1, 1, 2, 2, 3), np.uint8), ValueError, r"has shape \(1, 1, 2, 2, 3\): expected"),
    ("ndim_1", lambda d: np.zeros(5, np.uint8), ValueError, r"has shape \(5,\)"),
    ("zero_channels", lambda d: np.zeros((4, 4, 0), np.uint8), ValueError, r"has 0 channels"),
    ("two_channels", lambda d: np.zeros((4, 4, 2), np.uint8), ValueError, r"has 2 channels .* expected 1, 3 or 4"),
    ("channels_first", lambda d: np.zeros((3, 8, 8), np.uint8), ValueError, r"move the 3 channels last"),
    ("int64", lambda d: np.zeros((2, 2, 3), np.int64), ValueError, r"has dtype int64: pixels must be uint8"),
    ("bool", lambda d: np.zeros((2, 2, 3), bool), ValueError, r"has dtype bool"),
    ("mode_La", lambda d: Image.new("La", (2, 2)), ValueError, r"PIL image in mode 'La', which cannot become RGB"),
    ("mode_I_negative", lambda d: Image.fromarray(np.full((2, 2), -5, np.int32)), ValueError, r"mode 'I' .*16-bit"),
    ("missing", lambda d: str(d / "nope.png"), ValueError, r"nope\.png': no such file"),
    ("directory", lambda d: d / "folder", ValueError, r"is a directory: pass a file inside it"),
    ("empty_path", lambda d: "", ValueError, r"is an empty path"),
    ("not_an_image", lambda d: d / "notes.txt", ValueError, r"notes\.txt' is not an image PIL can read"),
    ("dict", lambda d: {"pixels": 1}, TypeError, r"must be a file path, a PIL image, a numpy array or a torch tensor"),
    ("none", lambda d: None, TypeError, r"got NoneType"),
]


@pytest.mark.parametrize(("case", "make", "error", "match"), BAD_IMAGES, ids=[c[0] for c in BAD_IMAGES])
def test_bad_images_name_the_argument(tmp_path, case, make, error, match):
    with pytest.raises(error, match=r"^first_frame\b.*" + match):
        image_to_pixels(make(_files(tmp_path)), 32, 32, crf=0, name="first_frame")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"crf": -1}, r"^cond crf=-1 must be an int in \[0, 51\]"),
        ({"crf": 52}, r"^cond crf=52"),
        ({"crf": True}, r"^cond crf=True"),
        ({"height": 0}, r"^cond: the target height must be a positive int, got 0"),
        ({"width": 32.0}, r"^cond: the target width must be a positive int, got 32\.0"),
    ],
)
def test_bad_preparation_arguments(kwargs, match):
    arguments = {"height": 32, "width": 32, "crf": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        image_to_pixels(_rgb(), name="cond", **arguments)


def test_prepared_image_of_the_wrong_size_and_tiny_h264():
    with pytest.raises(ValueError, match=r"^cond is a float tensor of 16x16 \(HxW\) but the video is 32x32"):
        image_to_pixels(torch.zeros(3, 16, 16), 32, 32, name="cond")
    with pytest.raises(ValueError, match=r"^keyframes\[0\] image is a float tensor of shape \(3, 16, 16\), but"):
        half_size_image(torch.zeros(3, 16, 16), 32, 32, name="keyframes[0] image")
    with pytest.raises(ValueError, match=r"^cond is 1x1: H\.264 needs 2x2 at least \(or pass crf=0\)"):
        image_to_pixels(np.zeros((1, 1, 3), np.uint8), 32, 32, crf=33, name="cond")


BAD_VIDEOS = [
    ("empty_list", lambda d: [], ValueError, r"is an empty list: pass at least one frame"),
    ("mixed_sizes", lambda d: [_rgb(4, 4), _rgb(4, 6)], ValueError, r"frames have different sizes"),
    ("bad_frame", lambda d: [_rgb(4, 4), np.zeros((4, 4, 2), np.uint8)], ValueError, r"^ref\[1\] has 2 channels"),
    ("no_frames", lambda d: np.zeros((0, 4, 4, 3), np.uint8), ValueError, r"has no frames"),
    ("pt_layout", lambda d: torch.zeros(5, 3, 8, 8), ValueError, r"'pt' output \(F, 3, H, W\) in \[0, 1\] converts"),
    ("video_range", lambda d: torch.full((1, 3, 2, 4, 4), 2.0), ValueError, r"outside \[-1, 1\]"),
    ("ndim_2", lambda d: np.zeros((4, 4), np.uint8), ValueError, r"expected \(F, H, W\) or \(F, H, W, C\)"),
    ("missing", lambda d: d / "clip.mp4", ValueError, r"clip\.mp4': no such file"),
    ("directory", lambda d: str(d / "folder"), ValueError, r"is a directory"),
    ("not_a_video", lambda d: d / "notes.txt", ValueError, r"notes\.txt' is not a video PyAV can decode"),
    ("int", lambda d: 5, TypeError, r"must be a file path, a list of images, a numpy array or a torch tensor"),
]


@pytest.mark.parametrize(("case", "make", "error", "match"), BAD_VIDEOS, ids=[c[0] for c in BAD_VIDEOS])
def test_bad_videos_name_the_argument(tmp_path, case, make, error, match):
    with pytest.raises(error, match=r"^ref\b.*" + match.removeprefix("^ref")):
        video_to_pixels(make(_files(tmp_path)), 32, 32, name="ref")


def test_bad_video_arguments():
    with pytest.raises(ValueError, match=r"^max_frames for ref must be an int >= 1 or None, got 0"):
        video_frames(np.zeros((2, 4, 4, 3), np.uint8), name="ref", max_frames=0)
    with pytest.raises(ValueError, match=r"^ref: pass both height and width, or neither"):
        video_to_pixels(np.zeros((2, 4, 4, 3), np.uint8), 32, None, name="ref")
    with pytest.raises(ValueError, match=r"^ref is a float tensor of 4x4 \(HxW\), the target is 32x32"):
        video_to_pixels(torch.zeros(1, 3, 2, 4, 4), 32, 32, name="ref")


BAD_AUDIO = [
    ("three_channels", lambda d: (np.zeros((3, 100), np.float32), 16000), r"has 3 channels .*expected 1 or 2$"),
    (
        "transposed",
        lambda d: (np.zeros((100, 2), np.float32), 16000),
        r"looks like \(samples, channels\): pass audio\.T",
    ),
    ("zero_channels", lambda d: (np.zeros((0, 100), np.float32), 16000), r"has 0 channels"),
    ("no_samples", lambda d: (np.zeros((2, 0), np.float32), 16000), r"has no samples"),
    ("ndim_4", lambda d: (np.zeros((1, 1, 2, 5), np.float32), 16000), r"has shape \(1, 1, 2, 5\): expected"),
    ("nan", lambda d: (np.full((1, 10), np.nan, np.float32), 16000), r"holds NaN or infinite values"),
    ("too_loud", lambda d: (np.full((1, 10), 2.0, np.float32), 16000), r"outside \[-1, 1\]: float samples"),
    ("int8", lambda d: (np.zeros((1, 10), np.int8), 16000), r"has dtype torch\.int8: samples must be float"),
    ("no_rate", lambda d: (np.zeros((1, 10), np.float32), None), r"needs its audio_sample_rate \(Hz\)"),
    ("rate_7", lambda d: (np.zeros((1, 10), np.float32), 7), r"audio_sample_rate=7 Hz is outside \[8000, 384000\]"),
    ("rate_1e9", lambda d: (np.zeros((1, 10), np.float32), 10**9), r"audio_sample_rate=1000000000 Hz is outside"),
    ("rate_float", lambda d: (np.zeros((1, 10), np.float32), 48000.0), r"audio_sample_rate=48000\.0 must be an int"),
    ("rate_with_file", lambda d: (d / "notes.txt", 16000), r"audio_sample_rate=16000 was given with a file"),
    ("missing", lambda d: (d / "song.wav", None), r"song\.wav': no such file"),
    ("directory", lambda d: (d / "folder", None), r"is a directory"),
    ("not_audio", lambda d: (d / "notes.txt", None), r"notes\.txt'"),
]


@pytest.mark.parametrize(("case", "make", "match"), BAD_AUDIO, ids=[c[0] for c in BAD_AUDIO])
def test_bad_audio_name_the_argument(tmp_path, case, make, match):
    audio, rate = make(_files(tmp_path))
    with pytest.raises(ValueError, match=match) as error:
        audio_waveform(audio, rate)
    assert re.match(r"(audio|audio_sample_rate)\b", str(error.value))  # the argument's name comes first


def test_bad_audio_window_and_type():
    with pytest.raises(ValueError, match=r"^song: need start_time >= 0 and max_duration > 0, got -1\.0 and None"):
        audio_waveform(np.zeros((1, 10), np.float32), 16000, name="song", start_time=-1.0)
    with pytest.raises(ValueError, match=r"^song: max_duration=nan must be a finite number of seconds"):
        audio_waveform(np.zeros((1, 10), np.float32), 16000, name="song", max_duration=float("nan"))
    with pytest.raises(ValueError, match=r"^song: no samples after start_time=5\.0 s \(the waveform lasts 0\.1 s\)"):
        audio_waveform(np.zeros((1, 1600), np.float32), 16000, name="song", start_time=5.0)
    with pytest.raises(TypeError, match=r"^song must be a file path or a \(channels, samples\) waveform, got list"):
        audio_waveform([0.0, 0.1], 16000, name="song")
