"""scripts/train_lora.py --fp8_base: the frozen block linears in FP8 (emulated on the CPU), the LoRA trained live over
them in float32. The loss falls, the FP8 weights and scales are not touched, the two LoRA files have exactly the
layout of a run on the plain base, resume repeats the uninterrupted losses, and --vram picks FP8 after checkpointing
and 8-bit AdamW."""

import importlib.util
import json
import logging
import re
import shutil
from pathlib import Path

import pytest
import torch
from helpers.training import BUCKETS, MAX_SEQUENCE_LENGTH, run_in_processes, save_training_pipeline, write_dataset
from safetensors import safe_open
from safetensors.torch import load_file

from ltx2_diffusers import LTX2VideoTransformer3DModel
from ltx2_diffusers.loaders import metadata as md
from ltx2_diffusers.models.fp8 import FP8_DTYPE, FP8Linear, fp8_layer_names
from ltx2_diffusers.models.fp8_lora import FP8LoraLinear
from ltx2_diffusers.training.lora import LORA_TARGET_PRESETS, lora_config
from ltx2_diffusers.training.memory import GIB, ModelSizes, frozen_bytes, plan_memory, predict_gib

SCRIPT = Path(__file__).parents[1] / "scripts" / "train_lora.py"
spec = importlib.util.spec_from_file_location("train_lora_fp8", SCRIPT)
train_lora = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train_lora)

FILES = ("pytorch_lora_weights.safetensors", "comfyui_lora_weights.safetensors")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_training_pipeline(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data"), num_clips=1)


def run(model_dir: Path, data_dir: Path, output_dir: Path, *extra: str) -> Path:
    train_lora.main(["--pretrained_model_name_or_path", str(model_dir), "--train_data_dir", str(data_dir),
                     "--resolution_buckets", BUCKETS, "--max_sequence_length", str(MAX_SEQUENCE_LENGTH),
                     "--output_dir", str(output_dir), "--rank", "8", "--lora_alpha", "8", "--mode", "t2av",
                     "--lora_save_dtype", "fp32", *extra])  # fmt: skip
    return output_dir


def read_log(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "training_log.jsonl").read_text().splitlines()]


def fp8_tensors(transformer) -> dict[str, torch.Tensor]:
    """Every FP8 layer's e4m3 weight and float32 scale, as raw bytes (a NaN-safe, bit-exact comparison)."""
    found = {}
    for name, module in transformer.named_modules():
        if isinstance(module, FP8Linear):
            name = name.removesuffix(".base_layer")
            found[f"{name}.weight"] = module.weight.detach().view(torch.uint8).clone()
            found[f"{name}.weight_scale"] = module.weight_scale.detach().view(torch.uint8).clone()
    return found


@pytest.fixture(scope="module")
def fp8_run(model_dir, data_dir, tmp_path_factory):
    """30 steps of t2av on one clip over an FP8 base; returns (output dir, the trained transformer)."""
    trained = []
    load = train_lora.load_transformer

    def keep(*args, **kwargs):
        trained.append(load(*args, **kwargs))
        return trained[-1]

    train_lora.load_transformer = keep
    try:
        output_dir = run(model_dir, data_dir, tmp_path_factory.mktemp("fp8"), "--fp8_base", "--max_train_steps", "30",
                         "--learning_rate", "3e-3", "--checkpointing_steps", "30")  # fmt: skip
    finally:
        train_lora.load_transformer = load
    return output_dir, trained[0]


def test_thirty_steps_over_an_fp8_base_lower_the_loss(fp8_run):
    output_dir, transformer = fp8_run
    losses = [record["loss"] for record in read_log(output_dir)]
    assert len(losses) == 30 and all(torch.isfinite(torch.tensor(losses)))
    # per-step losses are noisy (a fresh sigma each step): compare the means of the first and last ten
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.8 * first, (first, last)
    adapted = [m for m in transformer.modules() if isinstance(m, FP8LoraLinear)]
    assert len(adapted) == 56  # `all`: 2 blocks x 28 linears, every one of them FP8
    # every adapter trained: B starts at zero
    assert all(m.lora_B["default"].weight.abs().max() > 0 for m in adapted)
    assert all(m.lora_A["default"].weight.dtype == torch.float32 for m in adapted)


def test_training_leaves_the_fp8_weights_and_scales_byte_identical(fp8_run, model_dir):
    _, transformer = fp8_run
    fresh = LTX2VideoTransformer3DModel.from_pretrained(model_dir, subfolder="transformer")
    fresh.enable_fp8()
    before, after = fp8_tensors(fresh), fp8_tensors(transformer)
    assert before.keys() == after.keys() and len(before) == 2 * len(fp8_layer_names(
        LTX2VideoTransformer3DModel.from_pretrained(model_dir, subfolder="transformer")))  # fmt: skip
    assert all(m.weight.dtype == FP8_DTYPE for m in transformer.modules() if isinstance(m, FP8Linear))
    for key in before:
        assert torch.equal(before[key], after[key]), key


