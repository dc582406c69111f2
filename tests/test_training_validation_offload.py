"""Validation clips with block offloading (`--validation_prompt` + `--offload_blocks`): training/validation.py moves
every pipeline component but the already placed transformer, whose streamed blocks run the pipeline's no-grad forwards
through the training streamer's slots (memory/placement.py `BlockStreamer(backward=True)`).

On the CPU (the tiny training model, every block streamed): the clip written with offloading equals the one written
without (same seed), the transformer is never moved, the pipeline computes on the training device, and afterwards the
streamer is back between steps (every frozen tensor at its host copy, no block held for a backward) and the next
training step gives the loss and LoRA gradients of a run that did not validate in between, bit for bit.
"""

import copy

import numpy as np
import pytest
import torch
from helpers.training import TRANSFORMER_CONFIG, save_training_pipeline

from ltx2_diffusers.pipelines.text_encoding import PromptEmbeddings
from ltx2_diffusers.training import validation
from ltx2_diffusers.training.lora import LORA_TARGET_PRESETS, lora_config
from ltx2_diffusers.training.models import load_transformer, offload_frozen_blocks, resolve_model_source
from ltx2_diffusers.training.validation import ValidationSettings, run_validation

CPU = torch.device("cpu")
SETTINGS = ValidationSettings(prompts=("a test pattern",), every_steps=1, width=64, height=64, num_frames=9,
                              num_inference_steps=1, guidance_scale=1.0, stg_scale=0.0)  # fmt: skip


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return resolve_model_source(str(save_training_pipeline(tmp_path_factory.mktemp("model"))))


@pytest.fixture(scope="module")
def trainee(source):
    """The source's transformer with rank-4 adapters on `all`, B random (the LoRA changes the clip), checkpointing on,
    in training."""
    transformer = load_transformer(source, torch.float32)
    transformer.requires_grad_(False)
    transformer.add_adapter(lora_config(4, 4, LORA_TARGET_PRESETS["all"]))
    generator = torch.Generator().manual_seed(3)
    for name, parameter in transformer.named_parameters():
        if "lora_B" in name:
            parameter.data.normal_(0.0, 0.05, generator=generator)
    transformer.enable_gradient_checkpointing()  # training's recomputes; the pipeline's no-grad forwards skip them
    return transformer.train()


def prompt_embeddings() -> tuple[PromptEmbeddings, PromptEmbeddings]:
    generator = torch.Generator().manual_seed(5)
    width = TRANSFORMER_CONFIG["caption_channels"]
    embeds = [torch.randn(2, 16, width, generator=generator) for _ in range(2)]
    both = PromptEmbeddings(*embeds, torch.ones(2, 16, dtype=torch.int64))
    return both[:1], both[1:]


def validate(transformer, source, tmp_path, monkeypatch) -> dict:
    """run_validation on CPU; what it exported (frames, audio, file bytes) and the pipeline's execution device."""
    found = {}
    export, build = validation.export_to_video_with_audio, validation.validation_pipeline

    def exporting(frames, audio, sample_rate, fps, path):
        found.update(frames=frames, audio=audio)
        export(frames, audio, sample_rate, fps, path)

    def building(*args):
        pipe = build(*args)
        found["device"] = pipe._execution_device
        return pipe

    monkeypatch.setattr(validation, "export_to_video_with_audio", exporting)
    monkeypatch.setattr(validation, "validation_pipeline", building)
    paths = run_validation(transformer, source, *prompt_embeddings(), SETTINGS, 1, tmp_path, CPU, torch.float32)
    found["bytes"] = paths[0].read_bytes()
    return found


