"""training/memory.py: `--vram` turns savings on cheapest first from a calibrated prediction, and `--use_8bit_adam`
needs bitsandbytes (an install line, exit status 2, when it is missing)."""

import importlib.util
import logging
from pathlib import Path

import pytest
import torch
from helpers.training import BUCKETS, MAX_SEQUENCE_LENGTH, save_training_pipeline, write_dataset
from safetensors.torch import load_file

from ltx2_diffusers import LTX2VideoTransformer3DModel
from ltx2_diffusers.loaders import metadata as md
from ltx2_diffusers.training.lora import LORA_TARGET_PRESETS, lora_config
from ltx2_diffusers.training.memory import ModelSizes, bucket_tokens, plan_memory, predict_gib

SCRIPT = Path(__file__).parents[1] / "scripts" / "train_lora.py"
spec = importlib.util.spec_from_file_location("train_lora_memory", SCRIPT)
train_lora = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train_lora)
HAS_BNB = importlib.util.find_spec("bitsandbytes") is not None

SIZES = ModelSizes(base_bytes=10 * 2**30, lora_params=100_000_000, num_layers=10, video_width=1024, audio_width=512,
                   video_tokens=4096, audio_tokens=50)  # fmt: skip


def test_the_plan_turns_savings_on_cheapest_first():
    plain, checkpointed, eight_bit = (
        predict_gib(SIZES, c, e) for c, e in ((False, False), (True, False), (True, True))
    )
    assert plain > checkpointed > eight_bit
    assert plan_memory(plain + 0.1, SIZES).describe() == f"predicted peak {plain:.1f} GiB with no memory savings"
    plan = plan_memory(plain - 0.1, SIZES)
    assert (plan.gradient_checkpointing, plan.use_8bit_adam) == (True, False)
    plan = plan_memory(checkpointed - 0.1, SIZES)
    assert (plan.gradient_checkpointing, plan.use_8bit_adam) == (True, True)
    assert plan.describe().endswith("with gradient checkpointing + 8-bit AdamW")
    plan = plan_memory(plain + 0.1, SIZES, use_8bit_adam=True)  # what was asked for stays on
    assert (plan.gradient_checkpointing, plan.use_8bit_adam) == (False, True)
    with pytest.raises(ValueError, match=rf"--vram 10: one training step is predicted at {eight_bit:.1f} GiB even "
                       r"with gradient checkpointing and 8-bit AdamW \(the frozen base weights alone take 10\.0 GiB\)\. "
                       r"Block offloading is not built"):  # fmt: skip
        plan_memory(10, SIZES)


def test_the_prediction_is_calibrated_on_the_19b_measurement():
    """LTX-2 19B, LoRA rank 32 on attention + FFN of both streams, 512x768x49 with audio, checkpointing: measured
    40.9 GiB on an H100 (DESIGN.md §3); the prediction is 42.8 GiB (5 % over)."""
    from helpers.released_configs import released

    def counts(num_layers: int) -> tuple[int, int]:  # (bf16 base bytes, LoRA parameters) of a meta model
        config = {**md.transformer_config_from_original(released("2.0")), "num_layers": num_layers}
        with torch.device("meta"):
            transformer = LTX2VideoTransformer3DModel(**config)
        transformer.requires_grad_(False)
        transformer.add_adapter(lora_config(32, 32, LORA_TARGET_PRESETS["all"]))
        params = list(transformer.parameters())
        return sum(p.numel() * 2 for p in params if not p.requires_grad), sum(
            p.numel() for p in params if p.requires_grad
        )

    (base_1, lora_1), (base_2, lora_2) = counts(1), counts(2)  # 48 blocks from 2: every block is the same size
    base, lora = base_1 + 47 * (base_2 - base_1), lora_1 + 47 * (lora_2 - lora_1)
    assert round(base / 2e9, 2) == 18.99 and round(lora / 1e6, 1) == 308.3  # the 19B transformer, 308 M adapters
    assert bucket_tokens(768, 512, 49, True) == (2688, 51)
    sizes = ModelSizes(base, lora, 48, 4096, 2048, 2688, 51)
    assert predict_gib(sizes, True, False) == pytest.approx(42.8, abs=0.05)
    assert predict_gib(sizes, True, False) == pytest.approx(40.9, rel=0.06)
    with pytest.raises(ValueError, match=r"the frozen base weights alone take 35\.4 GiB"):
        plan_memory(32, sizes)  # without FP8 sizes a 32 GiB card refuses; test_training_fp8.py plans it with FP8


