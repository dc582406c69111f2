"""LTX2VideoToAudioPipeline (tiny, CPU): the video stays the input exactly, the audio is new and equals the retake's
(the reference's only route to Foley: RetakePipeline with the video kept), shapes and durations, input errors."""

import numpy as np
import PIL.Image
import pytest
import torch
from helpers.cli_media import write_clip

from ltx2_diffusers.models.autoencoder_kl_ltx2_audio import audio_latent_frames
from ltx2_diffusers.pipelines.conditioning import patchify_video
from ltx2_diffusers.pipelines.inputs import video_frames
from ltx2_diffusers.pipelines.pipeline_ltx2_av_retake import LTX2AVRetakePipeline
from ltx2_diffusers.pipelines.pipeline_ltx2_video_to_audio import LTX2VideoToAudioPipeline
from ltx2_diffusers.pipelines.tiny import build_tiny_pipeline

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def pipe() -> LTX2VideoToAudioPipeline:
    pipe = LTX2VideoToAudioPipeline(**build_tiny_pipeline(seed=0).components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def clip(num_frames: int = 9, size: int = 64) -> np.ndarray:
    rng = torch.Generator().manual_seed(3)
    return torch.randint(0, 256, (num_frames, size, size, 3), generator=rng, dtype=torch.uint8).numpy()


def test_video_tokens_stay_the_encoded_input_and_frames_are_the_input(pipe):
    frames = clip()
    source = patchify_video(pipe.encode_source_video(frames, CPU))
    seen = []

    def callback(pipe_, step, timestep, tensors):
        seen.append((tensors["video_latents"].clone(), tensors["audio_latents"].clone()))
        return {}

    out = pipe(frames, "footsteps", frame_rate=24.0, num_inference_steps=2, output_type="np",
               generator=torch.Generator().manual_seed(0), callback_on_step_end=callback,
               callback_on_step_end_tensor_inputs=["video_latents", "audio_latents"])  # fmt: skip
    assert len(seen) == 2 and all(torch.equal(video, source) for video, _ in seen)
    assert (seen[0][1] - seen[1][1]).abs().max() > 1e-3  # the audio does move
    assert out.frames.shape == (1, 9, 64, 64, 3) and out.frames.dtype == np.float32
    np.testing.assert_array_equal(np.round(out.frames[0] * 255).astype(np.uint8), frames)
    # 9 frames at 24 fps: 9 audio latent frames, 4 * 9 - 3 mel frames of 240 samples at 24 kHz
    assert out.audio.shape == (1, 2, (4 * audio_latent_frames(9, 24.0) - 3) * 240) and out.audio_sample_rate == 24000


def test_audio_equals_the_retake_with_the_video_kept(pipe):
    frames = clip()
    kwargs = dict(frame_rate=24.0, num_inference_steps=2, output_type="latent", audio_guidance_scale=2.0)
    ours = pipe(frames, "rain", generator=torch.Generator().manual_seed(5), **kwargs)
    retake = LTX2AVRetakePipeline(**pipe.components)(
        frames, "rain", 0.0, 9 / 24.0, regenerate_video=False, generator=torch.Generator().manual_seed(5), **kwargs
    )
    assert torch.equal(ours.audio, retake.audio) and torch.equal(ours.frames, retake.frames)
    assert ours.frames.shape == (1, 128, 2, 2, 2) and ours.audio.shape == (1, 8, 9, 16)


def test_file_input_pil_output_and_batch(pipe, tmp_path):
    path = write_clip(tmp_path / "clip.mp4", num_frames=9, size=64)  # has a 440 Hz track, which is ignored
    frames, fps = video_frames(path)
    out = pipe(str(path), "birds", num_inference_steps=2, num_videos_per_prompt=2, output_type="pil")
    assert fps == 24.0 and len(out.frames) == 2 and len(out.frames[1]) == 9
    assert isinstance(out.frames[0][0], PIL.Image.Image)
    assert np.array_equal(np.asarray(out.frames[1][4]), frames[4])
    assert out.audio.shape[:2] == (2, 2)


@pytest.mark.parametrize(
    "video, kwargs, error, match",
    [
        (clip(), {}, ValueError, r"frame_rate is needed with frames"),
        (clip(8), {"frame_rate": 24.0}, ValueError, r"the source clip's frame count=8 is not of the form 8\*k \+ 1"),
        (clip(9, 48), {"frame_rate": 24.0}, ValueError, r"the source clip's height=48 is not a positive multiple of 32"),
        (clip(), {"frame_rate": 24.0, "prompt": ["a", "b"]}, TypeError, r"prompt must be one string"),
        (clip(), {"frame_rate": 24.0, "audio_latents": torch.zeros(1, 8, 4, 16)}, ValueError, r"audio_latents must be noise of shape \(1 or 1, 8, 9, 16\) for this clip"),
        (clip(), {"frame_rate": 24.0, "output_type": "mp4"}, ValueError, r"output_type='mp4' is not one of"),
        ("/nonexistent/clip.mp4", {}, ValueError, r"clip.mp4"),
    ],
)  # fmt: skip
def test_input_errors(pipe, video, kwargs, error, match, monkeypatch):
    def no_encoding(*args, **kwargs):
        raise AssertionError("the video VAE ran before the inputs were checked")

    monkeypatch.setattr(pipe.vae, "encode", no_encoding)
    kwargs = {"prompt": "rain", "num_inference_steps": 2, **kwargs}
    with pytest.raises(error, match=match):
        pipe(video, **kwargs)


def test_cli_writes_the_clip_with_its_new_sound(tmp_path, capsys):
    import av

    from ltx2_diffusers.cli import main

    source = write_clip(tmp_path / "walk.mp4", num_frames=9, size=64)
    path = tmp_path / "foley.mp4"
    assert (
        main(["video-to-audio", "steps", "-o", str(path), "--video", str(source), "--model", "tiny", "--steps", "1"])
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith(f"wrote {path}: 9 frames of 64x64 at 24 fps (0.38 s), stereo audio at 24000 Hz"), out
    with av.open(str(path)) as container:
        assert container.streams.audio[0].rate == 24000 and container.streams.audio[0].codec_context.channels == 2
        written = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]).astype(np.float32)
    with av.open(str(path)) as container:
        samples = sum(frame.samples for frame in container.decode(audio=0))
    assert 7920 <= samples <= 7920 + 2048  # 9 audio latents -> 33 mel frames -> 7920 samples, plus AAC padding
    frames, _ = video_frames(source)
    # the input frames, through one more H.264 round trip (the tiny VAE's decode would be noise)
    assert written.shape == (9, 64, 64, 3) and np.abs(written - frames).mean() < 8.0


