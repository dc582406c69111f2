"""Golden tensors G10-G12 (spec §10) from ltx-core 1.2.0: the duration head, the diffusion video decoder, and the
reference's eager neighbourhood attention. Run with the 1.2.0 oracle's python (ltx-core importable, natten absent):

    ORACLE_PYTHON scripts/goldens/diffusion_decoder.py [OUT_DIR]

Writes OUT_DIR (default tests/goldens/diffusion_decoder/) *.safetensors. Every model is tiny and random (fixed seeds),
weights stored with the tensors in the original checkpoint layout so the test loads them through our key maps. Decoded
videos are large even for tiny latents (32x32x8 is fixed), so they are stored subsampled in space plus float64 sums
over the whole tensor. Nothing from ltx-core is copied; this script only calls it.
"""

import json
import sys
import tempfile
from pathlib import Path

import torch
from ltx_core.duration_head import DurationHead
from ltx_core.loader.single_gpu_model_builder import SingleGPUModelBuilder
from ltx_core.model.video_vae import VideoDecoderConfigurator, diffusion_tiling, video_decoder_sd_ops_for_checkpoint
from ltx_core.model.video_vae.transformer.apply import _set_attention_function, build_diffvae_mode_op
from ltx_core.model.video_vae.transformer.config import DiffVAEMode
from ltx_core.model.video_vae.transformer.fallback_na import EagerSdpaAttention
from ltx_core.model.video_vae.transformer.fallback_na.eager import na3d as eager_na3d
from ltx_core.tiling import DimensionSizeConfig, TileSizeConfig
from ltx_pipelines.utils.helpers import seconds_to_clamped_num_frames
from safetensors.torch import save_file

OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "tests/goldens/diffusion_decoder"
REFERENCE = "ltx-core 1.2.0 (Lightricks/LTX-2 tag v1.2.0)"

# Tiny decoder in ltx-core's metadata names (config.vae.decoder, model_output_type one level up); the diffusers
# equivalent is in tests/test_goldens_diffusion_decoder.py.
DECODER = {
    "in_channels": 16, "out_channels": 3, "patch_size": 4, "head_dim": 16, "t_emb_dim": 16,
    "stage_channels": [16, 16, 16, 16, 16], "stage_depths": [1, 1, 1, 1, 2],
    "stage_kernels": [[3, 3, 3]] * 5, "stage5_kernel": [3, 3, 3],
    "upsamples": [[[1, 2, 2], 1], [[2, 1, 1], 1], [[2, 2, 2], 1], [[2, 2, 2], 1]],
    "default_num_inference_steps": 2, "timestep_scale_multiplier": 1000.0,
}


