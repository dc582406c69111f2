"""Video VAE decode: ours (untiled / tiled / streamed) next to diffusers 0.42 and ltx-core 1.0.0, one run, same weights.

GPU (the numbers of DESIGN.md §3): full-size released LTX-2 config, random bf16 weights, 121 frames at 512x768 and
1024x1536; seconds (median of --repeats after one warm-up) and peak GB (torch.cuda.max_memory_allocated, decoder
weights included; only the decoder is on the device for each of the three). diffusers and ltx-core are optional:
install them with --no-deps on the GPU machine.

    python benchmarks/video_vae.py --cudnn-benchmark --channels-last   # cuda, full size (the docs/video_vae.md table)
    python benchmarks/video_vae.py                                  # cuda, full size, default layout only
    python benchmarks/video_vae.py --tiny --device cpu              # smoke test (tiny widths)
    python benchmarks/video_vae.py --tiny --device cpu --cpu-memory # peak RSS of untiled vs streamed decode on CPU
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch

from ltx2_diffusers.loaders.video_vae_keys import diffusers_to_original_keys
from ltx2_diffusers.models.autoencoder_kl_ltx2 import AutoencoderKLLTX2Video

TINY_CONFIG = {
    "latent_channels": 16,
    "block_out_channels": (16, 32, 64, 128),
    "layers_per_block": (1, 1, 1, 1, 1),
    "decoder_block_out_channels": (16, 32, 64),
    "decoder_layers_per_block": (1, 1, 1, 1),
}
TINY_TILING = {"tile_size_pixels": 128, "tile_overlap_pixels": 64, "tile_size_frames": 32, "tile_overlap_frames": 16}


def ltx_core_decoder_blocks(config: dict) -> list:
    """ltx-core's `decoder_blocks` metadata (encoder side first) for a diffusers LTX-2-layout config."""
    blocks = []
    layers, noise = config["decoder_layers_per_block"], config["decoder_inject_noise"]
    for i, num_layers in enumerate(layers):
        blocks.append(("res_x", {"num_layers": num_layers, "inject_noise": noise[i]}))
        if i < len(layers) - 1:
            blocks.append(("compress_all", {"residual": config["upsample_residual"][i], "multiplier": 2}))
    return blocks


def build_ours(config: dict, device: str, dtype: torch.dtype, seed: int = 0) -> AutoencoderKLLTX2Video:
    """Our VAE with only the decoder (and the latent statistics) materialised on `device`, random weights."""
    with torch.device("meta"):
        vae = AutoencoderKLLTX2Video(**config).eval()
    vae.decoder.to_empty(device=device)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        for p in vae.decoder.parameters():
            fan_in = p[0].numel() if p.ndim > 1 else 1
            p.copy_((torch.randn(p.shape, generator=gen) / fan_in**0.5).to(device))
    vae.decoder.to(dtype)
    vae.latents_mean = torch.randn(config["latent_channels"], generator=gen).to(device)
    vae.latents_std = (torch.rand(config["latent_channels"], generator=gen) + 0.5).to(device)
    return vae


def build_diffusers(config: dict, state: dict, device: str, dtype: torch.dtype):
    import diffusers

    with torch.device("meta"):
        vae = diffusers.AutoencoderKLLTX2Video(**config).eval()
    vae.decoder.load_state_dict({k[len("decoder.") :]: v for k, v in state.items()}, strict=True, assign=True)
    vae.decoder.to(device=device, dtype=dtype)
    return vae


def build_ltx_core(config: dict, state: dict, stats: tuple, device: str, dtype: torch.dtype):
    from ltx_core.model.video_vae import VideoDecoderConfigurator

    meta = {
        "latent_channels": config["latent_channels"],
        "decoder_base_channels": config["decoder_block_out_channels"][0] // 2,
        "decoder_blocks": ltx_core_decoder_blocks(config),
        "timestep_conditioning": False,
        "spatial_padding_mode": config["decoder_spatial_padding_mode"],
        "causal_decoder": False,
    }
    with torch.device("meta"):
        decoder = VideoDecoderConfigurator.from_config({"vae": meta}).eval()
    names = diffusers_to_original_keys(state, config)
    original = {names[k][len("vae.decoder.") :]: v for k, v in state.items()}
    original["per_channel_statistics.mean-of-means"], original["per_channel_statistics.std-of-means"] = stats
    decoder.load_state_dict(original, strict=True, assign=True)
    return decoder.to(device=device, dtype=dtype)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def measure(fn: Callable[[], None], device: str, repeats: int) -> tuple[float, float]:
    """(median seconds, peak GB) of fn(); peak is torch's allocator peak on cuda, NaN on cpu."""
    fn()  # warm-up (cuDNN algorithm choice, allocator)
    sync(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 1e9 if device == "cuda" else float("nan")
    return statistics.median(times), peak


def profile(fn: Callable[[], None]) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=60), flush=True)


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """What a video writer consumes (ltx-core's decode_video conversion)."""
    return (((frames + 1.0) / 2.0).clamp(0.0, 1.0) * 255.0).to(torch.uint8)


