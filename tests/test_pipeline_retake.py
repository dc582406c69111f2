"""LTX2AVRetakePipeline against ltx-pipelines 1.0.0's RetakePipeline (spec §7.5, §9).

(1) The temporal region mask and the noised starting states equal ltx-pipelines' `noise_video_state` /
    `noise_audio_state` with its `TemporalRegionMask` and the source latents as initial latents (bit-exact, bf16),
    for windows at the clip's start and end, on latent-frame edges and inside one latent frame.
(2) The retake's guided Euler loop equals ltx-pipelines' `euler_denoising_loop` + `multi_modal_guider_denoising_func`
    on a tiny transformer with the same weights: fp32 within 5e-5 (a few 1e-6 reached over 2 steps), bf16 bit-exact.
(3) The pipeline keeps every token outside the window at the source latents exactly and changes those inside;
    regenerate_video=False keeps the whole video; a clip without audio gets all of its audio generated.
(4) Clear errors for bad windows and bad source clips; the defaults (40 steps and negative prompt "" when guided,
    the 8 distilled sigmas without a negative prompt when distilled).
"""

import pytest
import torch
from _transformer_helpers import AUDIO_TOKENS, CAPTION_CHANNELS, FPS, FRAMES, HEIGHT, TEXT_TOKENS, WIDTH, build_pair
from ltx_core.components.diffusion_steps import EulerDiffusionStep
from ltx_core.components.guiders import MultiModalGuider, MultiModalGuiderParams
from ltx_core.components.noisers import GaussianNoiser
from ltx_core.components.patchifiers import AudioPatchifier, VideoLatentPatchifier
from ltx_core.model.transformer.model import X0Model
from ltx_core.tools import AudioLatentTools, VideoLatentTools
from ltx_core.types import AudioLatentShape, VideoLatentShape, VideoPixelShape
from ltx_core.types import LatentState as CoreLatentState
from ltx_pipelines.retake import TemporalRegionMask
from ltx_pipelines.utils.helpers import (
    create_noised_state,
    multi_modal_guider_denoising_func,
    noise_audio_state,
    noise_video_state,
)
from ltx_pipelines.utils.samplers import euler_denoising_loop
from ltx_pipelines.utils.types import PipelineComponents

from ltx2_diffusers import LTX2AVRetakePipeline, LTX2Scheduler
from ltx2_diffusers.pipelines import pipeline_ltx2_av_retake as retake
from ltx2_diffusers.pipelines import pipeline_utils
from ltx2_diffusers.pipelines.denoising import TextContexts, denoise
from ltx2_diffusers.pipelines.guidance import GuidanceScales
from ltx2_diffusers.pipelines.inputs import audio_waveform
from ltx2_diffusers.pipelines.pipeline_ltx2_av_retake import prepare_retake_latents, temporal_region_mask
from ltx2_diffusers.pipelines.text_encoding import PromptEmbeddings
from ltx2_diffusers.pipelines.tiny import build_tiny_pipeline
from ltx2_diffusers.schedulers.scheduling_ltx2 import DISTILLED_SIGMAS, ltx2_sigmas
from ltx2_diffusers.utils.media import export_to_video_with_audio, load_video

# 17 frames at 24 fps: latent frame 0 = [0, 1/24) s, 1 = [1/24, 9/24), 2 = [9/24, 17/24); 18 audio frames, frame i
# spanning [0.04 i - 0.03, 0.04 i + 0.01) s (clamped at 0; the causal audio VAE).
WINDOWS = [
    (0.0, 0.02),  # clip start: latent frame 0, audio frame 0
    (0.5, 5.0),  # runs past the clip's end
    (0.2, 0.25),  # inside latent frame 1 only (partial latent frame)
    (9 / 24, 17 / 24),  # exactly on latent-frame edges
    (0.0, 0.71),  # the whole clip
]


