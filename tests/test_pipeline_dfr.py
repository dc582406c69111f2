"""LTX2AVDFRPipeline (tiny LTX-2.5, CPU) against ltx-pipelines 1.2.0's `DFRPipeline`, without the oracle.

tests/goldens/dfr/ (scripts/goldens/dfr.py) holds the reference pipeline's stage states on the tiny seeded LTX-2.5
transformer of tests/goldens/pipelines25/distilled.safetensors, with fixed stand-ins for the upsamplers (nearest x2 in
space; each latent frame twice in time, the first copy dropped; both x 0.9) and identity VAE statistics:
  - rounds0: 25 frames (one 24-frame segment), stage 1 + stage 2 with the detailing reference;
  - rounds2: 41 frames (a 49-frame canvas of two segments), two temporal rounds (2 + 4 tiles), trimmed to 161 frames.
"""

import argparse
import json
from pathlib import Path

import av
import pytest
import torch
from safetensors import safe_open

from ltx2_diffusers.cli import dfr as cli_dfr
from ltx2_diffusers.cli.dfr import check_dfr, run_dfr
from ltx2_diffusers.cli.parser import CLIError, Command, OneLineParser, _add_common
from ltx2_diffusers.loaders.lora import LTX2LoRA
from ltx2_diffusers.loaders.transformer_keys import original_to_diffusers_keys
from ltx2_diffusers.models.autoencoder_kl_ltx2_audio import audio_latent_frames
from ltx2_diffusers.models.latent_upsampler import LTX2LatentUpsamplerModel
from ltx2_diffusers.models.transformer_ltx2 import LTX2VideoTransformer3DModel
from ltx2_diffusers.pipelines import pipeline_ltx2_av_dfr as dfr
from ltx2_diffusers.pipelines.conditioning import patchify_video, video_latent_state
from ltx2_diffusers.pipelines.denoising import ReferenceCondition, TextContexts, VideoCondition
from ltx2_diffusers.pipelines.dfr_layout import keyframe_canvas, stage_2_request_frames, temporal_tiles
from ltx2_diffusers.pipelines.pipeline_ltx2_av_dfr import (
    CarriedKeyframes,
    KeyframeSlots,
    LTX2AVDFRPipeline,
    append_keyframe_slots,
    generated_keyframes,
    keyframe_stage,
    merge_keyframes,
    temporal_round,
    tile_conditions,
)
from ltx2_diffusers.pipelines.presets import DISTILLED_SIGMAS, STAGE_2_DISTILLED_SIGMAS
from ltx2_diffusers.pipelines.text_encoding import PromptEmbeddings
from ltx2_diffusers.pipelines.tiny import (
    TINY_LATENT_UPSAMPLER_CONFIG,
    build_tiny_pipeline,
    build_tiny_two_stage_pipeline,
    tiny_transformer_config,
)

GOLDENS = Path(__file__).parent / "goldens"
ATOL = 1e-4  # as the other LTX-2.5 stage goldens (float32 on the CPU, different kernels)


