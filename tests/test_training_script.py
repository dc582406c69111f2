"""scripts/train_lora.py end to end on a tiny diffusers folder: the loss falls, the LoRA files load with the package's
loader and equal the trained adapter, ltx-core 1.0.0 fuses the ComfyUI file as we do, resume repeats the
uninterrupted run's losses, and bad arguments fail before anything is loaded."""

import copy
import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState
from helpers.training import (
    BUCKETS,
    MAX_SEQUENCE_LENGTH,
    TRANSFORMER_CONFIG,
    run_in_processes,
    save_training_pipeline,
    write_clip,
    write_dataset,
)
from ltx_core.loader.fuse_loras import apply_loras
from ltx_core.loader.primitives import LoraStateDictWithStrength, StateDict
from peft.utils import set_peft_model_state_dict
from safetensors import safe_open
from safetensors.torch import load_file

from ltx2_diffusers import LTX2AVICLoRAPipeline, LTX2AVPipeline, LTX2VideoTransformer3DModel
from ltx2_diffusers.loaders.lora import fuse_lora, load_lora_adapter, read_lora
from ltx2_diffusers.loaders.transformer_keys import diffusers_to_original_keys
from ltx2_diffusers.pipelines.guidance import GuidanceScales
from ltx2_diffusers.training.data import load_cached
from ltx2_diffusers.training.lora import lora_config, resolve_lora_targets
from ltx2_diffusers.training.metadata import DataError
from ltx2_diffusers.training.objective import MODES, SigmaSampler
from ltx2_diffusers.training.step import collate, sample_generator, training_loss

SCRIPT = Path(__file__).parents[1] / "scripts" / "train_lora.py"
RANK = 16
STEPS = 60


def load_script():
    spec = importlib.util.spec_from_file_location("train_lora", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train_lora = load_script()


def run(model_dir: Path, data_dir: Path, output_dir: Path, *extra: str) -> Path:
    args = ["--pretrained_model_name_or_path", str(model_dir), "--train_data_dir", str(data_dir),
            "--resolution_buckets", BUCKETS, "--max_sequence_length", str(MAX_SEQUENCE_LENGTH),
            "--output_dir", str(output_dir), "--rank", str(RANK), "--lora_alpha", str(2 * RANK),
            "--lora_save_dtype", "fp32", *extra]  # fmt: skip
    train_lora.main(args)
    return output_dir


def read_log(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "training_log.jsonl").read_text().splitlines()]