def reference_states(shape: VideoPixelShape, window, regenerate, video_latent, audio_latent, seed: int):
    """ltx-pipelines' RetakePipeline state construction (retake.py), on the CPU in bf16."""
    dtype, device = torch.bfloat16, torch.device("cpu")
    noiser = GaussianNoiser(torch.Generator().manual_seed(seed))
    components = PipelineComponents(dtype, device)
    video_window = window if regenerate[0] else (0.0, 0.0)
    video, _ = noise_video_state(
        shape, noiser, [TemporalRegionMask(*video_window, fps=shape.fps)], components, dtype, device,
        initial_latent=video_latent,
    )  # fmt: skip
    audio_window = window if regenerate[1] else (0.0, 0.0)
    audio_items = [] if audio_latent is None else [TemporalRegionMask(*audio_window, fps=shape.fps)]
    audio, _ = noise_audio_state(shape, noiser, audio_items, components, dtype, device, initial_latent=audio_latent)
    return video, audio


@pytest.mark.parametrize("fps", [24.0, 30000 / 1001])
@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("regenerate", [(True, True), (False, True), (True, False)])
def test_region_mask_and_initial_state_equal_ltx_pipelines(window, fps, regenerate):
    shape = VideoPixelShape(batch=1, frames=17, width=96, height=128, fps=fps)
    num_audio = AudioLatentShape.from_video_pixel_shape(shape).frames
    generator = torch.Generator().manual_seed(1)
    video_latent = torch.randn(1, 128, 3, 4, 3, generator=generator).bfloat16()
    audio_latent = torch.randn(1, 8, num_audio, 16, generator=generator).bfloat16()
    expected_video, expected_audio = reference_states(shape, window, regenerate, video_latent, audio_latent, seed=7)

    video, audio = prepare_retake_latents(
        video_latent, audio_latent, frame_rate=fps, start_time=window[0], end_time=window[1],
        regenerate_video=regenerate[0], regenerate_audio=regenerate[1], num_audio_frames=num_audio,
        generator=torch.Generator().manual_seed(7), dtype=torch.bfloat16,
        reference="1.0",
    )  # fmt: skip
    for ours, theirs in ((video, expected_video), (audio, expected_audio)):
        for name in ("latent", "clean_latent", "denoise_mask", "positions"):
            got, want = getattr(ours, name), getattr(theirs, name)
            assert got.dtype == want.dtype and torch.equal(got, want), name
    # the windows really select what they say (so the equality above is not between two trivial masks)
    video_frames = video.denoise_mask[0, ::12, 0].tolist()  # one token per latent frame (4 x 3 tokens each)
    if regenerate[0] and fps == 24.0:
        expected_frames = {0: [1, 0, 0], 1: [0, 0, 1], 2: [0, 1, 0], 3: [0, 0, 1], 4: [1, 1, 1]}
        assert video_frames == expected_frames[WINDOWS.index(window)]
    elif not regenerate[0]:
        assert video_frames == [0, 0, 0]
    assert (audio.denoise_mask.sum() > 0) == regenerate[1]


def test_no_audio_stream_generates_all_audio_as_ltx_pipelines():
    shape = VideoPixelShape(batch=1, frames=17, width=96, height=128, fps=24.0)
    video_latent = torch.randn(1, 128, 3, 4, 3, generator=torch.Generator().manual_seed(2)).bfloat16()
    expected_video, expected_audio = reference_states(shape, (0.2, 0.4), (True, True), video_latent, None, seed=3)
    video, audio = prepare_retake_latents(
        video_latent, None, frame_rate=24.0, start_time=0.2, end_time=0.4, num_audio_frames=18,
        generator=torch.Generator().manual_seed(3), dtype=torch.bfloat16,
        reference="1.0",
    )  # fmt: skip
    assert torch.equal(video.latent, expected_video.latent)
    assert torch.equal(audio.latent, expected_audio.latent) and torch.equal(audio.denoise_mask, torch.ones(1, 18, 1))


def test_temporal_region_mask_overlap_rule():
    bounds = torch.tensor([[0.0, 0.1], [0.1, 0.2], [0.2, 0.3]])
    assert temporal_region_mask(bounds, 0.1, 0.2).flatten().tolist() == [0, 1, 0]  # [start, end): edges excluded
    assert temporal_region_mask(bounds, 0.15, 0.25).flatten().tolist() == [0, 1, 1]
    assert temporal_region_mask(bounds, 0.0, 0.0).flatten().tolist() == [0, 0, 0]


# ----------------------------------------------------------------------------------------------------------------------
# (2) the guided loop


