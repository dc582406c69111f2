"""LTX2AVHDRICLoraPipeline (tiny, CPU; a random HDR IC-LoRA with reference_downscale_factor 2 and hdr_transform).

(0) Parity with ltx-pipelines 1.2.0's `HDRICLoraPipeline` without the oracle: tests/goldens/hdr/stage.safetensors
    (scripts/goldens/hdr.py) holds a tiny audio-video model's weights, the video context, encoded inputs and both
    stages' video latents: stage 1 (the input's tokens at 1/2 size, video-only noise, 8 distilled steps) and the tiled
    stage 2 (tiles, cut inputs, per-tile seeds, blending); and the default tiling's tiles on several latent grids.
(1) Output: float32 scene-linear (B, F, H, W, 3) frames = the curve's inverse of the VAE's decode of the latents; the
    transformer only ever runs video-only (no audio tokens, no audio noise), with the IC-LoRA on in BOTH stages.
(2) high_quality: each input frame twice, 2F - 1 frames generated, F returned. ACEScct decodes through ACEScct.
(3) The frames written as EXR files read back (skipped without OpenEXR).
(4) Bad arguments and LoRA metadata are refused before any model runs.
"""

import copy
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.pipelines import adapters_enabled
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ltx2_diffusers import LTX2AVHDRICLoraPipeline
from ltx2_diffusers.loaders.lora import read_lora
from ltx2_diffusers.loaders.transformer_keys import original_to_diffusers_keys
from ltx2_diffusers.models.transformer_ltx2 import LTX2VideoTransformer3DModel
from ltx2_diffusers.pipelines.conditioning import unpatchify_video
from ltx2_diffusers.pipelines.denoising import ReferenceCondition, TextContexts, latent_grid
from ltx2_diffusers.pipelines.latent_tiles import latent_tiles
from ltx2_diffusers.pipelines.pipeline_ltx2_av_hdr_ic_lora import (
    HDR_STAGE_2_TILES,
    VideoOnlyTransformer,
    decode_linear,
    denoise_video_only,
    hdr_transfer_of,
    referenced_video_state,
    refine_in_tiles,
    reflect_padded_pixels,
)
from ltx2_diffusers.pipelines.tiny import build_tiny_two_stage_pipeline, tiny_transformer_config
from ltx2_diffusers.schedulers.scheduling_ltx2 import LTX2Scheduler
from ltx2_diffusers.utils import hdr

GOLDENS = Path(__file__).parent / "goldens" / "hdr"
FRAMES = 9
# 128x128: stage 1 at 64x64 (2x2 latents), the input at 32x32 (1x1); one step per stage to stay fast on CPU
FAST = {"num_frames": FRAMES, "height": 128, "width": 128, "sigmas": (1.0, 0.0), "stage_2_sigmas": (0.909375, 0.0)}


