"""LTX2AVAudioToVideoPipeline against ltx-pipelines 1.0.0's A2VidPipelineTwoStage pieces (tiny, CPU).

(1) `prepare_latents(freeze_audio=True)` equals `noise_video_state` + `noise_audio_state(noise_scale=0)` + mask 0 (the
    reference's `denoise_video_only`) bit for bit in bf16, including the generator's state afterwards, for stage 1
    (pure noise, image condition) and stage 2 (upsampled latent re-noised to 0.909375).
(2) The stage functions composed as the pipeline composes them (prepare_latents(freeze_audio=True) + denoise,
    `helpers.pipelines.video_only_denoise`) equal ltx-pipelines' `denoise_video_only` with `euler_denoising_loop` +
    `multi_modal_guider_denoising_func` (video CFG/STG/modality/rescale, audio guider at its defaults) on a tiny
    transformer holding the same weights: fp32 to 5e-5, and the simple-denoising stage 2.
(3) The pipeline: audio tokens never change, the output audio is the input window, frames at the full size.
(4) Input errors.
"""

import numpy as np
import pytest
import torch
from _transformer_helpers import CAPTION_CHANNELS, TEXT_TOKENS, build_pair
from helpers.pipelines import video_only_denoise as denoise_video_only
from ltx_core.components.diffusion_steps import EulerDiffusionStep
from ltx_core.components.guiders import MultiModalGuider, MultiModalGuiderParams
from ltx_core.components.noisers import GaussianNoiser
from ltx_core.conditioning.types.latent_cond import VideoConditionByLatentIndex
from ltx_core.model.transformer.model import X0Model
from ltx_core.types import VideoPixelShape
from ltx_pipelines.utils.helpers import (
    denoise_video_only as core_denoise_video_only,
)
from ltx_pipelines.utils.helpers import (
    multi_modal_guider_denoising_func,
    noise_audio_state,
    noise_video_state,
    simple_denoising_func,
)
from ltx_pipelines.utils.samplers import euler_denoising_loop
from ltx_pipelines.utils.types import PipelineComponents

from ltx2_diffusers.models.autoencoder_kl_ltx2_audio import audio_latent_frames, pack_audio_latents
from ltx2_diffusers.pipelines import pipeline_ltx2_av_audio_to_video as a2v
from ltx2_diffusers.pipelines.denoising import TextContexts, VideoCondition, prepare_latents
from ltx2_diffusers.pipelines.guidance import GuidanceScales
from ltx2_diffusers.pipelines.pipeline_ltx2_av_audio_to_video import LTX2AVAudioToVideoPipeline
from ltx2_diffusers.pipelines.tiny import build_tiny_two_stage_pipeline
from ltx2_diffusers.schedulers.scheduling_ltx2 import STAGE_2_DISTILLED_SIGMAS, ltx2_sigmas
from ltx2_diffusers.utils.media import load_audio

FRAMES, FPS = 9, 24.0
AUDIO_FRAMES = audio_latent_frames(FRAMES, FPS)  # round(9 / 24 * 25) = 9
VIDEO = GuidanceScales(cfg=3.0, stg=1.0, modality=3.0, rescale=0.7, stg_blocks=(1,))
CPU = torch.device("cpu")


def core_params(scales: GuidanceScales) -> MultiModalGuiderParams:
    return MultiModalGuiderParams(
        cfg_scale=scales.cfg,
        stg_scale=scales.stg,
        stg_blocks=list(scales.stg_blocks),
        rescale_scale=scales.rescale,
        modality_scale=scales.modality,
    )


def _reference_states(shape, audio, generator, conditionings=(), noise_scale=1.0, initial_video=None):
    """What ltx-pipelines' `denoise_video_only` builds before its loop (bf16)."""
    noiser, components = GaussianNoiser(generator), PipelineComponents(torch.bfloat16, CPU)
    video, _ = noise_video_state(
        shape, noiser, list(conditionings), components, torch.bfloat16, CPU, noise_scale, initial_video
    )
    audio_state, _ = noise_audio_state(shape, noiser, [], components, torch.bfloat16, CPU, 0.0, audio)
    return video, audio_state


