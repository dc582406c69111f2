"""Several devices in one process: the planner splits the transformer's blocks into one contiguous range per device
(full-size LTX-2 numbers), refuses what does not fit even across all devices naming each device's needs, and the
placement's hooks (inputs to a range's device, outputs back) give the resident output bit for bit on ["cpu", "cpu"].
The GPU test runs the full-size distilled two-stage on two GPUs capped at 24 GB each."""

import dataclasses

import pytest
import torch

from ltx2_diffusers.memory import GIB, LTX2_19B_SIZES, MemoryRequest, plan_memory
from ltx2_diffusers.memory import placement_multidevice as placement
from ltx2_diffusers.memory.multidevice import MultiDevicePlan, check_multi_request, plan_multi_device
from ltx2_diffusers.memory.planner import headroom
from ltx2_diffusers.models.transformer_ltx2_block import BlockPerturbation, StreamInputs
from ltx2_diffusers.pipelines.tiny import build_tiny_pipeline

DISTILLED = MemoryRequest(512, 768, 121, two_stage=True)
DEV = MemoryRequest(1024, 1536, 121, two_stage=True, guidance_passes=4)
CUDA2 = ["cuda:0", "cuda:1"]


def assert_within_budgets(plan: MultiDevicePlan) -> None:
    for budget, peak in zip(plan.budgets_bytes, plan.predicted_peaks):
        assert peak <= budget - headroom(budget)
    starts = [start for start, _ in plan.block_ranges]
    stops = [stop for _, stop in plan.block_ranges]
    assert starts[0] == 0 and stops[-1] == 48 and starts[1:] == stops[:-1]  # contiguous, every block once


def test_two_24_gb_cards_hold_every_block_of_the_distilled_two_stage_that_one_card_must_stream():
    one = plan_memory(24 * GIB, LTX2_19B_SIZES, DISTILLED)
    assert len(one.streamed_blocks) == 28  # one card: 20 resident, 28 re-sent on every transformer call
    plan = plan_multi_device([24 * GIB, 24 * GIB], LTX2_19B_SIZES, DISTILLED, devices=CUDA2)
    assert plan.block_ranges == ((0, 20), (20, 48)) and not plan.fp8 and plan.streamed_blocks == ()
    assert plan.text_encoder == "streamed" and plan.vae_tiling == (512, 64)
    assert [round(peak / GIB, 1) for peak in plan.predicted_peaks] == [21.6, 21.6]
    assert_within_budgets(plan)
    summary = plan.summary()
    assert "split 0-19 on cuda:0, 20-47 on cuda:1" in summary
    assert "cuda:1: 28 blocks (20.1 GiB), predicted peak 21.6 GiB (stage 2) under 24.0 GiB" in summary


def test_unequal_budgets_and_three_or_four_cards():
    plan = plan_multi_device([16 * GIB, 32 * GIB], LTX2_19B_SIZES, DISTILLED)
    assert plan.block_ranges == ((0, 9), (9, 48)) and plan.devices == ("device 0", "device 1")
    assert_within_budgets(plan)
    with pytest.raises(ValueError, match=r"device 2 \(budget 16\.0 GiB, 14\.5 GiB usable\) needs 1\.4 GiB of activations "
                       r"\(stage 2\) besides its blocks\. At most 46 of 48 blocks fit\."):
        plan_multi_device([16 * GIB] * 3, LTX2_19B_SIZES, DISTILLED)
    four = plan_multi_device([16 * GIB] * 4, LTX2_19B_SIZES, DISTILLED)
    assert [stop - start for start, stop in four.block_ranges] == [3, 15, 15, 15]
    assert_within_budgets(four)


