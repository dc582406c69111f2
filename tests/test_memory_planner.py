"""The memory planner as a pure function: its choices for LTX-2 19B + Gemma-3 12B (sizes as numbers) at the card
sizes people own, its refusals with their messages, budget parsing, and `component_sizes` on a real pipeline."""

import dataclasses
from pathlib import Path

import pytest
import torch

from ltx2_diffusers.memory import (
    GIB,
    LTX2_19B_SIZES,
    MemoryRequest,
    check_request,
    check_transformer_call,
    component_sizes,
    parse_budget,
    plan_memory,
)
from ltx2_diffusers.memory.planner import DOCS_CARDS_GIB, DOCS_WORKLOADS, headroom, plan_table, stage_peaks
from ltx2_diffusers.memory.sizes import tensor_bytes
from ltx2_diffusers.models.fp8 import fp8_layer_names
from ltx2_diffusers.models.latent_upsampler import LTX2LatentUpsamplerModel
from ltx2_diffusers.pipelines.tiny import TINY_LATENT_UPSAMPLER_CONFIG, build_tiny_two_stage_pipeline

DISTILLED = MemoryRequest(512, 768, 121, two_stage=True)
DEV_LARGE = MemoryRequest(1024, 1536, 121, two_stage=True, guidance_passes=4)


@pytest.mark.parametrize(
    "budget_gib, fp8_supported, fp8, resident, text_encoder, components",
    [
        (80, True, False, 48, "resident", "resident"),  # everything fits: no FP8, nothing moves
        (48, True, False, 48, "streamed", "resident"),  # bf16 blocks all resident once Gemma streams
        (32, True, True, 48, "streamed", "resident"),  # FP8 keeps all 48 blocks resident
        (24, True, True, 41, "streamed", "onload"),
        (16, True, True, 20, "streamed", "onload"),
        (32, False, False, 31, "streamed", "onload"),  # no FP8 matmuls (e.g. Ampere): bf16, more streaming
        (24, False, False, 20, "streamed", "onload"),
        (16, False, False, 10, "streamed", "onload"),
    ],
)
def test_choices_for_distilled_two_stage(budget_gib, fp8_supported, fp8, resident, text_encoder, components):
    plan = plan_memory(budget_gib * GIB, LTX2_19B_SIZES, DISTILLED, fp8_supported=fp8_supported)
    assert plan.fp8 is fp8
    assert plan.resident_blocks == tuple(range(resident))
    assert plan.streamed_blocks == tuple(range(resident, 48))
    assert plan.text_encoder == text_encoder
    assert {mode for _, mode in plan.placement.components} == {components}
    assert plan.vae_tiling == (512, 64)
    assert plan.predicted_peak <= budget_gib * GIB - headroom(budget_gib * GIB)
    if resident < 48:  # one more resident block would not fit
        more = dataclasses.replace(plan.placement, resident_blocks=resident + 1)
        assert plan.for_request(DISTILLED).predicted_peak < dataclasses.replace(plan, placement=more).for_request(
            DISTILLED
        ).predicted_peak


def test_dev_two_stage_at_full_size_fits_24_gb_with_fp8():
    plan = plan_memory(24 * GIB, LTX2_19B_SIZES, DEV_LARGE, fp8_supported=True)
    assert (plan.fp8, len(plan.resident_blocks), plan.text_encoder) == (True, 39, "streamed")
    assert dict(plan.stage_peaks)["stage 1"] > dict(plan_memory(24 * GIB, LTX2_19B_SIZES, DISTILLED,
                                                                fp8_supported=True).stage_peaks)["stage 1"]  # fmt: skip
    assert plan.max_video_tokens_per_call == 24576  # stage 1: 4 passes x 6144; stage 2: 1 x 24576


def test_gemma_is_onloaded_whole_when_it_fits_beside_the_resident_blocks():
    plan = plan_memory(64 * GIB, LTX2_19B_SIZES, DISTILLED, fp8=False)
    assert (plan.fp8, len(plan.resident_blocks), plan.text_encoder) == (False, 48, "onload")
    text = dict(plan.stage_peaks)["text encoding"]
    assert text - dict(plan.stage_peaks)["stage 1"] > LTX2_19B_SIZES.text_encoder - LTX2_19B_SIZES.text_encoder_vision


def test_more_budget_never_means_fewer_resident_blocks():
    counts = [
        len(plan_memory(gib * GIB, LTX2_19B_SIZES, DISTILLED, fp8=True, fp8_supported=True).resident_blocks)
        for gib in range(10, 40, 2)
    ]
    assert counts == sorted(counts) and counts[0] < counts[-1] == 48