def core_params(scales: GuidanceScales) -> MultiModalGuiderParams:
    return MultiModalGuiderParams(
        cfg_scale=scales.cfg, stg_scale=scales.stg, stg_blocks=list(scales.stg_blocks), rescale_scale=scales.rescale,
        modality_scale=scales.modality,
    )  # fmt: skip


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_retake_denoising_matches_ltx_pipelines(dtype):
    """Tiny transformer (8 video channels, audio 2 x 4), fp32 and bf16; window (0.1, 0.3) s: video latent frame 1 of 2,
    audio frames 3-4 of 5 (audio frame i spans mel
    frames [4i - 3, 4i + 1) x 10 ms, the causal VAE's). Every guidance term on."""
    reference, ours = build_pair("ltx2", seed=0)
    reference, ours = reference.to(dtype), ours.to(dtype)
    video_guidance = GuidanceScales(cfg=3.0, stg=1.0, modality=3.0, rescale=0.7, stg_blocks=(1,))
    audio_guidance = GuidanceScales(cfg=7.0, stg=1.0, modality=3.0, rescale=0.7, stg_blocks=(2,))
    generator = torch.Generator().manual_seed(5)
    video_latent = torch.randn(1, 8, FRAMES, HEIGHT, WIDTH, generator=generator).to(dtype)
    audio_latent = torch.randn(1, 2, AUDIO_TOKENS, 4, generator=generator).to(dtype)
    contexts = TextContexts(
        *(torch.randn(1, TEXT_TOKENS, CAPTION_CHANNELS, generator=generator).to(dtype) for _ in range(4))
    )
    sigmas = ltx2_sigmas(2)

    noiser = GaussianNoiser(torch.Generator().manual_seed(6))
    window = TemporalRegionMask(0.1, 0.3, fps=FPS)
    video_tools = VideoLatentTools(VideoLatentPatchifier(1), VideoLatentShape(1, 8, FRAMES, HEIGHT, WIDTH), FPS)
    audio_tools = AudioLatentTools(AudioPatchifier(1), AudioLatentShape(1, 2, AUDIO_TOKENS, 4))
    cpu = torch.device("cpu")
    core_video = create_noised_state(video_tools, [window], noiser, dtype, cpu, initial_latent=video_latent)
    core_audio = create_noised_state(audio_tools, [window], noiser, dtype, cpu, initial_latent=audio_latent)
    core_denoise = multi_modal_guider_denoising_func(
        MultiModalGuider(core_params(video_guidance), negative_context=contexts.negative_video),
        MultiModalGuider(core_params(audio_guidance), negative_context=contexts.negative_audio),
        contexts.video, contexts.audio, X0Model(reference),
    )  # fmt: skip

    video, audio = prepare_retake_latents(
        video_latent, audio_latent, frame_rate=FPS, start_time=0.1, end_time=0.3, num_audio_frames=AUDIO_TOKENS,
        audio_channels=2, audio_mel_bins=4, generator=torch.Generator().manual_seed(6), dtype=dtype,
        reference="1.0",
    )  # fmt: skip
    assert torch.equal(video.latent, core_video.latent) and torch.equal(audio.latent, core_audio.latent)
    assert video.denoise_mask.flatten().tolist() == [0.0] * 12 + [1.0] * 12
    assert audio.denoise_mask.flatten().tolist() == [0, 0, 0, 1, 1]
    with torch.no_grad():
        expected_video, expected_audio = euler_denoising_loop(
            sigmas, CoreLatentState(*vars(core_video).values()), CoreLatentState(*vars(core_audio).values()),
            EulerDiffusionStep(), core_denoise,
        )  # fmt: skip
        got_video, got_audio = denoise(
            ours, video, audio, contexts, sigmas, video_guidance, audio_guidance, reference="1.0"
        )
    if dtype == torch.float32:  # max abs difference a few 1e-6
        torch.testing.assert_close(got_video.latent, expected_video.latent, rtol=0, atol=5e-5)
        torch.testing.assert_close(got_audio.latent, expected_audio.latent, rtol=0, atol=5e-5)
    else:  # bf16 rounding reproduced step by step (spec §13.2-13.4): the reference's bits
        assert got_video.latent.dtype == torch.bfloat16
        assert torch.equal(got_video.latent, expected_video.latent)
        assert torch.equal(got_audio.latent, expected_audio.latent)
    # outside the window: the source, exactly; inside: moved far from it
    source_video = video_latent.flatten(2).transpose(1, 2)
    source_audio = audio_latent.transpose(1, 2).flatten(2)
    assert torch.equal(got_video.latent[:, :12], source_video[:, :12])
    assert torch.equal(got_audio.latent[:, :3], source_audio[:, :3])
    assert (got_video.latent[:, 12:] - source_video[:, 12:]).abs().min() > 0
    assert (got_audio.latent[:, 3:] - source_audio[:, 3:]).abs().max() > 0.1


