"""Placement on the CPU: the streamed-block forward equals the resident one bit for bit (peft adapters riding with
their blocks), a refused request moves nothing, `remove` restores full residency, and a whole pipeline under a forced
lean placement (Gemma streamed, every component onloaded, blocks streamed) gives the resident pipeline's output."""

import dataclasses
from types import SimpleNamespace

import pytest
import torch
from helpers.lora import random_pair, run_text_and_transformer, tiny_models

from ltx2_diffusers.loaders.lora import LTX2LoRA, load_lora_adapter
from ltx2_diffusers.memory import MemoryRequest, Placement, component_sizes, count_guidance_passes, plan_memory
from ltx2_diffusers.memory.placement import BlockStreamer, HostArena, TransientHolder, apply_plan
from ltx2_diffusers.memory.planner import GIB, SMALL_COMPONENTS
from ltx2_diffusers.pipelines.guidance import GuidanceScales, GuidanceSchedule
from ltx2_diffusers.pipelines.tiny import build_tiny_pipeline

CPU = torch.device("cpu")


def forced_plan(pipe, resident_blocks: int, text_encoder: str = "resident", components: str = "resident"):
    """A real plan for `pipe` with its placement replaced: tiny models fit any budget, so the planner alone would keep
    everything resident."""
    plan = plan_memory(4 * GIB, component_sizes(pipe), MemoryRequest(64, 64, 9))
    placement = Placement(
        False, resident_blocks, text_encoder, tuple((name, components) for name in SMALL_COMPONENTS), (256, 32)
    )
    return dataclasses.replace(plan, placement=placement)


def adapter(transformer, blocks, seed: int = 0) -> LTX2LoRA:
    layers = {}
    for index in blocks:
        for name in ("attn1.to_q", "attn1.to_v", "ff.net.2"):
            module_name = f"transformer_blocks.{index}.{name}"
            layers[module_name] = random_pair(transformer.get_submodule(module_name), 2, seed + index)
    return LTX2LoRA(layers)


def test_streamed_blocks_equal_resident_bit_for_bit_and_live_in_the_slots_only_while_they_run():
    transformer, connectors = tiny_models(num_layers=4)
    expected = run_text_and_transformer(connectors, transformer)
    holder = TransientHolder()
    streamer = BlockStreamer(transformer.transformer_blocks[1:], CPU, HostArena(pin=False), on_use=lambda: holder.activate("t"))
    holder.add("t", streamer.activate, streamer.release)
    weight = transformer.transformer_blocks[2].attn1.to_q.weight
    host = streamer.packs[1].host
    in_slot = []

    def inside(tensor, buffer):
        start = buffer.data_ptr()
        return start <= tensor.data_ptr() < start + buffer.numel()

    transformer.transformer_blocks[2].register_forward_pre_hook(
        lambda *_: in_slot.append(any(inside(weight, slot) for slot in streamer.slots))
    )
    got = run_text_and_transformer(connectors, transformer)
    for a, b in zip(got, expected):
        assert torch.equal(a, b)
    assert in_slot == [True]
    assert inside(weight, host)  # back in the host pack after the block ran
    assert streamer.slot_bytes == max(pack.nbytes for pack in streamer.packs)
    holder.release()
    assert streamer.slots is None


def test_peft_adapters_ride_with_streamed_blocks_and_adapters_added_later_are_packed():
    transformer, connectors = tiny_models(num_layers=4)
    base = run_text_and_transformer(connectors, transformer)
    load_lora_adapter(transformer, adapter(transformer, (1, 3)), adapter_name="first")
    with_first = run_text_and_transformer(connectors, transformer)
    assert not torch.equal(with_first[2], base[2])

    pipe = SimpleNamespace(transformer=transformer)
    applied = apply_plan(pipe, forced_plan(pipe, resident_blocks=1), CPU)
    for a, b in zip(run_text_and_transformer(connectors, transformer), with_first):
        assert torch.equal(a, b)
    lora_a = transformer.transformer_blocks[3].attn1.to_q.lora_A["first"].weight
    assert any(lora_a is t for t in applied.streamers[0].packs[2].tensors)  # packed with its block

    transformer.disable_adapters()
    for a, b in zip(run_text_and_transformer(connectors, transformer), base):
        assert torch.equal(a, b)
    transformer.enable_adapters()

    # an adapter loaded while the blocks stream: created on the host beside the base weights, packed at the next call
    load_lora_adapter(transformer, adapter(transformer, (2,), seed=7), adapter_name="second")
    transformer.set_adapters(["first", "second"])
    streamed = run_text_and_transformer(connectors, transformer)
    applied.remove(pipe)
    resident = run_text_and_transformer(connectors, transformer)
    assert not torch.equal(resident[2], with_first[2])
    for a, b in zip(streamed, resident):
        assert torch.equal(a, b)


def test_streamed_blocks_refuse_gradients():
    transformer, connectors = tiny_models(num_layers=2)
    pipe = SimpleNamespace(transformer=transformer)
    apply_plan(pipe, forced_plan(pipe, resident_blocks=1), CPU)
    with pytest.raises(RuntimeError, match=r"a streamed block ran with gradients enabled: memory budgets are for "):
        run_text_and_transformer.__wrapped__(connectors, transformer)  # the helper without its torch.no_grad()