def test_summary_reads_out_the_plan():
    text = plan_memory(24 * GIB, LTX2_19B_SIZES, DISTILLED, fp8_supported=True).summary()
    assert text.splitlines()[:3] == [
        "Memory plan for 512x768x121, 1 video(s), 1 guidance pass(es), two-stage under 24.0 GiB (1.8 GiB kept free):",
        "  transformer blocks: FP8 storage, 41/48 resident, 7 streamed from pinned host memory (2.5 GiB)",
        "  text encoder: streamed",
    ]
    assert "predicted peak: 22.0 GiB (text encoding 22.0 GiB," in text
    assert "note: FP8 changes the output" in text


def test_impossible_request_is_refused_with_what_it_needs_and_what_to_change():
    with pytest.raises(ValueError) as error:
        plan_memory(8 * GIB, LTX2_19B_SIZES, DISTILLED)
    assert str(error.value) == (
        "The request (512x768x121, 1 video(s), 1 guidance pass(es), two-stage) needs at least 7.2 GiB on the device at "
        "its largest stage (text encoding, with every transformer block streamed and every component onloaded), plus "
        "1.2 GiB kept free, but the budget is 8.0 GiB. Use a smaller height/width, fewer frames, a smaller batch or "
        "fewer guidance passes, or a larger budget, or FP8 block storage (fp8=True; needs CUDA capability 8.9+)."
    )
    with pytest.raises(ValueError, match=r"needs at least .* budget is 6\.0 GiB\. .* or a larger budget\.$"):
        plan_memory(6 * GIB, LTX2_19B_SIZES, DISTILLED, fp8=True, fp8_supported=True)


def test_fp8_arguments_are_checked():
    with pytest.raises(ValueError, match=r"fp8=True, but this device has no FP8 matmuls"):
        plan_memory(24 * GIB, LTX2_19B_SIZES, DISTILLED, fp8=True)
    with pytest.raises(ValueError, match=r"fp8='yes': expected 'auto', True or False"):
        plan_memory(24 * GIB, LTX2_19B_SIZES, DISTILLED, fp8="yes")
    already = dataclasses.replace(LTX2_19B_SIZES, transformer_is_fp8=True,
                                  transformer_blocks=LTX2_19B_SIZES.transformer_blocks_fp8)  # fmt: skip
    with pytest.raises(ValueError, match=r"transformer is in FP8 already: call transformer\.disable_fp8\(\)"):
        plan_memory(24 * GIB, already, DISTILLED, fp8=False)
    assert plan_memory(24 * GIB, already, DISTILLED).fp8 is True  # no FP8 matmuls needed to plan a stored FP8 model


def test_a_larger_call_than_planned_is_refused():
    plan = plan_memory(16 * GIB, LTX2_19B_SIZES, DISTILLED, fp8_supported=True)
    assert check_request(plan, MemoryRequest(512, 768, 65, two_stage=True)) <= plan.predicted_peak
    with pytest.raises(ValueError, match=r"The request \(1024x1536x121, .*\) would peak at .* GiB \(.*\) with the "
                                         r"weights placed for 512x768x121.*num_frames=121\)\.$"):  # fmt: skip
        check_request(plan, MemoryRequest(1024, 1536, 121, two_stage=True))
    assert check_transformer_call(plan, 1, 6144) <= plan.predicted_peak
    with pytest.raises(ValueError, match=r"A transformer call on 4 x 24576 video tokens would peak at"):
        check_transformer_call(plan, 4, 24576)


@pytest.mark.parametrize(
    "budget, expected",
    [("24GB", 24 * GIB), ("24 GiB", 24 * GIB), ("24g", 24 * GIB), ("24", 24 * GIB), (24, 24 * GIB),
     (23.5, int(23.5 * GIB)), ("1536MB", 1536 << 20), (25_769_803_776, 24 * GIB)],
)  # fmt: skip
def test_parse_budget(budget, expected):
    assert parse_budget(budget) == expected


@pytest.mark.parametrize(
    "budget, error, message",
    [
        ("24 apples", ValueError, r"budget='24 apples' is not a memory size: write e\.g\. '24GB'"),
        (5000, ValueError, r"budget=5000 is ambiguous or not positive: numbers below 1024 are GiB"),
        (-3, ValueError, r"budget=-3 is ambiguous or not positive"),
        ("512MB", ValueError, r"budget='512MB' is 512 MiB: the smallest budget planned for is 1 GiB"),
        (True, TypeError, r"budget must be a size such as '24GB'"),
        (None, TypeError, r"budget must be a size such as '24GB' or a number of bytes, got NoneType"),
    ],
)
def test_parse_budget_errors(budget, error, message):
    with pytest.raises(error, match=message):
        parse_budget(budget)


