"""scripts/train_lora.py's validation clips (mp4 with sound, the pipeline on the live LoRA), trigger word, model card
and --push_to_hub (to tests/helpers/fake_hub.py's local server; the suite runs offline)."""

import importlib.util
from pathlib import Path

import av
import pytest
import torch
from helpers.fake_hub import running_fake_hub
from helpers.training import BUCKETS, MAX_SEQUENCE_LENGTH, save_training_pipeline, write_dataset
from huggingface_hub import ModelCard, constants
from safetensors import safe_open

from ltx2_diffusers.hub import LICENSE_NAME
from ltx2_diffusers.training import validation
from ltx2_diffusers.training.models import load_validation_pipeline

SCRIPT = Path(__file__).parents[1] / "scripts" / "train_lora.py"
spec = importlib.util.spec_from_file_location("train_lora_publish", SCRIPT)
train_lora = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train_lora)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_training_pipeline(tmp_path_factory.mktemp("model"))


def flags(model_dir: Path, data_dir: Path, output_dir: Path, *extra: str) -> list[str]:
    return ["--pretrained_model_name_or_path", str(model_dir), "--train_data_dir", str(data_dir),
            "--resolution_buckets", BUCKETS, "--max_sequence_length", str(MAX_SEQUENCE_LENGTH),
            "--output_dir", str(output_dir), "--rank", "4", "--max_train_steps", "2", "--checkpointing_steps", "1",
            "--learning_rate", "1e-2", *extra]  # fmt: skip


VALIDATION = ("--validation_prompt", "a test pattern", "--validation_steps", "1", "--validation_num_inference_steps",
              "2", "--validation_guidance_scale", "1", "--validation_stg_scale", "0")  # fmt: skip


def test_validation_clips_trigger_word_card_and_push(model_dir, tmp_path, monkeypatch):
    data_dir = write_dataset(tmp_path / "data", num_clips=1)
    built = []  # what each validation ran on: the live adapter's B weights, and whether Gemma was loaded

    def spy(source, transformer, dtype):
        pipe = load_validation_pipeline(source, transformer, dtype)
        b = [p.detach().clone() for n, p in transformer.named_parameters() if "lora_B" in n]
        built.append((pipe.text_encoder, pipe.transformer is transformer, b))
        return pipe

    monkeypatch.setattr(validation, "load_validation_pipeline", spy)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with running_fake_hub() as hub:
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        output_dir = train_lora.main(flags(model_dir, data_dir, tmp_path / "out", *VALIDATION, "--trigger_word",
                                           "xyzzy", "--push_to_hub", "--hub_model_id", "me/tiny-lora",
                                           "--hub_token", "hf_test"))  # fmt: skip
        assert hub.unexpected == []

    # 1. one clip per validation (steps 1 and 2), 64 x 64 x 9 at 24 fps with a stereo soundtrack, made by the
    # training transformer with its adapter as trained so far, without Gemma (the prompts were encoded before)
    assert [(gemma, same) for gemma, same, _ in built] == [(None, True), (None, True)]
    assert all(b.abs().max() > 0 for b in built[0][2])  # step 1 trained the adapter already
    assert any(not torch.equal(x, y) for x, y in zip(built[0][2], built[1][2], strict=True))  # and step 2 moved it
    clips = sorted(p.name for p in (output_dir / "validation").iterdir())
    assert clips == ["step_000001_0.mp4", "step_000002_0.mp4"]
    with av.open(str(output_dir / "validation" / clips[-1])) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.width, video.height, audio.channels) == (64, 64, 2)
        assert sum(1 for _ in container.decode(video=0)) == 9

    # 2. the trigger word starts the cached caption and is in the LoRA's header
    with safe_open(str(data_dir / ".ltx2_cache" / "clip0.mp4.safetensors"), framework="pt") as handle:
        assert handle.metadata()["text"] == "xyzzy a test pattern number 0"
    with safe_open(str(output_dir / "pytorch_lora_weights.safetensors"), framework="pt") as handle:
        assert handle.metadata()["trigger_word"] == "xyzzy"

    # 3. the local card: base model, license, mode, trigger word, prompt, the last clip
    card = ModelCard.load(output_dir / "README.md")
    assert card.data.base_model == "Lightricks/LTX-2" and card.data.license_name == LICENSE_NAME
    assert "ltx2-t2av" in card.data.tags and card.data.to_dict()["instance_prompt"] == "xyzzy"
    assert "Trigger word: `xyzzy`" in card.text and "Validation prompt: a test pattern" in card.text
    assert '<video src="validation/step_000002_0.mp4"' in card.text

    # 4. the push: the two LoRA files, the card naming the repo, the clip; no checkpoint, log or cache
    files = hub.repos["me/tiny-lora"]["branches"]["main"]
    assert sorted(files) == ["README.md", "comfyui_lora_weights.safetensors", "pytorch_lora_weights.safetensors",
                             "samples/step_000002_0.mp4"]  # fmt: skip
    for name in ("pytorch_lora_weights.safetensors", "comfyui_lora_weights.safetensors"):
        assert files[name] == (output_dir / name).read_bytes()
    assert files["samples/step_000002_0.mp4"] == (output_dir / "validation" / "step_000002_0.mp4").read_bytes()
    pushed = ModelCard(files["README.md"].decode())
    assert 'load_lora_weights("me/tiny-lora"' in pushed.text and "Trigger word: `xyzzy`" in pushed.text
    assert '<video src="samples/step_000002_0.mp4"' in pushed.text and pushed.data.base_model == "Lightricks/LTX-2"


def test_push_and_validation_flags_are_checked_before_training(model_dir, tmp_path, monkeypatch):
    data_dir = tmp_path / "not_read"
    with pytest.raises(train_lora.UsageError, match=r"--push_to_hub needs --hub_model_id namespace/name"):
        train_lora.main(flags(model_dir, data_dir, tmp_path / "out", "--push_to_hub"))
    with pytest.raises(train_lora.UsageError, match=r"HF_HUB_OFFLINE is set: unset it to push"):
        train_lora.main(flags(model_dir, data_dir, tmp_path / "out", "--push_to_hub", "--hub_model_id", "me/x",
                              "--hub_token", "hf_test"))  # fmt: skip
    with pytest.raises(train_lora.UsageError, match=r"validation with a reference video is not built yet"):
        train_lora.main(flags(model_dir, data_dir, tmp_path / "out", "--mode", "ic_lora", *VALIDATION))
    with pytest.raises(train_lora.UsageError, match=r"height=50 is not a positive multiple of 32"):
        train_lora.main(flags(model_dir, data_dir, tmp_path / "out", *VALIDATION, "--validation_height", "50"))
    assert not (tmp_path / "out").exists()