def test_remove_restores_full_residency():
    transformer, connectors = tiny_models(num_layers=3)
    expected = run_text_and_transformer(connectors, transformer)
    pipe = SimpleNamespace(transformer=transformer)
    applied = apply_plan(pipe, forced_plan(pipe, resident_blocks=0), CPU)
    run_text_and_transformer(connectors, transformer)
    applied.remove(pipe)
    for block in transformer.transformer_blocks:
        assert not block._forward_pre_hooks and not block._forward_hooks
    assert not transformer._forward_pre_hooks
    for parameter in transformer.parameters():  # its own storage again, not a view of a packed block buffer
        assert parameter.untyped_storage().nbytes() == parameter.numel() * parameter.element_size()
    for a, b in zip(run_text_and_transformer(connectors, transformer), expected):
        assert torch.equal(a, b)


def snapshot(pipe) -> dict[str, tuple[torch.device, int]]:
    return {
        f"{component}.{name}": (tensor.device, tensor.data_ptr())
        for component, module in pipe.components.items()
        if isinstance(module, torch.nn.Module)
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]
    }


def test_an_impossible_request_is_refused_before_any_weight_moves():
    pipe = build_tiny_pipeline()
    before = snapshot(pipe)
    with pytest.raises(ValueError, match=r"needs at least .* but the budget is 2\.0 GiB\. Use a smaller height/width"):
        pipe.enable_memory_budget("2GB", device="cpu", height=2048, width=2048, num_frames=257)
    assert snapshot(pipe) == before
    assert pipe._memory_placement is None
    assert not pipe.transformer._forward_pre_hooks


def test_budget_api_refuses_a_larger_call_and_double_enable():
    pipe = build_tiny_pipeline()
    # the default request is the pipeline's preset: LTX-2 dev, 512x768x121, cfg + stg + modality guidance
    assert pipe.memory_plan(budget="4GB", device="cpu").request == MemoryRequest(512, 768, 121, guidance_passes=4)
    plan = pipe.enable_memory_budget("4GB", device="cpu", height=128, width=128, num_frames=9)
    assert plan.resident_blocks == tuple(range(30)) and plan.text_encoder == "resident"
    assert pipe._execution_device == CPU
    assert pipe.memory_plan(height=64, width=64, num_frames=9).request.height == 64
    with pytest.raises(ValueError, match=r"would peak at .* pipe\.enable_memory_budget\(budget, height=4096"):
        pipe.check_memory_budget(4096, 4096, 257)
    with pytest.raises(ValueError, match="already enabled"):
        pipe.enable_memory_budget("4GB", device="cpu")
    pipe.disable_memory_budget(to="cpu")
    assert {p.device for p in pipe.transformer.parameters()} == {CPU}
    pipe._all_hooks = [object()]  # what enable_model_cpu_offload leaves
    with pytest.raises(ValueError, match=r"model CPU offload is enabled .* call pipe\.remove_all_hooks\(\) first"):
        pipe.enable_memory_budget("4GB", device="cpu")
    pipe._all_hooks = []
    with pytest.raises(ValueError, match="no memory budget is enabled"):
        pipe.memory_plan()


def test_guidance_passes_are_counted_over_schedules():
    assert count_guidance_passes(None, None) == 1
    assert count_guidance_passes(GuidanceScales(), GuidanceScales()) == 1
    assert count_guidance_passes(GuidanceScales(cfg=3.0), GuidanceScales(modality=3.0)) == 3
    schedule = GuidanceSchedule.from_dict({1.0: GuidanceScales(cfg=3.0), 0.5: GuidanceScales(stg=1.0, stg_blocks=(1,))})
    assert count_guidance_passes(schedule, None) == 3


def test_pipeline_under_a_lean_placement_equals_the_resident_pipeline():
    pipe = build_tiny_pipeline()
    call = dict(height=64, width=64, num_frames=9, num_inference_steps=2, output_type="pt")
    expected = pipe("a cat", generator=torch.Generator().manual_seed(0), **call)
    plan = forced_plan(pipe, resident_blocks=20, text_encoder="streamed", components="onload")
    pipe._memory_placement = apply_plan(pipe, plan, CPU, check_call=pipe._check_transformer_call)
    vae_weight = next(pipe.vae.decoder.parameters())
    got = pipe("a cat", generator=torch.Generator().manual_seed(0), **call)
    assert torch.equal(got.frames, expected.frames) and torch.equal(got.audio, expected.audio)
    applied = pipe._memory_placement
    assert applied.holder.current == "vocoder"  # the last component onloaded; the VAE was released for it
    vae_pack = next(pack for pack in applied.packs if any(vae_weight is t for t in pack.tensors))
    assert vae_pack.host.data_ptr() <= vae_weight.data_ptr() < vae_pack.host.data_ptr() + vae_pack.host.numel()
    pipe.disable_memory_budget()


@pytest.mark.parametrize("mode", ["onload", "streamed"])
def test_text_encoder_onloaded_or_streamed_encodes_the_same(mode):
    pipe = build_tiny_pipeline()
    expected = pipe.encode_prompt(["a cat", "a dog"])
    pipe._memory_placement = apply_plan(pipe, forced_plan(pipe, 30, text_encoder=mode, components="onload"), CPU)
    got = pipe.encode_prompt(["a cat", "a dog"])
    assert torch.equal(got.video_context, expected.video_context)
    assert torch.equal(got.audio_context, expected.audio_context)
    assert pipe._memory_placement.holder.current == "connectors"  # Gemma's parts were released for the connectors
    embedding = pipe.text_encoder.model.language_model.embed_tokens.weight
    assert any(embedding is t for pack in pipe._memory_placement.packs for t in pack.tensors)
    pipe.disable_memory_budget()