# ----------------------------------------------------------------------------------------------------------------------
# (3) the pipeline


@pytest.fixture(scope="module")
def pipe():
    return LTX2AVRetakePipeline(**build_tiny_pipeline(0).components)


def source_clip(num_frames: int = 17, height: int = 64, width: int = 64):
    rng = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (num_frames, height, width, 3), generator=rng, dtype=torch.uint8).numpy()
    audio = 0.3 * torch.sin(torch.arange(16000) / 16000 * 440 * 6.283).expand(2, -1)
    return frames, audio


FAST = dict(sigmas=(1.0, 0.0), video_guidance=GuidanceScales(), audio_guidance=GuidanceScales())


def test_pipeline_keeps_the_source_outside_the_window(pipe, tmp_path):
    """From an mp4 with an AAC track: window (0.4, 0.5) s = latent frame 2 (of 3), audio frames 10-13 (of 18)."""
    frames, audio = source_clip()
    path = export_to_video_with_audio(frames, audio, 16000, 24.0, tmp_path / "clip.mp4")
    decoded, _ = load_video(path)
    cpu = torch.device("cpu")
    source_video = pipe.encode_source_video(decoded, cpu).flatten(2).transpose(1, 2)  # (1, 12, 128)
    waveform, rate = audio_waveform(path)
    source_audio = pipe.encode_source_audio(waveform, rate, 18, torch.float32).transpose(1, 2).flatten(2)

    out = pipe(path, "a dog", 0.4, 0.5, generator=torch.Generator().manual_seed(0), output_type="latent", **FAST)
    video = out.frames.flatten(2).transpose(1, 2)
    audio_tokens = out.audio.transpose(1, 2).flatten(2)
    assert out.frames.shape == (1, 128, 3, 2, 2) and out.audio.shape == (1, 8, 18, 16)
    assert torch.equal(video[:, :8], source_video[:, :8])
    assert (video[:, 8:] - source_video[:, 8:]).abs().amin(dim=-1).min() > 0
    audio_mask = torch.zeros(18, dtype=torch.bool)
    audio_mask[10:14] = True  # frame i spans [0.04 i - 0.03, 0.04 i + 0.01) s: frames 10 to 13 overlap [0.4, 0.5)
    assert torch.equal(audio_tokens[:, ~audio_mask], source_audio[:, ~audio_mask])
    assert (audio_tokens[:, audio_mask] - source_audio[:, audio_mask]).abs().amin(dim=-1).min() > 0


def test_pipeline_regenerate_video_false_and_no_audio(pipe):
    frames, _ = source_clip()
    source_video = pipe.encode_source_video(frames, torch.device("cpu"))
    out = pipe(
        frames, "a dog", 0.0, 0.3, frame_rate=24.0, regenerate_video=False, generator=torch.Generator().manual_seed(0),
        output_type="latent", **FAST,
    )  # fmt: skip
    assert torch.equal(out.frames, source_video)
    # no audio stream: all 18 audio frames generated from scratch (none stays at the zero start)
    assert out.audio.shape == (1, 8, 18, 16) and out.audio.abs().amax(dim=(1, 3)).min() > 0


# ----------------------------------------------------------------------------------------------------------------------
# (4) errors and defaults


@pytest.mark.parametrize(
    "window, message",
    [
        ((0.5, 0.5), r"window \[0.5, 0.5\) s is empty"),
        ((0.4, 0.2), r"is empty: end_time must be greater"),
        ((0.75, 1.0), r"starts at 0.75 s, outside the clip, which lasts 0.7083 s"),
        ((-0.1, 0.2), r"starts at -0.1 s, outside the clip"),
    ],
)
def test_bad_windows_are_refused(pipe, window, message):
    frames, _ = source_clip()
    with pytest.raises(ValueError, match=message):
        pipe(frames, "a dog", *window, frame_rate=24.0)