@pytest.fixture(scope="module")
def golden_stage() -> tuple[LTX2VideoTransformer3DModel, dict, dict]:
    """(our transformer with the golden's weights, the golden's tensors, its stage settings)."""
    with safe_open(GOLDENS / "stage.safetensors", "pt") as f:
        stage = json.loads(f.metadata()["stage"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    weights = {k: v.float() for k, v in tensors.items() if k.startswith("model.diffusion_model.")}
    transformer = LTX2VideoTransformer3DModel(**{**tiny_transformer_config("2.0"), "num_layers": 2}).eval()
    mapping = original_to_diffusers_keys(weights, transformer.config, set(transformer.state_dict()))
    transformer.load_state_dict({mapping[k]: v for k, v in weights.items()}, strict=True)
    return transformer, tensors, stage


def _contexts(tensors: dict) -> TextContexts:
    context = tensors["input.video_context"]
    return TextContexts(context, torch.zeros(1, context.shape[1], 8))  # the audio context is never read


@torch.no_grad()
def _golden_stage_1(golden_stage, seed_offset: int = 0) -> torch.Tensor:
    transformer, tensors, stage = golden_stage
    grid = latent_grid(stage["height"], stage["width"], stage["frames"])
    reference = ReferenceCondition(tensors["input.reference_latent"], 1.0, stage["factor"])
    generator = torch.Generator().manual_seed(stage["seed"] + seed_offset)
    video = referenced_video_state(
        1, grid, stage["fps"], [reference], generator=generator, dtype=torch.float32, device=torch.device("cpu")
    )
    video = denoise_video_only(transformer, video, _contexts(tensors), tensors["input.sigmas"])
    return unpatchify_video(video.output_tokens(), *grid)


def test_stage_1_equals_ltx_pipelines_1_2(golden_stage):
    expected = golden_stage[1]["output.video_latent"]
    latent = _golden_stage_1(golden_stage)
    assert latent.shape == expected.shape == (1, 128, 3, 4, 4) and expected.abs().mean() > 0.5
    torch.testing.assert_close(latent, expected, rtol=0, atol=1e-5)  # bit for bit on the CPU here
    assert (_golden_stage_1(golden_stage, seed_offset=1) - expected).abs().max() > 1e-2  # the comparison can fail


@torch.no_grad()
def test_tiled_stage_2_equals_ltx_pipelines_1_2(golden_stage):
    """The default 2x2x2 tiling clamped to a 3x6x6 latent (overlaps 1 / 4 / 4), the input cut to each tile, noise
    seeded seed + tile index, two steps, the tiles blended."""
    transformer, tensors, stage = golden_stage
    latent = tensors["input.upsampled_latent"]
    tiles = latent_tiles(tuple(latent.shape[2:]), HDR_STAGE_2_TILES)
    assert len(tiles) == 8
    reference = ReferenceCondition(tensors["input.full_reference_latent"], 1.0, stage["factor"])
    refined = refine_in_tiles(
        transformer, latent, [reference], _contexts(tensors), tensors["input.stage_2_sigmas"], frame_rate=stage["fps"],
        seed=stage["seed"], tiles=tiles,
    )  # fmt: skip
    expected = tensors["output.refined_latent"]
    assert expected.abs().mean() > 0.5
    torch.testing.assert_close(refined, expected, rtol=0, atol=1e-5)
    whole = latent_tiles(tuple(latent.shape[2:]), ((1, 0), (1, 0), (1, 0)))  # untiled: another result
    untiled = refine_in_tiles(
        transformer, latent, [reference], _contexts(tensors), tensors["input.stage_2_sigmas"], frame_rate=stage["fps"],
        seed=stage["seed"], tiles=whole,
    )  # fmt: skip
    assert (untiled - expected).abs().max() > 1e-2


def test_tiles_equal_ltx_cores(golden_stage):
    """Bounds and blend weights of the default stage-2 tiling, clamped to each latent grid, as ltx-core makes them;
    the weights of overlapping tiles sum to 1 everywhere."""
    tensors = golden_stage[1]
    grids = [tuple(map(int, k.split(".")[1].split("x"))) for k in tensors if k.endswith(".bounds")]
    assert len(grids) == 6
    for grid in grids:
        name = "x".join(map(str, grid))
        tiles = latent_tiles(grid, HDR_STAGE_2_TILES)
        bounds = torch.tensor([[v for s in (t.frames, t.height, t.width) for v in (s.start, s.stop)] for t in tiles])
        assert torch.equal(bounds, tensors[f"tiles.{name}.bounds"]), grid
        weights = torch.cat([t.weights.reshape(-1) for t in tiles])
        torch.testing.assert_close(weights, tensors[f"tiles.{name}.weights"], rtol=0, atol=1e-7)
        total = torch.zeros(grid)
        for t in tiles:
            total[t.frames, t.height, t.width] += t.weights
        torch.testing.assert_close(total, torch.ones(grid))


def test_input_frames_are_prepared_as_the_references():
    """Shrunk to fit, reflect- (or replicate-) padded at the bottom and right, in [-1, 1]: ltx-pipelines 1.2.0's
    `load_video_conditioning_hdr` values (tests/goldens/hdr/hdr.safetensors)."""
    golden = load_file(GOLDENS / "hdr.safetensors")
    frames = golden["in.sdr_frames"].numpy()  # (2, 20, 30, 3) uint8
    sizes = [tuple(map(int, k.rsplit(".", 1)[1].split("x"))) for k in golden if k.startswith("out.reflect_pad.")]
    assert sorted(sizes) == [(16, 16), (24, 40), (32, 32), (48, 48)]
    for height, width in sizes:
        expected = golden[f"out.reflect_pad.{height}x{width}"]
        torch.testing.assert_close(reflect_padded_pixels(frames, height, width), expected, rtol=0, atol=1e-6)


def test_sizes_off_the_64_grid_are_generated_aligned_and_cropped_back(pipe):
    calls, forward = [], pipe.transformer.forward

    def spy(*args, **kwargs):
        calls.append(kwargs["hidden_states"].shape[1])
        return forward(*args, **kwargs)

    pipe.transformer.forward = spy
    try:
        arguments = {**FAST, "height": 120, "width": 100}
        frames = pipe(_input_frames(), "a lamp", **arguments, generator=torch.Generator().manual_seed(0)).frames
    finally:
        del pipe.transformer.forward
    assert frames.shape == (1, FRAMES, 120, 100, 3)
    assert calls[0] == 2 * 2 * 2 + 2 * 1 * 1  # generated at 128 x 128: stage 1 at 64 x 64


def _input_frames(frames: int = FRAMES, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (frames, 40, 48, 3), dtype=np.uint8)


def _hdr_lora_file(transformer, path, transfer: str = "logc3", seed: int = 0) -> str:
    """A random rank-2 LoRA on attn1.to_q / to_v of every block, with the HDR IC-LoRA's metadata."""
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, module in transformer.named_modules():
        if name.startswith("transformer_blocks.") and name.split(".", 2)[-1] in ("attn1.to_q", "attn1.to_v"):
            tensors[f"{name}.lora_A.weight"] = torch.randn(2, module.in_features, generator=generator) / 4
            tensors[f"{name}.lora_B.weight"] = 0.5 * torch.randn(module.out_features, 2, generator=generator)
    save_file(tensors, str(path), metadata={"reference_downscale_factor": "2", "hdr_transform": transfer})
    return str(path)


def _hdr_pipe() -> LTX2AVHDRICLoraPipeline:
    components = build_tiny_two_stage_pipeline(0).components
    pipe = LTX2AVHDRICLoraPipeline(**{**components, "scheduler": LTX2Scheduler.distilled()})
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def pipe(tmp_path_factory) -> LTX2AVHDRICLoraPipeline:
    pipe = _hdr_pipe()
    assert pipe.load_hdr_lora(_hdr_lora_file(pipe.transformer, tmp_path_factory.mktemp("lora") / "hdr.safetensors"))
    assert pipe.reference_downscale_factor == 2 and pipe.hdr_transfer == "logc3"
    return pipe


@pytest.fixture(scope="module")
def result(pipe):
    """One call, with every transformer call recorded, and the latents of the same call."""
    calls, forward = [], pipe.transformer.forward

    def spy(*args, **kwargs):
        calls.append(
            (kwargs.get("audio_hidden_states"), kwargs["hidden_states"].shape, adapters_enabled(pipe.transformer))
        )
        return forward(*args, **kwargs)

    pipe.transformer.forward = spy
    try:
        output = pipe(_input_frames(), "a lamp", **FAST, generator=torch.Generator().manual_seed(0))
    finally:
        del pipe.transformer.forward
    (latents,) = pipe(
        _input_frames(), "a lamp", **FAST, output_type="latent", generator=torch.Generator().manual_seed(0),
        return_dict=False,
    )  # fmt: skip
    return output, latents, calls


@torch.no_grad()
def test_output_is_the_inverse_curve_of_the_decode(pipe, result):
    output, latents, _ = result
    assert output.transfer == "logc3" and latents.shape == (1, 128, 2, 4, 4)
    frames = output.frames
    assert frames.dtype == torch.float32 and frames.shape == (1, FRAMES, 128, 128, 3)
    assert torch.isfinite(frames).all() and frames.min() >= 0.0
    pixels = pipe.vae.decode(latents * pipe.vae.latents_std.view(-1, 1, 1, 1) + pipe.vae.latents_mean.view(-1, 1, 1, 1))
    codes = ((pixels[0].float() + 1.0) / 2.0).clamp(0.0, 1.0).permute(0, 2, 3, 4, 1)  # (1, F, H, W, 3)
    torch.testing.assert_close(frames, hdr.logc3_decode(codes).clamp(min=0.0), rtol=1e-5, atol=1e-6)


def test_video_only_with_the_ic_lora_in_both_stages(result):
    _, _, calls = result
    # one step per stage: stage 1, then stage 2 in 2 x 2 x 2 tiles of the 2x4x4 latent (1 frame, 3x3 cells each)
    assert len(calls) == 1 + 8
    assert all(audio is None for audio, _, _ in calls)
    # stage 1: 2x2x2 generated + 1x1x2 input tokens; stage 2: 3x3 per tile + the input cut to it (cells // 2)
    assert [shape[1] for _, shape, _ in calls] == [8 + 2] + [9 + 1, 9 + 2, 9 + 2, 9 + 4] * 2
    assert all(enabled for _, _, enabled in calls)


def test_no_audio_noise_is_drawn(pipe):
    """The call's generator draws stage 1's video noise alone, (8 + 2) x 128 normals (no audio noise); stage 2's tiles
    draw from generators seeded with its seed + tile index, as the reference's."""
    generator = torch.Generator().manual_seed(3)
    pipe(_input_frames(), "a lamp", **FAST, output_type="latent", generator=generator)
    expected = torch.Generator().manual_seed(3)
    torch.randn(1, 10, 128, generator=expected)
    assert torch.equal(generator.get_state(), expected.get_state())


@torch.no_grad()
def test_a_bf16_vae_decodes_in_float32_and_stays_bf16(pipe):
    """decode_linear: a bf16 VAE decodes in float32 exactly as a float32 copy of it would, and is bf16 after."""
    vae = copy.deepcopy(pipe.vae).to(torch.bfloat16)
    latents = torch.randn(1, 128, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    frames = decode_linear(vae, latents, "logc3")
    assert vae.dtype == torch.bfloat16 and frames.dtype == torch.float32 and frames.shape == (1, 1, 64, 64, 3)
    upcast = copy.deepcopy(vae).to(torch.float32)
    expected = decode_linear(upcast, latents, "logc3", decode_dtype=None)
    torch.testing.assert_close(frames, expected, rtol=0, atol=0)
    assert (decode_linear(vae, latents, "logc3", decode_dtype=None) - expected).abs().max() > 1e-3  # bf16 differs


def test_untiled_stage_2(pipe):
    one = ((1, 0), (1, 0), (1, 0))
    generator = torch.Generator().manual_seed(0)
    (latent,) = pipe(_input_frames(), "a lamp", **FAST, stage_2_tiles=one, output_type="latent", generator=generator,
                     return_dict=False)  # fmt: skip
    assert latent.shape == (1, 128, 2, 4, 4) and torch.isfinite(latent).all()


def test_high_quality_generates_twice_the_frames(pipe):
    calls, forward = [], pipe.transformer.forward

    def spy(*args, **kwargs):
        calls.append(kwargs["hidden_states"].shape[1])
        return forward(*args, **kwargs)

    pipe.transformer.forward = spy
    try:
        frames = pipe(_input_frames(12), "a lamp", **FAST, high_quality=True).frames
    finally:
        del pipe.transformer.forward
    assert frames.shape == (1, FRAMES, 128, 128, 3)
    assert calls[0] == 3 * 2 * 2 + 3 * 1 * 1  # 17 generated frames = 3 latent frames; the input's 9 -> 17 too


@torch.no_grad()
def test_acescct_decodes_through_acescct(pipe, result, tmp_path):
    """hdr_transfer="acescct" (an ACEScct LoRA's metadata gives it too): ACEScct codes of ACEScg -> Rec.709."""
    lora = read_lora(_hdr_lora_file(pipe.transformer, tmp_path / "cct.safetensors", "acescct"))
    assert hdr_transfer_of(lora) == "acescct"
    generator = torch.Generator().manual_seed(0)
    output = pipe(_input_frames(), "a lamp", **FAST, hdr_transfer="acescct", output_type="np", generator=generator)
    assert output.transfer == "acescct" and isinstance(output.frames, np.ndarray)
    latents = result[1]
    pixels = pipe.vae.decode(latents * pipe.vae.latents_std.view(-1, 1, 1, 1) + pipe.vae.latents_mean.view(-1, 1, 1, 1))
    codes = ((pixels[0].float() + 1.0) / 2.0).clamp(0.0, 1.0).permute(0, 2, 3, 4, 1)
    expected = hdr.acescg_to_rec709(hdr.acescct_decode(codes)).clamp(min=0.0)
    np.testing.assert_allclose(output.frames, expected.numpy(), rtol=1e-5, atol=1e-6)


def test_frames_round_trip_through_exr(result, tmp_path):
    pytest.importorskip("OpenEXR")
    from ltx2_diffusers.utils.hdr_io import read_exr_frames, write_exr_frames

    frames = result[0].frames[0]
    paths = write_exr_frames(tmp_path / "exr", frames, half=False)
    assert len(paths) == FRAMES
    torch.testing.assert_close(read_exr_frames(tmp_path / "exr"), frames, rtol=0, atol=0)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"hdr_transfer": "pq"}, ValueError, r"hdr_transfer='pq' is not one of \('logc3', 'acescct'\)"),
        ({"reference_strength": 1.5}, ValueError, r"reference_strength=1.5 is outside \[0, 1\]"),
        ({"num_frames": 10}, ValueError, r"num_frames=10 is not of the form 8\*k \+ 1"),
        ({"height": 0}, ValueError, r"height and width must be positive ints, got 0 x 128"),
        ({"output_type": "pil"}, ValueError, r"output_type='pil' is not one of 'pt', 'np', 'latent'"),
        ({"high_quality": "yes"}, TypeError, "high_quality must be True or False, got 'yes'"),
        ({"decode_dtype": torch.int8}, TypeError, "decode_dtype must be a floating torch.dtype or None"),
        ({"stage_2_tiles": ((2, 8), (2, 6))}, ValueError, r"stage_2_tiles must be three \(count >= 1, overlap >= 0\)"),
        (
            {"video": _input_frames(5)},
            ValueError,
            r"the input's frame count \(5 frames are used\)=5 is not of the form",
        ),
    ],
)
def test_errors_before_any_model_runs(pipe, monkeypatch, kwargs, error, message):
    def refuse(*args, **kwargs):
        raise AssertionError("a model ran")

    for module in (pipe.transformer, pipe.vae, pipe.text_encoder, pipe.latent_upsampler):
        monkeypatch.setattr(module, "forward", refuse)
    monkeypatch.setattr(pipe.vae, "encode", refuse)
    arguments = {"video": _input_frames(), "prompt": "a lamp", **FAST, **kwargs}
    with pytest.raises(error, match=message):
        pipe(**arguments)


