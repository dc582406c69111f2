"""LTX2AVDubItPipeline: parity with ltx-pipelines 1.2.0's DubItPipeline stages, the tiny call, the CLI, errors.

(1) tests/goldens/dubit/dubit.safetensors (scripts/goldens/dubit.py, run with the 1.2.0 oracle) holds a tiny seeded
    audio-video model, the reference latents and the noised states each of the reference's two stages hands to its
    loop: the video with the IC-LoRA reference tokens, the audio with the appended reference-audio tokens (stage 2:
    frozen, its own stage-1 latent as reference), from one generator. Ours, from the same inputs, must equal them;
    so must the denoised latents once the transformer follows 1.2.0's audio<->video AdaLN rule.
(2) The tiny pipeline (distilled scheduler, a random IC-LoRA): frames and fps from the reference (snapped to 8k + 1),
    the audio reference's tokens in both stages, stage 2 keeping the stage-1 audio, the LoRA active in both.
(3) Bad inputs refused before any model runs; the `dub-it` subcommand writes the clip.
"""

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from helpers.cli_media import write_clip, write_lora
from helpers.pipelines import adapters_enabled
from safetensors import safe_open

import ltx2_diffusers.pipelines.pipeline_ltx2_av_dubit as dubit_module
from ltx2_diffusers import LTX2AVDubItPipeline
from ltx2_diffusers.cli import main
from ltx2_diffusers.loaders.transformer_keys import original_to_diffusers_keys
from ltx2_diffusers.models.autoencoder_kl_ltx2_audio import audio_latent_frames
from ltx2_diffusers.models.transformer_ltx2 import LTX2VideoTransformer3DModel
from ltx2_diffusers.pipelines.audio_reference import (
    AudioReference,
    append_audio_reference,
    prepare_latents_with_audio_reference,
)
from ltx2_diffusers.pipelines.conditioning import audio_latent_state
from ltx2_diffusers.pipelines.denoising import ReferenceCondition, TextContexts, denoise
from ltx2_diffusers.pipelines.guidance import GuidanceScales
from ltx2_diffusers.pipelines.tiny import build_tiny_two_stage_pipeline, tiny_transformer_config
from ltx2_diffusers.schedulers.scheduling_ltx2 import STAGE_2_DISTILLED_SIGMAS, LTX2Scheduler
from ltx2_diffusers.utils.media import export_to_video_with_audio

GOLDEN = Path(__file__).parent / "goldens" / "dubit" / "dubit.safetensors"
FAST = {"height": 64, "width": 64, "sigmas": (1.0, 0.0), "stage_2_sigmas": (STAGE_2_DISTILLED_SIGMAS[0], 0.0)}
FIELDS = ("latent", "clean_latent", "denoise_mask", "positions")


# ----------------------------------------------------------------------------------------------------------------------
# (1) Parity with ltx-pipelines 1.2.0