def test_dev_two_stage_on_two_24_gb_cards_needs_fp8_and_the_refusal_names_each_device():
    message = (
        r"does not fit across 2 devices: the 48 transformer blocks need 34\.5 GiB \(model dtype\) and every block "
        r"must be resident on one device \(streaming blocks is not combined with a multi-device split\); cuda:0 "
        r"\(budget 24\.0 GiB, 22\.2 GiB usable\) needs 8\.2 GiB before any block \(text encoding, .*\); cuda:1 "
        r"\(budget 24\.0 GiB, 22\.2 GiB usable\) needs 5\.0 GiB of activations \(stage 1\) besides its blocks\. At "
        r"most 43 of 48 blocks fit\. Use larger budgets, more devices, .*or FP8 block storage \(fp8=True; needs"
    )
    with pytest.raises(ValueError, match=message):
        plan_multi_device([24 * GIB, 24 * GIB], LTX2_19B_SIZES, DEV, devices=CUDA2)
    plan = plan_multi_device([24 * GIB, 24 * GIB], LTX2_19B_SIZES, DEV, devices=CUDA2, fp8_supported=True)
    assert plan.fp8 and plan.block_ranges == ((0, 14), (14, 48)) and "FP8 changes the output" in plan.notes[0]
    assert_within_budgets(plan)
    with pytest.raises(ValueError, match=r"would peak at 36\.9 GiB on cuda:0 \(stage 2\) .* over its 24\.0 GiB budget"):
        check_multi_request(plan, MemoryRequest(2048, 2048, 257, two_stage=True))
    with pytest.raises(ValueError, match="two or more budgets and one device name per budget"):
        plan_multi_device([24 * GIB], LTX2_19B_SIZES, DEV)


def test_to_device_moves_every_tensor_field_of_the_block_inputs():
    t = torch.ones(2)
    inputs = StreamInputs(t, t, None, (t, t), t, t, t, t, (t, t))
    perturbation = BlockPerturbation(video_keep=t, a2v_keep=t, run_v2a=False)
    args, kwargs = placement.to_device(((t, None, inputs, perturbation), {"x": [t]}), torch.device("meta"))
    moved = [args[0], args[2].temb, args[2].context, *args[2].rope, args[2].self_attn_bias, args[2].prompt_temb,
             args[2].cross_temb, args[2].cross_gate_temb, *args[2].cross_rope, args[3].video_keep, args[3].a2v_keep,
             kwargs["x"][0]]  # fmt: skip
    assert all(tensor.is_meta for tensor in moved)
    assert args[1] is None and args[2].context_bias is None and args[3].audio_keep is None
    assert args[3].run_v2a is False and args[3].run_a2v is True


def test_pipeline_split_over_cpu_devices_equals_the_resident_run(monkeypatch):
    pipe = build_tiny_pipeline()
    call = dict(height=64, width=64, num_frames=9, num_inference_steps=1, output_type="pt")
    expected = pipe("a cat", generator=torch.Generator().manual_seed(0), **call)
    moves = []
    to_device = placement.to_device
    monkeypatch.setattr(placement, "to_device", lambda value, device: moves.append(device) or to_device(value, device))
    plan = pipe.enable_memory_budget(["4GB", "4GB"], device=["cpu", "cpu"], height=64, width=64, num_frames=9)
    # the first device's own stages (text encoding workspaces) dominate: every tiny block goes to the second
    assert isinstance(plan, MultiDevicePlan) and plan.devices == ("cpu", "cpu")
    assert plan.block_ranges == ((0, 0), (0, 30)) and pipe._execution_device == torch.device("cpu")
    smaller = pipe.memory_plan(32, 32, 9)  # the placement in use, for another request
    assert smaller.block_ranges == plan.block_ranges and smaller.predicted_peaks[1] < plan.predicted_peaks[1]
    got = pipe("a cat", generator=torch.Generator().manual_seed(0), **call)
    assert torch.equal(got.frames, expected.frames) and torch.equal(got.audio, expected.audio)
    calls = len(moves) // 2
    assert calls > 0 and moves == [torch.device("cpu")] * 2 * calls and calls == 1  # inputs in, outputs back, per transformer call
    with pytest.raises(ValueError, match=r"would peak at .* on cpu \(video decode\) .* pipe\.enable_memory_budget\(budgets, device=devices"):
        pipe.check_memory_budget(4096, 4096, 257)
    pipe.disable_memory_budget()
    blocks = pipe.transformer.transformer_blocks
    assert not blocks[0]._forward_pre_hooks and not blocks[29]._forward_hooks

    # three devices, ranges forced (tiny blocks fit anywhere): hooks on blocks 10 and 20, outputs back after block 29
    three = pipe.memory_plan(64, 64, 9, budget=["4GB"] * 3, device=["cpu"] * 3)
    three = dataclasses.replace(three, block_ranges=((0, 10), (10, 20), (20, 30)))
    pipe._memory_placement = placement.apply_multi_device_plan(pipe, three, ["cpu"] * 3, pipe._check_transformer_call)
    assert len(blocks[10]._forward_pre_hooks) == len(blocks[20]._forward_pre_hooks) == 1
    assert not blocks[0]._forward_pre_hooks and len(blocks[29]._forward_hooks) == 1
    moves.clear()
    got = pipe("a cat", generator=torch.Generator().manual_seed(0), **call)
    assert torch.equal(got.frames, expected.frames) and torch.equal(got.audio, expected.audio)
    assert len(moves) == 3 * calls
    pipe.disable_memory_budget()


