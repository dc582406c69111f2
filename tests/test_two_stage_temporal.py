"""LTX2AVTwoStagePipeline with `temporal_upsample=True`: stage 2 doubles the clip in time with the temporal x2
upsampler (2(N - 1) + 1 frames at 2 * frame_rate), the audio latent keeps its length; the component's save / load;
the errors before any model runs; the CLI's --temporal-upsampler.

The pipeline is the tiny random one (`build_tiny_two_stage_pipeline`) plus a tiny random temporal upsampler.
"""

import json
import re

import av
import pytest
import torch
from diffusers import DiffusionPipeline
from safetensors.torch import save_file

from ltx2_diffusers import LTX2AVDFRPipeline, LTX2AVTwoStageHQPipeline, LTX2AVTwoStagePipeline, LTX2LatentUpsamplerModel
from ltx2_diffusers.cli import build_parser, main
from ltx2_diffusers.cli.checks import check_args
from ltx2_diffusers.cli.run import run
from ltx2_diffusers.loaders.metadata import original_upsampler_config
from ltx2_diffusers.loaders.upsampler_keys import diffusers_to_original_keys
from ltx2_diffusers.models.autoencoder_kl_ltx2_audio import audio_latent_frames, pack_audio_latents
from ltx2_diffusers.models.latent_upsampler import upsample_latents
from ltx2_diffusers.pipelines import pipeline_ltx2_av_two_stage, temporal_upsampling
from ltx2_diffusers.pipelines.conditioning import unpatchify_video, video_positions
from ltx2_diffusers.pipelines.decoding import decode_waveform
from ltx2_diffusers.pipelines.presets import DEFAULT_REFERENCE
from ltx2_diffusers.pipelines.temporal_upsampling import (
    doubled_num_frames,
    keyframes_in_doubled_clip,
    upsample_in_time,
)
from ltx2_diffusers.pipelines.tiny import TINY_LATENT_UPSAMPLER_CONFIG, build_tiny_two_stage_pipeline

FPS = 24.0
FAST = {"height": 128, "width": 128, "num_frames": 9, "frame_rate": FPS, "num_inference_steps": 1}
TEMPORAL_CONFIG = {**TINY_LATENT_UPSAMPLER_CONFIG, "spatial_upsample": False, "temporal_upsample": True}


def tiny_temporal_upsampler(seed: int = 3) -> LTX2LatentUpsamplerModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LTX2LatentUpsamplerModel(**TEMPORAL_CONFIG).eval()


def write_single_file(upsampler: LTX2LatentUpsamplerModel, path) -> None:
    """The upsampler as a Lightricks single file: original key names, the flat config in the metadata."""
    state = upsampler.state_dict()
    names = diffusers_to_original_keys(state, dict(upsampler.config))
    config = original_upsampler_config(dict(upsampler.config))
    save_file({names[k]: v.contiguous() for k, v in state.items()}, str(path), metadata={"config": json.dumps(config)})


@pytest.fixture(scope="module")
def pipe() -> LTX2AVTwoStagePipeline:
    two_stage = build_tiny_two_stage_pipeline(seed=0)
    pipe = LTX2AVTwoStagePipeline(**two_stage.components, temporal_upsampler=tiny_temporal_upsampler())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _record_stage_2(monkeypatch) -> dict:
    """Record the stage-1 latents handed to the doubled refinement, its conditions, and the states stage 2 denoises."""
    seen = {}
    refine, denoise = pipeline_ltx2_av_two_stage.refine_doubled_in_time, temporal_upsampling.denoise

    def recording_refine(transformer, latent_upsampler, video, audio, *args, **kwargs):
        seen.update(stage_1_video=video, stage_1_audio=audio, conditions=kwargs["conditions"])
        return refine(transformer, latent_upsampler, video, audio, *args, **kwargs)

    def recording_denoise(transformer, video, audio, *args, **kwargs):
        seen.update(video_state=video, audio_state=audio)
        return denoise(transformer, video, audio, *args, **kwargs)

    monkeypatch.setattr(pipeline_ltx2_av_two_stage, "refine_doubled_in_time", recording_refine)
    monkeypatch.setattr(temporal_upsampling, "denoise", recording_denoise)
    return seen


