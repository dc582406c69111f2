"""Prompt -> mp4, end to end: ours (`LTX2AVTwoStagePipeline`), ltx-pipelines' two-stage pipelines and diffusers'
documented two-stage recipe, in one run, on the same random full-size weights.

Full size: LTX-2 19B transformer, Gemma-3 12B, video and audio VAEs, vocoder and the x2 latent upsampler, random
weights built directly on the GPU in bf16 (the transformer on the meta device, then allocated with `to_empty` and
filled by benchmarks/transformer.py's `init_weights`; the others constructed on the GPU). The peers hold the SAME
tensors, renamed through our key maps (benchmarks/pipeline_peers.py), so the three fit on one GPU together.

    python benchmarks/pipeline.py --workload distilled                  # 512x768x121, 8 + 3 steps, no guidance
    python benchmarks/pipeline.py --workload dev --iters 2              # 1024x1536x121, 40 steps, 4-pass guidance
    python benchmarks/pipeline.py --workload distilled --impl ours --fast --fp8 rowwise
    python benchmarks/pipeline.py --workload distilled --impl ours --cap 24 --vram 24
    python benchmarks/pipeline.py --workload distilled --impl ours --cold --cold-dir /big/disk
    python benchmarks/pipeline.py --tiny --device cpu --workload distilled,dev   # smoke test (tests/test_benchmarks.py)

Per implementation and workload: first call, warm calls (median of `--iters`), peak GPU memory over its calls, and
for ours the split per stage (text encoding, stage 1, upsample, stage 2, decode, mp4), timed with CUDA events at
module hooks (connectors, latent upsampler, `vae.decode`): the pipelines are not edited. `--cold` saves our pipeline
once as a diffusers folder and times `from_pretrained` + the first call to the mp4. Each call writes an mp4. Output:
a markdown table on stdout and a JSON file (`--json`).
"""

import argparse
import contextlib
import datetime
import gc
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))  # benchmarks/transformer.py and pipeline_peers.py, run as a script

import pipeline_peers  # noqa: E402

from ltx2_diffusers import LTX2Scheduler  # noqa: E402
from ltx2_diffusers.pipelines.pipeline_ltx2_av_two_stage import LTX2AVTwoStagePipeline  # noqa: E402
from ltx2_diffusers.utils.media import export_to_video_with_audio  # noqa: E402

PROMPT = "A cat plays a grand piano on a rooftop at dusk, city lights behind it, the melody echoing."
FRAME_RATE = 24.0
IMPLS = ("ours", "ltx", "diffusers")
STAGES = ("text", "stage_1", "upsample", "stage_2", "decode", "mp4")


@dataclass(frozen=True)
class Workload:
    height: int
    width: int
    num_frames: int
    steps: int | None  # stage-1 steps; None: the distilled schedule's 8


WORKLOADS = {"distilled": Workload(512, 768, 121, None), "dev": Workload(1024, 1536, 121, 40)}
TINY_WORKLOADS = {"distilled": Workload(64, 64, 9, None), "dev": Workload(64, 64, 9, 2)}

# Gemma-3 12B (google/gemma-3-12b-it's config): 48 layers of 3840, 16 heads (8 KV) of 256, 5 local : 1 global
GEMMA_3_12B_TEXT = dict(
    hidden_size=3840, intermediate_size=15360, num_hidden_layers=48, num_attention_heads=16, num_key_value_heads=8,
    head_dim=256, query_pre_attn_scalar=256, sliding_window=1024, vocab_size=262208, max_position_embeddings=131072,
    layer_types=(["sliding_attention"] * 5 + ["full_attention"]) * 8,
)  # fmt: skip
GEMMA_3_12B_VISION = dict(
    model_type="siglip_vision_model", hidden_size=1152, intermediate_size=4304, num_hidden_layers=27,
    num_attention_heads=16, image_size=896, patch_size=14,
)  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------------
# Models


