"""Time one LTX-2 transformer forward: ours, diffusers' in-tree class and ltx-core's LTXModel, in one run.

Full size (LTX-2 19B, random bf16 weights) on one GPU; one model is alive at a time (37.8 GB each). Every
implementation gets the same weights: each tensor is drawn from a generator seeded by its diffusers name.

    python benchmarks/transformer.py                              # 6144 and 24576 video tokens, all three
    python benchmarks/transformer.py --backend cudnn --compile    # cuDNN attention, blocks compiled
    python benchmarks/transformer.py --impl ours --backend cudnn --compile --fp8 rowwise   # ours, FP8 block linears
    python benchmarks/transformer.py --tiny --device cpu          # smoke test of this script (no GPU)

Reported: median seconds of `--iters` forwards after `--warmup` ones, and model TFLOP/s (matmul + attention FLOPs of
one forward, counted analytically by `forward_flops`).
"""

import argparse
import gc
import inspect
import statistics
import time
import zlib
from collections.abc import Callable

import torch

from ltx2_diffusers.loaders.transformer_keys import diffusers_to_original_keys
from ltx2_diffusers.models.attention import sdpa_backend
from ltx2_diffusers.models.fp8 import GRANULARITIES, REFERENCE_BF16_BLOCKS, enable_fp8
from ltx2_diffusers.models.rope import audio_positions, video_positions
from ltx2_diffusers.models.transformer_ltx2 import LTX2VideoTransformer3DModel

# video latent (frames, height, width) per token count: 121 frames at 512x768 and 1024x1536
VIDEO_SHAPES = {6144: (16, 16, 24), 24576: (16, 32, 48)}
TINY = dict(
    in_channels=8, out_channels=8, num_attention_heads=2, attention_head_dim=8, cross_attention_dim=16,
    audio_in_channels=8, audio_out_channels=8, audio_num_attention_heads=2, audio_attention_head_dim=4,
    audio_cross_attention_dim=8, num_layers=2, caption_channels=12,
)  # fmt: skip
TINY_SHAPES = {24: (2, 3, 4)}


def forward_flops(cfg: dict, video_tokens: int, audio_tokens: int, text_tokens: int) -> float:
    """Matmul and attention FLOPs (2 per multiply-add) of one forward, batch 1, per-sample timesteps."""
    T, Ta, L = video_tokens, audio_tokens, text_tokens
    D = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    Da = cfg["audio_num_attention_heads"] * cfg["audio_attention_head_dim"]
    C = cfg["caption_channels"]

    def stream(tokens, dim):  # self-attention, text cross-attention (context at the stream width), 4x FFN
        projections = 4 * tokens * dim * dim + 2 * tokens * dim * dim + 2 * L * dim * dim
        attention = 2 * tokens * tokens * dim + 2 * tokens * L * dim
        return 2 * (projections + attention + 2 * tokens * dim * 4 * dim)

    a2v = 2 * (T * D * Da + 2 * Ta * Da * Da + 2 * T * Ta * Da + T * Da * D)
    v2a = 2 * (Ta * Da * Da + 2 * T * D * Da + 2 * Ta * T * Da + Ta * Da * Da)
    per_block = stream(T, D) + stream(Ta, Da) + a2v + v2a
    outside = 2 * (T * 128 * D * 2 + Ta * 128 * Da * 2 + L * (C * D + D * D) + L * (C * Da + Da * Da))
    return cfg["num_layers"] * per_block + outside


def init_weights(named_parameters, diffusers_name: Callable[[str], str], device: torch.device) -> None:
    """Same values for the same diffusers name in every implementation; O(1) activations, no overflow in bf16."""
    with torch.no_grad():
        for name, param in named_parameters:
            key = diffusers_name(name)
            generator = torch.Generator(device=device).manual_seed(zlib.crc32(key.encode()))
            noise = torch.randn(param.shape, generator=generator, device=device, dtype=torch.float32)
            if "norm" in key:
                noise = 1 + 0.05 * noise
            elif "table" in key:
                noise = 0.1 * noise
            elif param.ndim == 2:
                noise = noise / param.shape[1] ** 0.5
            else:
                noise = 0.02 * noise
            param.copy_(noise.to(param.dtype))