# ----------------------------------------------------------------------------------------------------------------------
# The doubled clip


def test_doubled_frame_count_frame_rate_and_audio_length(pipe, monkeypatch):
    """17 frames at 24 fps -> 33 frames positioned at 48 fps; the audio keeps 18 latent frames (33 frames at 48 fps
    would make 17: the doubled clip is half a frame shorter), so the soundtrack is that of the 17-frame clip."""
    seen = _record_stage_2(monkeypatch)
    generator = torch.Generator().manual_seed(1)
    video, audio = pipe("a cat", **{**FAST, "num_frames": 17}, generator=generator, output_type="latent",
                        return_dict=False, temporal_upsample=True)  # fmt: skip
    assert doubled_num_frames(17) == 33
    assert video.shape == (1, 128, 5, 4, 4)  # 2 * 3 - 1 latent frames = 8 * 4 + 1 = 33 pixel frames, full size
    assert audio_latent_frames(17, FPS) == 18 != audio_latent_frames(33, 2 * FPS)
    assert audio.shape == (1, 8, 18, 16) == seen["stage_1_audio"].shape
    expected_positions = video_positions(1, 5, 4, 4, 2 * FPS, dtype=torch.float32)
    torch.testing.assert_close(seen["video_state"].positions, expected_positions, rtol=0, atol=0)
    assert not torch.equal(expected_positions, video_positions(1, 5, 4, 4, FPS, dtype=torch.float32))


def test_stage_2_starts_from_upsample_in_time_of_the_spatial_upsample(pipe, monkeypatch):
    seen = _record_stage_2(monkeypatch)
    pipe("a cat", **FAST, generator=torch.Generator().manual_seed(2), output_type="latent", temporal_upsample=True)
    stats = (pipe.vae.latents_mean, pipe.vae.latents_std)
    assert seen["stage_1_video"].shape == (1, 128, 2, 2, 2)  # half size, 9 frames
    enlarged = upsample_latents(pipe.latent_upsampler, seen["stage_1_video"], *stats)
    expected = upsample_in_time(pipe.temporal_upsampler, enlarged, *stats)
    assert expected.shape == (1, 128, 3, 4, 4)
    clean = unpatchify_video(seen["video_state"].clean_latent, 3, 4, 4)
    torch.testing.assert_close(clean, expected, rtol=0, atol=0)
    audio_clean = seen["audio_state"].clean_latent  # the stage-1 audio as it is
    torch.testing.assert_close(audio_clean, pack_audio_latents(seen["stage_1_audio"]), rtol=0, atol=0)


def test_decoded_frames_double_and_the_waveform_keeps_its_length(pipe):
    frames, waveform = pipe("a cat", **FAST, generator=torch.Generator().manual_seed(4), temporal_upsample=True,
                            output_type="pt", return_dict=False)  # fmt: skip
    assert frames.shape == (1, 17, 3, 128, 128)
    undoubled = torch.zeros(1, 8, audio_latent_frames(9, FPS), 16)  # the soundtrack of the 9 frames at 24 fps
    expected, _ = decode_waveform(pipe.audio_vae, pipe.vocoder, undoubled, "pt", DEFAULT_REFERENCE)
    assert waveform.shape == expected.shape


def test_off_by_default_nothing_changes(pipe, monkeypatch):
    plain = LTX2AVTwoStagePipeline(**{**pipe.components, "temporal_upsampler": None})
    assert plain.temporal_upsampler is None
    assert "temporal_upsampler" not in plain.components  # the other two-stage pipelines build from it
    assert isinstance(LTX2AVTwoStageHQPipeline(**plain.components), LTX2AVTwoStageHQPipeline)
    with pytest.raises(TypeError, match="temporal_upsampler"):
        LTX2AVTwoStageHQPipeline(**pipe.components)  # it would not use it

    def refuse(*args, **kwargs):
        raise AssertionError("the temporal stage ran")

    monkeypatch.setattr(pipeline_ltx2_av_two_stage, "refine_doubled_in_time", refuse)
    video, _ = pipe("a cat", **FAST, generator=torch.Generator().manual_seed(5), output_type="latent",
                    return_dict=False)  # fmt: skip
    assert video.shape == (1, 128, 2, 4, 4)