@pytest.fixture(scope="module")
def golden() -> tuple[LTX2VideoTransformer3DModel, dict, dict]:
    with safe_open(GOLDEN, "pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    weights = {k: v.float() for k, v in tensors.items() if k.startswith("model.diffusion_model.")}
    transformer = LTX2VideoTransformer3DModel(**{**tiny_transformer_config("2.0"), "num_layers": 2}).eval()
    mapping = original_to_diffusers_keys(weights, transformer.config, set(transformer.state_dict()))
    transformer.load_state_dict({mapping[k]: v for k, v in weights.items()}, strict=True)
    return transformer, tensors, metadata


def golden_stages(tensors: dict, metadata: dict):
    """Our two stages' starting states from the golden's inputs, one generator across both, as the pipeline runs
    them (stage 2 starts from the golden's stage-1 audio and upsampled video)."""
    size = {"num_frames": int(metadata["num_frames"]), "frame_rate": float(metadata["frame_rate"])}
    factor, strength = int(metadata["reference_downscale_factor"]), float(metadata["reference_strength"])
    height, width = int(metadata["height"]), int(metadata["width"])
    common = {"device": torch.device("cpu"), "dtype": torch.float32}
    generator = torch.Generator().manual_seed(int(tensors["input.seed"]))
    stage_1 = prepare_latents_with_audio_reference(
        1, height // 2, width // 2, **size, generator=generator, **common,
        audio_reference=AudioReference(tensors["input.reference_audio"]),
        conditions=[ReferenceCondition(tensors["input.stage_1_reference_video"], strength, factor)],
    )  # fmt: skip
    stage_1_audio = tensors["stage1.audio_latent"]
    stage_2 = prepare_latents_with_audio_reference(
        1, height, width, **size, generator=generator, **common, audio_reference=AudioReference(stage_1_audio),
        conditions=[ReferenceCondition(tensors["input.stage_2_reference_video"], strength, factor)],
        noise_scale=float(tensors["input.stage_2_sigmas"][0]), initial_video_latent=tensors["input.upsampled_video"],
        initial_audio_latent=stage_1_audio, freeze_audio=True,
    )  # fmt: skip
    return stage_1, stage_2


def test_stage_states_equal_ltx_pipelines_1_2(golden):
    _, tensors, metadata = golden
    for index, (video, audio) in enumerate(golden_stages(tensors, metadata), start=1):
        for stream, state in (("video", video), ("audio", audio)):
            for field in FIELDS:
                expected = tensors[f"stage{index}.{stream}.{field}"]
                torch.testing.assert_close(getattr(state, field).float(), expected, rtol=0, atol=1e-6)
    # the shapes the assertions covered: 8 + 2 video tokens (stage 2: 32 + 8), 9 + 7 audio tokens (stage 2: 9 + 9)
    assert tensors["stage1.audio.latent"].shape[1] == 9 + 7 and tensors["stage2.audio.latent"].shape[1] == 18
    assert tensors["stage2.audio.denoise_mask"].abs().max() == 0  # stage 2's audio is frozen, reference included


def test_stage_state_parity_fails_with_a_wrong_reference_gap(golden, monkeypatch):
    """The reference tokens' RoPE times are checked exactly: a 0.05 s gap instead of 0.04 s fails."""
    import ltx2_diffusers.pipelines.audio_reference as audio_reference

    _, tensors, metadata = golden
    monkeypatch.setattr(audio_reference, "REFERENCE_GAP_SECONDS", 0.05)
    (_, audio), _ = golden_stages(tensors, metadata)
    with pytest.raises(AssertionError):
        torch.testing.assert_close(audio.positions, tensors["stage1.audio.positions"], rtol=0, atol=1e-6)


def test_denoised_latents_equal_ltx_pipelines_1_2(golden):
    """Needs the transformer's 1.2.0 audio<->video AdaLN rule (its `set_reference`) and `denoise(reference=...)`."""
    # 8 + 3 float32 steps of O(1) latents: 5e-4 covers the kernels' rounding (measured 1.9e-4 with the ltx25 + ref12
    # branches merged); 1.0.0's AdaLN rule is 0.23 off
    transformer, tensors, metadata = golden
    if not hasattr(transformer, "set_reference"):
        pytest.skip("the transformer follows ltx-core 1.0.0's audio<->video AdaLN only (no set_reference yet)")
    contexts = TextContexts(tensors["input.video_context"], tensors["input.audio_context"])
    neutral = GuidanceScales()
    (video, audio), _ = golden_stages(tensors, metadata)
    video, audio = denoise(transformer, video, audio, contexts, tensors["input.stage_1_sigmas"], neutral, neutral)
    expected_video, expected_audio = tensors["stage1.video_latent"], tensors["stage1.audio_latent"]
    torch.testing.assert_close(video.output_tokens(), expected_video.flatten(2).transpose(1, 2), rtol=0, atol=5e-4)
    torch.testing.assert_close(audio.output_tokens(), expected_audio.transpose(1, 2).flatten(2), rtol=0, atol=5e-4)
    _, (video, audio) = golden_stages(tensors, metadata)
    video, _ = denoise(transformer, video, audio, contexts, tensors["input.stage_2_sigmas"], neutral, neutral)
    expected = tensors["stage2.video_latent"].flatten(2).transpose(1, 2)
    torch.testing.assert_close(video.output_tokens(), expected, rtol=0, atol=5e-4)


def test_audio_reference_tokens_follow_the_generated_ones():
    state = audio_latent_state(2, 5, dtype=torch.float32)
    reference = torch.randn(1, 8, 3, 16)
    appended = append_audio_reference(state, reference)
    assert appended.latent.shape == (2, 8, 128) and appended.num_output_tokens == 5
    assert torch.equal(appended.output_tokens(), state.latent) and appended.attention_mask is None
    assert torch.equal(appended.clean_latent[:, 5:], reference.transpose(1, 2).flatten(2).expand(2, -1, -1))
    assert appended.denoise_mask[:, 5:].abs().max() == 0
    assert torch.equal(appended.denoise_mask[:, :5], state.denoise_mask)
    # three 40 ms tokens, the first clamped by the causal VAE ([0, 0.01) s), then shifted to end at -0.04 s
    expected = torch.tensor([[0.0, 0.01], [0.01, 0.05], [0.05, 0.09]]) - 0.13
    torch.testing.assert_close(appended.positions[0, 0, 5:], expected)
    assert torch.equal(append_audio_reference(state, reference, 0.25).denoise_mask[:, 5:], torch.full((2, 3, 1), 0.75))
    with pytest.raises(ValueError, match=r"does not fit the audio state \(batch 2, 128 features per token\)"):
        append_audio_reference(state, torch.randn(1, 4, 3, 16))
    with pytest.raises(ValueError, match=r"strength=1.5 is outside \[0, 1\]"):
        append_audio_reference(state, reference, 1.5)


def test_audio_noise_is_drawn_over_the_reference_tokens_too():
    """The audio draw after the video's covers T_a + T_ref tokens: the next draw of the generator shows it."""
    kwargs = {"generator": None, "device": torch.device("cpu"), "dtype": torch.float32}
    generator = torch.Generator().manual_seed(7)
    reference = AudioReference(torch.randn(1, 8, 4, 16))
    video, audio = prepare_latents_with_audio_reference(1, 32, 32, 9, 24.0, audio_reference=reference, **{
        **kwargs, "generator": generator})  # fmt: skip
    replay = torch.Generator().manual_seed(7)
    video_noise = torch.randn(1, 2, 128, generator=replay)
    audio_noise = torch.randn(1, 9 + 4, 128, generator=replay)
    torch.testing.assert_close(video.latent, video_noise)
    torch.testing.assert_close(audio.latent[:, :9], audio_noise[:, :9])
    assert torch.equal(torch.randn(3, generator=generator), torch.randn(3, generator=replay))


# ----------------------------------------------------------------------------------------------------------------------
# (2) The tiny pipeline


def dub_it_pipe(seed: int = 0) -> LTX2AVDubItPipeline:
    components = build_tiny_two_stage_pipeline(seed).components
    pipe = LTX2AVDubItPipeline(**{**components, "scheduler": LTX2Scheduler.distilled()})
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("dubit")
    silent = folder / "silent.mp4"
    frames = np.full((9, 64, 64, 3), 90, dtype=np.uint8)
    export_to_video_with_audio(frames, np.zeros((2, 9000), dtype=np.float32), 24000, 24, silent)
    return {
        "clip": write_clip(folder / "clip.mp4", num_frames=12),  # snapped down to 9 frames
        "mute": write_clip(folder / "mute.mp4", sample_rate=None),
        "silent": silent,
        "lora": write_lora(folder / "dub_it.safetensors", seed=5, metadata={"reference_downscale_factor": "1"}),
        "other": write_lora(folder / "other.safetensors", seed=6),
    }


@pytest.fixture(scope="module")
def pipe(files) -> LTX2AVDubItPipeline:
    pipe = dub_it_pipe(0)
    assert pipe.load_ic_lora(files["lora"]) == "dub_it" and pipe.reference_downscale_factor == 1
    return pipe


def test_dub_it_keeps_the_reference_timing_and_runs_both_stages_with_the_lora(pipe, files, monkeypatch):
    calls = []
    real_denoise = dubit_module.denoise

    def recording_denoise(transformer, video, audio, *args, **kwargs):
        calls.append((video, audio, adapters_enabled(transformer)))
        return real_denoise(transformer, video, audio, *args, **kwargs)

    monkeypatch.setattr(dubit_module, "denoise", recording_denoise)
    out = pipe(files["clip"], "she says hello", **FAST, generator=torch.Generator().manual_seed(0), output_type="np")
    frames, audio = out.frames, out.audio
    assert frames.shape == (1, 9, 64, 64, 3) and out.audio_sample_rate == 24000
    assert audio.shape == (1, 2, 7920)  # 9 audio latents at 24 fps -> 33 mel frames -> 7920 samples
    (video_1, audio_1, lora_1), (video_2, audio_2, lora_2) = calls
    assert lora_1 and lora_2  # the IC-LoRA in both stages
    reference = dubit_module.read_dub_it_reference(files["clip"])
    track = pipe.encode_reference_audio(reference.waveform, reference.sample_rate, torch.device("cpu"))
    assert track.shape[2] >= 13  # the whole 0.5 s track of the 12-frame clip (16 kHz: 8000 // 160 // 4 + 1 = 13)
    assert audio_1.latent.shape[1] == 9 + track.shape[2] and audio_1.num_output_tokens == 9
    torch.testing.assert_close(audio_1.clean_latent[:, 9:], track.transpose(1, 2).flatten(2))
    assert video_1.latent.shape[1] == 2 + 2 and video_2.latent.shape[1] == 8 + 8  # target + reference tokens
    assert audio_2.latent.shape[1] == 9 + 9 and audio_2.denoise_mask.abs().max() == 0  # frozen, its own reference
    torch.testing.assert_close(audio_2.clean_latent[:, 9:], audio_2.latent[:, :9])  # stage 1's audio as reference


def test_the_reference_voice_reaches_the_output(pipe, files):
    def dub(**kwargs):
        generator = torch.Generator().manual_seed(1)
        return pipe(files["clip"], "hi", **FAST, generator=generator, output_type="latent", **kwargs)

    first = dub()
    noise = (0.3 * torch.randn(2, 12000, generator=torch.Generator().manual_seed(2))).clamp(-1, 1)
    other = dub(reference_audio=noise, reference_audio_sample_rate=24000)
    # same seed: any change is the voice's (the tiny model's small weights, std 0.05, make its attention move little)
    assert (other.audio - first.audio).abs().max() > 1e-4 and (other.frames - first.frames).abs().max() > 1e-5


def test_frames_in_memory_with_their_frame_rate_and_voice(pipe):
    frames = np.random.default_rng(0).integers(0, 256, (10, 48, 40, 3), dtype=np.uint8)
    voice = (0.3 * torch.randn(1, 8000, generator=torch.Generator().manual_seed(3))).clamp(-1, 1)
    out = pipe(frames, "hi", reference_audio=voice, reference_audio_sample_rate=16000, frame_rate=25.0, **FAST,
               num_videos_per_prompt=2, generator=torch.Generator().manual_seed(0), output_type="latent")  # fmt: skip
    assert out.frames.shape == (2, 128, 2, 2, 2) and out.audio.shape == (2, 8, audio_latent_frames(9, 25.0), 16)
    assert (out.audio[0] - out.audio[1]).abs().max() > 0.1  # one reference, two noise draws


# ----------------------------------------------------------------------------------------------------------------------
# (3) Errors before any model runs, and the CLI


@pytest.fixture
def untouchable(pipe, monkeypatch):
    """Any model call fails the test: the errors must come first."""

    def forbidden(*args, **kwargs):
        raise AssertionError("a model ran before the arguments were checked")

    for module in (pipe.vae, pipe.audio_vae, pipe.transformer, pipe.latent_upsampler):
        monkeypatch.setattr(module, "forward", forbidden)
    monkeypatch.setattr(pipe.audio_vae, "encode_waveform", forbidden)
    return pipe


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ({"reference_video": "mute"}, r"has no audio stream: Dub-It keeps the voice of the reference's sound"),
        ({"reference_video": "silent"}, r"the reference_video's sound is silent \(peak 0, below 0.0001\)"),
        ({"frame_rate": 30.0}, r"frame_rate=30 was given with reference_video, a file at 24 fps"),
        ({"reference_video": "frames"}, r"reference_video is frames in memory: pass their frame_rate"),
        ({"reference_video": "frames", "frame_rate": 24.0}, r"frames in memory, so it brings no sound"),
        ({"reference_strength": 1.5}, r"reference_strength=1.5 is outside \[0, 1\]"),
        ({"height": 96}, r"height=96 is not a positive multiple of 64"),
        ({"sigmas": (1.0, 0.5)}, r"sigmas=\[1.0, 0.5\] must end at 0.0"),
    ],
    ids=["no-audio", "silent", "fps-mismatch", "frames-no-fps", "frames-no-audio", "strength", "height", "sigmas"],
)
def test_bad_inputs_are_refused_before_any_model_runs(untouchable, files, case, match):
    frames = np.zeros((9, 64, 64, 3), dtype=np.uint8)
    case = dict(case)
    source = case.pop("reference_video", "clip")
    video = frames if source == "frames" else files[source]
    with pytest.raises(ValueError, match=match):
        untouchable(video, "hi", **{**FAST, **case})