def test_multi_device_api_refuses_mismatched_or_repeated_devices():
    pipe = build_tiny_pipeline()
    with pytest.raises(ValueError, match=r"a list of budgets and a list of as many devices, got budget=\['4GB', '4GB'\]"):
        pipe.memory_plan(64, 64, 9, budget=["4GB", "4GB"], device="cuda")
    with pytest.raises(ValueError, match="name each CUDA device once with its index"):
        pipe.enable_memory_budget(["4GB", "4GB"], device=["cuda:0", "cuda:0"])
    with pytest.raises(ValueError, match="needs two or more devices"):
        pipe.memory_plan(64, 64, 9, budget=["4GB"], device=["cpu"])
    assert pipe._memory_placement is None


@pytest.mark.gpu
def test_full_size_distilled_two_stage_on_two_gpus_capped_at_24_gb():
    """Full-size LTX-2 19B + Gemma-3 12B (random bf16 weights), distilled two-stage 512x768x121: resident on cuda:0
    (80 GB), then split over cuda:0 and cuda:1 under 24 GiB caps each: the same clip bit for bit (identical cards,
    same kernels), each card's reserved peak under 24 GiB."""
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA devices")
    if torch.cuda.get_device_properties(0).total_memory < 75 * GIB:
        pytest.skip("the all-resident reference run needs an 80 GB GPU")
    from helpers.memory import build_full_size_two_stage_pipeline

    size = dict(height=512, width=768, num_frames=121)

    def generate():
        out = pipe("a cat playing piano", generator=torch.Generator("cuda").manual_seed(0), output_type="pt", **size)
        return out.frames.cpu(), out.audio.cpu()

    pipe = build_full_size_two_stage_pipeline("cuda:0", torch.bfloat16)
    generate()  # warm-up
    resident = generate()
    plan = pipe.enable_memory_budget(["24GB", "24GB"], device=CUDA2, fp8=False, **size)
    print(f"\n{plan.summary()}")
    for index in (0, 1):
        torch.cuda.synchronize(index)
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(24 * GIB / torch.cuda.get_device_properties(index).total_memory,
                                                   index)  # fmt: skip
        torch.cuda.reset_peak_memory_stats(index)
    try:
        frames, audio = generate()
        peaks = [torch.cuda.max_memory_reserved(index) for index in (0, 1)]
    finally:
        for index in (0, 1):
            torch.cuda.set_per_process_memory_fraction(1.0, index)
        pipe.disable_memory_budget(to="cpu")
    print(f"  measured peak reserved: {peaks[0] / GIB:.2f} / {peaks[1] / GIB:.2f} GiB under 24 GiB caps")
    assert plan.block_ranges == ((0, 20), (20, 48)) and not plan.fp8
    assert all(peak < 24 * GIB for peak in peaks)
    assert torch.equal(frames, resident[0]) and torch.equal(audio, resident[1])