def test_the_exported_files_have_the_layout_of_a_plain_base_run(fp8_run, model_dir, data_dir, tmp_path):
    fp8_dir, _ = fp8_run
    plain_dir = run(model_dir, data_dir, tmp_path / "plain", "--max_train_steps", "1", "--checkpointing_steps", "100")
    for name in FILES:
        ours, theirs = load_file(str(fp8_dir / name)), load_file(str(plain_dir / name))
        assert {k: (v.shape, v.dtype) for k, v in ours.items()} == {k: (v.shape, v.dtype) for k, v in theirs.items()}
        with safe_open(str(fp8_dir / name), "pt") as a, safe_open(str(plain_dir / name), "pt") as b:
            assert a.metadata() == b.metadata()
    assert len(load_file(str(fp8_dir / FILES[1]))) == 2 * 28 * 2


def test_resume_over_an_fp8_base_repeats_the_uninterrupted_losses(model_dir, data_dir, tmp_path):
    common = ("--fp8_base", "--max_train_steps", "4", "--learning_rate", "1e-3", "--checkpointing_steps", "2")
    whole = run(model_dir, data_dir, tmp_path / "whole", *common)
    # the checkpoint holds the adapter alone (float32), no FP8 base tensor
    saved = load_file(str(whole / "checkpoint-2" / "adapter_model.safetensors"))
    assert saved and all(".lora_" in k and v.dtype == torch.float32 for k, v in saved.items())
    assert not list((whole / "checkpoint-2").glob("model*.safetensors"))
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(whole / "checkpoint-2", resumed / "checkpoint-2")
    shutil.copy(whole / "training_log.jsonl", resumed / "training_log.jsonl")  # steps 3 and 4 must be replaced
    run(model_dir, data_dir, resumed, *common, "--resume_from_checkpoint", "latest")
    assert read_log(resumed) == read_log(whole)
    for name in FILES:
        ours, theirs = load_file(str(resumed / name)), load_file(str(whole / name))
        assert ours.keys() == theirs.keys()
        for key in ours:
            assert torch.equal(ours[key], theirs[key]), key