def test_exactly_one_lora_and_the_distilled_scheduler(files):
    pipe = dub_it_pipe(1)
    with pytest.raises(ValueError, match=r"no LoRA is loaded: Dub-It runs the distilled model with its Dub-It IC-LoRA"):
        pipe(files["clip"], "hi", **FAST)
    pipe.load_ic_lora(files["lora"])
    pipe.load_ic_lora(files["other"], adapter_name="style")
    with pytest.raises(ValueError, match=r"2 LoRA adapters are loaded \(\['dub_it', 'style'\]\), Dub-It takes exactly"):
        pipe(files["clip"], "hi", **FAST)
    pipe.transformer.delete_adapters("style")
    dev = LTX2AVDubItPipeline(**{**pipe.components, "scheduler": LTX2Scheduler()})
    with pytest.raises(ValueError, match=r"Dub-It runs the distilled checkpoint .* scheduler is the dev one"):
        dev(files["clip"], "hi", **FAST)


def test_cli_dub_it_writes_the_dubbed_clip(files, tmp_path, capsys):
    path = tmp_path / "dubbed.mp4"
    argv = ["dub-it", "she says hello", "-o", str(path), "--model", "tiny", "--height", "64", "--width", "64",
            "--ic-lora", str(files["lora"]), "--reference-video", str(files["clip"])]  # fmt: skip
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith(f"wrote {path}: 9 frames of 64x64 at 24 fps (0.38 s), stereo audio")
    with av.open(str(path)) as container:
        assert container.streams.audio[0].rate == 24000
        assert sum(1 for _ in container.decode(video=0)) == 9


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--reference-video", "{silent}"], "--reference-video: the reference_video's sound is silent"),
        (["--reference-video", "{clip}", "--lora", "{other}"], "--lora: Dub-It takes exactly one LoRA"),
        (["--reference-video", "{clip}", "--height", "96"], "--height=96 is not a positive multiple of 64"),
        (["--reference-video", "{clip}", "--reference-strength", "2"], "--reference-strength=2.0 is outside [0, 1]"),
        (["--reference-video", "{clip}", "--frames", "17"], "unrecognized arguments: --frames 17"),
    ],
    ids=["silent", "lora", "height", "strength", "frames"],
)
def test_cli_dub_it_errors(files, tmp_path, capsys, extra, message):
    extra = [arg.format(**{k: str(v) for k, v in files.items()}) for arg in extra]
    argv = ["dub-it", "p", "-o", str(tmp_path / "a.mp4"), "--model", "tiny", "--ic-lora", str(files["lora"]), *extra]
    try:
        status = main(argv)
    except SystemExit as stop:  # argparse's own errors
        status = stop.code
    assert status == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "a.mp4").exists()


@pytest.mark.gpu
def test_dub_it_bf16_on_cuda_and_with_model_offload(files):
    """The tiny call in bf16 on CUDA gives finite frames and sound of the reference's timing; model CPU offload
    (one component on the GPU at a time) gives the same latents."""

    def dub(pipe):
        generator = torch.Generator("cuda").manual_seed(0)
        return pipe(files["clip"], "hi", **FAST, generator=generator, output_type="latent")

    pipe = dub_it_pipe(0).to("cuda", torch.bfloat16)
    pipe.load_ic_lora(files["lora"])
    resident = dub(pipe)
    assert resident.frames.shape == (1, 128, 2, 2, 2) and resident.audio.shape == (1, 8, 9, 16)
    assert torch.isfinite(resident.frames.float()).all() and torch.isfinite(resident.audio.float()).all()
    offloaded_pipe = dub_it_pipe(0).to(torch.bfloat16)
    offloaded_pipe.load_ic_lora(files["lora"])
    offloaded_pipe.enable_model_cpu_offload(device="cuda")
    offloaded = dub(offloaded_pipe)
    torch.testing.assert_close(offloaded.frames, resident.frames)
    torch.testing.assert_close(offloaded.audio, resident.audio)