def test_request_is_checked():
    with pytest.raises(ValueError, match=r"height=96: expected a positive multiple of 64"):
        MemoryRequest(96, 768, 121, two_stage=True)
    with pytest.raises(ValueError, match=r"num_frames=120: expected 8\*k \+ 1 frames"):
        MemoryRequest(512, 768, 120)
    request = MemoryRequest(512, 768, 121)
    assert (request.video_tokens(512, 768), request.audio_tokens) == (6144, 127)


def test_component_sizes_measures_every_component():
    pipe = build_tiny_two_stage_pipeline()
    sizes = component_sizes(pipe)
    blocks = pipe.transformer.transformer_blocks
    assert sizes.transformer_blocks == tuple(tensor_bytes(block) for block in blocks)
    assert sizes.transformer_other + sum(sizes.transformer_blocks) == tensor_bytes(pipe.transformer)
    assert sizes.text_encoder == tensor_bytes(pipe.text_encoder)
    assert len(sizes.text_encoder_layers) == 2 and sizes.text_encoder_vision > 0
    assert (sizes.vae, sizes.latent_upsampler) == (tensor_bytes(pipe.vae), tensor_bytes(pipe.latent_upsampler))
    assert (sizes.video_width, sizes.audio_width, sizes.text_hidden_states) == (16, 8, 3)
    # FP8 keeps 1 byte per weight of the policy's linears (float32 here) plus a float32 scale per output row
    linears = [pipe.transformer.get_submodule(n) for n in fp8_layer_names(pipe.transformer)
               if n.startswith("transformer_blocks.0.")]  # fmt: skip
    saved = sum(linear.weight.numel() * 3 - 4 * linear.out_features for linear in linears)
    assert len(linears) > 0 and sizes.transformer_blocks_fp8[0] == sizes.transformer_blocks[0] - saved
    assert sizes.connectors == sum(p.numel() * 4 for p in pipe.connectors.parameters()) + sum(
        b.numel() * b.element_size() for b in pipe.connectors.buffers()
    )
    assert all(t.dtype == torch.float32 for t in pipe.transformer.parameters())


def test_docs_tables_are_the_planners_output():
    """Regenerate with `python scripts/memory_table.py` after changing the planner."""
    doc = (Path(__file__).parents[1] / "docs" / "memory.md").read_text()
    for marker, fp8_supported in (("fp8", True), ("bf16", False)):
        table = doc.split(f"<!-- plan_table {marker} -->\n", 1)[1].split("\n<!-- end -->", 1)[0]
        assert table == plan_table(LTX2_19B_SIZES, DOCS_WORKLOADS, DOCS_CARDS_GIB, fp8_supported), marker


def test_a_temporal_upsampler_is_counted_and_placed():
    """The two-stage pipelines' optional temporal x2 upsampler is one of the small components: resident when it fits,
    onloaded for the upsampling stage (after the spatial upsampler, so the larger of the two counts) when not."""
    temporal = 2 * LTX2_19B_SIZES.latent_upsampler  # larger than the spatial one, so the upsampling stage grows
    sizes = dataclasses.replace(LTX2_19B_SIZES, temporal_upsampler=temporal)
    roomy = plan_memory(80 * GIB, sizes, DISTILLED)
    assert dict(roomy.placement.components)["temporal_upsampler"] == "resident"
    without = plan_memory(80 * GIB, LTX2_19B_SIZES, DISTILLED)
    assert "temporal_upsampler" not in dict(without.placement.components)  # absent: not placed, not listed
    assert [peak for _, peak in roomy.stage_peaks] == [peak + temporal for _, peak in without.stage_peaks]
    assert "latent_upsampler resident, temporal_upsampler resident" in roomy.summary()

    tight = plan_memory(24 * GIB, sizes, DISTILLED, fp8_supported=True)
    assert dict(tight.placement.components)["temporal_upsampler"] == "onload"
    same = dataclasses.replace(tight.placement, components=tight.placement.components[:-1])
    upsample = dict(stage_peaks(LTX2_19B_SIZES, DISTILLED, same))["upsample"]
    assert dict(tight.stage_peaks)["upsample"] == upsample + temporal - LTX2_19B_SIZES.latent_upsampler

    pipe = build_tiny_two_stage_pipeline()
    config = {**TINY_LATENT_UPSAMPLER_CONFIG, "spatial_upsample": False, "temporal_upsample": True}
    pipe.register_modules(temporal_upsampler=LTX2LatentUpsamplerModel(**config))
    assert component_sizes(pipe).temporal_upsampler == tensor_bytes(pipe.temporal_upsampler) > 0