def test_a_scheduler_without_fixed_sigmas_is_refused(pipe, monkeypatch):
    monkeypatch.setattr(pipe, "scheduler", LTX2Scheduler())
    arguments = {**FAST, "sigmas": None}
    with pytest.raises(ValueError, match="runs on the distilled checkpoint's fixed sigmas.*kind='distilled'"):
        pipe(_input_frames(), "a lamp", **arguments)


def test_unknown_hdr_transform_metadata_is_refused(pipe, tmp_path):
    before = dict(pipe.transformer.peft_config)
    with pytest.raises(ValueError, match=r"declares hdr_transform='pq'; the known transfers are"):
        pipe.load_hdr_lora(_hdr_lora_file(pipe.transformer, tmp_path / "pq.safetensors", "pq"), adapter_name="pq")
    assert dict(pipe.transformer.peft_config) == before and pipe.hdr_transfer == "logc3"  # refused before loading


def test_video_only_transformer_refuses_audio_tokens(pipe):
    with pytest.raises(ValueError, match="runs without audio, but got 3 audio tokens"):
        VideoOnlyTransformer(pipe.transformer)(audio_hidden_states=torch.zeros(1, 3, 128))


# ----------------------------------------------------------------------------------------------------------------------
# The `hdr` subcommand


@pytest.fixture(scope="module")
def cli_inputs(tmp_path_factory) -> dict:
    from helpers.cli_media import write_clip, write_lora

    folder = tmp_path_factory.mktemp("hdr_cli")
    metadata = {"reference_downscale_factor": "2", "hdr_transform": "logc3"}
    return {
        "clip": write_clip(folder / "shot.mp4", num_frames=9, size=128, sample_rate=None),
        "lora": write_lora(folder / "hdr.safetensors", seed=3, metadata=metadata),
        "exr_folder": folder,
    }


