"""The tiny LTX-2.5 pipelines end to end: components in diffusers' layout, the model version's defaults, the
diffusion decoder decoding, the duration head predicting the clip length, the distilled stage 1's Euler-ancestral
sampler seeded with seed + 10000, the CLI, and the errors."""

import av
import pytest
import torch
from transformers import Gemma4UnifiedForConditionalGeneration

import ltx2_diffusers.pipelines.decoding as decoding
import ltx2_diffusers.pipelines.ltx25 as ltx25
from ltx2_diffusers import AutoencoderKLLTX2Video, LTX2DurationHead, LTX2VideoDiffusionDecoderModel
from ltx2_diffusers.cli import main
from ltx2_diffusers.models.duration_head import predict_num_frames
from ltx2_diffusers.pipelines.pipeline_base import scheduler_for_kind
from ltx2_diffusers.pipelines.presets import sampling_preset
from ltx2_diffusers.pipelines.tiny import build_tiny_pipeline, build_tiny_two_stage_pipeline

PROMPT = "a cat plays piano"


@pytest.fixture(scope="module")
def pipe():
    return build_tiny_pipeline(seed=3, model_version="2.5")


@pytest.fixture(scope="module")
def distilled():
    two = build_tiny_two_stage_pipeline(seed=4, model_version="2.5")
    two.scheduler = scheduler_for_kind("distilled")
    return two


def test_tiny_ltx25_has_diffusers_component_layout_and_the_25_defaults(pipe):
    assert pipe.model_version == "2.5"
    config = pipe.transformer.config
    assert (config.ff_bias, config.use_keyframes_abs_pos_embedding, config.use_prompt_adaln_single) == (False, True, True)
    assert isinstance(pipe.text_encoder, Gemma4UnifiedForConditionalGeneration)
    assert type(pipe.vae) is AutoencoderKLLTX2Video  # encodes images; the diffusion decoder decodes
    assert isinstance(pipe.diffusion_decoder, LTX2VideoDiffusionDecoderModel)
    assert isinstance(pipe.duration_head, LTX2DurationHead)
    assert pipe.video_decoder is pipe.diffusion_decoder
    defaults = pipe.sampling_defaults
    assert (defaults.num_inference_steps, defaults.image_crf, defaults.sampler) == (30, 18, "euler")
    assert sampling_preset("2.5", "distilled").sampler == "euler_ancestral"
    without = build_tiny_pipeline(seed=3, model_version="2.5", duration_head=False)
    assert without.duration_head is None and without.config["duration_head"] == (None, None)
    assert build_tiny_pipeline(model_version="2.0").video_decoder is not None  # LTX-2: vae decodes
    with pytest.raises(ValueError, match=r"duration_head=True: only LTX-2.5 has a duration head, not '2.3'; drop it"):
        build_tiny_pipeline(model_version="2.3", duration_head=True)
    with pytest.raises(ValueError, match=r"model_version must be one of \('2.0', '2.3', '2.5'\), got '2.4'"):
        build_tiny_pipeline(model_version="2.4")