def base_transformer(model_dir: Path) -> LTX2VideoTransformer3DModel:
    return LTX2VideoTransformer3DModel.from_pretrained(model_dir, subfolder="transformer").eval()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_training_pipeline(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def one_clip(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("one_clip"), num_clips=1)


@pytest.fixture(scope="module")
def trained(model_dir, one_clip, tmp_path_factory):
    """60 steps of t2av on one clip (alpha = 2 rank, so the export must fold alpha / rank = 2 into B)."""
    output_dir = tmp_path_factory.mktemp("trained")
    return run(model_dir, one_clip, output_dir, "--mode", "t2av", "--max_train_steps", str(STEPS),
               "--learning_rate", "3e-3", "--checkpointing_steps", str(STEPS))  # fmt: skip


def untrained_losses(model_dir: Path, data_dir: Path, steps: range) -> list[float]:
    """The base model's loss on the draws of the given (0-based) steps: what the logged loss would be untrained."""
    transformer = base_transformer(model_dir)
    batch = collate([load_cached(data_dir / ".ltx2_cache" / "clip0.mp4.safetensors")], MODES["t2av"])
    with torch.no_grad():
        return [float(training_loss(transformer, batch, MODES["t2av"], SigmaSampler(), [sample_generator(42, step, 0)])
                      .loss.mean()) for step in steps]  # fmt: skip


@pytest.mark.slow
def test_sixty_steps_of_t2av_bring_the_loss_well_below_the_untrained_loss(trained, model_dir, one_clip):
    log = read_log(trained)
    assert [r["step"] for r in log] == list(range(1, STEPS + 1))
    assert all(r["loss"] == pytest.approx(r["video_loss"] + r["audio_loss"], rel=1e-5) for r in log)
    # one sample a step: its loss is logged under the quarter of [0, 1] its video sigma fell in (ltx-trainer's names)
    assert all([v for k, v in r.items() if k.startswith("loss_sigma_")] == [pytest.approx(r["loss"])] for r in log)
    assert {k for r in log for k in r if k.startswith("loss_sigma_")} == {
        "loss_sigma_0.00-0.25", "loss_sigma_0.25-0.50", "loss_sigma_0.50-0.75", "loss_sigma_0.75-1.00"
    }  # fmt: skip
    assert log[0]["lr"] == 3e-3 and log[-1]["lr"] == pytest.approx(3e-3 * (1 - 0.9 * (STEPS - 1) / STEPS))
    # B starts at zero, so step 1 is the base model's loss on step 1's draws, exactly
    baseline = untrained_losses(model_dir, one_clip, range(STEPS - 20, STEPS))
    assert log[0]["loss"] == pytest.approx(untrained_losses(model_dir, one_clip, range(1))[0], rel=1e-5)
    # Each step draws its own sigma, so single losses swing with it; compare means over the same draws. Threshold:
    # the last 20 steps' mean loss is below 60 % of the untrained model's mean loss on those 20 draws.
    last = sum(r["loss"] for r in log[-20:]) / 20
    assert last < 0.6 * sum(baseline) / 20, (last, sum(baseline) / 20)


def test_lora_files_load_with_the_package_loader_and_equal_the_trained_adapter(trained, model_dir, one_clip):
    base = base_transformer(model_dir)
    batch = collate([load_cached(one_clip / ".ltx2_cache" / "clip0.mp4.safetensors")], MODES["t2av"])

    def outputs(transformer):
        with torch.no_grad():
            return training_loss(transformer, batch, MODES["t2av"], SigmaSampler(), [sample_generator(0, 99, 0)]).loss

    # the trained adapter as peft holds it (alpha / rank = 2 inside peft), from the last checkpoint
    reference = copy.deepcopy(base)
    reference.add_adapter(lora_config(RANK, 2 * RANK, resolve_lora_targets("all", reference)))
    set_peft_model_state_dict(reference, load_file(str(trained / f"checkpoint-{STEPS}" / "adapter_model.safetensors")))
    expected = outputs(reference)
    assert not torch.allclose(expected, outputs(base))

    diffusers_file = trained / "pytorch_lora_weights.safetensors"
    comfy_file = trained / "comfyui_lora_weights.safetensors"
    adapter = copy.deepcopy(base)
    load_lora_adapter(adapter, diffusers_file)
    torch.testing.assert_close(outputs(adapter), expected, rtol=1e-5, atol=1e-6)
    fused = copy.deepcopy(base)
    fuse_lora(fused, comfy_file)
    torch.testing.assert_close(outputs(fused), expected, rtol=1e-5, atol=1e-6)

    # key layouts: 2 blocks x (10 video + 10 audio + 8 cross-modal) modules, A and B each
    diffusers_keys, comfy_keys = load_file(str(diffusers_file)), load_file(str(comfy_file))
    assert len(diffusers_keys) == len(comfy_keys) == 2 * 28 * 2
    assert "transformer.transformer_blocks.1.audio_ff.net.2.lora_B.weight" in diffusers_keys
    assert "diffusion_model.transformer_blocks.0.video_to_audio_attn.to_out.0.lora_A.weight" in comfy_keys
    with safe_open(str(diffusers_file), framework="pt") as handle:
        adapter_metadata = json.loads(handle.metadata()["lora_adapter_metadata"])
    assert adapter_metadata["transformer.r"] == adapter_metadata["transformer.lora_alpha"] == RANK  # alpha folded
    assert read_lora(comfy_file).metadata["ltx2_training_mode"] == "t2av"


def test_the_lora_moves_generation_towards_the_training_clip(trained, model_dir, one_clip):
    """Acceptance 1 of issue 10: same seed, with and without the LoRA; distance to the clip's cached latents."""
    pipe = LTX2AVPipeline.from_pretrained(model_dir)
    pipe.set_progress_bar_config(disable=True)
    clip = load_cached(one_clip / ".ltx2_cache" / "clip0.mp4.safetensors")
    neutral = GuidanceScales()  # no guidance passes: the 2-block test model has no STG block 28

    def distances() -> tuple[float, float]:
        out = pipe("a test pattern number 0", height=64, width=64, num_frames=9, frame_rate=24.0,
                   num_inference_steps=8, video_guidance=neutral, audio_guidance=neutral,
                   generator=torch.Generator().manual_seed(0), output_type="latent")  # fmt: skip
        video, audio = out.frames[0], out.audio[0]
        steps = min(audio.shape[1], clip.audio_latents.shape[1])  # 9 generated, 10 cached (the encoder's count)
        return (
            float((video - clip.video_latents).pow(2).mean()),
            float((audio[:, :steps] - clip.audio_latents[:, :steps]).pow(2).mean()),
        )

    without = distances()
    pipe.load_lora_weights(str(trained))  # the output folder, as diffusers' scripts' outputs load
    assert pipe.transformer.peft_config  # an adapter is active
    with_lora = distances()
    # threshold: the mean squared distance to the clip shrinks by at least 15 % for video and for audio
    assert with_lora[0] < 0.85 * without[0] and with_lora[1] < 0.85 * without[1], (without, with_lora)


def assert_ltx_core_fuses_it_as_we_do(model_dir: Path, comfy_file: Path) -> None:
    """ltx-core 1.0.0's `apply_loras` on the base weights (original names, bf16) and the package's `fuse_lora` give
    the same weights bit for bit, and every LoRA layer changes its weight."""
    # ltx-core fuses into bf16 weights only (its released checkpoints' dtype); ltx-trainer saves bf16 LoRAs
    base = base_transformer(model_dir).to(torch.bfloat16)
    to_original = diffusers_to_original_keys(base.state_dict(), TRANSFORMER_CONFIG)
    original = {to_original[k].removeprefix("model.diffusion_model."): v.clone() for k, v in base.state_dict().items()}
    comfy = {k: v.to(torch.bfloat16) for k, v in load_file(str(comfy_file)).items()}
    lora = {k.removeprefix("diffusion_model."): v for k, v in comfy.items()}  # ltx-core's Comfy renaming map
    expected = apply_loras(
        StateDict(original, torch.device("cpu"), 0, {torch.bfloat16}),
        [LoraStateDictWithStrength(StateDict(lora, torch.device("cpu"), 0, {torch.bfloat16}), 1.0)],
    ).sd
    fuse_lora(base, read_lora(comfy))
    got = {to_original[k].removeprefix("model.diffusion_model."): v for k, v in base.state_dict().items()}
    changed = [k for k in got if not torch.equal(got[k], original[k])]
    trained_layers = sum(1 for k, v in comfy.items() if k.endswith("lora_B.weight") and v.abs().max() > 0)
    assert len(changed) == trained_layers > 0
    for key, value in got.items():
        assert torch.equal(value, expected[key]), key


def test_comfy_file_fused_by_ltx_core_equals_our_fusion(trained, model_dir):
    assert_ltx_core_fuses_it_as_we_do(model_dir, trained / "comfyui_lora_weights.safetensors")
    assert len(load_file(str(trained / "comfyui_lora_weights.safetensors"))) == 2 * 28 * 2


def test_resume_latest_repeats_the_uninterrupted_losses(model_dir, tmp_path):
    data_dir = write_dataset(tmp_path / "data", num_clips=2)
    common = ("--mode", "t2av", "--max_train_steps", "4", "--learning_rate", "1e-3", "--checkpointing_steps", "2")
    whole = run(model_dir, data_dir, tmp_path / "whole", *common)
    assert sorted(p.name for p in whole.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]

    # an interrupted run: what the first run held after step 2 (its log has steps 1-4: 3 and 4 must be replaced)
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(whole / "checkpoint-2", resumed / "checkpoint-2")
    shutil.copy(whole / "training_log.jsonl", resumed / "training_log.jsonl")
    run(model_dir, data_dir, resumed, *common, "--resume_from_checkpoint", "latest")
    assert read_log(resumed) == read_log(whole)
    assert (
        load_file(str(resumed / "pytorch_lora_weights.safetensors")).keys()
        == load_file(str(whole / "pytorch_lora_weights.safetensors")).keys()
    )
    for key, value in load_file(str(resumed / "pytorch_lora_weights.safetensors")).items():
        torch.testing.assert_close(value, load_file(str(whole / "pytorch_lora_weights.safetensors"))[key])


@pytest.mark.parametrize("mode", ["i2v", "a2v", "v2a", "audio"])
def test_every_mode_runs_and_writes_both_files(model_dir, one_clip, tmp_path, mode):
    output_dir = run(model_dir, one_clip, tmp_path / "out", "--mode", mode, "--max_train_steps", "2",
                     "--checkpointing_steps", "100")  # fmt: skip
    log = read_log(output_dir)
    assert [r["step"] for r in log] == [1, 2]
    assert ("video_loss" in log[0]) == (mode not in ("v2a", "audio")) and ("audio_loss" in log[0]) == (mode != "a2v")
    modules = 10 if mode == "audio" else 28  # the audio mode's default targets: audio attention + FFN
    comfy = load_file(str(output_dir / "comfyui_lora_weights.safetensors"))
    assert len(comfy) == len(load_file(str(output_dir / "pytorch_lora_weights.safetensors"))) == 2 * modules * 2
    trained = [bool(v.abs().max() > 0) for k, v in comfy.items() if k.endswith("lora_B.weight")]
    # every adapted layer gets a gradient, except, with a frozen stream, that stream's layers of the last block that
    # never reach the generated one (its feed-forward, its own cross-modal attention)
    assert all(trained) if mode in ("i2v", "audio") else sum(trained) > 0.8 * len(trained)
    assert_ltx_core_fuses_it_as_we_do(model_dir, output_dir / "comfyui_lora_weights.safetensors")


def test_t2v_trains_video_only_and_writes_both_files(model_dir, one_clip, tmp_path):
    output_dir = run(model_dir, one_clip, tmp_path / "out", "--mode", "t2v", "--max_train_steps", "3", "--lr_scheduler", "constant",
                     "--lora_targets", "video", "--checkpointing_steps", "1", "--checkpoints_total_limit", "2")  # fmt: skip
    log = read_log(output_dir)
    assert len(log) == 3 and "video_loss" in log[0] and "audio_loss" not in log[0]
    assert [r["lr"] for r in log] == [1e-4] * 3
    keys = load_file(str(output_dir / "comfyui_lora_weights.safetensors"))
    assert len(keys) == 2 * 10 * 2 and all(".audio" not in k for k in keys)
    assert_ltx_core_fuses_it_as_we_do(model_dir, output_dir / "comfyui_lora_weights.safetensors")
    assert sorted(p.name for p in output_dir.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]  # limit 2


def test_bad_arguments_fail_before_loading(tmp_path, model_dir, one_clip):
    nowhere = tmp_path / "no_model"
    with pytest.raises(ValueError, match=r"unknown --mode 't2x'\. Modes that exist: t2v, t2av, i2v"):
        run(nowhere, one_clip, tmp_path / "out", "--mode", "t2x", "--max_train_steps", "1")
    with pytest.raises(ValueError, match="mode 'v2a': first-frame conditioning needs a generated video stream"):
        run(nowhere, one_clip, tmp_path / "out", "--mode", "v2a", "--first_frame_conditioning_p", "0.5",
            "--max_train_steps", "1")  # fmt: skip
    with pytest.raises(ValueError, match=r"--lora_targets 'attn9.to_q': \['attn9.to_q'\] match no linear layer"):
        run(model_dir, one_clip, tmp_path / "out", "--lora_targets", "attn9.to_q", "--max_train_steps", "1")
    with pytest.raises(ValueError, match=r"--resume_from_checkpoint checkpoint-7: .* is not a checkpoint folder"):
        run(nowhere, one_clip, tmp_path / "out", "--resume_from_checkpoint", "checkpoint-7", "--max_train_steps", "1")
    with pytest.raises(ValueError, match=r"768x500x9: height=500 is not a positive multiple of 32"):
        train_lora.main(
            [
                "--pretrained_model_name_or_path",
                str(nowhere),
                "--train_data_dir",
                str(one_clip),
                "--resolution_buckets",
                "768x500x9",
                "--output_dir",
                str(tmp_path),
                "--max_train_steps",
                "1",
            ]
        )


def test_bad_media_and_silent_clips_name_the_file(tmp_path, model_dir):
    data_dir = write_dataset(tmp_path / "data", num_clips=2)
    (data_dir / "clip1.mp4").write_bytes(b"broken" * 50)
    with pytest.raises(DataError, match=r"clip1\.mp4 \(metadata\.jsonl line 2\): cannot read the video"):
        run(model_dir, data_dir, tmp_path / "out", "--max_train_steps", "1")
    assert not (data_dir / ".ltx2_cache").exists()

    silent = write_dataset(tmp_path / "silent", num_clips=1, audio=False)
    with pytest.raises(DataError, match=r"clip0\.mp4\.safetensors: cached without audio .* --mode t2av trains audio"):
        run(model_dir, silent, tmp_path / "out2", "--mode", "t2av", "--max_train_steps", "1")


def test_two_processes_train_the_same_lora_as_one_with_the_same_global_batch(model_dir, tmp_path):
    """Acceptance 4 of issue 10: 2 CPU processes (gloo, forked: `helpers.training.run_in_processes`; the command line
    equivalent is in docs/training.md) x batch 1 against 1 process x batch 2, 3 steps. Tolerance:
    losses to 1e-5 relative, LoRA tensors to 1e-4 absolute (the all-reduce sums gradients in another order)."""
    data_dir = write_dataset(tmp_path / "data", num_clips=2)
    common = ["--pretrained_model_name_or_path", str(model_dir), "--train_data_dir", str(data_dir),
              "--resolution_buckets", BUCKETS, "--max_sequence_length", str(MAX_SEQUENCE_LENGTH), "--mode", "t2av",
              "--max_train_steps", "3", "--rank", "4", "--lora_alpha", "8", "--learning_rate", "1e-3",
              "--checkpointing_steps", "100", "--lora_save_dtype", "fp32"]  # fmt: skip
    one = run(model_dir, data_dir, tmp_path / "one", *common[2:], "--train_batch_size", "2")  # caches, then trains
    two = tmp_path / "two"
    run_in_processes(train_lora.main, [*common, "--output_dir", str(two), "--train_batch_size", "1"], world_size=2)
    assert sorted(p.name for p in (two / "checkpoint-3").glob("random_states_*")) == [
        "random_states_0.pkl",
        "random_states_1.pkl",
    ]  # really two processes
    for a, b in zip(read_log(one), read_log(two), strict=True):
        assert a["step"] == b["step"] and a["lr"] == pytest.approx(b["lr"])
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    ours, theirs = (load_file(str(d / "pytorch_lora_weights.safetensors")) for d in (one, two))
    assert ours.keys() == theirs.keys()
    for key in ours:
        torch.testing.assert_close(theirs[key], ours[key], rtol=0, atol=1e-4, msg=key)


@pytest.fixture
def fresh_accelerate_state():
    """accelerate keeps one mixed-precision setting per process; the other tests of this module run without one."""
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.mark.usefixtures("fresh_accelerate_state")
def test_bf16_with_gradient_checkpointing_trains_and_saves_bf16(model_dir, one_clip, tmp_path):
    output_dir = tmp_path / "out"
    train_lora.main(["--pretrained_model_name_or_path", str(model_dir), "--train_data_dir", str(one_clip),
                     "--resolution_buckets", BUCKETS, "--max_sequence_length", str(MAX_SEQUENCE_LENGTH),
                     "--output_dir", str(output_dir), "--max_train_steps", "2", "--rank", "4",
                     "--mixed_precision", "bf16", "--gradient_checkpointing", "--lora_targets", "video"])  # fmt: skip
    log = read_log(output_dir)
    assert len(log) == 2 and all(torch.isfinite(torch.tensor(r["loss"])) for r in log)
    lora = load_file(str(output_dir / "comfyui_lora_weights.safetensors"))
    assert {v.dtype for v in lora.values()} == {torch.bfloat16}  # ltx-trainer's default save precision
    assert all(v.abs().max() > 0 for k, v in lora.items() if k.endswith("lora_B.weight"))  # gradients flowed


def test_ic_lora_trains_on_references_and_writes_the_downscale_factor(model_dir, tmp_path):
    data_dir = write_dataset(tmp_path / "data", num_clips=1)
    write_clip(data_dir / "edges.mp4", seed=5, audio=False)
    line = {"file_name": "clip0.mp4", "text": "a test pattern number 0", "reference_file_name": "edges.mp4"}
    (data_dir / "metadata.jsonl").write_text(json.dumps(line) + "\n")
    output_dir = run(model_dir, data_dir, tmp_path / "out", "--mode", "ic_lora", "--reference_downscale_factor", "2",
                     "--lora_targets", "video", "--max_train_steps", "2", "--checkpointing_steps", "100")  # fmt: skip
    log = read_log(output_dir)
    assert len(log) == 2 and "audio_loss" not in log[0]
    for name in ("comfyui_lora_weights.safetensors", "pytorch_lora_weights.safetensors"):
        lora = read_lora(output_dir / name)
        assert lora.reference_downscale_factor == 2 and lora.metadata["ltx2_training_mode"] == "ic_lora"
        # the IC-LoRA pipeline loads it and takes its factor (no upsampler needed to load)
        pipe = LTX2AVICLoRAPipeline(**LTX2AVPipeline.from_pretrained(model_dir).components, latent_upsampler=None)
        assert pipe.reference_downscale_factor == 1
        pipe.load_ic_lora(output_dir / name)
        assert pipe.reference_downscale_factor == 2
    assert_ltx_core_fuses_it_as_we_do(model_dir, output_dir / "comfyui_lora_weights.safetensors")

    # a clip cached without a reference cannot train ic_lora
    plain = write_dataset(tmp_path / "plain", num_clips=1)
    with pytest.raises(DataError, match=r"clip0\.mp4\.safetensors: cached without a reference video"):
        run(model_dir, plain, tmp_path / "out2", "--mode", "ic_lora", "--max_train_steps", "1")


def test_gradient_accumulation_trains_what_the_whole_batch_trains(model_dir, tmp_path):
    """2 micro-steps of 1 sample = 1 step of 2 samples (same global batch, same draws per slot), 3 steps."""
    data_dir = write_dataset(tmp_path / "data", num_clips=2)
    common = ("--mode", "t2av", "--max_train_steps", "3", "--rank", "4", "--lora_alpha", "8", "--learning_rate", "1e-3")
    whole = run(model_dir, data_dir, tmp_path / "whole", *common, "--train_batch_size", "2")
    accumulated = run(model_dir, data_dir, tmp_path / "acc", *common, "--gradient_accumulation_steps", "2")
    for a, b in zip(read_log(whole), read_log(accumulated), strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5) and a["lr"] == b["lr"]
    ours, theirs = (load_file(str(d / "pytorch_lora_weights.safetensors")) for d in (whole, accumulated))
    for key in ours:
        torch.testing.assert_close(theirs[key], ours[key], rtol=0, atol=1e-4, msg=key)


def test_cache_only_caches_and_stops(model_dir, tmp_path):
    data_dir = write_dataset(tmp_path / "data", num_clips=1)
    cache_dir = tmp_path / "cache"
    assert train_lora.main(["--pretrained_model_name_or_path", str(model_dir), "--train_data_dir", str(data_dir),
                            "--resolution_buckets", BUCKETS, "--max_sequence_length", str(MAX_SEQUENCE_LENGTH),
                            "--cache_dir", str(cache_dir), "--output_dir", str(tmp_path / "out"),
                            "--max_train_steps", "1", "--cache_only"]) is None  # fmt: skip
    assert [p.name for p in cache_dir.iterdir()] == ["clip0.mp4.safetensors"]
    assert not (tmp_path / "out" / "training_log.jsonl").exists()


def test_the_trained_lora_has_a_model_card(trained):
    from huggingface_hub import ModelCard

    from ltx2_diffusers.hub import LICENSE_NAME, inspect_folder

    data = ModelCard.load(trained / "README.md").data.to_dict()
    assert data["base_model"] == "Lightricks/LTX-2" and data["license_name"] == LICENSE_NAME
    assert {"lora", "ltx-2", "ltx2-t2av"} <= set(data["tags"])
    assert "mode `t2av`" in data["ltx2_description"]
    assert inspect_folder(trained).what == "lora"  # `ltx2-diffusers push` takes the folder as it is