@pytest.mark.parametrize("stage", ["stage_1", "stage_1_image", "stage_2"])
def test_initial_states_equal_the_reference_bit_for_bit(stage):
    g = torch.Generator().manual_seed(2)
    height, width = (64, 96) if stage != "stage_2" else (128, 192)
    grid = ((FRAMES - 1) // 8 + 1, height // 32, width // 32)
    audio = torch.randn(1, 8, AUDIO_FRAMES, 16, generator=g).bfloat16()
    image = torch.randn(1, 128, 1, *grid[1:], generator=g).bfloat16()
    initial = torch.randn(1, 128, *grid, generator=g).bfloat16() if stage == "stage_2" else None
    noise_scale = STAGE_2_DISTILLED_SIGMAS[0] if stage == "stage_2" else 1.0
    with_image = stage == "stage_1_image"
    shape = VideoPixelShape(batch=1, frames=FRAMES, height=height, width=width, fps=FPS)
    theirs_generator, ours_generator = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    expected_video, expected_audio = _reference_states(
        shape,
        audio,
        theirs_generator,
        [VideoConditionByLatentIndex(image, 0.8, 0)] if with_image else [],
        torch.tensor(noise_scale) if stage == "stage_2" else 1.0,
        initial,
    )
    video, got_audio = prepare_latents(
        1, height, width, FRAMES, FPS, generator=ours_generator, device=CPU, dtype=torch.bfloat16,
        conditions=[VideoCondition(image, 0, 0.8)] if with_image else [], noise_scale=noise_scale,
        initial_video_latent=initial, initial_audio_latent=audio, freeze_audio=True,
        reference="1.0",
    )  # fmt: skip

    for name in ("latent", "clean_latent", "denoise_mask", "positions"):
        assert torch.equal(getattr(video, name), getattr(expected_video, name)), name
    for name in ("latent", "clean_latent", "positions"):
        assert torch.equal(getattr(got_audio, name), getattr(expected_audio, name)), name
    # audio: clean (the encoded latent itself) and frozen; the reference zeroes the mask after noising at scale 0
    assert torch.equal(got_audio.latent, pack_audio_latents(audio))
    assert got_audio.denoise_mask.shape == (1, AUDIO_FRAMES, 1) and not got_audio.denoise_mask.any()
    # the discarded audio draw moved the generator on exactly as the reference's: the next draws agree
    assert torch.equal(torch.randn(16, generator=ours_generator), torch.randn(16, generator=theirs_generator))


def test_audio_file_to_trimmed_latent_matches_the_reference(tmp_path):
    """The reference's chain: `decode_audio_from_file(path, start, duration)` -> `encode_audio` -> [:, :, :frames];
    the same tiny audio VAE weights loaded through our key map (test_audio_vae's pair), 48 kHz stereo file."""
    from helpers.audio_vae import ours_from_reference, reference_pair
    from ltx_core.model.audio_vae import encode_audio
    from ltx_pipelines.utils.media_io import decode_audio_from_file
    from scipy.io import wavfile

    from ltx2_diffusers.pipelines.inputs import audio_waveform

    encoder, decoder = reference_pair()
    audio_vae = ours_from_reference(encoder, decoder)
    path = tmp_path / "music.wav"
    wavfile.write(path, 48000, _waveform(1.0, seed=4).T.numpy().astype(np.float32))
    num_frames, fps, start = 17, 25.0, 0.2  # 0.68 s -> 17 latent frames, from 0.68 s of audio at 48 kHz
    with torch.no_grad():
        decoded = decode_audio_from_file(str(path), CPU, start, num_frames / fps)
        expected = encode_audio(decoded, encoder)[:, :, : audio_latent_frames(num_frames, fps)]
        waveform, rate = audio_waveform(str(path), start_time=start, max_duration=num_frames / fps)
        got = a2v.encode_audio(audio_vae, waveform, rate, num_frames, fps, CPU)
    assert rate == decoded.sampling_rate == 48000
    assert torch.equal(waveform, decoded.waveform[0])  # what the pipeline returns is the reference's output audio
    assert got.shape == expected.shape == (1, 2, 17, 16)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)


@pytest.fixture(scope="module")
def pair():
    return build_pair("ltx2_c128", seed=0)


def _inputs(seed: int = 7):
    g = torch.Generator().manual_seed(seed)
    audio = torch.randn(1, 8, AUDIO_FRAMES, 16, generator=g)
    contexts = TextContexts(*(torch.randn(1, TEXT_TOKENS, CAPTION_CHANNELS, generator=g) for _ in range(4)))
    image = torch.randn(1, 128, 1, 2, 2, generator=g)
    return audio, contexts, image