@pytest.fixture(scope="module")
def run_args(tmp_path_factory):
    model_dir = save_training_pipeline(tmp_path_factory.mktemp("model"))
    data_dir = write_dataset(tmp_path_factory.mktemp("data"), num_clips=1)

    def args(output_dir: Path, *extra: str) -> list[str]:
        return ["--pretrained_model_name_or_path", str(model_dir), "--train_data_dir", str(data_dir),
                "--resolution_buckets", BUCKETS, "--max_sequence_length", str(MAX_SEQUENCE_LENGTH),
                "--output_dir", str(output_dir), "--rank", "4", "--max_train_steps", "1",
                "--checkpointing_steps", "100", *extra]  # fmt: skip

    args.data_dir = data_dir
    return args


def test_vram_plans_on_the_model_before_caching(run_args, tmp_path, caplog):
    """The plan (and the LoRA targets) are checked on the transformer built on the meta device: a budget that
    cannot fit, or a target that matches nothing, stops the run before anything is cached or loaded."""
    with pytest.raises(train_lora.UsageError, match=r"--vram 0\.5: one training step is predicted at 1\.0 GiB even"):
        train_lora.main(run_args(tmp_path / "tight", "--vram", "0.5"))
    with pytest.raises(train_lora.UsageError, match=r"--lora_targets 'attn9\.to_q': \['attn9\.to_q'\] match no"):
        train_lora.main(run_args(tmp_path / "target", "--lora_targets", "attn9.to_q"))
    assert not (run_args.data_dir / ".ltx2_cache").exists()
    with pytest.raises(train_lora.UsageError, match=r"--vram must be a positive number of GiB, got -1\.0"):
        train_lora.main(run_args(tmp_path / "bad", "--vram", "-1"))
    with caplog.at_level(logging.INFO, logger="train_lora"):
        train_lora.main(run_args(tmp_path / "roomy", "--vram", "80"))
    assert any(r.getMessage().startswith("--vram 80: predicted peak 1.0 GiB with no memory savings")
               for r in caplog.records)  # fmt: skip


@pytest.mark.skipif(HAS_BNB, reason="bitsandbytes is installed")
def test_8bit_adam_without_bitsandbytes_says_how_to_install(run_args, tmp_path):
    with pytest.raises(train_lora.UsageError, match=r"^--use_8bit_adam needs bitsandbytes, which is not installed: "
                       r"pip install bitsandbytes$"):  # fmt: skip
        train_lora.main(run_args(tmp_path / "out", "--use_8bit_adam"))
    assert not (tmp_path / "out").exists()  # before anything is loaded or written


@pytest.mark.gpu
def test_8bit_adam_trains_on_a_gpu(run_args, tmp_path):
    pytest.importorskip("bitsandbytes")
    output_dir = train_lora.main(run_args(tmp_path / "out", "--use_8bit_adam", "--max_train_steps", "2"))
    assert (output_dir / "pytorch_lora_weights.safetensors").is_file()


def test_offload_blocks_trains_what_the_resident_model_trains(run_args, tmp_path):
    """--offload_blocks 2 (both blocks of the tiny model streamed, here through CPU "slots") with checkpointing: the
    same logged losses and the same LoRA file, bit for bit, as the resident run."""
    common = ("--gradient_checkpointing", "--max_train_steps", "2", "--lora_save_dtype", "fp32")
    resident = train_lora.main(run_args(tmp_path / "resident", *common))
    streamed = train_lora.main(run_args(tmp_path / "streamed", *common, "--offload_blocks", "2"))
    logs = [(d / "training_log.jsonl").read_text() for d in (resident, streamed)]
    assert logs[0] == logs[1] and len(logs[0].splitlines()) == 2
    ours, theirs = (load_file(str(d / "pytorch_lora_weights.safetensors")) for d in (streamed, resident))
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[key], theirs[key]) for key in ours)


def test_offload_blocks_refuses_what_it_cannot_run(run_args, tmp_path):
    with pytest.raises(train_lora.UsageError, match=r"^--offload_blocks 3: the transformer has 2 blocks$"):
        train_lora.main(run_args(tmp_path / "many", "--offload_blocks", "3"))
    with pytest.raises(train_lora.UsageError, match=r"^--offload_blocks must be >= 0 \(0: every block resident\), "):
        train_lora.main(run_args(tmp_path / "negative", "--offload_blocks", "-1"))