def test_one_stage_predicts_the_clip_length_and_decodes_with_the_diffusion_decoder(pipe, monkeypatch):
    calls = []
    original = decoding.diffusion_decode_video

    def spy(decoder, latents, generator=None, **kwargs):
        calls.append((decoder, tuple(latents.shape)))
        return original(decoder, latents, generator, **kwargs)

    monkeypatch.setattr(decoding, "diffusion_decode_video", spy)
    generator = torch.Generator().manual_seed(0)
    out = pipe(PROMPT, height=128, width=128, min_seconds=0.5, max_seconds=1.5, num_inference_steps=2,
               generator=generator, output_type="np")  # fmt: skip
    embeds = pipe.encode_prompt(PROMPT)
    expected = predict_num_frames(pipe.duration_head, embeds.video_context, embeds.audio_context, 24, 0.5, 1.5)
    assert expected % 8 == 1 and 12 <= expected <= 36
    assert out.frames.shape == (1, expected, 128, 128, 3)
    assert calls == [(pipe.diffusion_decoder, (1, 128, (expected - 1) // 8 + 1, 4, 4))]
    assert out.audio.shape[:2] == (1, 2) and out.audio_sample_rate == 48000


def test_duration_range_decides_the_length(pipe):
    def frames(low, high):
        out = pipe(PROMPT, height=64, width=64, min_seconds=low, max_seconds=high, num_inference_steps=1,
                   generator=torch.Generator().manual_seed(0), output_type="latent")  # fmt: skip
        return 8 * (out.frames.shape[2] - 1) + 1

    assert frames(0.3, 0.5) == 9  # [7, 12] frames at 24 fps: only 9 is 8k + 1
    assert frames(2.0, 2.1) == 49  # [48, 50] frames: only 49


def test_distilled_two_stage_samples_stage_1_with_euler_ancestral_at_seed_plus_10000(distilled, monkeypatch):
    seeds = []
    original = ltx25.euler_ancestral_sample

    def spy(*args, **kwargs):
        seeds.append((kwargs["noise_seed"], kwargs["eta"], len(args[2])))
        return original(*args, **kwargs)

    monkeypatch.setattr(ltx25, "euler_ancestral_sample", spy)
    out = distilled(PROMPT, height=128, width=128, num_frames=9, generator=torch.Generator().manual_seed(7),
                    output_type="latent")  # fmt: skip
    assert seeds == [(10007, 1.0, 9)]  # the 8 distilled steps (9 sigmas), stage 1 only
    assert out.frames.shape == (1, 128, 2, 4, 4)
    assert ltx25.stage_1_sampler(sampling_preset("2.3", "distilled"), None) is ltx25.euler_sample


def test_ltx25_errors(pipe):
    with pytest.raises(ValueError, match=r"reference='1.0' reproduces ltx-core 1.0.0, which cannot run LTX-2.5"):
        pipe(PROMPT, num_frames=9, height=64, width=64, reference="1.0")
    with pytest.raises(ValueError, match=r"only predicted when num_frames is None .* here num_frames is given"):
        pipe(PROMPT, num_frames=9, height=64, width=64, max_seconds=3.0)
    with pytest.raises(ValueError, match=r"needs 0 < min_seconds < max_seconds"):
        pipe(PROMPT, height=64, width=64, min_seconds=2.0, max_seconds=2.0)
    with pytest.raises(ValueError, match=r"latents / audio_latents fix the clip length"):
        pipe(PROMPT, height=64, width=64, latents=torch.zeros(1, 128, 2, 2, 2))
    with pytest.raises(ValueError, match=r"No clip length of the form 8k \+ 1 lies in \[10, 12\] frames"):
        pipe(PROMPT, height=64, width=64, min_seconds=10 / 24, max_seconds=0.5)
    with pytest.raises(ValueError, match=r"predicts one clip length from one prompt, but the batch holds 2"):
        pipe([PROMPT, "a dog"], height=64, width=64, num_inference_steps=1, output_type="latent")
    plain = build_tiny_pipeline(model_version="2.3")
    with pytest.raises(ValueError, match=r"here the pipeline has no duration_head"):
        plain(PROMPT, height=64, width=64, min_seconds=1.0)


def test_cli_runs_tiny_ltx25_distilled_to_an_mp4_with_sound(tmp_path, capsys):
    path = tmp_path / "cat.mp4"
    argv = ["distilled", "a cat", "-o", str(path), "--model", "tiny-2.5", "--frames", "9", "--height", "128",
            "--width", "128", "--seed", "3"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr()
    assert capsys.readouterr().out.startswith(f"wrote {path}: 9 frames of 128x128 at 24 fps")
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.codec_context.name, audio.codec_context.name, audio.rate) == ("h264", "aac", 48000)
        assert sum(1 for _ in container.decode(video=0)) == 9


def test_ltx25_folder_round_trip_keeps_the_diffusion_decoder_and_duration_head(tmp_path):
    from ltx2_diffusers import LTX2AVPipeline

    original = build_tiny_pipeline(seed=1, model_version="2.5")
    original.save_pretrained(tmp_path)
    loaded = LTX2AVPipeline.from_pretrained(tmp_path)
    for name in ("diffusion_decoder", "duration_head", "vae"):
        ours, theirs = getattr(original, name).state_dict(), getattr(loaded, name).state_dict()
        assert type(getattr(loaded, name)) is type(getattr(original, name)) and ours.keys() == theirs.keys()
        assert all(torch.equal(ours[key], theirs[key]) for key in ours), name
    assert loaded.model_version == "2.5" and loaded.video_decoder is loaded.diffusion_decoder


def test_hq_predicts_the_length_and_shifts_its_sigmas_for_it():
    from ltx2_diffusers.pipelines.pipeline_ltx2_av_two_stage_hq import LTX2AVTwoStageHQPipeline

    hq = LTX2AVTwoStageHQPipeline(**build_tiny_two_stage_pipeline(seed=5, model_version="2.5").components)
    hq.set_progress_bar_config(disable=True)

    def call(**kwargs):
        return hq(PROMPT, height=128, width=128, num_inference_steps=2, generator=torch.Generator().manual_seed(1),
                  output_type="latent", **kwargs).frames  # fmt: skip

    predicted = call(min_seconds=0.5, max_seconds=1.5)
    frames = 8 * (predicted.shape[2] - 1) + 1
    assert 12 <= frames <= 36
    # the same as asking for that length: the HQ shift follows the predicted token count, not the longest clip
    torch.testing.assert_close(predicted, call(num_frames=frames), rtol=0, atol=0)


def test_extend_decodes_its_segments_with_the_diffusion_decoder(tmp_path, monkeypatch, capsys):
    from helpers.cli_media import write_clip

    import ltx2_diffusers.pipelines.pipeline_ltx2_av_extend as extend

    calls = []
    original = extend.diffusion_decode_video

    def spy(decoder, latents, generator=None):
        calls.append(type(decoder).__name__)
        return original(decoder, latents, generator)

    monkeypatch.setattr(extend, "diffusion_decode_video", spy)
    clip = write_clip(tmp_path / "clip.mp4")
    argv = ["extend", "a cat", "--model", "tiny-2.5", "--steps", "1", "--video", str(clip), "--new-frames", "8",
            "--context-frames", "9", "-o", str(tmp_path / "out.mp4")]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr()
    assert calls == ["LTX2VideoDiffusionDecoderModel"]


def test_text_to_audio_predicts_the_length_from_the_audio_context(pipe):
    from ltx2_diffusers.models.autoencoder_kl_ltx2_audio import audio_latent_frames
    from ltx2_diffusers.pipelines.pipeline_ltx2_text_to_audio import LTX2TextToAudioPipeline

    t2a = LTX2TextToAudioPipeline(**pipe.components)
    t2a.set_progress_bar_config(disable=True)
    out = t2a(PROMPT, min_seconds=0.5, max_seconds=1.5, num_inference_steps=1, output_type="latent",
              generator=torch.Generator().manual_seed(0))  # fmt: skip
    embeds = pipe.encode_prompt(PROMPT)
    frames = predict_num_frames(pipe.duration_head, None, embeds.audio_context, 24, 0.5, 1.5)
    assert out.audio.shape == (1, 8, audio_latent_frames(frames, 24), 16)
    with pytest.raises(ValueError, match=r"latents / audio_latents fix the clip length"):
        t2a(PROMPT, audio_latents=torch.zeros(1, 8, 18, 16))


@pytest.mark.gpu
def test_tiny_ltx25_distilled_two_stage_bf16_on_gpu_with_model_cpu_offload():
    """The whole LTX-2.5 path on CUDA in bf16 (duration head, ancestral stage 1, diffusion decoder), and model CPU
    offload through the offload sequence with the two 2.5 components gives the same clip."""

    def build():
        two = build_tiny_two_stage_pipeline(seed=4, model_version="2.5")
        two.scheduler = scheduler_for_kind("distilled")
        return two.to(torch.bfloat16)

    def generate(two):
        return two(PROMPT, height=128, width=128, min_seconds=0.5, max_seconds=1.5, output_type="pt",
                   generator=torch.Generator("cuda").manual_seed(3)).frames  # fmt: skip

    on_gpu = generate(build().to("cuda"))
    assert on_gpu.shape[1] % 8 == 1 and 12 <= on_gpu.shape[1] <= 36 and torch.isfinite(on_gpu).all()
    offloaded = build()
    offloaded.enable_model_cpu_offload()
    torch.testing.assert_close(generate(offloaded).cpu(), on_gpu.cpu(), rtol=0, atol=0)