def build_full(device: torch.device, dtype: torch.dtype) -> LTX2AVTwoStagePipeline:
    """The full-size pipeline with random weights, every tensor created on `device` in `dtype`."""
    from transformer import init_weights, materialise, released_config  # benchmarks/transformer.py
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    from ltx2_diffusers import (
        AutoencoderKLLTX2Audio,
        AutoencoderKLLTX2Video,
        LTX2TextConnectors,
        LTX2VideoTransformer3DModel,
        LTX2Vocoder,
    )
    from ltx2_diffusers.models.latent_upsampler import LTX2LatentUpsamplerModel
    from ltx2_diffusers.utils.tiny_gemma import build_tiny_gemma_tokenizer

    build_on = pipeline_peers.build_on
    with torch.device("meta"):
        transformer = LTX2VideoTransformer3DModel(**released_config())
    transformer = materialise(transformer, device, dtype)
    init_weights(transformer.named_parameters(), lambda name: name, device)
    tokenizer = build_tiny_gemma_tokenizer()  # token ids only matter up to the vocabulary size; no download
    gemma_config = Gemma3Config(
        text_config=GEMMA_3_12B_TEXT, vision_config=GEMMA_3_12B_VISION, mm_tokens_per_image=256,
        boi_token_index=tokenizer.convert_tokens_to_ids("<start_of_image>"),
        eoi_token_index=tokenizer.convert_tokens_to_ids("<end_of_image>"),
        image_token_index=tokenizer.convert_tokens_to_ids("<image_soft_token>"),
    )  # fmt: skip
    # the released decoder is not causal; the released configs state the compression (diffusers would derive 64/16)
    vae_config = dict(decoder_causal=False, spatial_compression_ratio=32, temporal_compression_ratio=8)
    components = dict(
        text_encoder=build_on(device, dtype, lambda: Gemma3ForConditionalGeneration(gemma_config)).eval(),
        connectors=build_on(device, dtype, LTX2TextConnectors).eval(),
        vae=build_on(device, dtype, lambda: AutoencoderKLLTX2Video(**vae_config)).eval(),
        audio_vae=build_on(device, dtype, AutoencoderKLLTX2Audio).eval(),
        vocoder=build_on(device, dtype, LTX2Vocoder).eval(),
        latent_upsampler=build_on(
            device, dtype, lambda: LTX2LatentUpsamplerModel(mid_channels=1024, use_rational_resampler=False)
        ).eval(),
    )
    pipe = LTX2AVTwoStagePipeline(scheduler=LTX2Scheduler(), tokenizer=tokenizer, transformer=transformer, **components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_ours(tiny: bool, device: torch.device, dtype: torch.dtype) -> LTX2AVTwoStagePipeline:
    if tiny:
        from ltx2_diffusers import LTX2Vocoder
        from ltx2_diffusers.pipelines.tiny import TINY_VOCODER_CONFIG, build_tiny_two_stage_pipeline

        pipe = build_tiny_two_stage_pipeline()
        # ltx-core's vocoder resblocks take three dilations (the tiny one has two): a tiny vocoder all three can run
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            pipe.register_modules(vocoder=LTX2Vocoder(**TINY_VOCODER_CONFIG | {"resnet_dilations": [[1, 3, 5]]}))
        return pipe.to(device, dtype)
    return build_full(device, dtype)


def set_workload(pipe: LTX2AVTwoStagePipeline, workload: str) -> None:
    pipe.register_modules(scheduler=LTX2Scheduler.distilled() if workload == "distilled" else LTX2Scheduler())


def apply_options(pipe: LTX2AVTwoStagePipeline, args) -> dict:
    """--vram, --fast / --attention / --fp8 / --no-compile, --cache on our pipeline; returns what was applied."""
    applied = {}
    if args.vram is not None:
        if not hasattr(pipe, "enable_memory_budget"):
            raise SystemExit(
                "--vram: this ltx2_diffusers has no pipe.enable_memory_budget() yet (the memory planner of issue 9); "
                "run without --vram, or on a branch that has it."
            )
        applied["memory_budget"] = str(pipe.enable_memory_budget(f"{args.vram}GB"))
    if args.fast:
        settings = pipe.enable_fast(attention_backend=args.attention, compile=not args.no_compile, fp8=args.fp8)
        applied["fast"] = asdict(settings)
    elif args.fp8:
        applied["fp8"] = str(pipe.transformer.enable_fp8(args.fp8))
    if args.cache:
        applied["cache"] = repr(enable_step_cache(pipe.transformer, args.cache))
    return applied


def enable_step_cache(transformer, spec: str):
    """--cache fbc:THRESHOLD | taylorseer:INTERVAL -> the diffusers cache config, enabled (models/cache_support.py)."""
    from diffusers.hooks import FirstBlockCacheConfig, TaylorSeerCacheConfig

    name, _, value = spec.partition(":")
    if name == "fbc":
        config = FirstBlockCacheConfig(threshold=float(value or 0.05))
    elif name == "taylorseer":
        config = TaylorSeerCacheConfig(cache_interval=int(value or 5), taylor_factors_dtype=torch.float32)
    else:
        raise SystemExit(f"--cache {spec!r}: use fbc:THRESHOLD (FirstBlockCache) or taylorseer:INTERVAL")
    transformer.enable_cache(config)
    return config


# ----------------------------------------------------------------------------------------------------------------------
# Timing


class Marks:
    """Named points on the device's clock: CUDA events on a GPU (read after one synchronize), else the host clock."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.points = {}

    def mark(self, name: str, first: bool = False) -> None:
        if first and name in self.points:
            return
        if self.cuda:
            self.points[name] = torch.cuda.Event(enable_timing=True)
            self.points[name].record()
        else:
            self.points[name] = time.perf_counter()

    def seconds(self, start: str, end: str) -> float:
        if self.cuda:
            torch.cuda.synchronize()
            return self.points[start].elapsed_time(self.points[end]) / 1000
        return self.points[end] - self.points[start]


@contextlib.contextmanager
def stage_hooks(pipe: LTX2AVTwoStagePipeline, marks: Marks):
    """Marks at the ends of text encoding (the connectors' last call), around the upsampler, before decoding."""
    handles = [
        pipe.connectors.register_forward_hook(lambda *_: marks.mark("text")),
        pipe.latent_upsampler.register_forward_pre_hook(lambda *_: marks.mark("upsample_start")),
        pipe.latent_upsampler.register_forward_hook(lambda *_: marks.mark("upsample_end")),
    ]
    decode = pipe.vae.decode

    def timed_decode(*args, **kwargs):
        marks.mark("decode_start", first=True)
        return decode(*args, **kwargs)

    pipe.vae.decode = timed_decode
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        del pipe.vae.decode  # the class's method again


def stage_seconds(marks: Marks) -> dict[str, float]:
    bounds = ("start", "text", "upsample_start", "upsample_end", "decode_start", "end", "mp4")
    return {stage: marks.seconds(a, b) for stage, a, b in zip(STAGES, bounds[:-1], bounds[1:], strict=True)}


def run_ours(pipe, workload: Workload, out: Path, device: torch.device, marks: Marks) -> bool:
    """One prompt -> mp4; returns whether every pixel and sample was finite (non-finite ones are zeroed to write)."""
    generator = torch.Generator(device).manual_seed(0)
    steps = {} if workload.steps is None else {"num_inference_steps": workload.steps}
    marks.points.clear()  # the split of the latest call
    marks.mark("start")
    with stage_hooks(pipe, marks):
        result = pipe(
            PROMPT, height=workload.height, width=workload.width, num_frames=workload.num_frames,
            frame_rate=FRAME_RATE, generator=generator, output_type="pt", **steps,
        )  # fmt: skip
    marks.mark("end")
    frames, audio = result.frames[0], result.audio[0]
    finite = bool(torch.isfinite(frames).all()) and bool(torch.isfinite(audio).all())
    export_to_video_with_audio(
        torch.nan_to_num(frames.float().cpu(), 0.0, 0.0, 0.0), torch.nan_to_num(audio.float().cpu(), 0.0, 0.0, 0.0),
        result.audio_sample_rate, FRAME_RATE, out,
    )  # fmt: skip
    marks.mark("mp4")
    return finite


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(call, device: torch.device) -> tuple[float, object]:
    sync(device)
    start = time.perf_counter()
    result = call()
    sync(device)
    return time.perf_counter() - start, result


def gpu_warmup(device: torch.device, seconds: float = 5.0) -> None:
    """Clocks up and the CUDA context, cuBLAS and the caching allocator initialised before anything is timed."""
    if device.type != "cuda":
        return
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(10):
            a @ a
        torch.cuda.synchronize(device)
    del a


def measure(impl: str, call, iters: int, device: torch.device) -> dict:
    """First call, then `iters` warm calls; peak GPU memory over all of them."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    first, finite = timed(call, device)
    warm = []
    for _ in range(iters):
        seconds, finite_now = timed(call, device)
        warm.append(seconds)
        finite = finite and finite_now
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {"impl": impl, "first_call_s": first, "warm_s": statistics.median(warm), "warm_all_s": warm,
            "peak_gib": peak, "finite": bool(finite)}  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------------
# The run


def save_once(pipe, folder: Path) -> None:
    """Our pipeline as a diffusers folder, written once (kept for later runs); refused when the disk is too small."""
    if (folder / "model_index.json").is_file():
        return
    modules = [m for m in pipe.components.values() if isinstance(m, torch.nn.Module)]
    size = sum(t.numel() * t.element_size() for m in modules for t in [*m.parameters(), *m.buffers()])
    folder.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder.parent).free
    if free < 1.1 * size:
        raise SystemExit(f"--cold: {folder.parent} has {free / 2**30:.1f} GiB free, the folder needs about "
                         f"{size / 2**30:.1f} GiB; pass --cold-dir on a larger disk")  # fmt: skip
    pipe.save_pretrained(folder)


def cold_start(folder: Path, device: torch.device, dtype: torch.dtype, workload: Workload, out: Path, marks: Marks):
    """from_pretrained (straight to the device on CUDA: device_map) + the first call to the mp4, timed."""
    device_map = {"device_map": device.type} if device.type == "cuda" else {}
    load, pipe = timed(lambda: LTX2AVTwoStagePipeline.from_pretrained(folder, torch_dtype=dtype, **device_map), device)
    pipe.set_progress_bar_config(disable=True)
    if not device_map:
        pipe.to(device)
    first, _ = timed(lambda: run_ours(pipe, workload, out, device, marks), device)
    return pipe, {"load_s": load, "cold_start_s": load + first}


def release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run(args) -> dict:
    device = torch.device(args.device)
    dtype = torch.float32 if args.tiny else torch.bfloat16  # tiny: float32 runs 3x faster on a CPU (ltx: bf16)
    workloads = TINY_WORKLOADS if args.tiny else WORKLOADS
    names = args.workload.split(",")
    impls = args.impl.split(",")
    for value, known, flag in ((names, workloads, "--workload"), (impls, IMPLS, "--impl")):
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise SystemExit(f"{flag}: unknown {unknown}; choose from {sorted(known)}")
    peers = [impl for impl in impls if impl != "ours"]
    if peers and (args.fp8 or args.vram is not None):
        raise SystemExit(f"--fp8 / --vram change where and how our weights are stored, and the peers {peers} share "
                         "those tensors: run them with --impl ours")  # fmt: skip
    if args.cap is not None:
        if device.type != "cuda":
            raise SystemExit("--cap needs a CUDA device (it caps torch's allocator on the GPU)")
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(args.cap * 2**30 / total, device)
    out_dir = Path(args.out_dir or tempfile.mkdtemp(prefix="ltx2-benchmark-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    gpu_warmup(device)
    pipe = build_ours(args.tiny, device, dtype)
    cold = {"load_s": None, "cold_start_s": None}
    if args.cold and "ours" in impls:  # first: the saved folder must hold the plain weights (no FP8, no compile)
        folder = Path(args.cold_dir or out_dir) / "ltx2-benchmark-pipeline"
        set_workload(pipe, names[0])
        save_once(pipe, folder)
        del pipe  # the only reference: the loaded copy must not sit beside it
        release(device)
        pipe, cold = cold_start(folder, device, dtype, workloads[names[0]], out_dir / "cold.mp4", Marks(device))
    applied = apply_options(pipe, args)
    report = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "tiny": args.tiny, "cap_gib": args.cap, "iters": args.iters, "ours_settings": applied, "rows": [],
    }  # fmt: skip
    for name in names:
        workload = workloads[name]
        size = dict(height=workload.height, width=workload.width, num_frames=workload.num_frames)
        set_workload(pipe, name)
        common = {"workload": name, **size, "steps": workload.steps}
        if "ours" in impls:
            marks = Marks(device)
            call = partial(run_ours, pipe, workload, out_dir / f"ours-{name}.mp4", device, marks)
            row = measure("ours", call, args.iters, device)
            cold_row = cold if name == names[0] else {"load_s": None, "cold_start_s": None}
            report["rows"].append({**common, **row, **cold_row, "stages": stage_seconds(marks)})
        size["frame_rate"] = FRAME_RATE
        if "ltx" in impls:
            ltx = pipeline_peers.build_ltx(pipe, name, device, args.tiny)
            out = out_dir / f"ltx-{name}.mp4"
            call = partial(pipeline_peers.run_ltx, ltx, name, PROMPT, size, workload.steps, out, device, args.tiny)
            report["rows"].append({**common, **measure("ltx", call, args.iters, device), "load_s": None,
                                   "cold_start_s": None, "stages": None})  # fmt: skip
            del ltx, call
            release(device)
        if "diffusers" in impls:
            peers = pipeline_peers.build_diffusers(pipe, name, device, dtype)
            out = out_dir / f"diffusers-{name}.mp4"
            call = partial(pipeline_peers.run_diffusers, peers, name, PROMPT, size, workload.steps, out, device)
            report["rows"].append({**common, **measure("diffusers", call, args.iters, device), "load_s": None,
                                   "cold_start_s": None, "stages": None})  # fmt: skip
            del peers, call
            release(device)
    return report


def markdown(report: dict) -> str:
    def num(value, unit="s"):
        return "–" if value is None else f"{value:.2f}{unit}"

    lines = [
        f"{report['device']}, torch {report['torch']}, {report['date']}, cap {report['cap_gib'] or 'none'}",
        "",
        "| workload | impl | warm (median) | first call | cold start | peak GPU | " + " | ".join(STAGES) + " |",
        "|---" * (6 + len(STAGES)) + "|",
    ]
    for row in report["rows"]:
        stages = row["stages"] or {}
        lines.append(
            f"| {row['workload']} | {row['impl']} | {num(row['warm_s'])} | {num(row['first_call_s'])} | "
            f"{num(row['cold_start_s'])} | {num(row['peak_gib'], ' GiB')} | "
            + " | ".join(num(stages.get(stage)) for stage in STAGES) + " |"
        )  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", default="distilled", help="distilled, dev, or both comma-separated")
    parser.add_argument("--impl", default=",".join(IMPLS), help="comma-separated subset of ours,ltx,diffusers")
    parser.add_argument("--iters", type=int, default=4, help="warm calls after the first one (median reported)")
    parser.add_argument("--cap", type=float, default=None, help="GB: torch.cuda.set_per_process_memory_fraction")
    parser.add_argument("--vram", type=float, default=None, help="GB: ours with pipe.enable_memory_budget(f'{GB}GB')")
    parser.add_argument("--fast", action="store_true", help="ours: pipe.enable_fast() (compiled blocks unless "
                        "--no-compile; the first call pays the compilation)")  # fmt: skip
    parser.add_argument("--attention", default="auto", help="with --fast: attention backend (auto, cudnn, ...)")
    parser.add_argument("--no-compile", action="store_true", help="with --fast: keep the blocks eager")
    parser.add_argument("--fp8", default=None, choices=["rowwise", "tensorwise"], help="ours: FP8 block linears")
    parser.add_argument("--cache", default=None, help="ours: fbc:THRESHOLD or taylorseer:INTERVAL (diffusers' caches)")
    parser.add_argument("--cold", action="store_true", help="ours: save a diffusers folder once, time load + call")
    parser.add_argument("--cold-dir", default=None, help="where --cold writes its folder (about 63 GB at full size)")
    parser.add_argument("--out-dir", default=None, help="mp4s (default: a new temporary folder)")
    parser.add_argument("--json", default=None, help="write the report here")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny models from the package's builders: a smoke test")
    args = parser.parse_args()
    report = run(args)
    print(markdown(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