def test_keyframes_map_from_frame_k_to_2k(pipe, monkeypatch):
    image = torch.zeros(128, 128, 3, dtype=torch.uint8)
    assert keyframes_in_doubled_clip([(image, 0, 1.0), (image, 3, 0.5), (image, 8, 0.9)]) == [
        (image, 0, 1.0), (image, 6, 0.5), (image, 16, 0.9)
    ]  # fmt: skip
    seen = _record_stage_2(monkeypatch)
    pipe("a cat", **FAST, keyframes=[(image, 8, 0.9)], image_crf=0, generator=torch.Generator().manual_seed(6),
         output_type="latent", temporal_upsample=True)  # fmt: skip
    assert [(c.frame_index, c.strength) for c in seen["conditions"]] == [(16, 0.9)]
    # the keyframe's tokens sit at the doubled clip's last frame, 16 / 48 s: the time of frame 8 at 24 fps
    keyframe_times = seen["video_state"].positions[0, 0, 3 * 16 :]
    torch.testing.assert_close(keyframe_times[:, 0], torch.full((16,), 16 / (2 * FPS)))


# ----------------------------------------------------------------------------------------------------------------------
# Loading


@pytest.fixture(scope="module")
def saved(pipe, tmp_path_factory):
    folder = tmp_path_factory.mktemp("two_stage_temporal")
    pipe.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("loader", [LTX2AVTwoStagePipeline, DiffusionPipeline, LTX2AVDFRPipeline])
def test_save_and_load_keep_the_temporal_upsampler(pipe, saved, loader):
    """The `temporal_upsampler/` folder comes back with the two-stage pipeline, through diffusers' own loader, and
    into the DFR pipeline (the same component name)."""
    index = json.loads((saved / "model_index.json").read_text())
    assert index["temporal_upsampler"] == ["ltx2_diffusers", "LTX2LatentUpsamplerModel"]
    assert (saved / "temporal_upsampler" / "config.json").is_file()
    loaded = loader.from_pretrained(saved)
    assert isinstance(loaded, LTX2AVDFRPipeline if loader is LTX2AVDFRPipeline else LTX2AVTwoStagePipeline)
    upsampler = loaded.temporal_upsampler
    assert isinstance(upsampler, LTX2LatentUpsamplerModel)
    assert upsampler.config.temporal_upsample and not upsampler.config.spatial_upsample
    expected = pipe.temporal_upsampler.state_dict()
    assert upsampler.state_dict().keys() == expected.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(upsampler.state_dict()[name], tensor, rtol=0, atol=0)


def test_a_pipeline_without_one_saves_and_loads_none(pipe, tmp_path):
    LTX2AVTwoStagePipeline(**{**pipe.components, "temporal_upsampler": None}).save_pretrained(tmp_path)
    assert not (tmp_path / "temporal_upsampler").exists()
    assert LTX2AVTwoStagePipeline.from_pretrained(tmp_path).temporal_upsampler is None


# ----------------------------------------------------------------------------------------------------------------------
# Errors, before any model runs


