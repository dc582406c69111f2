"""training/data.py: caching writes the expected tensors and a rerun skips them; bucket rules; every bad input gives one
message naming the file and leaves nothing in the cache."""

import json

import av
import numpy as np
import pytest
import torch
from helpers.training import BUCKETS, MAX_SEQUENCE_LENGTH, build_training_pipeline, write_clip, write_dataset
from PIL import Image

import ltx2_diffusers.training.data as data
from ltx2_diffusers.models.autoencoder_kl_ltx2 import normalize_latents
from ltx2_diffusers.pipelines.text_encoding import encode_prompts
from ltx2_diffusers.training.buckets import (
    Bucket,
    MediaInfo,
    batch_for_step,
    choose_bucket,
    epoch_batches,
    parse_buckets,
)
from ltx2_diffusers.training.data import cache_dataset, cached_shape_key, load_cached, write_atomic
from ltx2_diffusers.training.metadata import DataError


@pytest.fixture(scope="module")
def pipe():
    return build_training_pipeline()


def cache(pipe, folder, cache_dir, buckets=BUCKETS):
    return cache_dataset(pipe, folder, cache_dir, parse_buckets(buckets), max_sequence_length=MAX_SEQUENCE_LENGTH)


def decoded_frames(path) -> torch.Tensor:
    """(1, 3, F, H, W) in [-1, 1], decoded here with PyAV directly."""
    with av.open(str(path)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    return torch.from_numpy(frames).permute(3, 0, 1, 2)[None].float() / 127.5 - 1


def test_cache_writes_expected_tensors_and_rerun_skips(pipe, tmp_path):
    folder = write_dataset(tmp_path / "data")
    report = cache(pipe, folder, tmp_path / "cache")
    assert [p.name for p in report.written] == ["clip0.mp4.safetensors", "clip1.mp4.safetensors"] and not report.skipped

    first = load_cached(report.written[0])
    assert first.video_latents.shape == (128, 2, 2, 2)  # 9 frames at 64x64 -> 2 x 2 x 2 latent cells
    assert first.audio_latents.shape == (8, 10, 16)  # 9 / 24 s of audio: 6000 samples at 16 kHz -> 10 latent steps
    assert first.video_context.shape == first.audio_context.shape == (MAX_SEQUENCE_LENGTH, 32)
    assert first.fps == 24.0
    with torch.no_grad():
        latent = pipe.vae.encode(decoded_frames(folder / "clip0.mp4")).latent_dist.mode()
        expected = normalize_latents(latent, pipe.vae.latents_mean, pipe.vae.latents_std)[0]
        embeds = encode_prompts(pipe.text_encoder, pipe.tokenizer, pipe.connectors, ["a test pattern number 0"],
                                max_sequence_length=MAX_SEQUENCE_LENGTH)  # fmt: skip
    torch.testing.assert_close(first.video_latents, expected)
    torch.testing.assert_close(first.video_context, embeds.video_context[0])
    torch.testing.assert_close(first.audio_context, embeds.audio_context[0])
    for with_audio in (True, False):  # the header alone gives the batching key
        assert cached_shape_key(report.written[0], with_audio) == first.shape_key(with_audio)
    assert first.shape_key(False)[1] is None and first.shape_key(True)[1] == (8, 10, 16)
    second = load_cached(report.written[1])
    assert not torch.allclose(first.audio_latents, second.audio_latents)  # 220 Hz vs 440 Hz

    stamps = [p.stat().st_mtime_ns for p in report.written]
    again = cache(pipe, folder, tmp_path / "cache")
    assert not again.written and again.skipped == report.written
    assert [p.stat().st_mtime_ns for p in report.written] == stamps

    # a changed caption re-encodes that sample only
    lines = (folder / "metadata.jsonl").read_text().splitlines()
    lines[1] = json.dumps({"file_name": "clip1.mp4", "text": "another caption"})
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    third = cache(pipe, folder, tmp_path / "cache")
    assert [p.name for p in third.written] == ["clip1.mp4.safetensors"]
    assert list((tmp_path / "cache").iterdir()) == list(report.written[0].parent.iterdir())  # no stray temp files


def test_image_is_a_one_frame_clip_without_audio(pipe, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    Image.fromarray(np.full((64, 96, 3), 128, np.uint8)).save(folder / "still.png")
    (folder / "metadata.jsonl").write_text(json.dumps({"file_name": "still.png", "text": "grey"}) + "\n")
    report = cache(pipe, folder, tmp_path / "cache", buckets="64x64x9;64x64x1")
    sample = load_cached(report.written[0])
    assert sample.video_latents.shape == (128, 1, 2, 2) and sample.audio_latents is None


def test_buckets_parse_and_choose_like_ltx_trainer():
    assert parse_buckets("768x512x49; 512x512x1") == (Bucket(768, 512, 49), Bucket(512, 512, 1))
    with pytest.raises(
        ValueError,
        match=r"^resolution bucket 768x500x49: height=500 is not a positive multiple of 32 "
        r"\(the video VAE compresses space 32x\)\. Use 480 or 512\.$",
    ):
        parse_buckets("768x500x49")
    with pytest.raises(
        ValueError,
        match=r"^resolution bucket 768x512x48: frames=48 is not of the form 8\*k \+ 1, .* Use 41 "
        r"or 49\.$",
    ):
        parse_buckets("768x512x48")
    with pytest.raises(ValueError, match=r"^resolution bucket 0x512x1: width=0 must be >= 1$"):
        parse_buckets("0x512x1")
    with pytest.raises(ValueError, match="is not WIDTHxHEIGHTxFRAMES"):
        parse_buckets("768x512")
    buckets = parse_buckets("512x512x49;768x512x49;768x512x25;1024x512x49")
    clip = MediaInfo(1600, 1080, 60, 24.0, has_audio=True, is_image=False)
    assert choose_bucket(clip, buckets, "x") == Bucket(768, 512, 49)  # closest aspect, then most frames
    short = MediaInfo(1600, 1080, 30, 24.0, has_audio=True, is_image=False)
    assert choose_bucket(short, buckets, "x") == Bucket(768, 512, 25)


def write_metadata(folder, entries):
    (folder / "metadata.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))


def bad_missing_metadata(folder):
    (folder / "metadata.jsonl").unlink()
    return r"metadata\.jsonl does not exist: a training folder needs"


def bad_missing_file(folder):
    write_metadata(folder, [{"file_name": "clip0.mp4", "text": "a"}, {"file_name": "gone.mp4", "text": "b"}])
    return r"gone\.mp4 \(metadata\.jsonl line 2\) does not exist"


def bad_missing_caption(folder):
    write_metadata(folder, [{"file_name": "clip0.mp4", "text": "a"}, {"file_name": "clip1.mp4", "text": " "}])
    return r"metadata\.jsonl line 2 \(clip1\.mp4\) has no caption"


def bad_corrupt_video(folder):
    (folder / "clip1.mp4").write_bytes(b"\x00\x01not an mp4" * 100)
    return r"clip1\.mp4 \(metadata\.jsonl line 2\): cannot read the video"


def bad_corrupt_image(folder):  # read by pipelines.inputs.image_to_uint8, whose message follows
    (folder / "still.png").write_bytes(b"\x89PNG not really" * 10)
    write_metadata(folder, [{"file_name": "clip0.mp4", "text": "a"}, {"file_name": "still.png", "text": "b"}])
    return r"still\.png \(metadata\.jsonl line 2\): cannot read the image \(still\.png='.*' is not an image PIL can"


def bad_too_few_frames(folder):
    write_clip(folder / "clip1.mp4", seed=1, num_frames=5)
    return r"clip1\.mp4 \(metadata\.jsonl line 2\): the clip \(64x64, 5 frame\(s\)\) fits no resolution bucket"


def bad_too_small(folder):
    write_clip(folder / "clip1.mp4", seed=1, size=32)
    return r"clip1\.mp4 \(metadata\.jsonl line 2\): the clip \(32x32, 9 frame\(s\)\) fits no resolution bucket"


def bad_missing_reference(folder):
    write_metadata(folder, [{"file_name": "clip0.mp4", "text": "a", "reference_file_name": "edges.mp4"}])
    return r"edges\.mp4 \(reference_file_name, metadata\.jsonl line 1\) does not exist"


def bad_short_reference(folder):
    write_clip(folder / "edges.mp4", seed=3, num_frames=5)
    write_metadata(folder, [{"file_name": "clip0.mp4", "text": "a", "reference_file_name": "edges.mp4"}])
    return (
        r"edges\.mp4 \(metadata\.jsonl line 1\): the clip \(64x64, 5 frame\(s\)\) fits no resolution bucket \(64x64x9\)"
    )


def bad_silent_audio_file(folder):
    write_clip(folder / "silent.mp4", seed=3, audio=False)
    write_metadata(folder, [{"file_name": "clip0.mp4", "text": "a", "audio_file_name": "silent.mp4"}])
    return r"silent\.mp4 \(metadata\.jsonl line 1\) has no audio stream"


def bad_json(folder):
    (folder / "metadata.jsonl").write_text('{"file_name": "clip0.mp4", "text": "a"}\n{"file_name": \n')
    return r"metadata\.jsonl line 2 is not valid JSON"


def bad_unknown_key(folder):
    write_metadata(folder, [{"file_name": "clip0.mp4", "text": "a", "caption": "b"}])
    return r"metadata\.jsonl line 1: unknown keys \['caption'\]; expected \['file_name', 'text', 'reference_file_name', 'audio_f"


@pytest.mark.parametrize(
    "make_bad",
    [bad_missing_metadata, bad_missing_file, bad_missing_caption, bad_corrupt_video, bad_corrupt_image,
     bad_too_few_frames, bad_too_small, bad_missing_reference, bad_short_reference, bad_silent_audio_file, bad_json,
     bad_unknown_key],
)  # fmt: skip
def test_bad_input_names_the_file_and_writes_nothing(pipe, tmp_path, make_bad):
    folder = write_dataset(tmp_path / "data")
    expected = make_bad(folder)
    with pytest.raises(DataError, match=expected):
        cache(pipe, folder, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()  # every input is checked before the first sample is encoded


def test_media_broken_after_planning_is_a_data_error(tmp_path):
    """`load_pixels` reads through pipelines.inputs; a file that broke after `plan_cache` names the sample."""
    broken = tmp_path / "clip0.mp4"
    broken.write_bytes(b"\x00not an mp4" * 50)
    where = "clip0.mp4 (metadata.jsonl line 1)"
    with pytest.raises(DataError, match=r"^clip0\.mp4 \(metadata\.jsonl line 1\): cannot read the media \(clip0\.mp4="):
        data.load_pixels(broken, False, Bucket(64, 64, 9), where)
    broken.unlink()
    with pytest.raises(
        DataError, match=r"^clip0\.mp4 \(metadata\.jsonl line 1\): cannot read the media \(.*no such file"
    ):
        data.load_pixels(broken, True, Bucket(64, 64, 1), where)


def test_write_atomic_leaves_nothing_half_written(tmp_path, monkeypatch):
    target = tmp_path / "cache" / "clip.mp4.safetensors"
    write_atomic(target, {"x": torch.zeros(2)}, {"format": "1"})
    before = target.read_bytes()

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(data, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, {"x": torch.ones(2)}, {"format": "1"})
    assert target.read_bytes() == before  # the old file, whole
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # and no temporary file


def test_epoch_batches_keep_buckets_apart_and_cover_every_sample():
    keys = ["a", "b", "a", "a", "b", "c"]  # bucket of each sample
    first = epoch_batches(keys, 2, seed=0, epoch=0)
    assert first == epoch_batches(keys, 2, seed=0, epoch=0)  # a pure function of (seed, epoch)
    assert all(len({keys[i] for i in batch}) == 1 for batch in first)  # one bucket per batch
    assert len(first) == 2  # a: 3 samples -> 1 full batch (one dropped), b: 1 batch, c: too few
    singles = epoch_batches(keys, 1, seed=0, epoch=0)
    assert sorted(i for batch in singles for i in batch) == list(range(6))
    assert [batch_for_step(keys, 1, 0, index) for index in range(6, 12)] == epoch_batches(keys, 1, 0, 1)
    with pytest.raises(DataError, match=r"no resolution bucket holds a global batch of 4 samples"):
        epoch_batches(keys, 4, seed=0, epoch=0)


def test_reference_videos_are_cached_at_the_downscaled_size(pipe, tmp_path):
    folder = write_dataset(tmp_path / "data", num_clips=1)
    write_clip(folder / "edges.mp4", seed=5, audio=False)
    write_metadata(folder, [{"file_name": "clip0.mp4", "text": "a", "reference_file_name": "edges.mp4"}])
    report = cache_dataset(pipe, folder, tmp_path / "cache", parse_buckets(BUCKETS),
                           max_sequence_length=MAX_SEQUENCE_LENGTH, reference_downscale_factor=2)  # fmt: skip
    sample = load_cached(report.written[0])
    assert sample.video_latents.shape == (128, 2, 2, 2) and sample.reference_latents.shape == (128, 2, 1, 1)
    with torch.no_grad():  # the reference's first 9 frames at 32 x 32
        latent = pipe.vae.encode(torch.nn.functional.interpolate(decoded_frames(folder / "edges.mp4")[0], size=(32, 32),
                                                                  mode="bilinear")[None]).latent_dist.mode()  # fmt: skip
    expected = normalize_latents(latent, pipe.vae.latents_mean, pipe.vae.latents_std)[0]
    torch.testing.assert_close(sample.reference_latents, expected, atol=1e-4, rtol=1e-4)
    # a factor the bucket cannot take is refused
    with pytest.raises(ValueError, match=r"--reference_downscale_factor 3: bucket 64x64x9 divided by it"):
        cache_dataset(pipe, folder, tmp_path / "cache", parse_buckets(BUCKETS), reference_downscale_factor=3)


def test_audio_file_name_gives_a_silent_clip_its_soundtrack(pipe, tmp_path):
    folder = write_dataset(tmp_path / "data", num_clips=2)
    write_clip(folder / "silent.mp4", seed=0, audio=False)
    write_metadata(folder, [{"file_name": "clip1.mp4", "text": "a"},
                            {"file_name": "silent.mp4", "text": "a", "audio_file_name": "clip1.mp4"}])  # fmt: skip
    report = cache(pipe, folder, tmp_path / "cache")
    own, borrowed = (load_cached(path) for path in report.written)
    torch.testing.assert_close(borrowed.audio_latents, own.audio_latents)  # clip1's track over the same 9 / 24 s