@pytest.mark.slow
def test_two_ddp_processes_over_an_fp8_base_train_what_one_process_trains(model_dir, tmp_path):
    """DDP would broadcast the float8 weights when it wraps the model (gloo has no float8: "Invalid scalar type"); the
    script leaves the FP8 layers out of DDP. 2 processes x batch 1 against 1 x batch 2, the DDP test's tolerances."""
    common = ("--fp8_base", "--max_train_steps", "2", "--learning_rate", "1e-3", "--checkpointing_steps", "100")
    data_dir = write_dataset(tmp_path / "data", num_clips=2)  # a global batch of 2 needs 2 samples in the bucket
    one = run(model_dir, data_dir, tmp_path / "one", *common, "--train_batch_size", "2")
    two = tmp_path / "two"
    run_in_processes(train_lora.main, ["--pretrained_model_name_or_path", str(model_dir), "--train_data_dir",
                                       str(data_dir), "--resolution_buckets", BUCKETS, "--max_sequence_length",
                                       str(MAX_SEQUENCE_LENGTH), "--output_dir", str(two), "--rank", "8",
                                       "--lora_alpha", "8", "--mode", "t2av", "--lora_save_dtype", "fp32", *common,
                                       "--train_batch_size", "1"])  # fmt: skip
    for a, b in zip(read_log(one), read_log(two), strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    ours, theirs = (load_file(str(d / FILES[0])) for d in (one, two))
    assert ours.keys() == theirs.keys()
    for key in ours:
        torch.testing.assert_close(theirs[key], ours[key], rtol=0, atol=1e-4, msg=key)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (FP8 GEMMs: capability 8.9+)")
def test_fp8_base_trains_in_bf16_on_a_gpu(model_dir, data_dir, tmp_path):
    """On Hopper / Ada the base runs through torch._scaled_mm in bf16: a few steps, finite falling loss, both files."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    try:
        output_dir = run(model_dir, data_dir, tmp_path / "gpu", "--fp8_base", "--mixed_precision", "bf16",
                         "--gradient_checkpointing", "--max_train_steps", "20", "--learning_rate", "3e-3",
                         "--checkpointing_steps", "100")  # fmt: skip
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    losses = [record["loss"] for record in read_log(output_dir)]
    assert all(torch.isfinite(torch.tensor(losses))) and sum(losses[-5:]) < sum(losses[:5])
    assert all((output_dir / name).is_file() for name in FILES)


SIZES = ModelSizes(base_bytes=10 * GIB, fp8_base_bytes=6 * GIB, lora_params=100_000_000, num_layers=10,
                   video_width=1024, audio_width=512, video_tokens=4096, audio_tokens=50)  # fmt: skip


def test_vram_picks_fp8_after_checkpointing_and_8bit_adam():
    eight_bit, fp8 = predict_gib(SIZES, True, True), predict_gib(SIZES, True, True, True)
    assert eight_bit - fp8 == pytest.approx(4.0)  # the base bytes saved, nothing else
    plan = plan_memory((eight_bit + fp8) / 2, SIZES)
    assert (plan.gradient_checkpointing, plan.use_8bit_adam, plan.fp8_base) == (True, True, True)
    assert plan.describe() == f"predicted peak {fp8:.1f} GiB with gradient checkpointing + 8-bit AdamW + FP8 base weights"
    plan = plan_memory(eight_bit + 0.01, SIZES)  # 8-bit AdamW is enough: FP8 stays off
    assert (plan.use_8bit_adam, plan.fp8_base) == (True, False)
    plan = plan_memory(100, SIZES, fp8_base=True)  # asked for: kept
    assert plan.fp8_base and not plan.gradient_checkpointing
    with pytest.raises(ValueError, match=rf"--vram 6: one training step is predicted at {fp8:.1f} GiB even with "
                       r"gradient checkpointing, 8-bit AdamW and FP8 base weights \(the frozen base weights alone take "
                       r"6\.0 GiB in FP8\)\. Block offloading is not built"):  # fmt: skip
        plan_memory(6, SIZES)


def test_without_bitsandbytes_the_plan_goes_from_checkpointing_to_fp8():
    checkpointed, fp8 = predict_gib(SIZES, True, False), predict_gib(SIZES, True, False, True)
    plan = plan_memory((checkpointed + fp8) / 2, SIZES, can_8bit_adam=False)
    assert (plan.gradient_checkpointing, plan.use_8bit_adam, plan.fp8_base) == (True, False, True)
    with pytest.raises(ValueError, match=rf"predicted at {fp8:.1f} GiB even with gradient checkpointing and FP8 base "
                       r"weights \(the frozen base weights alone take 6\.0 GiB in FP8\)\. 8-bit AdamW needs "
                       r"bitsandbytes \(pip install bitsandbytes\)\. Block offloading"):  # fmt: skip
        plan_memory(fp8 - 0.1, SIZES, can_8bit_adam=False)


def test_vram_with_fp8_base_plans_on_the_fp8_model_and_trains(model_dir, data_dir, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="train_lora"):
        output_dir = run(model_dir, data_dir, tmp_path / "out", "--vram", "80", "--fp8_base", "--max_train_steps", "1",
                         "--checkpointing_steps", "100")  # fmt: skip
    assert any(re.fullmatch(r"--vram 80: predicted peak 1\.0 GiB with FP8 base weights", r.getMessage())
               for r in caplog.records)  # fmt: skip
    assert any(r.getMessage() == "FP8 base: 56 block linears in float8_e4m3fn" for r in caplog.records)
    assert (output_dir / FILES[0]).is_file()


def test_frozen_bytes_counts_the_block_linears_at_one_byte_before_and_after_fp8(model_dir):
    transformer = LTX2VideoTransformer3DModel.from_pretrained(model_dir, subfolder="transformer").requires_grad_(False)
    names = fp8_layer_names(transformer)
    linears = [transformer.get_submodule(n) for n in names]
    weights = sum(m.weight.numel() for m in linears)
    rows = sum(m.out_features for m in linears)
    total = sum(p.numel() for p in transformer.parameters())
    plain = frozen_bytes(transformer, torch.bfloat16, names)
    assert plain == (2 * total, 2 * total - weights + 4 * rows)
    transformer.enable_fp8()
    transformer.add_adapter(lora_config(4, 4, LORA_TARGET_PRESETS["all"]))
    assert frozen_bytes(transformer, torch.bfloat16, names) == plain


def test_the_19b_fp8_prediction_fits_a_32_gib_card():
    """LTX-2 19B, rank 32 on `all`, 512x768x49 with audio, checkpointing + 8-bit AdamW: the bf16 prediction less half
    the block linears' bytes (calibrated on the bf16 measurement, 40.9 GiB; no FP8 training measurement yet)."""
    from helpers.released_configs import released

    def counts(num_layers: int) -> tuple[int, int, int]:
        config = {**md.transformer_config_from_original(released("2.0")), "num_layers": num_layers}
        with torch.device("meta"):
            transformer = LTX2VideoTransformer3DModel(**config)
        transformer.requires_grad_(False)
        names = fp8_layer_names(transformer)
        transformer.add_adapter(lora_config(32, 32, LORA_TARGET_PRESETS["all"]))
        lora = sum(p.numel() for p in transformer.parameters() if p.requires_grad)
        return (*frozen_bytes(transformer, torch.bfloat16, names), lora)

    one, two = counts(1), counts(2)
    base, fp8, lora = (a + 47 * (b - a) for a, b in zip(one, two))
    assert round(base / GIB, 1) == 35.4 and round(fp8 / GIB, 1) == 18.1
    sizes = ModelSizes(base, lora, 48, 4096, 2048, 2688, 51, fp8_base_bytes=fp8)
    plan = plan_memory(32, sizes)
    assert (plan.gradient_checkpointing, plan.use_8bit_adam, plan.fp8_base) == (True, True, True)
    assert plan.predicted_gib == pytest.approx(23.8, abs=0.05)
