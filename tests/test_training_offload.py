"""Block offloading in training (memory/placement.py `stream_for_training`, training/memory.py's fourth saving).

On the CPU the "device" is the CPU itself: the streamed weights' host copies and the two slots are different
buffers, so a dispatch mode can see which buffer every kernel reads. A step with streaming gives the resident step's
loss and LoRA gradients bit for bit (with and without gradient checkpointing, bf16-style and FP8 base), no kernel
other than the streamer's copies ever reads a host copy (forward, recompute or backward), the adapters never move,
and the last two streamed blocks are not copied again for the backward. Under DDP only the LoRA is synchronised: two
gloo processes with offloading train the LoRA that one process trains on the same global batch.
"""

import contextlib
import copy
import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest
import torch
import torch.utils.checkpoint
from torch.utils._python_dispatch import TorchDispatchMode

from ltx2_diffusers import LTX2VideoTransformer3DModel
from ltx2_diffusers.memory.placement import BlockStreamer
from ltx2_diffusers.models.fp8 import fp8_layer_names
from ltx2_diffusers.pipelines.tiny import tiny_transformer_config
from ltx2_diffusers.training import distributed
from ltx2_diffusers.training.lora import LORA_TARGET_PRESETS, lora_config
from ltx2_diffusers.training.memory import (
    GIB,
    ModelSizes,
    block_frozen_bytes,
    frozen_bytes,
    plan_memory,
    predict_gib,
)
from ltx2_diffusers.training.models import check_offload_blocks, offload_frozen_blocks

NUM_LAYERS = 4
# one or two linears of each kind a block has (video, audio, cross-modal; attention and feed-forward): every block's
# input gradient runs through all of its frozen linears either way
TARGETS = ("attn1.to_q", "attn2.to_v", "ff.net.2", "audio_attn1.to_k", "audio_ff.net.0.proj",
           "audio_to_video_attn.to_q", "video_to_audio_attn.to_out.0")  # fmt: skip


