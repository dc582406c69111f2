"""Golden stage states of ltx-pipelines 1.2.0's `DFRPipeline` on a tiny LTX-2.5 model, for tests/test_pipeline_dfr.py
and tests/test_dfr_layout.py.

Run with the 1.2.0 oracle's Python (ltx-core / ltx-pipelines 1.2.0 importable):

    ORACLE_PYTHON scripts/goldens/dfr.py [--out tests/goldens/dfr]

`DFRPipeline.__call__` runs unchanged around stand-ins for what is not the transformer: the prompt encoder returns
seeded contexts, no images, the spatial x2 and temporal x2 upsamplers are fixed functions (nearest-neighbour x2 in
space, each latent frame twice in time with the first copy dropped, both times 0.9), the decoders only record the
latents they get. The transformer is the tiny seeded LTX-2.5 model of scripts/goldens/pipelines25.py (the same
`build(seed=5)`: its weights are tests/goldens/pipelines25/distilled.safetensors, not stored again), in float32 on the
CPU, as a stage whose every call is recorded. The temporal rounds' Euler-ancestral loop keeps float32 samples
(`model_dtype=float32`; the pipeline's default rounds them to bf16 between steps, which a float32 model cannot take).

Two runs, each in its own file (inputs `input.*`; the video latents of the first four stage calls (stage 1, stage 2,
round 1's tiles) `call.<i>.video_latent`; every call's generated keyframes `call.<i>.keyframes`; and what the decoders
got, `output.video_latent` and `output.audio_latent` (stage 1's audio)):
  - rounds0.safetensors: num_frames 25 (one 24-frame segment, no padding), rounds 0, the detailing IC-LoRA's
    reference on (its weights left out: the stage-2 stage is the same model);
  - rounds2.safetensors: num_frames 41 (padded to a 49-frame canvas of two segments), rounds 2, no detailing: 2 tiles
    in round 1, 4 in round 2, the output trimmed to 161 frames.
And layout.json: `dfr_layout`'s canvases and tiles for a range of frame counts (the literal values the layout tests
restate). Only tensors and numbers are written; nothing of ltx-core / ltx-pipelines is copied.
"""

import argparse
import json
import sys
from functools import partial
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import ltx_pipelines.dfr_pipeline as dfr
import torch
from ltx_core.types import Audio
from ltx_pipelines.dfr_layout import resolve_canvas, tile_ranges
from pipelines25 import SECTION, TinyStage, build  # scripts/goldens/pipelines25.py (the script's folder is on sys.path)
from safetensors.torch import save_file

HEIGHT, WIDTH, FRAME_RATE, SEED, TEXT_TOKENS = 64, 64, 24.0, 42, 6
RUNS = {"rounds0": {"num_frames": 25, "rounds": 0, "detailing": True},
        "rounds2": {"num_frames": 41, "rounds": 2, "detailing": False}}  # fmt: skip


def spatial_x2(latent: torch.Tensor) -> torch.Tensor:
    return latent.repeat_interleave(2, dim=3).repeat_interleave(2, dim=4) * 0.9


def temporal_x2(latent: torch.Tensor) -> torch.Tensor:
    return latent.repeat_interleave(2, dim=2)[:, :, 1:] * 0.9


class RecordingStage(TinyStage):
    def __init__(self, model: torch.nn.Module, calls: list):
        super().__init__(model)
        self.calls = calls

    def __call__(self, *args, **kwargs):
        video, audio = super().__call__(*args, **kwargs)
        self.calls.append((video, audio))
        return video, audio


class ImageConditioner:
    """No images: the conditionings come from `combined_image_conditionings(images=[])`, which encodes nothing."""

    def resolve_crf(self, images: list) -> list:
        return images

    def __call__(self, make_conditionings):
        return make_conditionings(None)


class VideoDecoder:
    def __init__(self, record):
        self.record, self.checkpoint_path, self.diffvae_optimization = record, None, None

    def __call__(self, latent, tiling, generator):
        return self.record(latent, tiling, generator)


def contexts() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    video = torch.randn(1, TEXT_TOKENS, SECTION["cross_attention_dim"], generator=generator)
    audio = torch.randn(1, TEXT_TOKENS, SECTION["audio_cross_attention_dim"], generator=generator)
    return video, audio