def test_cli_needs_the_video(tmp_path, capsys):
    from ltx2_diffusers.cli import main

    with pytest.raises(SystemExit):
        main(["video-to-audio", "steps", "-o", str(tmp_path / "x.mp4"), "--model", "tiny"])
    assert "--video" in capsys.readouterr().err


def test_registered_with_diffusers_and_the_package():
    import diffusers

    import ltx2_diffusers
    from ltx2_diffusers.pipelines.pipeline_ltx2_text_to_audio import LTX2TextToAudioPipeline

    assert ltx2_diffusers.LTX2VideoToAudioPipeline is diffusers.LTX2VideoToAudioPipeline is LTX2VideoToAudioPipeline
    assert ltx2_diffusers.LTX2TextToAudioPipeline is diffusers.LTX2TextToAudioPipeline is LTX2TextToAudioPipeline
    assert {"LTX2VideoToAudioPipeline", "LTX2TextToAudioPipeline"} <= set(ltx2_diffusers.__all__)


@pytest.mark.gpu
def test_bf16_on_gpu_keeps_the_frames_and_offload_gives_the_same_audio():
    def build():
        pipe = LTX2VideoToAudioPipeline(**build_tiny_pipeline(seed=0).components)
        pipe.set_progress_bar_config(disable=True)
        return pipe.to(torch.bfloat16)

    frames = clip()

    def generate(pipe):
        return pipe(frames, "rain", frame_rate=24.0, num_inference_steps=2, output_type="np",
                    generator=torch.Generator("cuda").manual_seed(0))  # fmt: skip

    on_gpu = generate(build().to("cuda"))
    np.testing.assert_array_equal(np.round(on_gpu.frames[0] * 255).astype(np.uint8), frames)
    assert torch.isfinite(on_gpu.audio).all() and on_gpu.audio.abs().max() > 0
    offloaded = build()
    offloaded.enable_model_cpu_offload()
    torch.testing.assert_close(generate(offloaded).audio.cpu(), on_gpu.audio.cpu(), rtol=0, atol=0)
