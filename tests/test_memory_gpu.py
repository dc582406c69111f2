"""The memory budget at full size on one 80 GB GPU: LTX-2 19B + Gemma-3 12B with random bf16 weights built directly on
the GPU, distilled two-stage 512x768x121. Under `set_per_process_memory_fraction` caps of 32 / 24 / 16 GB with the
budget set to the cap, the pipeline runs, its reserved peak stays under the cap, and with the model dtype (fp8=False:
only placement changes) the clip equals the all-resident run bit for bit. Then fp8="auto" under 24 GB (FP8 storage:
within FP8's rounding, not bit for bit). About 4-5 minutes on an H100; prints each plan and its measured peak."""

import dataclasses
from types import SimpleNamespace

import pytest
import torch
from helpers.lora import connector_inputs, tiny_models
from helpers.memory import build_full_size_two_stage_pipeline

from ltx2_diffusers.memory import GIB, MemoryRequest, Placement, component_sizes, plan_memory
from ltx2_diffusers.memory.placement import apply_plan
from ltx2_diffusers.memory.planner import SMALL_COMPONENTS

pytestmark = pytest.mark.gpu

SIZE = dict(height=512, width=768, num_frames=121)


def generate(pipe) -> tuple[torch.Tensor, torch.Tensor]:
    out = pipe("a cat playing piano", generator=torch.Generator("cuda").manual_seed(0), output_type="pt", **SIZE)
    return out.frames.cpu(), out.audio.cpu()


def capped_run(pipe, cap_gib: int) -> tuple[tuple[torch.Tensor, torch.Tensor], int]:
    """Run under a cap of `cap_gib` GiB; returns the outputs and the peak reserved bytes."""
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(cap_gib * GIB / total)
    try:
        torch.cuda.reset_peak_memory_stats()
        outputs = generate(pipe)
        torch.cuda.synchronize()
        return outputs, torch.cuda.max_memory_reserved()
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)


@torch.no_grad()
def run_on_cuda(connectors, transformer) -> tuple[torch.Tensor, torch.Tensor]:
    states, mask = connector_inputs()
    video_context, audio_context, _ = connectors(states.cuda(), mask.cuda())
    generator = torch.Generator().manual_seed(4)
    video = torch.randn(1, 8, transformer.config.in_channels, generator=generator).cuda()
    audio = torch.randn(1, 4, transformer.config.audio_in_channels, generator=generator).cuda()
    return transformer(
        hidden_states=video, audio_hidden_states=audio, encoder_hidden_states=video_context,
        audio_encoder_hidden_states=audio_context, timestep=torch.tensor([600.0], device="cuda"), num_frames=2,
        height=2, width=2, fps=24.0, audio_num_frames=4, return_dict=False,
    )  # fmt: skip


def test_tiny_streaming_on_cuda_equals_resident():
    """Side stream, events and pinned copies on a tiny transformer (seconds): every block but the first streams."""
    transformer, connectors = tiny_models(num_layers=5)
    transformer, connectors = transformer.cuda(), connectors.cuda()
    expected = run_on_cuda(connectors, transformer)
    pipe = SimpleNamespace(transformer=transformer)
    plan = plan_memory(4 * GIB, component_sizes(pipe), MemoryRequest(64, 64, 9))
    lean = Placement(False, 1, "resident", tuple((name, "onload") for name in SMALL_COMPONENTS), (256, 32))
    applied = apply_plan(pipe, dataclasses.replace(plan, placement=lean), "cuda")
    assert applied.streamers[0].packs[0].host.is_pinned()
    for _ in range(3):  # the ring prefetch carries the first streamed block over to the next call
        got = run_on_cuda(connectors, transformer)
        for a, b in zip(got, expected):
            assert torch.equal(a, b)
    applied.remove(pipe)


@pytest.fixture(scope="module")
def pipe():
    if torch.cuda.get_device_properties(0).total_memory < 75 * GIB:
        pytest.skip("the all-resident reference run needs an 80 GB GPU")
    pipe = build_full_size_two_stage_pipeline("cuda", torch.bfloat16)
    yield pipe
    del pipe
    torch.cuda.empty_cache()


@pytest.fixture(scope="module")
def resident(pipe):
    generate(pipe)  # warm-up: kernels chosen, caches filled
    return generate(pipe)


@pytest.mark.parametrize("cap_gib", [32, 24, 16])
def test_budget_fits_the_cap_and_equals_the_resident_run(pipe, resident, cap_gib):
    plan = pipe.enable_memory_budget(f"{cap_gib}GB", device="cuda", fp8=False, **SIZE)
    try:
        (frames, audio), peak = capped_run(pipe, cap_gib)
    finally:
        pipe.disable_memory_budget()
    print(f"\n{plan.summary()}\n  measured peak reserved: {peak / GIB:.2f} GiB under a {cap_gib} GiB cap")
    assert not plan.fp8 and plan.vae_tiling == (512, 64)  # the resident run's automatic tiles: same decode
    assert peak < cap_gib * GIB
    assert torch.equal(frames, resident[0]) and torch.equal(audio, resident[1])


def test_fp8_auto_under_24_gb(pipe, resident):
    """Last in this module: the transformer stays in FP8 afterwards."""
    if torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("FP8 matmuls need CUDA capability 8.9+")
    plan = pipe.enable_memory_budget("24GB", device="cuda", **SIZE)
    try:
        (frames, audio), peak = capped_run(pipe, 24)
    finally:
        pipe.disable_memory_budget()
    error = ((frames - resident[0]).norm() / resident[0].norm()).item()
    print(f"\n{plan.summary()}\n  measured peak reserved: {peak / GIB:.2f} GiB; relative frame error vs bf16 {error:.3g}")
    assert plan.fp8 and peak < 24 * GIB
    assert frames.shape == resident[0].shape and torch.isfinite(frames).all() and torch.isfinite(audio).all()
