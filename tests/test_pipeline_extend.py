"""LTX2AVExtendPipeline (no reference pipeline: ltx-pipelines has none, so the tests pin the rules themselves).

(1) The output's copy of the input clip is the input exactly, frames (uint8) and samples (float32): the stitch keeps
    the input's own pixels and waveform, not their VAE reconstruction. Three extensions give F + 3N frames and
    round((F + 3N) / fps * R) samples; backwards works the same way before the clip.
(2) Seamless joins: with the decoders replaced by "the true continuation" of a ramp (every frame and sample says
    its own time), the output is the ramp without a gap or a repeat, forwards and backwards, over three extensions.
(3) Context tokens are frozen (denoise mask 0, kept at their clean latents); only the segment is encoded, the same
    size at every extension; repeated calls with the previous output equal `num_extensions`.
(4) Bad inputs raise clear errors before any model runs; the CLI writes the file.
"""

from importlib import import_module

import numpy as np
import pytest
import torch
from helpers.cli_media import write_clip

from ltx2_diffusers import GuidanceScales, LTX2AVExtendPipeline
from ltx2_diffusers.pipelines import pipeline_ltx2_av_extend as extend
from ltx2_diffusers.pipelines.pipeline_ltx2_av_extend import (
    Clip,
    audio_context_mask,
    plan_segment,
    stitch,
    video_context_mask,
)
from ltx2_diffusers.pipelines.tiny import build_tiny_pipeline

FPS, RATE, SIZE = 24.0, 24000, 64  # the tiny vocoder's rate: 8 frames at 24 fps are exactly 8000 samples
FAST = {"sigmas": (1.0, 0.0), "video_guidance": GuidanceScales(), "audio_guidance": GuidanceScales()}
SHORT = {"num_frames": 8, "context_frames": 9, **FAST}


def distinct_frames(count: int, first: int = 120) -> np.ndarray:
    """(count, 64, 64, 3) uint8, frame i filled with first + i (and a fixed texture in the green channel)."""
    frames = np.zeros((count, SIZE, SIZE, 3), np.uint8)
    frames[..., 0] = (first + np.arange(count))[:, None, None]
    frames[..., 1] = (np.arange(SIZE)[None, :] * 3)[None]
    return frames


def tone(num_samples: int) -> torch.Tensor:
    t = torch.arange(num_samples) / RATE
    return (0.3 * torch.sin(2 * torch.pi * 440 * t))[None].repeat(2, 1)