def _cli(inputs: dict, output, *extra: str) -> list[str]:
    return ["hdr", "a lamp", "-o", str(output), "--input", str(inputs["clip"]), "--hdr-lora", str(inputs["lora"]),
            "--model", "tiny", "--frames", "9", *extra]  # fmt: skip


def test_cli_writes_exr_frames_and_an_hlg_mp4(cli_inputs, tmp_path, capsys):
    pytest.importorskip("OpenEXR")
    import av

    from ltx2_diffusers.cli import main
    from ltx2_diffusers.utils.hdr_io import exr_header, read_exr_frames

    assert main(_cli(cli_inputs, tmp_path / "out", "--hlg", "--exr-space", "acescg")) == 0
    frames = read_exr_frames(tmp_path / "out" / "shot_exr")
    assert frames.shape == (FRAMES, 128, 128, 3) and frames.min() >= 0.0  # the input's size
    assert exr_header(tmp_path / "out" / "shot_exr" / "frame_00000.exr")["colorSpace"] == "ACEScg"
    with av.open(str(tmp_path / "out" / "shot.mp4")) as container:
        context = container.streams.video[0].codec_context
        assert (context.pix_fmt, context.color_trc, container.streams.video[0].frames) == ("yuv420p10le", 18, FRAMES)
    assert "9 EXR frames, ACEScg" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--frames", "10"], r"--frames=10 is not of the form 8\*k \+ 1"),
        (["--height", "0"], "--height: 0: the output needs at least one pixel"),
        (["--width", "99", "--hlg"], "--hlg: 4:2:0 HEVC needs an even height and width; .*shot.mp4 gives 99x128"),
        (["--input", "missing.mp4"], "--input: missing.mp4: no such file or folder"),
    ],
)
def test_cli_errors_before_loading(cli_inputs, tmp_path, capsys, extra, message):
    from ltx2_diffusers.cli import main

    argv = _cli(cli_inputs, tmp_path / "out", *extra)
    if "--input" in extra:  # the later --input wins in argparse
        argv = [a for i, a in enumerate(argv) if not (a == "--input" and i < argv.index("--hdr-lora"))]
        argv.remove(str(cli_inputs["clip"]))
    assert main(argv) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_cli_without_openexr_says_how_to_install(cli_inputs, tmp_path, capsys, monkeypatch):
    from ltx2_diffusers.cli import main

    monkeypatch.setitem(sys.modules, "OpenEXR", None)
    assert main(_cli(cli_inputs, tmp_path / "out")) == 2
    assert 'writing EXR frames needs the OpenEXR package: pip install "ltx2-diffusers[hdr]"' in capsys.readouterr().err


