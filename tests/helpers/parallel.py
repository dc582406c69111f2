"""Builders and the spawned worker of the multi-process tests (tests/test_parallel.py): real processes, the gloo
backend, the same seeded tiny models in every process.

`run_cases(world, cases, out_dir)` starts `world` processes; each runs the named cases with the parallel modes on and
saves its outputs to out_dir/rank{r}.pt; the test compares them with the same cases run in one process.
"""

import os
import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ltx2_diffusers.models.perturbations import Perturbations
from ltx2_diffusers.models.transformer_ltx2 import LTX2VideoTransformer3DModel
from ltx2_diffusers.pipelines.tiny import tiny_transformer_config


def parallel_transformer(seed: int = 0, num_layers: int = 2) -> LTX2VideoTransformer3DModel:
    """The tiny transformer with 4 heads per stream (so Ulysses can split heads over 2 and 4 ranks), random weights."""
    config = {
        **tiny_transformer_config("2.3"),
        "num_layers": num_layers,
        "num_attention_heads": 4,
        "attention_head_dim": 4,
        "audio_num_attention_heads": 4,
        "audio_attention_head_dim": 2,
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = LTX2VideoTransformer3DModel(**config)
        for parameter in transformer.parameters():
            parameter.data.normal_(0.0, 0.1)
    return transformer.eval()


def forward_inputs(batch_size: int = 3, seed: int = 1) -> dict:
    """A guided step's batch: per-token timesteps (first latent frame conditioned), a video self-attention weight
    mask, STG on block 1 for the last sample, modality isolation for the second. 3x2x3 = 18 video tokens (uneven
    pieces over 4 ranks), 9 audio tokens."""
    g = torch.Generator().manual_seed(seed)
    video_tokens, audio_tokens = 18, 9
    timestep = torch.full((batch_size, video_tokens), 700.0)
    timestep[:, :6] = 0.0
    weights = torch.rand(batch_size, video_tokens, video_tokens, generator=g)
    weights[:, :, :3] = 0.0  # fully masked key columns take the mask's -inf-like path
    skip = torch.zeros(batch_size)
    skip[1] = 1.0
    stg = torch.zeros(batch_size)
    stg[-1] = 1.0
    return {
        "hidden_states": torch.randn(batch_size, video_tokens, 128, generator=g),
        "audio_hidden_states": torch.randn(batch_size, audio_tokens, 128, generator=g),
        "encoder_hidden_states": torch.randn(batch_size, 7, 16, generator=g),
        "audio_encoder_hidden_states": torch.randn(batch_size, 7, 8, generator=g),
        "timestep": timestep,
        "audio_timestep": torch.full((batch_size,), 700.0),
        "sigma": torch.full((batch_size,), 700.0),
        "num_frames": 3,
        "height": 2,
        "width": 3,
        "video_self_attention_mask": weights,
        "perturbations": Perturbations(
            video_stg_blocks=(1,),
            audio_stg_blocks=(1,),
            video_stg_mask=stg,
            audio_stg_mask=stg,
            skip_a2v_mask=skip,
            skip_v2a_mask=skip,
        ),  # fmt: skip
        "return_dict": False,
    }


@torch.no_grad()
def single_process_results() -> dict[str, torch.Tensor]:
    """What every case must reproduce."""
    transformer = parallel_transformer()
    video, audio = transformer(**forward_inputs())
    pipeline_video, pipeline_audio = run_tiny_pipeline(tiny_pipeline())
    return {
        "video": video, "audio": audio, "decoded": tiled_decode(),
        "pipeline_video": pipeline_video, "pipeline_audio": pipeline_audio,
    }  # fmt: skip


def tiny_pipeline():
    from ltx2_diffusers.pipelines.tiny import build_tiny_pipeline

    return build_tiny_pipeline(seed=0)


def run_tiny_pipeline(pipe) -> tuple[torch.Tensor, torch.Tensor]:
    """Two steps with the LTX-2 default guidance (4 passes a step: CFG, STG, modality isolation), decoded."""
    out = pipe(
        "a cat", num_frames=9, height=64, width=64, num_inference_steps=2, output_type="pt",
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    return out.frames, out.audio


def tiny_tiled_vae():
    from ltx2_diffusers import AutoencoderKLLTX2Video
    from ltx2_diffusers.pipelines.tiny import TINY_VAE_CONFIG

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        vae = AutoencoderKLLTX2Video(**TINY_VAE_CONFIG).eval()
    vae.enable_tiling(tile_size_pixels=64, tile_overlap_pixels=32, tile_size_frames=16, tile_overlap_frames=8)
    return vae


@torch.no_grad()
def tiled_decode(vae=None) -> torch.Tensor:
    """A 4x3x5-latent clip (25 frames, 96x160 px) in 2 temporal x 2 x 4 spatial tiles."""
    vae = tiny_tiled_vae() if vae is None else vae
    latents = torch.randn(1, 128, 4, 3, 5, generator=torch.Generator().manual_seed(6))
    return vae.decode(latents, return_dict=False)[0]


@torch.no_grad()
def _run_case(case: str) -> dict[str, torch.Tensor]:
    from ltx2_diffusers.parallel import enable_parallelism

    world = dist.get_world_size()
    if case == "decode":
        vae = tiny_tiled_vae()
        plan = enable_parallelism(parallel_transformer(), vae, context_degree=world, decode=True)
        try:
            return {"decoded": tiled_decode(vae)}
        finally:
            plan.remove()
    if case.startswith("pipeline"):  # pipeline: context parallel; pipeline_sharded: guidance parallel + FSDP2
        pipe = tiny_pipeline()
        if case == "pipeline":
            plan = pipe.enable_parallelism(context_degree=world)
        else:
            plan = pipe.enable_parallelism(context_degree=1, guidance_degree=world, shard_weights=True)
        video, audio = run_tiny_pipeline(pipe)
        plan.remove()
        return {"pipeline_video": video, "pipeline_audio": audio}
    transformer = parallel_transformer()
    kind, _, arg = case.partition(":")
    if kind == "guidance":
        plan = enable_parallelism(transformer, context_degree=1, guidance_degree=world, decode=False)
    elif kind == "grid":  # context x guidance, e.g. grid:ring
        plan = enable_parallelism(transformer, context_degree=2, guidance_degree=world // 2, mode=arg, decode=False)
    else:  # ulysses / ring over all ranks
        plan = enable_parallelism(transformer, context_degree=world, mode=kind, decode=False)
    try:
        video, audio = transformer(**forward_inputs())
    finally:
        plan.remove()
    # removed: the next forward is the single-process one again
    video_again, _ = transformer(**forward_inputs())
    return {"video": video, "audio": audio, "video_after_remove": video_again}


def _worker(rank: int, world: int, port: int, cases: list[str], out_dir: str) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        results = {case: _run_case(case) for case in cases}
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cases(world: int, cases: list[str], out_dir: Path) -> list[dict]:
    """Run `cases` in `world` gloo processes; each rank's results, in rank order.

    Forked, not spawned: the children start with torch, diffusers and the package already imported (a spawned child
    imports them again, ~5 s of CPU each, which 4 processes on CI's 2 cores pay twice over). Safe because the test
    process runs one intra-op thread (tests/conftest.py) and has no process group of its own."""
    mp.start_processes(_worker, args=(world, free_port(), cases, str(out_dir)), nprocs=world, start_method="fork")
    return [torch.load(out_dir / f"rank{r}.pt") for r in range(world)]
