"""scripts/train_lora.py under FSDP (issue 13 item 5). An accelerate FSDP config on the CPU is refused with the reason
(accelerate runs FSDP only on GPUs and would silently fall back to DDP); the script's FSDP2 path, driven on the CPU
with gloo (`helpers.training_fsdp`), trains the same LoRA as one process with the same global batch."""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState
from helpers.training import BUCKETS, MAX_SEQUENCE_LENGTH, save_training_pipeline, write_dataset
from helpers.training_fsdp import FSDP_CONFIG, run_catching, run_with_fsdp
from safetensors.torch import load_file

SCRIPT = Path(__file__).parents[1] / "scripts" / "train_lora.py"
spec = importlib.util.spec_from_file_location("train_lora_fsdp", SCRIPT)
train_lora = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train_lora)

REFUSED = (
    r"the accelerate config asks for FSDP, but accelerate [\d.]+\w* set up {kind} on cpu with {n} process\(es\): it "
    r"runs FSDP only on GPUs \(and other accelerators\), never on the CPU, and would silently ignore the config"
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_training_pipeline(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data"), num_clips=2)


@pytest.fixture
def fresh_accelerate_state():
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def args(model_dir: Path, data_dir: Path, output_dir: Path, *extra: str) -> list[str]:
    return ["--pretrained_model_name_or_path", str(model_dir), "--train_data_dir", str(data_dir),
            "--resolution_buckets", BUCKETS, "--max_sequence_length", str(MAX_SEQUENCE_LENGTH), "--mode", "t2av",
            "--rank", "4", "--lora_alpha", "8", "--learning_rate", "1e-3", "--lora_save_dtype", "fp32",
            "--output_dir", str(output_dir), *extra]  # fmt: skip


def read_log(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "training_log.jsonl").read_text().splitlines()]


@pytest.mark.usefixtures("fresh_accelerate_state")
def test_an_fsdp_config_on_the_cpu_is_refused_with_the_reason(model_dir, data_dir, tmp_path, monkeypatch):
    # what `accelerate launch --config_file fsdp.yaml` exports to each process
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", "2")
    with pytest.raises(train_lora.UsageError, match=REFUSED.format(kind="NO", n=1)):
        train_lora.main(args(model_dir, data_dir, tmp_path / "one", "--max_train_steps", "1"))
    errors = tmp_path / "errors"
    errors.mkdir()
    run_catching(train_lora, args(model_dir, data_dir, tmp_path / "two", "--max_train_steps", "1"), errors)
    for rank in (0, 1):  # accelerate prepared DDP (MULTI_CPU): every process stops, before any loading
        assert re.match(REFUSED.format(kind="MULTI_CPU", n=2), (errors / f"{rank}.txt").read_text())
    assert not (tmp_path / "two" / "training_log.jsonl").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--fp8_base",), r"--fp8_base with FSDP: FSDP shards the FP8 weights as parameters and its mixed precision "
                          r"would cast them to bf16; train an FP8 base on one process per card with DDP"),
        (("--validation_prompt", "a test"), r"--validation_prompt with FSDP: validation runs on the main process "
                                            r"alone, which sharded weights cannot; drop --validation_prompt"),
    ],
)  # fmt: skip
def test_what_fsdp_cannot_shard_is_refused_before_loading(model_dir, data_dir, tmp_path, extra, message):
    errors = tmp_path / "errors"
    errors.mkdir()
    run_catching(train_lora, args(model_dir, data_dir, tmp_path / "out", "--max_train_steps", "1", *extra), errors,
                 fsdp=True)  # fmt: skip
    for rank in (0, 1):
        assert re.match(message, (errors / f"{rank}.txt").read_text())
    assert not (tmp_path / "out" / "training_log.jsonl").exists()