def test_cli_refuses_an_exr_folder_as_input(cli_inputs, tmp_path, capsys):
    from ltx2_diffusers.cli import main

    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "frame_00000.exr").write_bytes(b"")
    argv = _cli(cli_inputs, tmp_path / "out")
    argv[argv.index("--input") + 1] = str(tmp_path / "frames")
    assert main(argv) == 2
    assert "holds EXR frames: the HDR IC-LoRA re-grades SDR Rec.709 video" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@torch.no_grad()
def test_bf16_on_cuda_gives_the_inverse_curve_of_the_decode(tmp_path):
    """The tiny pipeline in bf16 on the GPU: finite, non-negative frames that are the LogC3 inverse of the float32 VAE's
    decode of the call's latents (the bf16 VAE decodes in float32 and is bf16 again after the call)."""
    pipe = _hdr_pipe().to("cuda", torch.bfloat16)
    pipe.load_hdr_lora(_hdr_lora_file(pipe.transformer, tmp_path / "hdr.safetensors"))
    frames = pipe(_input_frames(), "a lamp", **FAST, generator=torch.Generator("cuda").manual_seed(0)).frames
    assert frames.device.type == "cuda" and frames.dtype == torch.float32 and frames.shape == (1, FRAMES, 128, 128, 3)
    assert torch.isfinite(frames).all() and frames.min() >= 0.0 and pipe.vae.dtype == torch.bfloat16  # restored
    (latents,) = pipe(
        _input_frames(), "a lamp", **FAST, output_type="latent", generator=torch.Generator("cuda").manual_seed(0),
        return_dict=False,
    )  # fmt: skip
    vae = pipe.vae.to(torch.float32)
    pixels = vae.decode(latents.float() * vae.latents_std.view(-1, 1, 1, 1) + vae.latents_mean.view(-1, 1, 1, 1))
    codes = ((pixels[0].float() + 1.0) / 2.0).clamp(0.0, 1.0).permute(0, 2, 3, 4, 1)
    torch.testing.assert_close(frames, hdr.logc3_decode(codes).clamp(min=0.0), rtol=1e-4, atol=1e-5)