@pytest.mark.parametrize("conditioning", ["none", "image"])
def test_stage_1_guided_loop_matches_ltx_pipelines(pair, conditioning):
    reference, ours = pair
    audio, contexts, image = _inputs()
    sigmas = ltx2_sigmas(3)

    def loop(sigmas, video_state, audio_state, stepper):
        denoise = multi_modal_guider_denoising_func(
            MultiModalGuider(core_params(VIDEO), negative_context=contexts.negative_video),
            MultiModalGuider(MultiModalGuiderParams()),  # the reference's audio guider: defaults, no negative
            contexts.video,
            contexts.audio,
            X0Model(reference),
        )
        return euler_denoising_loop(sigmas, video_state, audio_state, stepper, denoise)

    with torch.no_grad():
        expected = core_denoise_video_only(
            output_shape=VideoPixelShape(batch=1, frames=FRAMES, height=64, width=64, fps=FPS),
            conditionings=[VideoConditionByLatentIndex(image, 1.0, 0)] if conditioning == "image" else [],
            noiser=GaussianNoiser(torch.Generator().manual_seed(5)),
            sigmas=sigmas,
            stepper=EulerDiffusionStep(),
            denoising_loop_fn=loop,
            components=PipelineComponents(torch.float32, CPU),
            dtype=torch.float32,
            device=CPU,
            initial_audio_latent=audio,
        )
        # contexts.negative_audio is random: the audio guider's unconditional pass must not use it
        got_video, got_audio = denoise_video_only(
            ours, audio, contexts, sigmas, VIDEO, height=64, width=64, num_frames=FRAMES, frame_rate=FPS,
            generator=torch.Generator().manual_seed(5),
            conditions=[VideoCondition(image, 0, 1.0)] if conditioning == "image" else [],
        )  # fmt: skip
        no_stg, _ = denoise_video_only(
            ours, audio, contexts, sigmas, GuidanceScales(3.0, 0.0, 3.0, 0.7), height=64, width=64,
            num_frames=FRAMES, frame_rate=FPS, generator=torch.Generator().manual_seed(5),
            conditions=[VideoCondition(image, 0, 1.0)] if conditioning == "image" else [],
        )  # fmt: skip

    assert got_video.shape == expected.latent.shape == (1, 128, 2, 2, 2)
    assert expected.latent.abs().max() > 0.5
    torch.testing.assert_close(got_video, expected.latent, rtol=0, atol=5e-5)
    assert torch.equal(got_audio, audio)  # untouched
    assert (no_stg - expected.latent).abs().max() > 1e-2  # the parity can fail: one guidance term less is far off


def test_stage_2_simple_denoising_matches_ltx_pipelines(pair):
    reference, ours = pair
    audio, contexts, _ = _inputs(8)
    initial = torch.randn(1, 128, 2, 4, 4, generator=torch.Generator().manual_seed(9))
    sigmas = torch.tensor(STAGE_2_DISTILLED_SIGMAS)

    def loop(sigmas, video_state, audio_state, stepper):
        denoise = simple_denoising_func(contexts.video, contexts.audio, X0Model(reference))
        return euler_denoising_loop(sigmas, video_state, audio_state, stepper, denoise)

    with torch.no_grad():
        expected = core_denoise_video_only(
            output_shape=VideoPixelShape(batch=1, frames=FRAMES, height=128, width=128, fps=FPS),
            conditionings=[], noiser=GaussianNoiser(torch.Generator().manual_seed(5)), sigmas=sigmas,
            stepper=EulerDiffusionStep(), denoising_loop_fn=loop, components=PipelineComponents(torch.float32, CPU),
            dtype=torch.float32, device=CPU, noise_scale=sigmas[0], initial_video_latent=initial,
            initial_audio_latent=audio,
        )  # fmt: skip
        got_video, got_audio = denoise_video_only(
            ours, audio, TextContexts(contexts.video, contexts.audio), sigmas, GuidanceScales(), height=128,
            width=128, num_frames=FRAMES, frame_rate=FPS, generator=torch.Generator().manual_seed(5),
            noise_scale=float(sigmas[0]), initial_video_latent=initial,
        )  # fmt: skip
    assert expected.latent.abs().max() > 0.5
    torch.testing.assert_close(got_video, expected.latent, rtol=0, atol=5e-5)
    assert torch.equal(got_audio, audio)


# ----------------------------------------------------------------------------------------------------------------------
# The pipeline