@pytest.mark.parametrize(
    "shape, message",
    [
        ((16, 64, 64), r"the source clip's frame count=16 is not of the form 8\*k \+ 1.* Use 9 or 17\."),
        ((17, 64, 80), r"the source clip's width=80 is not a positive multiple of 32 .* Use 64 or 96\."),
        ((17, 16, 64), r"the source clip's height=16 is not a positive multiple of 32 .* Use 32 or 64\."),
    ],
)
def test_bad_source_clips_are_refused(pipe, shape, message):
    frames, _ = source_clip(*shape)
    with pytest.raises(ValueError, match=message):
        pipe(frames, "a dog", 0.0, 0.2, frame_rate=24.0)


def test_nothing_to_regenerate_is_refused(pipe):
    frames, audio = source_clip()
    with pytest.raises(ValueError, match="regenerate_video and regenerate_audio are both False"):
        pipe(frames, "a dog", 0.0, 0.2, frame_rate=24.0, audio=audio, audio_sample_rate=16000,
             regenerate_video=False, regenerate_audio=False)  # fmt: skip


def test_frames_need_a_frame_rate(pipe):
    frames, audio = source_clip()
    with pytest.raises(ValueError, match="frame_rate is needed"):
        pipe(frames, "a dog", 0.0, 0.2)
    with pytest.raises(ValueError, match="audio_sample_rate is needed"):
        pipe(frames, "a dog", 0.0, 0.2, frame_rate=24.0, audio=audio)


@pytest.mark.parametrize("distilled", [False, True])
def test_defaults_follow_the_reference(pipe, monkeypatch, distilled):
    """Guided: 40 steps, the model version's guidance, negative prompt "". Distilled: the 8 distilled sigmas, one
    unguided pass, no negative prompt. (The denoising loop is replaced by a recorder: only the set-up is checked.)"""
    seen = {}

    def record_denoise(transformer, video, audio, contexts, sigmas, video_guidance, audio_guidance, **kwargs):
        seen.update(sigmas=sigmas, video_guidance=video_guidance, audio_guidance=audio_guidance)
        return video, audio

    def record_prompts(text_encoder, tokenizer, connectors, texts, **kwargs):  # positives, then negatives: one batch
        seen.update(texts=list(texts))
        n = len(texts)
        return PromptEmbeddings(torch.zeros(n, 4, 16), torch.zeros(n, 4, 8), torch.ones(n, 4, dtype=torch.long))

    monkeypatch.setattr(retake, "denoise", record_denoise)
    monkeypatch.setattr(pipeline_utils, "encode_prompts", record_prompts)
    original_scheduler = pipe.scheduler
    pipe.scheduler = LTX2Scheduler.distilled() if distilled else LTX2Scheduler()
    try:
        frames, _ = source_clip()
        pipe(frames, "a dog", 0.0, 0.2, frame_rate=24.0, output_type="latent")
    finally:
        pipe.scheduler = original_scheduler
    if distilled:
        assert seen["sigmas"].tolist() == pytest.approx(DISTILLED_SIGMAS)
        assert seen["texts"] == ["a dog"]  # no negative prompt
        assert seen["video_guidance"] == GuidanceScales() and seen["audio_guidance"] == GuidanceScales()
    else:
        assert len(seen["sigmas"]) == 41 and torch.equal(seen["sigmas"], ltx2_sigmas(40))
        assert seen["texts"] == ["a dog", ""]
        assert seen["video_guidance"] == GuidanceScales(cfg=3.0, stg=1.0, modality=3.0, rescale=0.7, stg_blocks=(29,))
        assert seen["audio_guidance"].cfg == 7.0


def test_diffusers_resolves_the_saved_class_name():
    """save_pretrained records `_class_name` "LTX2AVRetakePipeline", which `DiffusionPipeline.from_pretrained` looks
    up on the diffusers module: it must find this class, with the one-stage pipeline's components (whose save / load
    round trip is tested with that pipeline; this class inherits its loading code unchanged)."""
    import diffusers

    from ltx2_diffusers import LTX2AVPipeline

    assert diffusers.LTX2AVRetakePipeline is LTX2AVRetakePipeline
    assert LTX2AVRetakePipeline._get_signature_keys(LTX2AVRetakePipeline) == LTX2AVPipeline._get_signature_keys(
        LTX2AVPipeline
    )