def read(name: str) -> tuple[dict, dict]:
    with safe_open(GOLDENS / "dfr" / f"{name}.safetensors", "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()  # noqa: SIM118


def spatial_x2(latent: torch.Tensor) -> torch.Tensor:
    return latent.repeat_interleave(2, dim=3).repeat_interleave(2, dim=4) * 0.9


def temporal_x2(latent: torch.Tensor) -> torch.Tensor:
    return latent.repeat_interleave(2, dim=2)[:, :, 1:] * 0.9


@pytest.fixture(scope="module")
def pipe() -> LTX2AVDFRPipeline:
    with safe_open(GOLDENS / "pipelines25" / "distilled.safetensors", "pt") as f:
        weights = {k: f.get_tensor(k).float() for k in f.keys() if k.startswith("model.diffusion_model.")}  # noqa: SIM118
    transformer = LTX2VideoTransformer3DModel(**{**tiny_transformer_config("2.5"), "num_layers": 2}).eval()
    mapping = original_to_diffusers_keys(weights, transformer.config, set(transformer.state_dict()))
    transformer.load_state_dict({mapping[k]: v for k, v in weights.items()}, strict=True)
    components = build_tiny_pipeline(seed=0, model_version="2.5", duration_head=False).components
    spatial = LTX2LatentUpsamplerModel(**TINY_LATENT_UPSAMPLER_CONFIG).eval()
    temporal = LTX2LatentUpsamplerModel(
        **{**TINY_LATENT_UPSAMPLER_CONFIG, "spatial_upsample": False, "temporal_upsample": True}
    ).eval()
    spatial.forward, temporal.forward = spatial_x2, temporal_x2  # the golden's stand-ins
    components["vae"].latents_mean.zero_()
    components["vae"].latents_std.fill_(1.0)
    pipe = LTX2AVDFRPipeline(
        **{**components, "transformer": transformer}, latent_upsampler=spatial, temporal_upsampler=temporal
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _embeds(tensors: dict) -> PromptEmbeddings:
    video, audio = tensors["input.video_context"], tensors["input.audio_context"]
    return PromptEmbeddings(video, audio, torch.ones(1, video.shape[1], dtype=torch.int64))


def _run(pipe, name: str, **change):
    tensors, metadata = read(name)
    settings = {k: json.loads(metadata[k]) for k in ("num_frames", "rounds")}
    arguments = dict(
        prompt_embeds=_embeds(tensors), height=int(metadata["height"]), width=int(metadata["width"]),
        num_frames=settings["num_frames"], frame_rate=float(metadata["frame_rate"]),
        temporal_upsample_rounds=settings["rounds"], generator=torch.Generator().manual_seed(int(tensors["input.seed"])),
        output_type="latent",
    )  # fmt: skip
    return pipe(**{**arguments, **change}), tensors


def test_stages_1_and_2_equal_ltx_pipelines_1_2(pipe):
    """Stage 1 at half size (video, one slot at frame 24, audio), then stage 2 from the upsampled video and slot with
    the stage-1 video as the detailing reference, from one generator."""
    tensors, _ = read("rounds0")
    contexts = TextContexts(tensors["input.video_context"], tensors["input.audio_context"])
    generator = torch.Generator().manual_seed(int(tensors["input.seed"]))
    with torch.no_grad():
        stage_1 = keyframe_stage(
            pipe.transformer, contexts, torch.tensor(DISTILLED_SIGMAS), (4, 1, 1), 24.0, generator=generator,
            slots=KeyframeSlots((24,)), audio=torch.zeros(1, 8, audio_latent_frames(25, 24.0), 16),
        )  # fmt: skip
        stage_2 = keyframe_stage(
            pipe.transformer, contexts, torch.tensor(STAGE_2_DISTILLED_SIGMAS), (4, 2, 2), 24.0, generator=generator,
            slots=KeyframeSlots((24,), spatial_x2(stage_1.keyframes)), initial_video=spatial_x2(stage_1.video),
            reference=ReferenceCondition(stage_1.video, 1.0, 2), audio=stage_1.audio,
        )  # fmt: skip
    assert stage_1.keyframes.shape == (1, 128, 1, 1, 1) and stage_2.keyframes.shape == (1, 128, 1, 2, 2)
    for got, key in [(stage_1.video, "call.0.video_latent"), (stage_1.keyframes, "call.0.keyframes"),
                     (stage_1.audio, "output.audio_latent"), (stage_2.video, "call.1.video_latent"),
                     (stage_2.keyframes, "call.1.keyframes")]:  # fmt: skip
        assert tensors[key].abs().mean() > 0.1, key
        torch.testing.assert_close(got, tensors[key], rtol=0, atol=ATOL, msg=key)
    assert (stage_2.keyframes - spatial_x2(stage_1.keyframes)).abs().max() > 1e-2  # the slot was denoised


def _zero_lora(transformer, **metadata: str) -> LTX2LoRA:
    """A LoRA whose up-projections are zero: the detailing adapter's switch without changing the weights."""
    layers = {}
    for name, module in transformer.named_modules():
        if name.startswith("transformer_blocks.") and name.endswith("attn1.to_q"):
            layers[name] = (torch.ones(2, module.in_features), torch.zeros(module.out_features, 2))
    return LTX2LoRA(layers, metadata=metadata)


def test_pipeline_with_detailing_reference_equals_the_reference(pipe):
    name = pipe.load_detailing_lora(_zero_lora(pipe.transformer))  # no reference_downscale_factor: 2
    try:
        (video, audio), tensors = _run(pipe, "rounds0", detailing_adapter=name, return_dict=False)
        assert video.shape == (1, 128, 4, 2, 2)
        torch.testing.assert_close(video, tensors["output.video_latent"], rtol=0, atol=ATOL)
        torch.testing.assert_close(audio, tensors["output.audio_latent"], rtol=0, atol=ATOL)
        (plain, _), _ = _run(pipe, "rounds0", return_dict=False)  # no detailing reference: another result
        assert (plain - video).abs().max() > 1e-2
    finally:
        pipe.transformer.disable_adapters()  # (deleting it leaves peft layers that StageAdapters cannot read)


def test_two_temporal_rounds_equal_the_reference(pipe):
    """41 frames on a 49-frame canvas; round 1 (97 frames, 2 tiles), round 2 (193 frames, 4 tiles), then the
    (41 - 1) * 4 + 1 = 161 frames asked for: 21 latent frames."""
    (video, audio), tensors = _run(pipe, "rounds2", return_dict=False)
    assert video.shape == (1, 128, 21, 2, 2) and tensors["output.video_latent"].abs().mean() > 0.1
    torch.testing.assert_close(video, tensors["output.video_latent"], rtol=0, atol=ATOL)
    torch.testing.assert_close(audio, tensors["output.audio_latent"], rtol=0, atol=ATOL)


def test_round_1_tiles_equal_the_references_and_their_seeds_count(pipe):
    """Stages 1 and 2 of the rounds2 run, then round 1 alone: its two tiles (the second over the whole canvas, its
    first 7 latent frames dropped) and the keyframes it carries on (seams 48, 96 and new slots 24, 72)."""
    tensors, _ = read("rounds2")
    contexts = TextContexts(tensors["input.video_context"], tensors["input.audio_context"])
    seed = int(tensors["input.seed"])
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        stage_1 = keyframe_stage(
            pipe.transformer, contexts, torch.tensor(DISTILLED_SIGMAS), (7, 1, 1), 24.0, generator=generator,
            slots=KeyframeSlots((24, 48)), audio=torch.zeros(1, 8, audio_latent_frames(49, 24.0), 16),
        )  # fmt: skip
        stage_2 = keyframe_stage(
            pipe.transformer, contexts, torch.tensor(STAGE_2_DISTILLED_SIGMAS), (7, 2, 2), 24.0, generator=generator,
            slots=KeyframeSlots((24, 48), spatial_x2(stage_1.keyframes)), initial_video=spatial_x2(stage_1.video),
            audio=stage_1.audio,
        )  # fmt: skip
        torch.testing.assert_close(stage_2.video, tensors["call.1.video_latent"], rtol=0, atol=ATOL)
        state = generator.get_state()

        def round_1(tile_seed: int):
            generator.set_state(state)
            return temporal_round(
                pipe.transformer, pipe.temporal_upsampler, stage_2.video, CarriedKeyframes((24, 48), stage_2.keyframes),
                contexts, torch.tensor(DISTILLED_SIGMAS[4:]), round_index=1, fps=48.0, seed=tile_seed,
                generator=generator, latents_mean=torch.zeros(128), latents_std=torch.ones(128),
            )  # fmt: skip

        video, carried = round_1(seed)
        other, _ = round_1(seed + 1)  # other tile noise, the same stage noise
    expected = torch.cat([tensors["call.2.video_latent"], tensors["call.3.video_latent"][:, :, 7:]], dim=2)
    assert video.shape == (1, 128, 13, 2, 2)
    torch.testing.assert_close(video, expected, rtol=0, atol=ATOL)
    assert carried.positions == (24, 48, 72, 96)
    slots = {24: tensors["call.2.keyframes"][:, :, 0], 72: tensors["call.3.keyframes"][:, :, 1]}
    for position, latent in slots.items():
        torch.testing.assert_close(carried.at([position])[:, :, 0], latent, rtol=0, atol=ATOL)
    torch.testing.assert_close(carried.at([48, 96]), stage_2.keyframes)  # the seams: stage 2's slots
    assert (other - video).abs().max() > 1e-2


def test_frames_and_soundtrack_are_cut_to_the_requested_length(pipe):
    """9 frames pad to a 25-frame canvas (one 24-frame segment): 9 frames come back, and stage 1's soundtrack (25
    frames' worth) is cut to 9 / 24 s. (With rounds, 161 of a 193-frame canvas: the golden test above.)"""
    tensors, _ = read("rounds0")
    output = pipe(
        prompt_embeds=_embeds(tensors), height=64, width=64, num_frames=9, frame_rate=24.0,
        generator=torch.Generator().manual_seed(0), output_type="pt",
    )  # fmt: skip
    assert output.frames.shape == (1, 9, 3, 64, 64)
    rate = output.audio_sample_rate
    assert output.audio.shape[-1] == round(9 / 24 * rate) < 25 / 24 * rate


def _refuses_before_work(pipe, monkeypatch, match: str, **arguments) -> None:
    def no_work(*args, **kwargs):
        raise AssertionError("the call started working before refusing")

    monkeypatch.setattr(dfr, "prompt_contexts", no_work)
    tensors, _ = read("rounds0")
    call = dict(prompt_embeds=_embeds(tensors), height=64, width=64, num_frames=25, frame_rate=24.0)
    with pytest.raises(ValueError, match=match):
        pipe(**{**call, **arguments})


@pytest.mark.parametrize("rounds", [3, -1, True, 1.0])
def test_rounds_outside_0_1_2_are_refused(pipe, monkeypatch, rounds):
    _refuses_before_work(
        pipe, monkeypatch, "temporal_upsample_rounds must be 0, 1 or 2", temporal_upsample_rounds=rounds
    )


def test_temporal_rounds_need_a_temporal_upsampler(pipe, monkeypatch):
    without = LTX2AVDFRPipeline(**{**pipe.components, "temporal_upsampler": None})
    video, _ = without(
        prompt_embeds=_embeds(read("rounds0")[0]), height=64, width=64, num_frames=9, output_type="latent",
        generator=torch.Generator().manual_seed(0), return_dict=False,
    )  # fmt: skip
    assert video.shape == (1, 128, 2, 2, 2)  # rounds 0 runs without one
    _refuses_before_work(
        without, monkeypatch, "needs a temporal_upsampler .*from_single_file", temporal_upsample_rounds=1
    )
    spatial = LTX2AVDFRPipeline(**{**pipe.components, "temporal_upsampler": pipe.latent_upsampler})
    _refuses_before_work(spatial, monkeypatch, r"upsample in time only .* spatial=True", temporal_upsample_rounds=2)


def test_a_model_without_the_keyframe_embedding_is_refused(pipe, monkeypatch):
    ltx23 = LTX2VideoTransformer3DModel(**{**tiny_transformer_config("2.3"), "num_layers": 1})
    older = LTX2AVDFRPipeline(**{**pipe.components, "transformer": ltx23})
    _refuses_before_work(older, monkeypatch, r"keyframe embedding \(config use_keyframes_abs_pos_embedding=True")


def test_unknown_detailing_adapter_and_factor_are_refused(pipe, monkeypatch):
    _refuses_before_work(pipe, monkeypatch, "detailing_adapter='pixel' is not an adapter", detailing_adapter="pixel")
    name = pipe.load_detailing_lora(_zero_lora(pipe.transformer, reference_downscale_factor="4"), "four")
    try:
        for factor in (0, True, 2.0):
            _refuses_before_work(
                pipe, monkeypatch, f"detailing_downscale_factor must be a positive int .* got {factor!r}",
                detailing_adapter=name, detailing_downscale_factor=factor,
            )  # fmt: skip
        assert pipe._detailing_factors[name] == 4  # the LoRA's own factor, used when none is given
    finally:
        pipe.transformer.disable_adapters()


def test_one_frame_is_refused_before_work(pipe, monkeypatch):
    _refuses_before_work(pipe, monkeypatch, r"num_frames=1 is not of the form 8k \+ 1 with k >= 1", num_frames=1)


def test_keyframe_slots_are_marked_generated_tokens_at_one_pixel_frame():
    state = video_latent_state(1, 4, 1, 2, 24.0, dtype=torch.float32)  # 8 tokens
    initial = torch.randn(1, 128, 2, 1, 2)
    slotted, first = append_keyframe_slots(state, KeyframeSlots((8, 24), initial), (4, 1, 2), 24.0)
    assert first == 8 and slotted.latent.shape == (1, 12, 128) and slotted.num_output_tokens == 8
    torch.testing.assert_close(slotted.latent[:, 8:], patchify_video(initial))  # started from the initial content
    assert torch.equal(slotted.clean_latent[:, 8:], torch.zeros(1, 4, 128))
    assert torch.equal(slotted.denoise_mask[:, 8:], torch.ones(1, 4, 1))  # generated, not conditioning
    assert slotted.keyframes_mask[0, :, 0].tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1]  # frame 0 and the slots
    times = slotted.positions[0, 0, 8:] * 24.0  # [k, k + 1) pixel frames, no causal shift
    torch.testing.assert_close(times, torch.tensor([[8.0, 9.0], [8.0, 9.0], [24.0, 25.0], [24.0, 25.0]]))
    assert slotted.positions[0, 2, 8:].tolist() == [[0, 32], [32, 64], [0, 32], [32, 64]]  # the full width
    torch.testing.assert_close(generated_keyframes(slotted, first, 2, (4, 1, 2)), initial)
    zeros, _ = append_keyframe_slots(state, KeyframeSlots((16,)), (4, 1, 2), 24.0)
    assert torch.equal(zeros.latent[:, 8:], torch.zeros(1, 2, 128))


@pytest.mark.parametrize(
    ("slots", "match"),
    [
        (KeyframeSlots((24, 16)), r"non-empty and increasing from 0, got \(24, 16\)"),
        (KeyframeSlots(()), "non-empty"),
        (KeyframeSlots((32,)), "slot at pixel frame 32 is outside the clip's 25 frames"),
        (KeyframeSlots((24,), torch.zeros(1, 128, 2, 1, 2)), r"expected \(B, 128, 1, 1, 2\)"),
    ],
)
def test_bad_keyframe_slots_are_refused(slots, match):
    state = video_latent_state(1, 4, 1, 2, 24.0, dtype=torch.float32)
    with pytest.raises(ValueError, match=match):
        append_keyframe_slots(state, slots, (4, 1, 2), 24.0)


def test_tile_conditions_move_to_the_tiles_own_frames():
    """Images at frames 0 and 16 of the requested clip sit at 0 and 32 in round 1's canvas (x2), 0 and 64 in round
    2's (x4); a tile keeps those inside it, at frames of its own clip."""
    first, later = VideoCondition(torch.zeros(1), 0), VideoCondition(torch.zeros(1), 16, 0.5)
    tiles = temporal_tiles([48, 96], 97, 2)  # [0, 48] and (lead-in) [0, 96]
    assert [c.frame_index for c in tile_conditions([first, later], tiles[0], 2)] == [0, 32]
    round_2 = temporal_tiles([48, 96, 144, 192], 193, 4)  # the third: [48, 144], the fourth: [96, 192]
    assert [(c.frame_index, c.strength) for c in tile_conditions([first, later], round_2[2], 4)] == [(16, 0.5)]
    assert tile_conditions([first, later], round_2[3], 4) == []


def test_carried_keyframes_merge_by_position_and_the_earlier_tile_wins():
    anchors = CarriedKeyframes((48, 96), torch.tensor([1.0, 2.0]).view(1, 1, 2, 1, 1))
    slots = [torch.tensor([10.0]).view(1, 1, 1, 1, 1), torch.tensor([20.0, 30.0]).view(1, 1, 2, 1, 1)]
    merged = merge_keyframes(anchors, [24, 24, 72], slots)  # tile 1's lead-in made slot 24 again
    assert merged.positions == (24, 48, 72, 96)
    assert merged.latents.flatten().tolist() == [10.0, 1.0, 30.0, 2.0]
    assert merged.at([96, 24]).flatten().tolist() == [2.0, 10.0]
    with pytest.raises(ValueError, match=r"no carried keyframe at pixel frames \[50\]"):
        merged.at([50])


# The `dfr` subcommand (ltx2_diffusers/cli/dfr.py), with the Command the CLI's table holds for it
DFR_COMMAND = Command(
    "dfr", "LTX2AVDFRPipeline", "LTX-2.5 keyframe slots, detailing, temporal x2 rounds (DFRPipeline)", 1024, 1536, 64,
    kind="dev", features=frozenset({"image", "keyframe", "enhance", "distilled_lora", "upsampler", "dfr"}),
)  # fmt: skip


def _dfr_args(*argv: str) -> argparse.Namespace:
    parser = OneLineParser(prog="ltx2-diffusers dfr")
    _add_common(parser, DFR_COMMAND)  # the DFR flags too ("dfr" in its features)
    return parser.parse_args(["a bird", *argv])


@pytest.mark.slow  # about 2 s: 17 frames decoded and written
def test_cli_writes_the_doubled_clip(pipe, tmp_path, monkeypatch):
    """Checks, loading (here: the fixture's components, for speed), the call and the mp4 at twice the frame rate."""
    monkeypatch.setattr(cli_dfr, "load_pipeline", lambda *args, **kwargs: LTX2AVDFRPipeline(**pipe.components))
    path = tmp_path / "bird.mp4"
    args = _dfr_args("-o", str(path), "--model", "tiny-2.5", "--frames", "9", "--height", "64", "--width", "64",
                     "--temporal-upsample-rounds", "1")  # fmt: skip
    summary = run_dfr(args, check_dfr(args, DFR_COMMAND))
    assert summary.startswith(f"wrote {path}: 17 frames of 64x64 at 48 fps (0.35 s)"), summary
    with av.open(str(path)) as container:
        assert container.streams.video[0].average_rate == 48
        assert sum(1 for _ in container.decode(video=0)) == 17


@pytest.mark.parametrize(
    ("argv", "flag", "message"),
    [
        (["--model", "tiny-2.5", "--temporal-upsampler", "x.safetensors"], "--temporal-upsampler", "only applies"),
        (["--model", "tiny-2.5", "--image-strength", "0.5"], "--image-strength", "only applies with --image"),
        (["--model", "tiny-2.5", "--detailing-lora", "d.safetensors:x"], "--detailing-lora", "d.safetensors:x"),
    ],
)
def test_cli_errors_before_loading(tmp_path, argv, flag, message):
    args = _dfr_args("-o", str(tmp_path / "x.mp4"), "--height", "64", "--width", "64", *argv)
    with pytest.raises(CLIError, match=message) as error:
        check_dfr(args, DFR_COMMAND)
    assert error.value.flag == flag
    with pytest.raises(ValueError, match=r"--frames=10 is not of the form 8\*k \+ 1"):
        check_dfr(_dfr_args("-o", str(tmp_path / "x.mp4"), "--frames", "10"), DFR_COMMAND)


def test_cli_rounds_need_the_temporal_upsampler_file(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model_index.json").write_text("{}")
    args = _dfr_args("-o", str(tmp_path / "x.mp4"), "--model", str(folder), "--height", "64", "--width", "64",
                     "--temporal-upsample-rounds", "2")  # fmt: skip
    with pytest.raises(CLIError, match="temporal rounds need the temporal x2 upscaler: pass its file"):
        check_dfr(args, DFR_COMMAND)


def test_prompts_batches_and_a_callback_across_every_stage(pipe):
    """A text prompt through the tiny Gemma, two videos per prompt from a generator each, and the step callback's
    running index over stage 1 (8 steps), stage 2 (3) and round 1's single tile (4) of a 25-frame canvas."""
    seen = []

    def callback(p, step, timestep, tensors):
        seen.append((step, tuple(tensors["video_latents"].shape)))
        return {}

    video, audio = pipe(
        "a bird", height=64, width=64, num_frames=9, num_videos_per_prompt=2, temporal_upsample_rounds=1,
        generator=[torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)], output_type="latent",
        return_dict=False, callback_on_step_end=callback,
    )  # fmt: skip
    assert video.shape == (2, 128, 3, 2, 2) and audio.shape[0] == 2
    assert (video[0] - video[1]).abs().max() > 1e-2  # each sample its own noise
    assert [step for step, _ in seen] == list(range(15))
    assert [shape[1] for _, shape in seen] == [4 + 1] * 8 + [16 + 4] * 3 + [28 + 4 + 4] * 4  # + anchor + slot tokens


@pytest.mark.gpu
def test_on_cuda_the_empty_audio_stream_draws_no_noise_and_runs_repeat():
    """The temporal rounds run video-only through the Euler-ancestral sampler with an EMPTY audio stream; its (B, 0, C)
    noise draw must leave the CUDA generator where it was, or the video noise would drift from the reference's (which
    draws video noise only). Then a bf16 run on the GPU repeats exactly from the same seed."""
    generator = torch.Generator("cuda").manual_seed(0)
    expected = torch.randn(4, 64, generator=generator, device="cuda")
    generator.manual_seed(0)
    torch.randn(1, 0, 128, generator=generator, device="cuda", dtype=torch.bfloat16)
    assert torch.equal(torch.randn(4, 64, generator=generator, device="cuda"), expected)
    pipe = LTX2AVDFRPipeline(
        **build_tiny_two_stage_pipeline(seed=0, model_version="2.5", duration_head=False).components
    )
    pipe.register_modules(temporal_upsampler=LTX2LatentUpsamplerModel(
        **{**TINY_LATENT_UPSAMPLER_CONFIG, "spatial_upsample": False, "temporal_upsample": True}))  # fmt: skip
    pipe = pipe.to("cuda", torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    runs = [
        pipe("a bird", height=128, width=128, num_frames=41, temporal_upsample_rounds=2, output_type="latent",
             generator=torch.Generator("cuda").manual_seed(5), return_dict=False)[0]
        for _ in range(2)
    ]  # fmt: skip
    assert runs[0].shape == (1, 128, 21, 4, 4) and torch.isfinite(runs[0]).all()
    assert torch.equal(runs[0], runs[1])


def test_a_memory_budget_is_checked_for_stage_2_before_any_work(pipe, monkeypatch):
    """Stage 2 is the largest transformer call: 25 frames -> a 25-frame canvas (4 latent frames) and one slot, so a
    plain clip of 5 latent frames (33); with the detailing reference at factor 2 another 4 // 4 = 1 (41)."""
    requests = []

    def check(height, width, num_frames, batch_size=1, *args, frame_rate=24.0, **kwargs):
        requests.append((height, width, num_frames, batch_size, frame_rate))
        raise ValueError("over the budget (recorded)")

    monkeypatch.setattr(pipe, "check_memory_budget", check)
    _refuses_before_work(pipe, monkeypatch, r"over the budget \(recorded\)")
    assert requests == [(64, 64, 33, 1, 24.0)]
    canvas = keyframe_canvas(121)  # 15 latent frames, 5 slots
    assert (stage_2_request_frames(canvas, None), stage_2_request_frames(canvas, 2)) == (161, 193)
