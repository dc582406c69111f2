"""scripts/train_lora.py from the three sources of --pretrained_model_name_or_path: a diffusers folder, a Hub id (its
snapshot in the Hugging Face cache; the suite runs offline) and a Lightricks single file with --text_encoder_path. The
same weights train the same LoRA whichever way they come."""

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from helpers.training import BUCKETS, MAX_SEQUENCE_LENGTH, save_training_pipeline, write_dataset
from huggingface_hub import ModelCard, constants
from safetensors.torch import load_file

from ltx2_diffusers.conversion import convert_diffusers_to_original

SCRIPT = Path(__file__).parents[1] / "scripts" / "train_lora.py"
spec = importlib.util.spec_from_file_location("train_lora_sources", SCRIPT)
train_lora = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train_lora)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_training_pipeline(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data"), num_clips=1)


def train(model: str, data_dir: Path, output_dir: Path, *extra: str) -> Path:
    cache_dir = output_dir.parent / f"{output_dir.name}_cache"  # each source caches for itself
    return train_lora.main(["--pretrained_model_name_or_path", model, "--train_data_dir", str(data_dir),
                            "--cache_dir", str(cache_dir), "--resolution_buckets", BUCKETS,
                            "--max_sequence_length", str(MAX_SEQUENCE_LENGTH), "--output_dir", str(output_dir),
                            "--rank", "4", "--max_train_steps", "2", "--checkpointing_steps", "100",
                            "--learning_rate", "1e-3", "--lora_save_dtype", "fp32", *extra])  # fmt: skip


def log_of(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "training_log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def from_folder(model_dir, data_dir, tmp_path_factory):
    return train(str(model_dir), data_dir, tmp_path_factory.mktemp("runs") / "folder")


def assert_same_training(a: Path, b: Path) -> None:
    assert log_of(a) == log_of(b)
    ours, theirs = (load_file(str(d / "pytorch_lora_weights.safetensors")) for d in (a, b))
    assert ours.keys() == theirs.keys() and all((ours[k] == theirs[k]).all() for k in ours)


def test_a_single_file_with_a_gemma_folder_trains_what_the_folder_trains(model_dir, data_dir, from_folder, tmp_path):
    checkpoint = tmp_path / "tiny-ltx-2-dev.safetensors"
    convert_diffusers_to_original(model_dir, checkpoint)
    gemma = tmp_path / "gemma"  # one Gemma folder: config + weights + tokenizer
    shutil.copytree(model_dir / "text_encoder", gemma)
    for item in (model_dir / "tokenizer").iterdir():
        shutil.copy(item, gemma / item.name)
    with pytest.raises(train_lora.UsageError, match=r"is a single file, which holds no Gemma text encoder: pass "
                       r"--text_encoder_path"):  # fmt: skip
        train(str(checkpoint), data_dir, tmp_path / "no_gemma")
    output_dir = train(str(checkpoint), data_dir, tmp_path / "file", "--text_encoder_path", str(gemma),
                       "--validation_prompt", "a test pattern", "--validation_steps", "2",
                       "--validation_num_inference_steps", "2", "--validation_guidance_scale", "1",
                       "--validation_stg_scale", "0")  # fmt: skip
    assert_same_training(output_dir, from_folder)
    assert (output_dir / "validation" / "step_000002_0.mp4").is_file()  # decoders from the file, too


def test_a_hub_id_trains_from_its_cached_snapshot(model_dir, data_dir, from_folder, tmp_path, monkeypatch):
    hub_cache = tmp_path / "hub"
    revision = "0" * 40
    shutil.copytree(model_dir, hub_cache / "models--me--tiny-ltx2" / "snapshots" / revision)
    (hub_cache / "models--me--tiny-ltx2" / "refs").mkdir()
    (hub_cache / "models--me--tiny-ltx2" / "refs" / "main").write_text(revision)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    output_dir = train("me/tiny-ltx2", data_dir, tmp_path / "hub_run")
    assert_same_training(output_dir, from_folder)
    assert ModelCard.load(output_dir / "README.md").data.base_model == "me/tiny-ltx2"  # the card names the repo
    with pytest.raises(train_lora.UsageError, match=r"me/absent is not a local folder and is not in the Hugging Face "
                       r"cache .*HF_HUB_OFFLINE is set"):  # fmt: skip
        train("me/absent", data_dir, tmp_path / "absent")