def summary(name: str, video: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
    """A decoded [F, H, W, 3] video: every `step`-th pixel in H and every 2 `step`-th in W, and float64 sums of the whole (plain, squared,
    index-weighted) so a difference anywhere shows."""
    flat = video.double().flatten()
    weights = torch.arange(flat.numel(), dtype=torch.float64) / flat.numel()
    return {
        f"{name}.subsample": video[:, ::step, ::2 * step].contiguous(),
        f"{name}.sums": torch.stack([flat.sum(), (flat**2).sum(), (flat * weights).sum()]),
        f"{name}.shape": torch.tensor(video.shape),
    }


def checkpoint_weights(generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Random weights for DECODER in the checkpoint layout: fused qkv, t_embedder.mlp.*, per-block static gates, a
    coarse preview tensor (dropped at load), non-identity latent statistics. Scaled so activations stay O(1)."""
    reference = VideoDecoderConfigurator.from_metadata(
        {"config": {"vae": {"_class_name": "CausalDiffusionVAE", "decoder": DECODER, "model_output_type": "v"}}})
    weights = {}
    for key, value in reference.state_dict().items():
        key = key.replace("t_embedder.timestep_embedder.linear_1.", "t_embedder.mlp.0.")
        key = key.replace("t_embedder.timestep_embedder.linear_2.", "t_embedder.mlp.2.")
        shape = value.shape
        if ".qkv.to_" in key:
            if ".qkv.to_q." not in key:
                continue
            key, shape = key.replace(".qkv.to_q.", ".qkv."), (3 * shape[0], *shape[1:])
        fan_in = shape[-1] if len(shape) == 2 else 1
        tensor = torch.randn(shape, generator=generator) / fan_in**0.5
        if key.endswith(("norm1.weight", "norm2.weight", "norm_q.weight", "norm_k.weight", "q_norm.weight",
                         "k_norm.weight", "norm_out.weight")):
            tensor = 1.0 + 0.1 * tensor
        if key.endswith("scale_shift_table"):
            tensor = 0.1 * tensor
        weights[key] = tensor.half().float()  # stored as float16: the reference runs on exactly those values
    weights["per_channel_statistics.mean-of-means"] = 0.1 * torch.randn(16, generator=generator)
    weights["per_channel_statistics.std-of-means"] = 1.0 + 0.1 * torch.rand(16, generator=generator)
    for j in range(DECODER["stage_depths"][-1]):
        for gate in ("gate_msa", "gate_mlp", "gate_ctx"):
            weights[f"diff_blocks.{j}.{gate}"] = 0.5 + torch.rand(16, generator=generator)
    weights["coarse_head.weight"] = torch.randn(4, 4, generator=generator)
    weights = {k: v.half().float() for k, v in weights.items()}
    return {("vae." + k if k.startswith("per_channel") else "vae.decoder." + k): v for k, v in weights.items()}


def build_reference(path: Path, model_output_type: str, steps: int, mode: str = "chunked_eager"):
    """The decoder as ltx-pipelines builds it: its default mode chunked_eager (W-chunked stage 5, whose W edges are
    edge-replicated), or "combined" (full-volume NATTEN semantics, as combined_compile) with the eager NA."""
    metadata = {"config": json.dumps({"vae": {"_class_name": "CausalDiffusionVAE", "model_output_type": model_output_type,
                                              "decoder": {**DECODER, "default_num_inference_steps": steps}}})}
    save_file(torch.load(path.with_suffix(".pt")), str(path), metadata=metadata)
    builder = SingleGPUModelBuilder(
        model_path=str(path), model_class_configurator=VideoDecoderConfigurator,
        model_sd_ops=video_decoder_sd_ops_for_checkpoint(str(path), diffusion_vae=True),
        module_ops=(build_diffvae_mode_op(DiffVAEMode.CHUNKED_EAGER),) if mode == "chunked_eager" else (),
    )
    decoder = builder.build(device=torch.device("cpu"), dtype=torch.float32).eval()
    if mode == "combined":  # combined_compile needs natten; the same pathway eager, with the fallback NA
        _set_attention_function(decoder, EagerSdpaAttention())
    return decoder


def decode(decoder, latent: torch.Tensor, seed: int, tiling=None) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.cat(list(decoder.decode_video(latent, tiling_config=tiling, generator=generator)), dim=0)


@torch.no_grad()
def diffusion_decoder_goldens() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(11)
    weights = checkpoint_weights(generator)
    small = torch.randn(1, 16, 2, 2, 2, generator=generator)  # below the 3x3x3 minimum: padded
    large = torch.randn(1, 16, 3, 3, 4, generator=generator)
    out = {f"weights.{k}": v.half() for k, v in weights.items()}
    out |= {"latent.small": small, "latent.large": large}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "decoder.safetensors"
        torch.save(weights, path.with_suffix(".pt"))
        v2 = build_reference(path, "v", 2)
        out |= summary("v2.small", decode(v2, small, seed=4), 8)
        out |= summary("v2.large", decode(v2, large, seed=4), 8)
        tiling = TileSizeConfig(frames=DimensionSizeConfig(16, 8), width=DimensionSizeConfig(64, 32))
        out |= summary("v2.large_tiled", decode(v2, large, seed=4, tiling=tiling), 8)
        padded, _ = diffusion_tiling.ensure_min_latent_shape(small, v2.stage_min_tile_sizes)
        features = v2.forward_stages_1_to_3(diffusion_tiling.pad_trailing_latent_for_natten_border(padded, 2))
        out["v2.small_padded.stage4_input"] = features[:, :, :2, :2].contiguous()
        combined = build_reference(path, "v", 2, mode="combined")
        out |= summary("combined.v2.small", decode(combined, small, seed=4), 8)
        out |= summary("combined.v2.large_tiled", decode(combined, large, seed=4, tiling=tiling), 8)
        x0 = build_reference(path, "x0", 1)
        out |= summary("x0_1.small", decode(x0, small, seed=4), 8)
        out |= summary("x0_1.large_tiled", decode(x0, large, seed=4, tiling=tiling), 8)
    return out


@torch.no_grad()
def na_goldens() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(12)
    q, k, v = (torch.randn(1, 5, 6, 7, 2, 8, generator=generator) for _ in range(3))
    out = {"q": q, "k": k, "v": v}
    for kernel in ((3, 3, 3), (3, 5, 5)):
        name = "x".join(map(str, kernel))
        out[f"out.{name}"] = eager_na3d(q * 8**-0.5, k, v, kernel_size=list(kernel), is_causal=None, scale=1.0)
    return out


@torch.no_grad()
def duration_head_goldens() -> dict[str, torch.Tensor]:
    torch.manual_seed(10)
    head = DurationHead(video_cross_attention_dim=64, audio_cross_attention_dim=32, pooler_hidden_dim=32,
                        num_queries=2, num_pooler_heads=4, mlp_hidden=16).eval()
    with torch.no_grad():
        head.mlp_out.bias.fill_(1.2)  # exp(~1.2) ~ 3.3 s: inside the ranges below, so snapping is exercised
    generator = torch.Generator().manual_seed(10)
    video, audio = torch.randn(1, 32, 64, generator=generator), torch.randn(1, 24, 32, generator=generator)
    out = {f"weights.duration_head.{k}": v for k, v in head.state_dict().items()}
    out |= {"video_context": video, "audio_context": audio}
    out["seconds.both"] = head(video, audio)
    out["seconds.video"] = head(video, None)
    out["seconds.audio"] = head(None, audio)
    frames = []
    for fps in (24.0, 25.0):
        for low, high in ((1.0, 20.0), (2.0, 3.0), (4.0, 6.0)):
            seconds = out["seconds.both"].item()
            frames.append([fps, low, high, seconds_to_clamped_num_frames(
                seconds, frame_rate=fps, min_frames=round(low * fps), max_frames=round(high * fps))])
    out["frames.fps_min_max_frames"] = torch.tensor(frames, dtype=torch.float64)
    return out


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    metadata = {"reference": REFERENCE, "generator": "scripts/goldens/diffusion_decoder.py"}
    for name, tensors in (("g10_duration_head", duration_head_goldens()), ("g11_decoder", diffusion_decoder_goldens()),
                          ("g12_neighborhood_attention", na_goldens())):
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(OUT / f"{name}.safetensors"),
                  metadata={**metadata, "config": json.dumps({"decoder": DECODER})})
        print(name, sum(v.numel() * v.element_size() for v in tensors.values()) // 1024, "KiB")


if __name__ == "__main__":
    main()