@pytest.mark.slow
def test_fsdp2_trains_the_same_lora_as_one_process_with_the_same_global_batch(model_dir, data_dir, tmp_path):
    """2 FSDP2 processes x batch 1 against 1 process x batch 2, 3 steps. Tolerance: losses to 1e-5 relative, LoRA
    tensors to 1e-4 absolute (the reduce-scatter sums gradients in another order), as the DDP test. Then a resume
    from the FSDP run's sharded checkpoint repeats its losses and LoRA exactly."""
    common = ("--max_train_steps", "3", "--checkpointing_steps", "2")
    one = tmp_path / "one"
    train_lora.main(args(model_dir, data_dir, one, *common, "--train_batch_size", "2"))  # caches, then trains
    two = tmp_path / "two"
    run_with_fsdp(train_lora, args(model_dir, data_dir, two, *common, "--train_batch_size", "1"))
    assert (two / "checkpoint-2" / "pytorch_model_fsdp_0").is_dir()  # accelerate's sharded model state: really FSDP
    for a, b in zip(read_log(one), read_log(two), strict=True):
        assert a["step"] == b["step"] and a["lr"] == pytest.approx(b["lr"])
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    for name in ("pytorch_lora_weights.safetensors", "comfyui_lora_weights.safetensors"):
        ours, theirs = (load_file(str(d / name)) for d in (one, two))
        assert ours.keys() == theirs.keys()
        for key in ours:
            torch.testing.assert_close(theirs[key], ours[key], rtol=0, atol=1e-4, msg=key)
    # resume under FSDP: accelerate loads its sharded model and optimizer state, the run goes on as before
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(two / "checkpoint-2", resumed / "checkpoint-2")
    shutil.copy(two / "training_log.jsonl", resumed / "training_log.jsonl")
    run_with_fsdp(train_lora, args(model_dir, data_dir, resumed, *common, "--train_batch_size", "1",
                                   "--resume_from_checkpoint", "latest"))  # fmt: skip
    assert read_log(resumed) == read_log(two)
    for key, value in load_file(str(resumed / "pytorch_lora_weights.safetensors")).items():
        assert torch.equal(value, load_file(str(two / "pytorch_lora_weights.safetensors"))[key]), key
    adapter_one = load_file(str(one / "checkpoint-2" / "adapter_model.safetensors"))
    adapter_two = load_file(str(two / "checkpoint-2" / "adapter_model.safetensors"))
    assert adapter_one.keys() == adapter_two.keys()  # whole tensors, gathered from the shards
    assert all(adapter_one[k].shape == adapter_two[k].shape for k in adapter_one)


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices")
def test_accelerate_launch_with_the_fsdp_config_trains_on_two_gpus(model_dir, data_dir, tmp_path):
    """The real command line on 2 GPUs: `accelerate launch --config_file fsdp.yaml` (docs/training.md) x batch 1
    against `python scripts/train_lora.py` x batch 2 on one GPU, float32, 3 steps. Tolerance: losses 1e-4 relative,
    LoRA 1e-3 absolute (GPU reductions in other orders)."""
    config = tmp_path / "fsdp.yaml"
    config.write_text(FSDP_CONFIG.format(num_processes=2, mixed_precision="no"))
    env = {**os.environ, "PYTHONPATH": str(SCRIPT.parents[1]), "HF_HUB_OFFLINE": "1"}
    common = ("--max_train_steps", "3", "--checkpointing_steps", "2")
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run([sys.executable, str(SCRIPT), *args(model_dir, data_dir, one, *common, "--train_batch_size", "2")],
                   env={**env, "CUDA_VISIBLE_DEVICES": "0"}, check=True)  # fmt: skip
    subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), str(SCRIPT),
                    *args(model_dir, data_dir, two, *common, "--train_batch_size", "1")], env=env, check=True)  # fmt: skip
    assert (two / "checkpoint-2" / "pytorch_model_fsdp_0").is_dir()  # accelerate really sharded the model
    for a, b in zip(read_log(one), read_log(two), strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    ours, theirs = (load_file(str(d / "pytorch_lora_weights.safetensors")) for d in (one, two))
    assert ours.keys() == theirs.keys()
    for key in ours:
        torch.testing.assert_close(theirs[key], ours[key], rtol=0, atol=1e-3, msg=key)