def materialise(model: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """Meta-device model -> allocated directly in `dtype` on `device` (no fp32 copy: 75 GB for 19B)."""
    return torch.nn.Module.to(model, dtype).to_empty(device=device).eval()  # ModelMixin.to warns about dtypes


def build_ours(cfg, device, dtype):
    with torch.device("meta"):
        model = LTX2VideoTransformer3DModel(**cfg)
    model = materialise(model, device, dtype)
    init_weights(model.named_parameters(), lambda name: name, device)
    return model


def build_diffusers(cfg, device, dtype):
    from diffusers.models.transformers.transformer_ltx2 import LTX2VideoTransformer3DModel as Theirs

    with torch.device("meta"):
        model = Theirs(**{**cfg, "rope_type": "split"})  # diffusers' default is "interleaved"
    model = materialise(model, device, dtype)
    init_weights(model.named_parameters(), lambda name: name, device)
    return model


def ltx_core_config(cfg: dict) -> dict:
    """Our config -> ltx-core's metadata config (released values for everything else; spec §1.1)."""
    return {
        "dropout": 0.0, "attention_bias": True, "num_vector_embeds": None, "activation_fn": "gelu-approximate",
        "num_embeds_ada_norm": 1000, "use_linear_projection": False, "only_cross_attention": False,
        "cross_attention_norm": True, "double_self_attention": False, "upcast_attention": False,
        "standardization_norm": "rms_norm", "norm_elementwise_affine": False, "qk_norm": "rms_norm",
        "positional_embedding_type": "rope", "use_audio_video_cross_attention": True, "share_ff": False,
        "av_cross_ada_norm": True, "use_middle_indices_grid": True, "rope_type": "split",
        "frequencies_precision": "float64", "av_ca_timestep_scale_multiplier": 1000.0,
        "num_attention_heads": cfg["num_attention_heads"], "attention_head_dim": cfg["attention_head_dim"],
        "in_channels": cfg["in_channels"], "out_channels": cfg["out_channels"], "num_layers": cfg["num_layers"],
        "cross_attention_dim": cfg["cross_attention_dim"], "audio_in_channels": cfg["audio_in_channels"],
        "audio_out_channels": cfg["audio_out_channels"], "audio_num_attention_heads": cfg["audio_num_attention_heads"],
        "audio_attention_head_dim": cfg["audio_attention_head_dim"],
        "audio_cross_attention_dim": cfg["audio_cross_attention_dim"], "caption_channels": cfg["caption_channels"],
    }  # fmt: skip


def build_ltx_core(cfg, device, dtype):
    from ltx_core.model.transformer.model_configurator import LTXModelConfigurator

    with torch.device("meta"):
        model = LTXModelConfigurator.from_config({"transformer": ltx_core_config(cfg)})
    model = materialise(model, device, dtype)
    names = [name for name, _ in model.named_parameters()]
    to_diffusers = {v: k for k, v in diffusers_to_original_keys(_diffusers_names(cfg), cfg).items()}
    missing = [n for n in names if "model.diffusion_model." + n not in to_diffusers]
    if missing:
        raise RuntimeError(f"ltx-core parameters without a diffusers name: {missing[:5]}")
    init_weights(model.named_parameters(), lambda name: to_diffusers["model.diffusion_model." + name], device)
    return model


def _diffusers_names(cfg: dict) -> list[str]:
    with torch.device("meta"):
        return list(LTX2VideoTransformer3DModel(**cfg).state_dict())


def make_call(impl: str, model, cfg, shape, audio_tokens, text_tokens, device, dtype, per_token_timesteps: bool):
    """A zero-argument callable running one forward of `impl` on fixed random inputs (batch 1)."""
    frames, height, width = shape
    tokens = frames * height * width
    generator = torch.Generator(device=device).manual_seed(0)

    def randn(*size):
        return torch.randn(*size, generator=generator, device=device, dtype=torch.float32).to(dtype)

    video, audio = randn(1, tokens, cfg["in_channels"]), randn(1, audio_tokens, cfg["audio_in_channels"])
    context = randn(1, text_tokens, cfg["caption_channels"])
    audio_context = randn(1, text_tokens, cfg["caption_channels"])
    sigma = torch.full((1,), 0.8, device=device)
    timesteps = sigma[:, None].expand(1, tokens) if per_token_timesteps else sigma[:, None]
    audio_timesteps = sigma[:, None].expand(1, audio_tokens) if per_token_timesteps else sigma[:, None]
    positions = video_positions(1, frames, height, width, 24.0, device=device, dtype=dtype)
    a_positions = audio_positions(1, audio_tokens, device=device)

    if impl == "ltx-core":
        from ltx_core.guidance.perturbations import BatchedPerturbationConfig
        from ltx_core.model.transformer.modality import Modality

        v = Modality(latent=video, sigma=sigma, timesteps=timesteps, positions=positions, context=context)
        a = Modality(latent=audio, sigma=sigma, timesteps=audio_timesteps, positions=a_positions, context=audio_context)
        empty = BatchedPerturbationConfig.empty(1)
        return lambda: model(v, a, empty)
    kwargs = dict(
        hidden_states=video,
        audio_hidden_states=audio,
        encoder_hidden_states=context,
        audio_encoder_hidden_states=audio_context,
        timestep=timesteps * 1000,
        audio_timestep=audio_timesteps * 1000,
        sigma=sigma * 1000,
        audio_sigma=sigma * 1000,
        audio_coords=a_positions,
        use_cross_timestep=True,
        return_dict=False,
    )
    # diffusers' pipeline hands float32 coordinates to its model; ours gets the reference's bf16 ones
    kwargs["video_coords"] = positions.float() if impl == "diffusers" else positions
    return lambda: model(**kwargs)


def time_call(call: Callable, warmup: int, iters: int, device: torch.device) -> float:
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        call()
    sync()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        call()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return ((got.float() - expected.float()).norm() / expected.float().norm()).item()


BUILDERS = {"ours": build_ours, "diffusers": build_diffusers, "ltx-core": build_ltx_core}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", nargs="+", default=list(BUILDERS), choices=list(BUILDERS))
    parser.add_argument("--tokens", nargs="+", type=int, default=None, help="video tokens (6144, 24576)")
    parser.add_argument("--audio-tokens", type=int, default=126)
    parser.add_argument("--text-tokens", type=int, default=1024)
    parser.add_argument("--backend", default=None, choices=["cudnn", "flash", "efficient", "math"],
                        help="SDPA kernel for every implementation (default: PyTorch's choice)")  # fmt: skip
    parser.add_argument("--compile", action="store_true", help="torch.compile every transformer block")
    parser.add_argument("--fuse-qkv", action="store_true", help="ours: one GEMM for q/k/v (self) and k/v (cross)")
    parser.add_argument(
        "--fp8",
        default=None,
        choices=GRANULARITIES,
        help="ours: FP8 (e4m3) block q/k/v/out and FFN linears through torch._scaled_mm, this scaling",
    )
    parser.add_argument("--fp8-fast-accum", action="store_true", help="ours with --fp8: use_fast_accum=True")
    parser.add_argument(
        "--fp8-bf16-blocks",
        default="none",
        choices=["none", "reference"],
        help="ours with --fp8: 'reference' keeps block 0 and the last five in bf16 (ltx-core's policy)",
    )
    parser.add_argument("--per-token-timesteps", action="store_true", help="(B, T) timesteps as the pipelines pass")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny config, fp32: a smoke test of the script")
    args = parser.parse_args()

    device = torch.device(args.device)
    dtype = torch.float32 if args.tiny else torch.bfloat16
    cfg = dict(TINY) if args.tiny else released_config()
    shapes = TINY_SHAPES if args.tiny else VIDEO_SHAPES
    token_counts = args.tokens or list(shapes)
    audio_tokens, text_tokens = (5, 7) if args.tiny else (args.audio_tokens, args.text_tokens)
    if device.type == "cuda":
        print(f"device: {torch.cuda.get_device_name(device)}, torch {torch.__version__}, "
              f"cuDNN {torch.backends.cudnn.version()}")  # fmt: skip
    print(f"backend={args.backend or 'default'} compile={args.compile} fuse_qkv={args.fuse_qkv} "
          f"per_token_timesteps={args.per_token_timesteps}")  # fmt: skip
    if args.fp8:
        print(f"fp8={args.fp8} (ours only) fast_accum={args.fp8_fast_accum} bf16_blocks={args.fp8_bf16_blocks}")
    for tokens in token_counts:
        if tokens not in shapes:
            raise SystemExit(f"--tokens {tokens}: choose from {sorted(shapes)}")
    print(f"{'impl':<10} {'video tok':>9} {'seconds':>9} {'TFLOP/s':>8}")
    for impl in args.impl:
        model = BUILDERS[impl](cfg, device, dtype)
        if args.fuse_qkv and impl == "ours":
            model.fuse_qkv_projections()
        fp8 = args.fp8 is not None and impl == "ours"
        bf16_outputs = {}  # FP8 accuracy: one forward per size before converting, compared after timing
        for tokens in token_counts if fp8 else ():
            call = make_call(impl, model, cfg, shapes[tokens], audio_tokens, text_tokens, device, dtype,
                             args.per_token_timesteps)  # fmt: skip
            with torch.inference_mode(), sdpa_backend(args.backend):
                bf16_outputs[tokens] = call()
            del call
        if fp8:  # after fusing (fused layers are quantised as one), before compiling
            bf16_blocks = REFERENCE_BF16_BLOCKS if args.fp8_bf16_blocks == "reference" else ()
            config = enable_fp8(model, args.fp8, fast_accum=args.fp8_fast_accum, bf16_blocks=bf16_blocks)
            print(f"ours: {config.num_fp8_layers} linears in FP8")
        if args.compile:
            with sdpa_backend(args.backend):
                for block in model.transformer_blocks:
                    # static shapes: each token count compiles its own graph, as a two-stage pipeline would
                    block.compile(fullgraph=impl == "ours", dynamic=False)
        for tokens in token_counts:
            call = make_call(impl, model, cfg, shapes[tokens], audio_tokens, text_tokens, device, dtype,
                             args.per_token_timesteps)  # fmt: skip
            with torch.inference_mode(), sdpa_backend(args.backend):
                seconds = time_call(call, args.warmup, args.iters, device)
            tflops = forward_flops(cfg, tokens, audio_tokens, text_tokens) / seconds / 1e12
            label = f"{impl}+fp8" if fp8 else impl
            accuracy = ""
            if fp8:
                with torch.inference_mode(), sdpa_backend(args.backend):
                    errors = [relative_error(got, ref) for got, ref in zip(call(), bf16_outputs.pop(tokens))]
                unconverted = str(dtype).removeprefix("torch.")
                accuracy = f"   vs {unconverted}: relative L2 error video {errors[0]:.4f}, audio {errors[1]:.4f}"
            print(f"{label:<10} {tokens:>9} {seconds:>9.4f} {tflops:>8.1f}{accuracy}", flush=True)
            del call
        del model
        torch._dynamo.reset()  # compiled code must not keep the 37.8 GB of weights alive for the next model
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()


def released_config() -> dict:
    """The released LTX-2 19B config: our defaults (which are diffusers'), with the released split RoPE."""
    signature = inspect.signature(LTX2VideoTransformer3DModel.__init__)
    return {name: p.default for name, p in signature.parameters.items() if name != "self"} | {"rope_type": "split"}


if __name__ == "__main__":
    main()