def build(fp8: bool, checkpointing: bool, seed: int = 0) -> LTX2VideoTransformer3DModel:
    """The tiny transformer (4 blocks) with rank-2 adapters on TARGETS, B random (so A gets gradients too)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = LTX2VideoTransformer3DModel(**{**tiny_transformer_config(), "num_layers": NUM_LAYERS})
        for parameter in transformer.parameters():
            parameter.data.normal_(0.0, 0.1)
        transformer.requires_grad_(False)
        if fp8:
            transformer.enable_fp8()
        transformer.add_adapter(lora_config(2, 2, TARGETS))
        for name, parameter in transformer.named_parameters():
            if "lora_B" in name:
                parameter.data.normal_(0.0, 0.1)
    if checkpointing:
        transformer.enable_gradient_checkpointing()
    return transformer.train()


def inputs() -> dict:
    generator = torch.Generator().manual_seed(4)
    return dict(
        hidden_states=torch.randn(1, 8, 128, generator=generator),
        audio_hidden_states=torch.randn(1, 4, 128, generator=generator),
        encoder_hidden_states=torch.randn(1, 6, 32, generator=generator),
        audio_encoder_hidden_states=torch.randn(1, 6, 32, generator=generator),
        timestep=torch.tensor([600.0]), num_frames=2, height=2, width=2, fps=24.0, audio_num_frames=4,
        return_dict=False,
    )  # fmt: skip


def train(transformer, steps: int = 2, first_step_under=contextlib.nullcontext()):
    """`steps` SGD steps on a fixed batch: (the losses, the last step's LoRA gradients). first_step_under: a context
    manager around the first step's forward and backward."""
    lora = {name: p for name, p in transformer.named_parameters() if p.requires_grad}
    optimizer = torch.optim.SGD(lora.values(), lr=0.1)
    losses = []
    for step in range(steps):
        with first_step_under if step == 0 else contextlib.nullcontext():
            video, audio = transformer(**inputs())
            loss = video.square().mean() + audio.square().mean()
            loss.backward()
        grads = {name: p.grad.clone() for name, p in lora.items()}
        optimizer.step()
        optimizer.zero_grad(set_to_none=False)  # kept: the gradient buffers must not move either
        losses.append(loss.detach())
    return losses, grads


class Reads(TorchDispatchMode):
    """Which kernels read a streamed tensor's host copy (any but the streamer's copies is a bug) or a slot, in forward
    and inside backward nodes (a checkpoint's recompute included)."""

    def __init__(self, streamer: BlockStreamer):
        super().__init__()
        self.host = [(p.host.data_ptr(), p.host.data_ptr() + p.host.numel()) for p in streamer.packs]
        self.slots = [(s.data_ptr(), s.data_ptr() + s.numel()) for s in streamer.slots]
        self.host_reads, self.slot_reads = [], {"forward": 0, "backward": 0}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not torch.ops.aten.copy_.default and not func.is_view:
            # a kernel takes a tensor as an argument or in a list argument (cat, the foreach kernels)
            for tensor in (t for a in args for t in (a if isinstance(a, (list, tuple)) else (a,))):
                if not isinstance(tensor, torch.Tensor) or not tensor.numel():
                    continue
                pointer = tensor.data_ptr()
                if any(start <= pointer < end for start, end in self.host):
                    self.host_reads.append(str(func))
                if any(start <= pointer < end for start, end in self.slots):
                    self.slot_reads["backward" if torch._C._current_autograd_node() is not None else "forward"] += 1
        return func(*args, **kwargs)


@pytest.mark.parametrize(
    "checkpointing, fp8, resident",
    [(False, False, 0), (True, False, 1), (False, True, 1), ("whole recompute", True, 0)],
    ids=["plain", "checkpointing", "fp8", "checkpointing-fp8"],
)
def test_streamed_training_steps_equal_resident_ones_bit_for_bit(checkpointing, fp8, resident):
    """"whole recompute": checkpointing without torch's early stop, so the recompute runs the block's post-hook too
    (by default it stops after the last tensor the backward needs, before the hook)."""
    early_stop = checkpointing != "whole recompute"
    transformer = build(fp8, bool(checkpointing))
    with torch.utils.checkpoint.set_checkpoint_early_stop(early_stop):
        expected_losses, expected_grads = train(copy.deepcopy(transformer))
    lora = {name: p for name, p in transformer.named_parameters() if p.requires_grad}
    streamer = offload_frozen_blocks(transformer, NUM_LAYERS - resident, "cpu")
    copies = []
    copy_in = streamer._copy_in
    streamer._copy_in = lambda position, slot: (copies.append(position), copy_in(position, slot))
    pointers = {name: p.data_ptr() for name, p in lora.items()}
    reads = Reads(streamer)
    with torch.utils.checkpoint.set_checkpoint_early_stop(early_stop):
        losses, grads = train(transformer, first_step_under=reads)

    for got, expected in zip(losses, expected_losses, strict=True):
        assert torch.equal(got, expected)
    assert grads.keys() == expected_grads.keys() and len(grads) == NUM_LAYERS * len(TARGETS) * 2
    for name in grads:
        assert torch.equal(grads[name], expected_grads[name]), name
    assert reads.host_reads == []  # no kernel read a host copy: the hooks placed every block, backward included
    assert reads.slot_reads["forward"] > 0 and reads.slot_reads["backward"] > 0
    # the adapters (and their gradients) never moved: not packed, never re-pointed
    assert {name: p.data_ptr() for name, p in lora.items()} == pointers
    assert not any(p is t for pack in streamer.packs for t in pack.tensors for p in lora.values())
    # forward copies 0..n-1; the backward starts with the last two still in their slots and copies the others; the
    # next forward finds blocks 0 and 1 there
    n = len(streamer.blocks)
    assert copies == [*range(n), *range(n - 3, -1, -1), *range(2, n), *range(n - 3, -1, -1)]
    # between steps every frozen tensor of a streamed block points at its host copy
    assert not streamer.in_backward and not streamer.callback_queued
    for pack in streamer.packs:
        start = pack.host.data_ptr()
        assert all(start <= t.data_ptr() < start + pack.host.numel() for t in pack.tensors)
    if fp8:  # FP8 weights stream as their own bytes
        weight = transformer.transformer_blocks[-1].attn1.to_q.base_layer.weight
        assert weight.dtype == torch.float8_e4m3fn and any(weight is t for t in streamer.packs[-1].tensors)


def test_unpack_gives_every_tensor_its_own_storage_and_the_same_step():
    transformer = build(fp8=False, checkpointing=True)
    expected, _ = train(copy.deepcopy(transformer), steps=1)
    streamer = offload_frozen_blocks(transformer, 3, "cpu")
    streamer.unpack(torch.device("cpu"))
    for block in transformer.transformer_blocks:
        assert not block._forward_pre_hooks and not block._forward_hooks
    for parameter in transformer.parameters():
        assert parameter.untyped_storage().nbytes() == parameter.numel() * parameter.element_size()
    assert torch.equal(train(transformer, steps=1)[0][0], expected[0])


def test_offload_refuses_a_block_count_the_model_does_not_have():
    transformer = build(fp8=False, checkpointing=False)
    with pytest.raises(ValueError, match=r"^--offload_blocks 5: the transformer has 4 blocks; stream 1 to 4 of them"):
        offload_frozen_blocks(transformer, 5, "cpu")


# The planner: a 10-block model, 0.5 GiB of frozen weights a block (0.25 in FP8) and 1 GiB outside the blocks
SIZES = ModelSizes(base_bytes=6 * GIB, fp8_base_bytes=int(3.5 * GIB), lora_params=10_000_000, num_layers=10,
                   video_width=1024, audio_width=512, video_tokens=4096, audio_tokens=50, block_bytes=GIB // 2,
                   fp8_block_bytes=GIB // 4)  # fmt: skip


def test_vram_picks_block_offloading_after_fp8_keeping_as_many_blocks_resident_as_fit():
    fp8 = predict_gib(SIZES, True, True, True)
    bare = predict_gib(SIZES, True, True, True, streamed_blocks=10)
    assert fp8 - bare == pytest.approx(8 * 0.25)  # 10 blocks leave, two slots of one block come
    assert predict_gib(SIZES, True, True, True, streamed_blocks=5) == pytest.approx(fp8 - 3 * 0.25)
    plan = plan_memory(fp8 - 0.6, SIZES)  # 3 blocks' worth over: 3 + 2 (the slots) = 5 streamed
    assert (plan.gradient_checkpointing, plan.use_8bit_adam, plan.fp8_base, plan.streamed_blocks) == (
        True, True, True, 5,
    )  # fmt: skip
    assert plan.predicted_gib == pytest.approx(fp8 - 0.75)
    assert plan.describe() == (
        f"predicted peak {fp8 - 0.75:.1f} GiB with gradient checkpointing + 8-bit AdamW + FP8 base weights + block "
        "offloading (5 of 10 blocks streamed from host memory)"
    )
    assert plan_memory(bare, SIZES).streamed_blocks == 10
    assert plan_memory(fp8, SIZES).streamed_blocks == 0  # FP8 alone fits: nothing streams
    assert plan_memory(100, SIZES, streamed_blocks=4).streamed_blocks == 4  # asked for: kept
    with pytest.raises(ValueError, match=(
        rf"^--vram {bare - 0.05:g}: one training step is predicted at {bare:.1f} GiB even with gradient checkpointing, "
        r"8-bit AdamW, FP8 base weights and block offloading \(all 10 blocks streamed from host memory: the weights "
        r"left on the card, outside the blocks plus two block slots, take 1\.5 GiB in FP8; the activations and the "
        r"LoRA's training state take \d+\.\d GiB\)\. Use smaller buckets"
    )):  # fmt: skip
        plan_memory(bare - 0.05, SIZES)


def test_without_fp8_sizes_offloading_streams_the_plain_base():
    sizes = ModelSizes(base_bytes=6 * GIB, lora_params=10_000_000, num_layers=10, video_width=1024, audio_width=512,
                       video_tokens=4096, audio_tokens=50, block_bytes=GIB // 2)  # fmt: skip
    eight_bit = predict_gib(sizes, True, True)
    plan = plan_memory(eight_bit - 1.2, sizes)  # 1.2 GiB over: 3 blocks (1.5 GiB) + the 2 slots' blocks
    assert (plan.fp8_base, plan.streamed_blocks) == (False, 5)
    with pytest.raises(ValueError, match=r"streamed_blocks=3 with fp8_base=True needs ModelSizes\.fp8_block_bytes"):
        predict_gib(dataclasses.replace(sizes, fp8_base_bytes=4 * GIB), True, True, True, streamed_blocks=3)
    with pytest.raises(ValueError, match=r"streamed_blocks=11: the model has 10 blocks"):
        predict_gib(sizes, True, True, streamed_blocks=11)


def test_block_frozen_bytes_counts_one_block_as_frozen_bytes_counts_the_model():
    transformer = build(fp8=False, checkpointing=False)
    names = fp8_layer_names(LTX2VideoTransformer3DModel(**{**tiny_transformer_config(), "num_layers": NUM_LAYERS}))
    block, fp8_block = block_frozen_bytes(transformer, torch.bfloat16, names)
    frozen = [p for p in transformer.transformer_blocks[0].parameters() if not p.requires_grad]
    assert block == 2 * sum(p.numel() for p in frozen)
    base, fp8 = frozen_bytes(transformer, torch.bfloat16, names)
    outside = base - NUM_LAYERS * block
    assert outside > 0 and fp8 == outside + NUM_LAYERS * fp8_block and fp8_block < block


def test_the_19b_run_streams_half_its_blocks_on_16_gib_and_refuses_below_7_2():
    """LTX-2 19B, rank 32 on `all`, 512x768x49 with audio (the calibration run): 0.36 GiB of FP8 weights a block;
    24 GiB needs no streaming, 16 GiB streams 24 of the 48 blocks, everything streamed leaves 7.2 GiB."""
    from helpers.released_configs import released

    from ltx2_diffusers.loaders import metadata as md

    def counts(num_layers: int) -> tuple[int, ...]:
        config = {**md.transformer_config_from_original(released("2.0")), "num_layers": num_layers}
        with torch.device("meta"):
            transformer = LTX2VideoTransformer3DModel(**config)
        transformer.requires_grad_(False)
        names = fp8_layer_names(transformer)
        transformer.add_adapter(lora_config(32, 32, LORA_TARGET_PRESETS["all"]))
        lora = sum(p.numel() for p in transformer.parameters() if p.requires_grad)
        return (*frozen_bytes(transformer, torch.bfloat16, names), lora,
                *block_frozen_bytes(transformer, torch.bfloat16, names))  # fmt: skip

    one, two = counts(1), counts(2)
    base, fp8, lora = (a + 47 * (b - a) for a, b in zip(one[:3], two[:3]))
    block, fp8_block = one[3:]
    assert (round(block / GIB, 2), round(fp8_block / GIB, 2)) == (0.72, 0.36)
    sizes = ModelSizes(base, lora, 48, 4096, 2048, 2688, 51, fp8_base_bytes=fp8, block_bytes=block,
                       fp8_block_bytes=fp8_block)  # fmt: skip
    assert plan_memory(24, sizes).streamed_blocks == 0
    plan = plan_memory(16, sizes)
    assert (plan.use_8bit_adam, plan.fp8_base, plan.streamed_blocks) == (True, True, 24)
    assert plan.predicted_gib == pytest.approx(15.9, abs=0.05)
    assert predict_gib(sizes, True, True, True, streamed_blocks=48) == pytest.approx(7.2, abs=0.05)
    with pytest.raises(ValueError, match=r"^--vram 7: one training step is predicted at 7\.2 GiB even with .* take 1\.5 "
                       r"GiB in FP8; the activations and the LoRA's training state take 4\.7 GiB\)"):  # fmt: skip
        plan_memory(7, sizes)


def test_offloading_checks_the_block_count_and_refuses_only_fsdp(monkeypatch):
    with pytest.raises(ValueError, match=r"^--offload_blocks 49: the transformer has 48 blocks$"):
        check_offload_blocks(49, 48, vram=None)
    check_offload_blocks(48, 48, vram=16.0)  # one process, no FSDP (validation and DDP are not its business)
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # what `accelerate launch` exports with an FSDP config
    with pytest.raises(ValueError, match=r"^--vram 16 needs block offloading, but the run shards the model with FSDP: "
                       r".* train with DDP \(an accelerate config without FSDP\)"):  # fmt: skip
        check_offload_blocks(24, 48, vram=16.0)
    check_offload_blocks(0, 48, vram=16.0)  # nothing streamed: nothing refused


def test_offloading_leaves_the_frozen_weights_out_of_ddp_next_to_fp8s():
    transformer = build(fp8=True, checkpointing=False)
    fp8 = distributed.keep_fp8_out_of_ddp(transformer)
    offload_frozen_blocks(transformer, 2, "cpu")
    ignored = transformer._ddp_params_and_buffers_to_ignore
    frozen = {name for name, p in transformer.named_parameters() if not p.requires_grad}
    assert set(ignored) == frozen | {name for name, _ in transformer.named_buffers()} and set(fp8) <= set(ignored)
    assert {name for name, p in transformer.named_parameters() if name not in ignored} == {
        name for name, p in transformer.named_parameters() if p.requires_grad
    }


def test_two_processes_with_offloading_train_the_same_lora_as_one(tmp_path, monkeypatch):
    """2 gloo processes x batch 1 with --offload_blocks 2 (every block) against 1 resident process x batch 2, 3 steps
    of t2av, as tests/test_training_script.py's two-process test (its tolerances: the all-reduce sums in another
    order). DDP (spied on in the forked processes) registers the LoRA's parameters alone."""
    from helpers.training import BUCKETS, MAX_SEQUENCE_LENGTH, run_in_processes, save_training_pipeline, write_dataset
    from safetensors.torch import load_file

    spec = importlib.util.spec_from_file_location("train_lora", Path(__file__).parents[1] / "scripts" / "train_lora.py")
    train_lora = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_lora)
    model_dir, data_dir = save_training_pipeline(tmp_path / "model"), write_dataset(tmp_path / "data", num_clips=2)
    common = ["--pretrained_model_name_or_path", str(model_dir), "--train_data_dir", str(data_dir),
              "--resolution_buckets", BUCKETS, "--max_sequence_length", str(MAX_SEQUENCE_LENGTH), "--mode", "t2av",
              "--max_train_steps", "3", "--rank", "4", "--lora_alpha", "8", "--learning_rate", "1e-3",
              "--checkpointing_steps", "100", "--lora_save_dtype", "fp32"]  # fmt: skip
    one, two = tmp_path / "one", tmp_path / "two"
    train_lora.main([*common, "--output_dir", str(one), "--train_batch_size", "2"])  # caches, then trains

    ddp_init = torch.nn.parallel.DistributedDataParallel.__init__

    def spy(self, module, *args, **kwargs):  # forked: the children inherit it
        ddp_init(self, module, *args, **kwargs)
        registered = [name for name, _ in module.named_parameters() if name not in self.parameters_to_ignore]
        (tmp_path / f"ddp_{torch.distributed.get_rank()}.json").write_text(json.dumps(registered))

    monkeypatch.setattr(torch.nn.parallel.DistributedDataParallel, "__init__", spy)
    run_in_processes(train_lora.main, [*common, "--output_dir", str(two), "--train_batch_size", "1",
                                       "--offload_blocks", "2"], world_size=2)  # fmt: skip
    for rank in (0, 1):
        registered = json.loads((tmp_path / f"ddp_{rank}.json").read_text())
        assert registered and all(".lora_A." in name or ".lora_B." in name for name in registered), registered
    logs = [[json.loads(line) for line in (d / "training_log.jsonl").read_text().splitlines()] for d in (one, two)]
    for a, b in zip(*logs, strict=True):
        assert a["step"] == b["step"] and a["lr"] == pytest.approx(b["lr"])
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    ours, theirs = (load_file(str(d / "pytorch_lora_weights.safetensors")) for d in (one, two))
    assert ours.keys() == theirs.keys()
    for key in ours:
        torch.testing.assert_close(theirs[key], ours[key], rtol=0, atol=1e-4, msg=key)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_streamed_training_on_a_gpu_stays_under_the_plan():
    """A small but real-width model (8 blocks, video 2048 wide, audio 1024, bf16, FP8-free), rank 16 on `all`,
    checkpointing, a budget that makes the plan stream blocks, the process capped at that budget: a few steps
    train (finite loss, the LoRA moves) and the measured peak stays under the prediction."""
    from helpers.training import TRANSFORMER_CONFIG

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    device = torch.device("cuda")
    config = {**TRANSFORMER_CONFIG, "num_layers": 8, "num_attention_heads": 16, "attention_head_dim": 128,
              "cross_attention_dim": 2048, "audio_num_attention_heads": 16, "audio_attention_head_dim": 64,
              "audio_cross_attention_dim": 1024}  # fmt: skip
    transformer = LTX2VideoTransformer3DModel(**config).to(torch.bfloat16)
    transformer.requires_grad_(False)
    names = fp8_layer_names(transformer)
    transformer.add_adapter(lora_config(16, 16, LORA_TARGET_PRESETS["all"]))
    lora = [p for p in transformer.parameters() if p.requires_grad]
    for parameter in lora:
        parameter.data = parameter.data.float()
    transformer.enable_gradient_checkpointing()
    video_tokens, audio_tokens = 16 * 24 * 4, 50  # 768x512x25 with 2 s of audio
    base, _ = frozen_bytes(transformer, torch.bfloat16, names)
    block, _ = block_frozen_bytes(transformer, torch.bfloat16, names)
    sizes = ModelSizes(base, sum(p.numel() for p in lora), 8, 2048, 1024, video_tokens, audio_tokens,
                       block_bytes=block)  # fmt: skip
    budget = predict_gib(sizes, True, False, streamed_blocks=6) + 0.05
    plan = plan_memory(budget, sizes, can_8bit_adam=False)
    assert plan.streamed_blocks == 6
    torch.cuda.set_per_process_memory_fraction(budget * GIB / torch.cuda.get_device_properties(device).total_memory)
    try:
        offload_frozen_blocks(transformer, plan.streamed_blocks, device)
        optimizer = torch.optim.AdamW(lora, lr=1e-3)
        start = [p.detach().clone() for p in lora]
        context = torch.randn(1, 64, config["caption_channels"], device=device, dtype=torch.bfloat16)
        for _ in range(3):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                video, audio = transformer(
                    hidden_states=torch.randn(1, video_tokens, 128, device=device, dtype=torch.bfloat16),
                    audio_hidden_states=torch.randn(1, audio_tokens, 128, device=device, dtype=torch.bfloat16),
                    encoder_hidden_states=context, audio_encoder_hidden_states=context,
                    timestep=torch.tensor([600.0], device=device), num_frames=4, height=16, width=24, fps=24.0,
                    audio_num_frames=audio_tokens, return_dict=False,
                )  # fmt: skip
                loss = video.float().square().mean() + audio.float().square().mean()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            assert torch.isfinite(loss)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated(device) / GIB
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert any(not torch.equal(a, p.detach()) for a, p in zip(start, lora))
    assert peak < plan.predicted_gib, (peak, plan.predicted_gib)