def run(model: torch.nn.Module, num_frames: int, rounds: int, detailing: bool) -> dict[str, torch.Tensor]:
    video_context, audio_context = contexts()
    calls, decoded = [], {}
    pipeline = dfr.DFRPipeline.__new__(dfr.DFRPipeline)  # only the fields __call__ reads
    pipeline.device, pipeline.dtype = torch.device("cpu"), torch.float32
    pipeline._detailing_lora = ("the detailing LoRA (weights left out)",) if detailing else ()
    pipeline._detailing_downscale = 2
    pipeline.stage = pipeline.stage_detailing = RecordingStage(model, calls)
    pipeline.prompt_encoder = lambda prompts, **_: [SimpleNamespace(video_encoding=video_context,
                                                                    audio_encoding=audio_context)]  # fmt: skip
    pipeline.image_conditioner = ImageConditioner()
    pipeline.upsampler, pipeline.temporal_upsampler = spatial_x2, temporal_x2
    pipeline.duration_predictor = None

    def video_decoder(latent, tiling, generator):
        decoded["video"] = latent.clone()
        return iter(())

    def audio_decoder(latent):
        decoded["audio"] = latent.clone()
        return Audio(waveform=torch.zeros(2, 48000), sampling_rate=48000)

    pipeline.video_decoder = VideoDecoder(video_decoder)
    pipeline.audio_decoder = audio_decoder
    originals = dfr.ensure_tiling_config, dfr.tiling_scale_factors_for_vae, dfr.euler_ancestral_denoising_loop
    dfr.ensure_tiling_config = lambda *a, **k: None
    dfr.tiling_scale_factors_for_vae = lambda *a, **k: None
    dfr.euler_ancestral_denoising_loop = partial(originals[2], model_dtype=torch.float32)
    try:
        with torch.inference_mode():
            _, _, frames, _ = pipeline(prompt="", seed=SEED, height=HEIGHT, width=WIDTH, frame_rate=FRAME_RATE,
                                       images=[], num_frames=num_frames, temporal_upsample_rounds=rounds)  # fmt: skip
    finally:
        dfr.ensure_tiling_config, dfr.tiling_scale_factors_for_vae, dfr.euler_ancestral_denoising_loop = originals
    assert frames == (num_frames - 1) * 2**rounds + 1, frames
    assert torch.equal(decoded["audio"], calls[0][1].latent)  # the shipped audio is stage 1's
    tensors = {"input.video_context": video_context, "input.audio_context": audio_context,
               "input.seed": torch.tensor(SEED), "output.video_latent": decoded["video"],
               "output.audio_latent": decoded["audio"]}  # fmt: skip
    for index, (video, _) in enumerate(calls):
        if index < 4:  # stage 1, stage 2 and round 1's tiles; round 2's reach the output only
            tensors[f"call.{index}.video_latent"] = video.latent.clone()
        if video.generated_keyframes is not None:
            tensors[f"call.{index}.keyframes"] = video.generated_keyframes.clone()
    return {name: t.contiguous() for name, t in tensors.items()}


def layouts() -> dict:
    """Canvases for every 8k + 1 frame count up to 257 and the tiles of rounds 1 and 2 after each canvas."""
    table = {}
    for num_frames in range(9, 258, 8):
        canvas_frames, segment, positions = resolve_canvas(num_frames)
        entry = {"canvas": [canvas_frames, segment, positions], "rounds": []}
        frames, seams = canvas_frames, positions
        for round_index in (1, 2):
            frames, seams = 2 * (frames - 1) + 1, [2 * p for p in seams]
            tiles = [list(t[:4]) + [list(t.anchor_kf_global), list(t.slot_kf_global), t.drop_latent_prefix]
                     for t in tile_ranges(seams, frames, 2**round_index)]  # fmt: skip
            entry["rounds"].append({"frames": frames, "seams": seams, "tiles": tiles})
            seams = sorted({*seams, *(s for t in tiles for s in t[5])})
        table[num_frames] = entry
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("tests/goldens/dfr"))
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    model = build(seed=5)
    for name, settings in RUNS.items():
        tensors = run(model, **settings)
        file_metadata = {"height": str(HEIGHT), "width": str(WIDTH), "frame_rate": str(FRAME_RATE),
                    **{k: json.dumps(v) for k, v in settings.items()}}  # fmt: skip
        path = out / f"{name}.safetensors"
        save_file(tensors, str(path), metadata=file_metadata)
        print("wrote", path, path.stat().st_size, "bytes:", {k: tuple(v.shape) for k, v in tensors.items()})
    (out / "layout.json").write_text(json.dumps(layouts(), separators=(",", ":")) + "\n")
    stages = "stage 1, stage 2 and round 1's video latents, every call's keyframes, the output: fp32 atol 1e-4"
    golden = {
        "generator": "scripts/goldens/dfr.py",
        "oracle": {
            "ltx-core": metadata.version("ltx-core"),
            "ltx-pipelines": metadata.version("ltx-pipelines"),
            "torch": torch.__version__,
            "python": sys.version.split()[0],
        },
        "files": {
            **{
                f"{name}.safetensors": {
                    "spec": "1.2 §6.1 dfr_pipeline",
                    "settings": {**settings, "height": HEIGHT, "width": WIDTH, "frame_rate": FRAME_RATE, "seed": SEED},
                    "tolerance": stages,
                }
                for name, settings in RUNS.items()
            },  # fmt: skip
            "layout.json": {
                "spec": "1.2 §6.1 dfr_layout",
                "settings": {"num_frames": "9..257, 8k + 1"},
                "tolerance": "exact",
            },  # fmt: skip
        },
    }
    (out / "golden.json").write_text(json.dumps(golden, indent=1) + "\n")


if __name__ == "__main__":
    main()