@pytest.fixture(scope="module")
def pipe():
    pipe = LTX2AVExtendPipeline(**build_tiny_pipeline(0).components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def clip_17():
    return distinct_frames(17), tone(17000)


@pytest.fixture(scope="module")
def three_forward(pipe, clip_17):
    frames, audio = clip_17
    generator = torch.Generator().manual_seed(0)
    return pipe(
        frames, "a cat", frame_rate=FPS, audio=audio, audio_sample_rate=RATE, num_extensions=3, output_type="np",
        generator=generator, **SHORT,
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------------
# (1) The input is kept exactly; counts and durations


def test_three_extensions_keep_the_input_and_add_frames_and_samples(three_forward, clip_17):
    frames, audio = clip_17
    out = three_forward
    assert out.frames.shape == (1, 17 + 3 * 8, SIZE, SIZE, 3) and out.audio_sample_rate == RATE
    assert out.audio.shape == (1, 2, round((17 + 24) / FPS * RATE)) == (1, 2, 41000)
    np.testing.assert_array_equal(np.round(out.frames[0, :17] * 255).astype(np.uint8), frames)  # the input, exactly
    torch.testing.assert_close(out.audio[0, :, :17000], audio, rtol=0, atol=0)
    new = np.round(out.frames[0, 17:] * 255)
    assert np.abs(new - frames[-1]).mean() > 5  # generated, not the placeholder (the edge frame repeated)
    assert out.audio[0, :, 17000:].abs().max() > 0


def test_backwards_adds_before_the_clip(pipe, clip_17):
    frames, audio = clip_17
    out = pipe(frames, "a cat", frame_rate=FPS, audio=audio, audio_sample_rate=RATE, backwards=True, output_type="pil",
               **SHORT)  # fmt: skip
    assert len(out.frames[0]) == 25 and out.audio.shape == (1, 2, 8000 + 17000)
    np.testing.assert_array_equal(np.stack([np.asarray(f) for f in out.frames[0][8:]]), frames)
    torch.testing.assert_close(out.audio[0, :, 8000:], audio, rtol=0, atol=0)


def test_repeated_calls_equal_num_extensions(pipe, three_forward, clip_17):
    """Extending the previous output again continues it exactly as `num_extensions` does (same generator stream)."""
    frames, audio = clip_17
    generator = torch.Generator().manual_seed(0)
    once = pipe(frames, "a cat", frame_rate=FPS, audio=audio, audio_sample_rate=RATE, output_type="np",
                generator=generator, **SHORT)  # fmt: skip
    twice = pipe(once, "a cat", frame_rate=FPS, output_type="np", generator=generator, **SHORT)
    np.testing.assert_array_equal(twice.frames[0], three_forward.frames[0, :33])
    torch.testing.assert_close(twice.audio[0], three_forward.audio[0, :, :33000], rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------------------------------
# (2) Joins: the decoders return the true continuation of a ramp, so any repeat or gap shows


def frame_value(absolute: np.ndarray) -> np.ndarray:
    return 120 + absolute  # absolute frame index (negative before the first input frame)


def sample_value(absolute: torch.Tensor) -> torch.Tensor:
    return absolute.float() * 1e-5 + 0.01


@pytest.mark.parametrize("backwards", [False, True])
def test_joins_have_no_repeated_or_missing_frames_or_samples(pipe, monkeypatch, backwards):
    seen = []  # (segment, absolute index of clip frame 0, absolute index of clip sample 0) per extension
    real_plan = extend.plan_segment

    def plan(clip, context, new, back, audio_context, rate):
        shift = len(seen) if backwards else 0  # each backwards extension moves the clip's start 8 frames earlier
        seen.append((real_plan(clip, context, new, back, audio_context, rate), -8 * shift, -8000 * shift))
        return seen[-1][0]

    def decode_video(vae, latents, generator=None):
        segment, origin, _ = seen[-1]
        first = -segment.new_frames if segment.backwards else segment.clip_start
        values = frame_value(origin + first + np.arange(segment.num_frames)).astype(np.float64)
        pixels = torch.tensor((values + 0.5) / 255 * 2 - 1, dtype=torch.float32)  # truncates back to the value
        return pixels[None, None, :, None, None].expand(1, 3, -1, SIZE, SIZE)

    def decode_audio(audio_vae, vocoder, latents, reference):
        segment, _, origin = seen[-1]
        num_samples = (4 * latents.shape[2] - 3) * 240
        return sample_value(origin + segment.audio_start + torch.arange(num_samples))[None, None].expand(1, 2, -1)

    monkeypatch.setattr(extend, "plan_segment", plan)
    monkeypatch.setattr(extend, "decode_video", decode_video)
    monkeypatch.setattr(extend, "decode_audio", decode_audio)
    frames = np.broadcast_to(frame_value(np.arange(17))[:, None, None, None], (17, SIZE, SIZE, 3)).astype(np.uint8)
    audio = sample_value(torch.arange(17000))[None].expand(2, -1)
    out = pipe(frames, "a cat", frame_rate=FPS, audio=audio, audio_sample_rate=RATE, num_extensions=3,
               backwards=backwards, output_type="np", **SHORT)  # fmt: skip
    first_frame, first_sample = (-24, -24000) if backwards else (0, 0)
    expected = frame_value(np.arange(first_frame, first_frame + 41))
    np.testing.assert_array_equal(np.round(out.frames[0, :, 0, 0, 0] * 255), expected)
    expected_audio = sample_value(torch.arange(first_sample, first_sample + 41000))[None].expand(2, -1)
    torch.testing.assert_close(out.audio[0], expected_audio, rtol=0, atol=0)


def test_stitch_keeps_the_clip_and_takes_the_new_part():
    """The pure join on hand-made numbers: 3 clip frames + 8 new ones; the soundtrack stops 1 sample early."""
    clip = Clip(np.arange(3, dtype=np.uint8)[:, None, None, None] * np.ones((1, 1, 1, 3), np.uint8), 24.0,
                torch.arange(2999.0)[None].expand(2, -1) / 1e4, 24000)  # fmt: skip
    segment = plan_segment(clip, 1, 8, backwards=False, audio_context=True, sample_rate=24000)
    assert (segment.clip_start, segment.audio_start, segment.num_frames) == (2, 2000, 9)
    assert (segment.known_start, segment.known_end) == (0.0, 999 / 24000)  # the missing sample is regenerated
    decoded = (2000 + torch.arange(9000.0))[None].expand(2, -1) / 1e4
    joined = stitch(clip, segment, np.full((8, 1, 1, 3), 7, np.uint8), decoded)
    assert joined.frames[:, 0, 0, 0].tolist() == [0, 1, 2] + [7] * 8
    torch.testing.assert_close(joined.audio, torch.arange(11000.0)[None].expand(2, -1) / 1e4, rtol=0, atol=0)


def test_clip_forms_and_sample_rates():
    """A previous output ("pt" frames) reads back as uint8 frames; mono audio becomes stereo; another rate is
    resampled to the vocoder's; a clip without sound gets silence as long as its video."""
    from ltx2_diffusers import LTX2PipelineOutput
    from ltx2_diffusers.pipelines.pipeline_ltx2_av_extend import read_clip, with_sample_rate

    frames = distinct_frames(9)
    output = LTX2PipelineOutput(
        frames=torch.from_numpy(frames).permute(0, 3, 1, 2)[None].float() / 255, audio=tone(9000)[None],
        audio_sample_rate=RATE,
    )  # fmt: skip
    clip = read_clip(output, FPS, None, None)
    np.testing.assert_array_equal(clip.frames, frames)
    assert clip.audio.shape == (2, 9000) and clip.sample_rate == RATE
    mono = read_clip(frames, FPS, tone(18000)[0].numpy(), 48000)
    assert mono.audio.shape == (2, 18000) and torch.equal(mono.audio[0], mono.audio[1])
    assert with_sample_rate(mono, RATE).audio.shape == (2, 9000)
    silent = with_sample_rate(read_clip(frames, FPS, None, None), RATE)
    assert silent.audio.shape == (2, 9000) and not silent.audio.any()


def test_diffusers_resolves_the_saved_class_name():
    """save_pretrained records `_class_name` "LTX2AVExtendPipeline": diffusers must find this class, whose components
    are the one-stage pipeline's."""
    import diffusers

    from ltx2_diffusers import LTX2AVPipeline

    assert diffusers.LTX2AVExtendPipeline is LTX2AVExtendPipeline
    assert LTX2AVExtendPipeline._get_signature_keys(LTX2AVExtendPipeline) == LTX2AVPipeline._get_signature_keys(
        LTX2AVPipeline
    )


# ----------------------------------------------------------------------------------------------------------------------
# (3) Masks, frozen tokens, flat memory


def test_video_context_mask_freezes_whole_context_latent_frames():
    # forward: 9 context frames = latent frames 0 ([0]) and 1 ([1, 8]); latent frame 2 ([9, 16]) is new
    assert video_context_mask((3, 1, 2), 0, 8).flatten().tolist() == [0, 0, 0, 0, 1, 1]
    # backwards: 8 new frames, context at frames 8..16: latent frame 1 ([1, 8]) holds new frames and context frame 0,
    # so it is generated; latent frame 2 ([9, 16]) is frozen
    assert video_context_mask((3, 1, 1), 8, 16).flatten().tolist() == [1, 1, 0]


def test_audio_context_mask_freezes_the_tokens_inside_the_known_seconds():
    # audio latent frame i spans [0.04 i - 0.03, 0.04 i + 0.01) s: inside [0, 0.375) for i <= 9
    assert audio_context_mask(12, 0.0, 0.375).flatten().tolist() == [0] * 10 + [1] * 2
    # backwards, the context from 1/3 s on: frames 10.. (starting at 0.37 s) up to the end of the known audio
    assert audio_context_mask(20, 1 / 3, 0.7).flatten().tolist() == [1] * 10 + [0] * 8 + [1] * 2
    assert audio_context_mask(4, 0.0, 0.0).flatten().tolist() == [1] * 4  # no audio context


def test_context_tokens_are_frozen_and_only_the_segment_is_encoded(pipe, monkeypatch, clip_17):
    frames, audio = clip_17
    states, encoded = [], []
    real_denoise, real_encode = extend.denoise, extend.encode_pixels

    def spy_denoise(transformer, video, audio_state, *args, **kwargs):
        out = real_denoise(transformer, video, audio_state, *args, **kwargs)
        states.append(((video, audio_state), out))
        return out

    def spy_encode(vae, pixels):
        encoded.append(tuple(pixels.shape))
        return real_encode(vae, pixels)

    monkeypatch.setattr(extend, "denoise", spy_denoise)
    monkeypatch.setattr(extend, "encode_pixels", spy_encode)
    pipe(frames, "a cat", frame_rate=FPS, audio=audio, audio_sample_rate=RATE, num_extensions=2, output_type="np",
         **SHORT)  # fmt: skip
    assert encoded == [(1, 3, 17, SIZE, SIZE)] * 2  # the 9 context + 8 placeholder frames, whatever the clip's length
    for before, after in states:
        for start, end, frozen in zip(before, after, (8, 10), strict=True):  # 2 of 3 latent frames; 10 audio tokens
            keep = start.denoise_mask[0, :, 0] == 0
            assert int(keep.sum()) == frozen and bool((start.denoise_mask[0, ~keep] == 1).all())
            torch.testing.assert_close(end.latent[:, keep], start.clean_latent[:, keep], rtol=0, atol=0)
            assert not torch.equal(end.latent[:, ~keep], start.clean_latent[:, ~keep])


# ----------------------------------------------------------------------------------------------------------------------
# (4) Errors before any model runs; the CLI


@pytest.fixture
def no_model(pipe, monkeypatch):
    def ran(*args, **kwargs):
        raise AssertionError("a model ran before the arguments were checked")

    for name in ("encode_pixels", "prompt_contexts", "denoise"):
        monkeypatch.setattr(extend, name, ran)
    return pipe


BAD_CALLS = [
    ({"video": distinct_frames(9), "context_frames": 17}, r"the clip has 9 frames, fewer than context_frames=17"),
    ({"audio": torch.zeros(2, 17000)}, r"soundtrack is silent over the last 0.375 s"),
    ({"audio": None, "audio_sample_rate": None}, r"audio_context=True, but the clip has no soundtrack"),
    ({"audio": tone(3000)}, r"covers 0.000 s of the last 0.375 s .* ends before its video"),
    ({"audio": tone(3000), "backwards": True}, r"covers 0.125 s of the first 0.375 s"),
    ({"num_frames": 10}, r"num_frames=10 new frames is not a multiple of 8.* Use 8 or 16"),
    ({"context_frames": 10}, r"context_frames=10 is not of the form 8\*k \+ 1"),
    ({"output_type": "latent"}, r"output_type='latent': an extension returns the whole clip"),
    ({"prompt": ["a", "b"], "num_extensions": 3}, r"got 2 prompts for num_extensions=3"),
    ({"generator": [torch.Generator()]}, r"pass one torch.Generator, not a list"),
    ({"frame_rate": None}, r"frame_rate is needed with frames"),
]


@pytest.mark.parametrize(("change", "message"), BAD_CALLS)
def test_bad_inputs_are_refused_before_any_model_runs(no_model, clip_17, change, message):
    frames, audio = clip_17
    call = {"video": frames, "prompt": "a cat", "frame_rate": FPS, "audio": audio, "audio_sample_rate": RATE,
            **SHORT, **change}  # fmt: skip
    with pytest.raises(ValueError, match=message):
        no_model(**call)


def test_file_frame_rate_mismatch_and_silent_file(no_model, tmp_path):
    path = write_clip(tmp_path / "clip.mp4", num_frames=17)
    with pytest.raises(ValueError, match=r"frame_rate=25 does not match the file's 24 fps"):
        no_model(str(path), "a cat", frame_rate=25.0, **SHORT)
    silent = write_clip(tmp_path / "silent.mp4", num_frames=17, sample_rate=None)
    with pytest.raises(ValueError, match=r"the clip has no soundtrack.* or audio_context=False"):
        no_model(str(silent), "a cat", **SHORT)


@pytest.mark.skipif(
    not hasattr(import_module("ltx2_diffusers.cli.checks"), "_check_extend"),
    reason="needs the cli/checks.py hunk for `extend` (the extend helper's report) wired in",
)
def test_cli_extend_writes_the_longer_clip(tmp_path, capsys):
    import av

    from ltx2_diffusers.cli import main

    source = write_clip(tmp_path / "clip.mp4", num_frames=17)
    path = tmp_path / "longer.mp4"
    argv = ["extend", "a cat", "-o", str(path), "--video", str(source), "--model", "tiny", "--steps", "1"]
    assert main([*argv, "--new-frames", "8", "--context-frames", "9", "--extensions", "2"]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {path}: 33 frames of 64x64 at 24 fps (1.38 s)")
    with av.open(str(path)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 33
    assert main([*argv, "--new-frames", "10"]) == 2
    assert "num_frames=10 new frames is not a multiple of 8" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.parametrize("model_version", ["2.0", "2.3"])
def test_bf16_on_gpu_and_model_cpu_offload_agree(model_version, clip_17):
    """On CUDA in bf16 (noise drawn on the GPU, the clip kept on the CPU): the input comes back exactly, and model CPU
    offload gives the same clip as everything resident."""
    frames, audio = clip_17
    call = dict(frame_rate=FPS, audio=audio, audio_sample_rate=RATE, num_extensions=2, output_type="pt", **SHORT)

    def extend_on(pipe):
        return pipe(frames, "a cat", generator=torch.Generator("cuda").manual_seed(0), **call)

    components = build_tiny_pipeline(model_version=model_version).components
    resident = extend_on(LTX2AVExtendPipeline(**components).to("cuda", torch.bfloat16))
    assert resident.frames.shape == (1, 33, 3, SIZE, SIZE) and resident.frames.device.type == "cpu"
    assert resident.audio.shape == (1, 2, round(33 / FPS * resident.audio_sample_rate))
    kept = (resident.frames[0, :17].permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    np.testing.assert_array_equal(kept, frames)
    assert torch.isfinite(resident.audio).all()
    offloaded = LTX2AVExtendPipeline(**build_tiny_pipeline(model_version=model_version).components).to(torch.bfloat16)
    offloaded.enable_model_cpu_offload()
    again = extend_on(offloaded)
    torch.testing.assert_close(again.frames, resident.frames, rtol=0, atol=0)
    torch.testing.assert_close(again.audio, resident.audio, rtol=0, atol=0)