def step(transformer, optimizer) -> tuple[torch.Tensor, dict]:
    """One SGD step on a fixed batch: the loss and the LoRA gradients."""
    generator = torch.Generator().manual_seed(4)
    context = torch.randn(1, 16, TRANSFORMER_CONFIG["caption_channels"], generator=generator)
    video, audio = transformer(
        hidden_states=torch.randn(1, 8, 128, generator=generator),
        audio_hidden_states=torch.randn(1, 4, 128, generator=generator), encoder_hidden_states=context,
        audio_encoder_hidden_states=context, timestep=torch.tensor([600.0]), num_frames=2, height=2, width=2,
        fps=24.0, audio_num_frames=4, return_dict=False,
    )  # fmt: skip
    loss = video.square().mean() + audio.square().mean()
    loss.backward()
    grads = {name: p.grad.clone() for name, p in transformer.named_parameters() if p.requires_grad}
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach(), grads


def streamed(transformer):
    transformer = copy.deepcopy(transformer)
    streamer = offload_frozen_blocks(transformer, TRANSFORMER_CONFIG["num_layers"], CPU)

    def refuse(*args, **kwargs):
        raise AssertionError("the validation pipeline moved the streamed transformer")

    transformer.to = refuse  # pipe.to(device) would move the host copies of the streamed weights
    return transformer, streamer


def test_a_clip_validated_with_offloading_equals_the_resident_one(trainee, source, tmp_path, monkeypatch):
    expected = validate(copy.deepcopy(trainee), source, tmp_path / "resident", monkeypatch)
    transformer, streamer = streamed(trainee)
    copies = []
    copy_in = streamer._copy_in
    streamer._copy_in = lambda position, slot: (copies.append(position), copy_in(position, slot))
    found = validate(transformer, source, tmp_path / "streamed", monkeypatch)

    assert found["device"] == expected["device"] == CPU
    np.testing.assert_array_equal(found["frames"], expected["frames"])
    np.testing.assert_array_equal(found["audio"], expected["audio"])
    assert found["bytes"] == expected["bytes"]
    assert copies == [0, 1]  # the denoising forward streamed both blocks through their slots
    assert transformer.training  # handed back in training mode


def test_the_training_step_after_validation_is_the_one_without_it(trainee, source, tmp_path, monkeypatch):
    runs = []
    for validating in (False, True):
        transformer, streamer = streamed(trainee)
        optimizer = torch.optim.SGD([p for p in transformer.parameters() if p.requires_grad], lr=0.5)
        first = step(transformer, optimizer)
        if validating:
            validate(transformer, source, tmp_path, monkeypatch)
            # between steps again: nothing held for a backward, every frozen tensor at its host copy
            assert not streamer.in_backward and not streamer.callback_queued and streamer.slots is not None
            for pack in streamer.packs:
                start = pack.host.data_ptr()
                assert all(start <= t.data_ptr() < start + pack.host.numel() for t in pack.tensors)
        runs.append((first, step(transformer, optimizer)))
    (first, second), (first_v, second_v) = runs
    assert torch.equal(first[0], first_v[0]) and not torch.equal(first[0], second[0])  # the LoRA moved
    assert torch.equal(second_v[0], second[0])
    assert second_v[1].keys() == second[1].keys()
    for name in second[1]:
        assert torch.equal(second_v[1][name], second[1][name]), name


def test_a_validation_that_fails_to_load_hands_the_transformer_back_in_training_mode(trainee, source, tmp_path,
                                                                                      monkeypatch):  # fmt: skip
    transformer = copy.deepcopy(trainee)
    assert transformer.training

    def fail(*args, **kwargs):
        raise OSError("vae/diffusion_pytorch_model.safetensors: unreadable")

    monkeypatch.setattr(validation, "validation_pipeline", fail)
    empty = PromptEmbeddings(torch.zeros(1, 1, 1), torch.zeros(1, 1, 1), torch.ones(1, 1))
    with pytest.raises(OSError, match="unreadable"):
        run_validation(transformer, source, empty, empty, SETTINGS, 1, tmp_path, CPU, torch.float32)
    assert transformer.training and not (tmp_path / validation.VALIDATION_FOLDER).exists()