@pytest.fixture
def no_encoders(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the text encoder ran before the arguments were checked")

    monkeypatch.setattr(pipeline_ltx2_av_two_stage, "prompt_contexts", refuse)


@pytest.mark.parametrize(
    ("temporal_upsampler", "kwargs", "error", "message"),
    [
        (None, {}, ValueError, "this call needs a temporal_upsampler and the pipeline has none.*from_single_file"),
        (
            "spatial",
            {},
            ValueError,
            r"must upsample in time only .*got temporal=False, spatial=True: pass the temporal",
        ),
        ("temporal", {"temporal_upsample": 1}, TypeError, "temporal_upsample must be True or False, got 1"),
        ("temporal", {"keyframes": "past"}, ValueError, r"keyframes\[0\] frame_index=9 is past the clip's last frame"),
        ("temporal", {"num_frames": 2049, "height": 1024, "width": 1536}, ValueError, "787,968 video tokens"),
    ],
)
def test_errors_before_any_model_runs(pipe, no_encoders, temporal_upsampler, kwargs, error, message):
    upsampler = {"spatial": pipe.latent_upsampler, "temporal": pipe.temporal_upsampler}.get(temporal_upsampler)
    checked = LTX2AVTwoStagePipeline(**{**pipe.components, "temporal_upsampler": upsampler})
    if kwargs.get("keyframes") == "past":  # frame 9 of a 9-frame clip: past its end (it would be 18 of 17 doubled)
        kwargs = {"keyframes": [(torch.zeros(128, 128, 3, dtype=torch.uint8), 9, 1.0)]}
    with pytest.raises(error, match=message):
        checked("a cat", **{**FAST, "temporal_upsample": True, **kwargs})


def test_a_memory_budget_places_the_temporal_upsampler_and_keeps_the_clip(pipe):
    budgeted = LTX2AVTwoStagePipeline(**build_tiny_two_stage_pipeline(seed=0).components,
                                      temporal_upsampler=tiny_temporal_upsampler())  # pipe's weights, its own modules
    budgeted.set_progress_bar_config(disable=True)
    plan = budgeted.enable_memory_budget("2GB", device="cpu", height=128, width=128, num_frames=17, frame_rate=2 * FPS)
    assert ("temporal_upsampler", "resident") in plan.placement.components
    assert plan.sizes.temporal_upsampler == sum(p.numel() * 4 for p in budgeted.temporal_upsampler.parameters())

    def generate(p):
        return p("a cat", **FAST, temporal_upsample=True, output_type="latent", generator=torch.Generator().manual_seed(1))

    planned, free = generate(budgeted), generate(pipe)
    torch.testing.assert_close(planned.frames, free.frames, rtol=0, atol=0)
    torch.testing.assert_close(planned.audio, free.audio, rtol=0, atol=0)


def test_a_temporal_upsampler_added_after_the_budget_is_refused(pipe, no_encoders):
    budgeted = LTX2AVTwoStagePipeline(**build_tiny_two_stage_pipeline(seed=0).components)
    budgeted.enable_memory_budget("2GB", device="cpu", height=128, width=128, num_frames=17, frame_rate=2 * FPS)
    budgeted.register_modules(temporal_upsampler=tiny_temporal_upsampler())
    with pytest.raises(ValueError, match=r"temporal_upsampler was added after enable_memory_budget, so the memory plan "
                                         r"does not place it: call pipe\.disable_memory_budget\(to='cpu'\)"):  # fmt: skip
        budgeted("a cat", **FAST, temporal_upsample=True)


def test_the_size_guard_sees_the_doubled_clip(pipe, no_encoders):
    # 2049 frames of 1024 x 1536: 257 x 32 x 48 = 394,752 tokens, under the 524,288 the pipelines allow; doubled,
    # 4097 frames: 513 x 32 x 48 = 787,968 tokens
    big = {**FAST, "num_frames": 2049, "height": 1024, "width": 1536}
    with pytest.raises(AssertionError, match="the text encoder ran"):  # undoubled, the clip passes the guard
        pipe("a cat", **big)
    with pytest.raises(ValueError, match=r"787,968 video tokens per sample \(513 latent frames"):
        pipe("a cat", **big, temporal_upsample=True)


def test_the_size_guard_can_be_lifted(pipe, no_encoders):
    big = {**FAST, "num_frames": 2049, "height": 1024, "width": 1536, "temporal_upsample": True}
    with pytest.raises(AssertionError, match="the text encoder ran"):
        pipe("a cat", **big, allow_large=True)


@pytest.mark.gpu
def test_on_cuda_model_offload_moves_the_temporal_upsampler_and_repeats_the_clip():
    """bf16 on the GPU: the temporal upsampler is in the offload sequence, so model CPU offload gives the resident
    run's doubled clip bit for bit."""

    def build() -> LTX2AVTwoStagePipeline:
        two_stage = build_tiny_two_stage_pipeline(seed=0)
        p = LTX2AVTwoStagePipeline(**two_stage.components, temporal_upsampler=tiny_temporal_upsampler())
        p.set_progress_bar_config(disable=True)
        return p

    def generate(p):
        return p("a cat", **FAST, temporal_upsample=True, output_type="pt",
                 generator=torch.Generator("cuda").manual_seed(8))  # fmt: skip

    resident = generate(build().to("cuda", torch.bfloat16))
    assert resident.frames.shape == (1, 17, 3, 128, 128) and torch.isfinite(resident.frames).all()
    offloaded = build().to(torch.bfloat16)
    offloaded.enable_model_cpu_offload()
    again = generate(offloaded)
    torch.testing.assert_close(again.frames.cpu(), resident.frames.cpu(), rtol=0, atol=0)
    torch.testing.assert_close(again.audio.cpu(), resident.audio.cpu(), rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------------------------------
# CLI


TINY2 = ["--model", "tiny", "--frames", "9", "--height", "64", "--width", "64"]


def test_cli_writes_the_doubled_clip_at_twice_the_fps(tmp_path, capsys):
    write_single_file(tiny_temporal_upsampler(), tmp_path / "temporal.safetensors")
    path = tmp_path / "waves.mp4"
    argv = ["two-stage", "waves", "-o", str(path), *TINY2, "--steps", "1", "--temporal-upsampler",
            str(tmp_path / "temporal.safetensors")]  # fmt: skip
    assert main(argv) == 0
    assert f"wrote {path}: 17 frames of 64x64 at 48 fps (0.35 s)" in capsys.readouterr().out
    with av.open(str(path)) as container:
        assert container.streams.video[0].average_rate == 48
        assert sum(1 for _ in container.decode(video=0)) == 17
        assert container.streams.audio  # the soundtrack is written with it


@pytest.mark.parametrize(
    ("file", "message"),
    [
        ("missing", r"--temporal-upsampler: .*missing.safetensors: no such file"),
        ("text", r"--temporal-upsampler: .*text.safetensors is not a readable .safetensors file"),
        ("spatial", r"--temporal-upsampler: the file must upsample in time only .*spatial=True"),
    ],
)
def test_cli_refuses_a_bad_temporal_upsampler_file(tmp_path, capsys, file, message):
    (tmp_path / "text.safetensors").write_text("not a safetensors file")
    spatial = LTX2LatentUpsamplerModel(**TINY_LATENT_UPSAMPLER_CONFIG)
    write_single_file(spatial, tmp_path / "spatial.safetensors")
    argv = ["distilled", "a fox", "-o", str(tmp_path / "fox.mp4"), *TINY2,
            "--temporal-upsampler", str(tmp_path / f"{file}.safetensors")]  # fmt: skip
    assert main(argv) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "fox.mp4").exists()


def test_cli_runs_under_a_memory_budget_with_the_temporal_upsampler(tmp_path):
    write_single_file(tiny_temporal_upsampler(), tmp_path / "temporal.safetensors")
    path = tmp_path / "fox.mp4"
    argv = ["two-stage", "a fox", "-o", str(path), *TINY2, "--steps", "1",
            "--temporal-upsampler", str(tmp_path / "temporal.safetensors")]  # fmt: skip
    args = build_parser().parse_args(argv)
    checked = check_args(args)
    args.vram = "24"  # on a CUDA device check_args lets it through (on CPU it refuses --vram itself)
    assert f"wrote {path}: 17 frames of 64x64 at 48 fps" in run(args, checked)
    with av.open(str(path)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 17


@pytest.mark.gpu
def test_cli_on_cuda_places_the_temporal_upsampler_under_vram(tmp_path, capsys):
    write_single_file(tiny_temporal_upsampler(), tmp_path / "temporal.safetensors")
    path = tmp_path / "fox.mp4"
    argv = ["two-stage", "a fox", "-o", str(path), *TINY2, "--steps", "1", "--device", "cuda", "--vram", "4",
            "--temporal-upsampler", str(tmp_path / "temporal.safetensors")]  # fmt: skip
    assert main(argv) == 0
    assert f"wrote {path}: 17 frames of 64x64 at 48 fps" in capsys.readouterr().out


def test_cli_has_the_flag_only_where_it_applies():
    from ltx2_diffusers.cli.parser import COMMANDS

    assert sorted(name for name, c in COMMANDS.items() if "temporal" in c.features) == ["distilled", "two-stage"]