@pytest.fixture(scope="module")
def pipe() -> LTX2AVAudioToVideoPipeline:
    two_stage = build_tiny_two_stage_pipeline(seed=0)
    pipe = LTX2AVAudioToVideoPipeline(**two_stage.components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _waveform(seconds: float, sample_rate: int = 48000, channels: int = 2, seed: int = 0) -> torch.Tensor:
    return 0.2 * torch.randn(channels, round(seconds * sample_rate), generator=torch.Generator().manual_seed(seed))


FAST = dict(num_frames=FRAMES, height=128, width=192, num_inference_steps=1, frame_rate=FPS)


def test_audio_is_frozen_through_both_stages_and_returned_as_given(pipe):
    waveform = _waveform(1.0)
    seen = []

    def callback(p, step_index, timestep, tensors):
        seen.append((step_index, tuple(tensors["video_latents"].shape), tensors["audio_latents"].clone()))

    out = pipe(
        "a drum", waveform, audio_sample_rate=48000, audio_start_time=0.25, generator=torch.Generator().manual_seed(0),
        output_type="pt", callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["video_latents",
        "audio_latents"], **FAST,
    )  # fmt: skip
    assert out.frames.shape == (1, FRAMES, 3, 128, 192) and out.frames.std() > 0.01
    # the input window [0.25 s, 0.25 s + 9 / 24 s], not a VAE round trip, at its own rate
    assert out.audio_sample_rate == 48000
    assert torch.equal(out.audio, waveform[None, :, 12000 : 12000 + 18000])
    # stage 1 on 2 x 2 x 3 latents (1 step), stage 2 on 2 x 4 x 6 (3 steps); the audio tokens never move
    assert [(s[0], s[1]) for s in seen] == [(0, (1, 12, 128))] + [(i, (1, 48, 128)) for i in (1, 2, 3)]
    encoded = pipe.encode_audio(out.audio[0], 48000, FRAMES, FPS, CPU)
    assert encoded.shape == (1, 8, AUDIO_FRAMES, 16)
    for _, _, audio_tokens in seen:
        assert torch.equal(audio_tokens, pack_audio_latents(encoded))

    video, audio = pipe(
        "a drum", waveform, audio_sample_rate=48000, audio_start_time=0.25, generator=torch.Generator().manual_seed(0),
        output_type="latent", return_dict=False, **FAST,
    )  # fmt: skip
    assert video.shape == (1, 128, 2, 4, 6) and torch.equal(audio, encoded)
    other, _ = pipe(
        "a drum", _waveform(1.0, seed=1), audio_sample_rate=48000, generator=torch.Generator().manual_seed(0),
        output_type="latent", return_dict=False, **FAST,
    )  # fmt: skip
    # the video follows the audio (weakly in the tiny random model, whose A->V attention weights are small)
    assert (other - video).abs().max() > 1e-4


def test_audio_file_window_and_mono(pipe, tmp_path):
    from scipy.io import wavfile

    mono = _waveform(1.0, sample_rate=16000, channels=1, seed=3)
    path = tmp_path / "voice.wav"
    wavfile.write(path, 16000, mono[0].numpy().astype(np.float32))
    out = pipe(
        "a voice", str(path), audio_start_time=0.5, generator=torch.Generator().manual_seed(0), output_type="np",
        **FAST,
    )  # fmt: skip
    expected, rate = load_audio(path, 0.5, FRAMES / FPS)
    assert rate == 16000 and out.audio_sample_rate == 16000
    assert out.audio.shape == (1, 1, 6000) and torch.equal(out.audio[0], expected)
    assert out.frames.shape == (1, FRAMES, 128, 192, 3)


def test_input_errors(pipe):
    kwargs = dict(FAST, generator=torch.Generator().manual_seed(0), output_type="latent")
    with pytest.raises(ValueError, match="audio is 0.100 s long .* need 0.375 s"):
        pipe("x", _waveform(0.1), audio_sample_rate=48000, **kwargs)
    with pytest.raises(ValueError, match="audio_start_time"):  # the window starts too late for the clip
        pipe("x", _waveform(0.5), audio_sample_rate=48000, audio_start_time=0.3, **kwargs)
    with pytest.raises(ValueError, match=r"audio has 24000 channels \(shape \(24000, 2\)\).*pass audio\.T"):
        pipe("x", _waveform(0.5).T, audio_sample_rate=48000, **kwargs)
    with pytest.raises(ValueError, match=r"audio has 3 channels \(shape \(3, 24000\)\): expected 1 or 2"):
        pipe("x", torch.zeros(3, 24000), audio_sample_rate=48000, **kwargs)
    with pytest.raises(ValueError, match="audio_sample_rate"):
        pipe("x", _waveform(0.5), **kwargs)
    with pytest.raises(TypeError, match="file path or a"):
        pipe("x", [0.0] * 100, audio_sample_rate=48000, **kwargs)
    with pytest.raises(ValueError, match="audio='/nonexistent/audio.wav': no such file"):
        pipe("x", "/nonexistent/audio.wav", **kwargs)
    with pytest.raises(ValueError, match="multiple of 64"):
        pipe("x", _waveform(0.5), audio_sample_rate=48000, **dict(kwargs, height=96))


def test_diffusers_resolves_the_class_name_with_the_two_stage_components():
    """`DiffusionPipeline.from_pretrained` looks `_class_name` up on the diffusers module; this class inherits the
    two-stage pipeline's components and loading code unchanged."""
    import diffusers

    import ltx2_diffusers
    from ltx2_diffusers import LTX2AVTwoStagePipeline

    assert ltx2_diffusers.LTX2AVAudioToVideoPipeline is LTX2AVAudioToVideoPipeline
    assert diffusers.LTX2AVAudioToVideoPipeline is LTX2AVAudioToVideoPipeline
    required, optional = LTX2AVAudioToVideoPipeline._get_signature_keys(LTX2AVAudioToVideoPipeline)
    two_stage_required, two_stage_optional = LTX2AVTwoStagePipeline._get_signature_keys(LTX2AVTwoStagePipeline)
    # all but the two-stage pipeline's temporal upsampler (temporal x2 in stage 2 is that pipeline's alone)
    assert (required, optional) == ([k for k in two_stage_required if k != "temporal_upsampler"], two_stage_optional)


def test_stage_1_is_bit_exact_with_ltx_pipelines_in_bf16():
    reference, ours = build_pair("ltx2_c128", seed=0)
    reference, ours = reference.to(torch.bfloat16), ours.to(torch.bfloat16)
    audio, contexts, image = _inputs(11)
    audio, image = audio.bfloat16(), image.bfloat16()
    contexts = TextContexts(*(c.bfloat16() for c in vars(contexts).values()))
    sigmas = ltx2_sigmas(3)

    def loop(sigmas, video_state, audio_state, stepper):
        denoise = multi_modal_guider_denoising_func(
            MultiModalGuider(core_params(VIDEO), negative_context=contexts.negative_video),
            MultiModalGuider(MultiModalGuiderParams()),
            contexts.video,
            contexts.audio,
            X0Model(reference),
        )
        return euler_denoising_loop(sigmas, video_state, audio_state, stepper, denoise)

    with torch.no_grad():
        expected = core_denoise_video_only(
            output_shape=VideoPixelShape(batch=1, frames=FRAMES, height=64, width=64, fps=FPS),
            conditionings=[VideoConditionByLatentIndex(image, 1.0, 0)], noiser=GaussianNoiser(
            torch.Generator().manual_seed(5)), sigmas=sigmas, stepper=EulerDiffusionStep(), denoising_loop_fn=loop,
            components=PipelineComponents(torch.bfloat16, CPU), dtype=torch.bfloat16, device=CPU,
            initial_audio_latent=audio,
        )  # fmt: skip
        got, got_audio = denoise_video_only(
            ours, audio, contexts, sigmas, VIDEO, height=64, width=64, num_frames=FRAMES, frame_rate=FPS,
            generator=torch.Generator().manual_seed(5), conditions=[VideoCondition(image, 0, 1.0)],
        )  # fmt: skip
    assert got.dtype == torch.bfloat16 and torch.equal(got, expected.latent)
    assert torch.equal(got_audio, audio)


@pytest.mark.gpu
def test_bf16_on_gpu_with_model_cpu_offload_gives_the_same_clip():
    def build():
        two_stage = build_tiny_two_stage_pipeline(seed=0)
        pipe = LTX2AVAudioToVideoPipeline(**two_stage.components)
        pipe.set_progress_bar_config(disable=True)
        return pipe.to(torch.bfloat16)

    def generate(pipe):
        return pipe(
            "a drum", _waveform(1.0), audio_sample_rate=48000, height=128, width=192, num_frames=17,
            num_inference_steps=2, generator=torch.Generator("cuda").manual_seed(0), output_type="pt",
        )  # fmt: skip

    on_gpu = generate(build().to("cuda"))
    assert on_gpu.frames.shape == (1, 17, 3, 128, 192) and torch.isfinite(on_gpu.frames).all()
    assert torch.equal(on_gpu.audio, _waveform(1.0)[None, :, : round(17 / 24 * 48000)])
    offloaded = build()
    offloaded.enable_model_cpu_offload()
    again = generate(offloaded)
    torch.testing.assert_close(again.frames.cpu(), on_gpu.frames.cpu(), rtol=0, atol=0)