def consume(chunks) -> None:
    """Convert each chunk as a writer would, then drop it: the clip never exists as one tensor."""
    for chunk in chunks:
        to_uint8(chunk)
        del chunk  # a writer holds no chunk while the next one is decoded


def run_sizes(args: argparse.Namespace) -> list[dict]:
    config = {"decoder_causal": False, **(TINY_CONFIG if args.tiny else {})}  # the released decoder is not causal
    with torch.device("meta"):
        config = {k: v for k, v in AutoencoderKLLTX2Video(**config).config.items() if not k.startswith("_")}
    # as in the released configs: diffusers would derive 64 / 16 from four resampling blocks
    config |= {"spatial_compression_ratio": 32, "temporal_compression_ratio": 8}
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32, "fp16": torch.float16}[args.dtype]
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    results = []

    ours = build_ours(config, args.device, dtype)
    if args.tiny:
        ours.enable_tiling(**TINY_TILING)  # sets use_tiling; restored per mode below
    tiling = ours.tiling
    state = {f"decoder.{k}": v.detach().cpu() for k, v in ours.decoder.state_dict().items()}
    stats = (ours.latents_mean.cpu().float(), ours.latents_std.cpu().float())

    def latents_for(size: str) -> torch.Tensor:
        height, width = (int(v) for v in size.split("x"))
        shape = (1, config["latent_channels"], (args.frames - 1) // 8 + 1, height // 32, width // 32)
        return torch.randn(shape, generator=torch.Generator().manual_seed(1)).to(args.device, dtype)

    def record(name: str, size: str, fn: Callable[[], None]) -> None:
        seconds, peak = measure(fn, args.device, args.repeats)
        results.append({"method": name, "size": size, "seconds": round(seconds, 4), "peak_gb": round(peak, 2)})
        print(f"{size:>10}  {name:<44} {seconds:8.3f} s  {peak:6.2f} GB", flush=True)

    with torch.no_grad():
        if "ours" in args.only:
            for size in args.sizes:
                z = latents_for(size)
                ours.disable_tiling()
                record("ours untiled", size, lambda z=z: ours.decode(z).sample)
                ours.enable_tiling()
                record("ours tiled (reference tiles, full tensor)", size, lambda z=z: ours.decode(z).sample)
                record("ours streamed (chunks -> uint8, dropped)", size, lambda z=z: consume(ours.decode_stream(z)))
                if args.profile:
                    profile(lambda z=z: ours.decode(z).sample)
        if args.channels_last and "ours" in args.only:
            ours.to(memory_format=torch.channels_last_3d)
            for size in args.sizes:
                z = latents_for(size)
                ours.disable_tiling()
                record("ours untiled, channels_last_3d", size, lambda z=z: ours.decode(z).sample)
                ours.enable_tiling()
                record("ours tiled, channels_last_3d", size, lambda z=z: ours.decode(z).sample)
                record("ours streamed, channels_last_3d", size, lambda z=z: consume(ours.decode_stream(z)))
                if args.profile:
                    profile(lambda z=z: ours.decode(z).sample)
        ours.to("meta")  # free the device for the next model
        if args.device == "cuda":
            torch.cuda.empty_cache()

        if "diffusers" in args.only:
            try:
                theirs = build_diffusers(config, state, args.device, dtype)
            except ImportError as error:
                print(f"diffusers not installed, skipped ({error})")
                theirs = None
            for size in args.sizes if theirs is not None else []:
                z = latents_for(size)
                theirs.use_tiling, theirs.use_framewise_decoding = False, False
                record("diffusers untiled", size, lambda z=z: theirs.decode(z).sample)
                theirs.use_tiling = True
                record("diffusers spatial tiling", size, lambda z=z: theirs.decode(z).sample)
                theirs.use_framewise_decoding = True
                record("diffusers spatial + frame-wise tiling", size, lambda z=z: theirs.decode(z).sample)
            if theirs is not None:
                theirs.to("meta")
            if args.device == "cuda":
                torch.cuda.empty_cache()

        if "ltx-core" in args.only:
            try:
                from ltx_core.model.video_vae import SpatialTilingConfig, TemporalTilingConfig, TilingConfig

                reference = build_ltx_core(config, state, stats, args.device, dtype)
                reference_tiling = TilingConfig(
                    SpatialTilingConfig(tiling.tile_size_pixels, tiling.tile_overlap_pixels),
                    TemporalTilingConfig(tiling.tile_size_frames, tiling.tile_overlap_frames),
                )
            except ImportError as error:
                print(f"ltx-core not installed, skipped ({error})")
                reference = None
            for size in args.sizes if reference is not None else []:
                # ltx-core's decoder takes normalised latents: same cost, values differ by the statistics only
                z = latents_for(size)
                record("ltx-core untiled", size, lambda z=z: reference(z))
                record(
                    "ltx-core tiled (chunks -> uint8, dropped)",
                    size,
                    lambda z=z: consume(reference.tiled_decode(z, reference_tiling)),
                )
    return results


def cpu_memory(args: argparse.Namespace) -> None:
    """Peak RSS above the model-loaded baseline, one fresh process per mode (run with --tiny --device cpu)."""
    for mode in ("untiled", "tiled", "streamed"):
        child = [
            sys.executable,
            __file__,
            "--tiny",
            "--device",
            "cpu",
            "--rss-child",
            mode,
            "--frames",
            str(args.frames),
        ]
        child += ["--sizes", *args.sizes]
        out = subprocess.run(child, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        print(out, flush=True)


def _rss_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024


def rss_child(args: argparse.Namespace) -> None:
    config = dict(TINY_CONFIG)
    vae = build_ours(config, "cpu", torch.float32)
    vae.enable_tiling(**TINY_TILING)
    height, width = (int(v) for v in args.sizes[0].split("x"))
    z = torch.randn(1, config["latent_channels"], (args.frames - 1) // 8 + 1, height // 32, width // 32)
    with open("/proc/self/clear_refs", "w") as f:  # reset VmHWM to the current RSS
        f.write("5")
    base = _rss_mb("VmRSS")
    with torch.no_grad():
        if args.rss_child == "untiled":
            vae.disable_tiling()
            frames = vae.decode(z).sample
        elif args.rss_child == "tiled":
            frames = vae.decode(z).sample
        else:
            frames = None
            for chunk in vae.decode_stream(z):
                to_uint8(chunk)  # a writer would encode and drop it here
    peak = _rss_mb("VmHWM") - base
    video_mb = 3 * args.frames * height * width * 4 / 2**20
    print(
        json.dumps(
            {
                "mode": args.rss_child,
                "size": f"{args.frames}x{height}x{width}",
                "peak_rss_above_model_mb": round(peak, 1),
                "fp32_video_mb": round(video_mb, 1),
            }
        )
    )
    del frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default=None, choices=["bf16", "fp16", "fp32"], help="default bf16 (cpu: fp32)")
    parser.add_argument("--tiny", action="store_true", help="tiny widths, small clips (CPU smoke test)")
    parser.add_argument("--sizes", nargs="+", default=None, help="HxW, default 512x768 1024x1536 (tiny: 128x192)")
    parser.add_argument("--frames", type=int, default=None, help="default 121 (tiny: 33)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="+", default=["ours", "diffusers", "ltx-core"])
    parser.add_argument("--channels-last", action="store_true", help="also time ours in channels_last_3d")
    parser.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark = True")
    parser.add_argument("--profile", action="store_true", help="print our tiled decode's top CUDA kernels")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--cpu-memory", action="store_true", help="peak RSS per decode mode, fresh process each")
    parser.add_argument("--rss-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.sizes = args.sizes or (["128x192"] if args.tiny else ["512x768", "1024x1536"])
    args.frames = args.frames or (33 if args.tiny else 121)
    args.dtype = args.dtype or ("fp32" if args.device == "cpu" else "bf16")
    if args.rss_child:
        return rss_child(args)
    if args.cpu_memory:
        return cpu_memory(args)
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(f"device {device_name}, torch {torch.__version__}, {args.dtype}, {args.frames} frames", flush=True)
    results = run_sizes(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device_name, "torch": torch.__version__, "results": results}, f, indent=1)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
