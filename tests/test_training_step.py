"""training/step.py: what the transformer receives per mode (clean frozen streams at sigma 0, first-frame tokens clean
at timestep 0 and out of the loss, float32 positions at the clip's fps) and the per-mode losses."""

import dataclasses
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from ltx2_diffusers.models.rope import audio_positions, video_positions
from ltx2_diffusers.training.objective import MODES, SigmaSampler, generated_stream
from ltx2_diffusers.training.step import Batch, sample_generator, training_loss


class Spy(nn.Module):
    """Records its keyword arguments and predicts zero velocity everywhere."""

    def __init__(self):
        super().__init__()
        self.offset = nn.Parameter(torch.zeros(()))
        self.calls = []
        self.config = SimpleNamespace(in_channels=128)  # what `video_in_channels` reads

    def forward(self, hidden_states, audio_hidden_states=None, **kwargs):
        self.calls.append({"hidden_states": hidden_states, "audio_hidden_states": audio_hidden_states, **kwargs})
        audio = None if audio_hidden_states is None else audio_hidden_states * 0 + self.offset
        return hidden_states * 0 + self.offset, audio


def make_batch(frames: int = 2, fps: float = 25.0) -> Batch:
    generator = torch.Generator().manual_seed(1)
    return Batch(
        video_latents=torch.randn(1, 128, frames, 2, 3, generator=generator),
        audio_latents=torch.randn(1, 8, 5, 16, generator=generator),
        video_context=torch.randn(1, 128, 32, generator=generator),
        audio_context=torch.randn(1, 128, 32, generator=generator),
        fps=fps,
    )


def video_tokens(batch: Batch) -> torch.Tensor:
    return batch.video_latents.flatten(2).transpose(1, 2)


def audio_tokens(batch: Batch) -> torch.Tensor:
    return batch.audio_latents.transpose(1, 2).flatten(2)


def run(mode_name: str, batch: Batch, **mode_changes):
    spy = Spy()
    mode = dataclasses.replace(MODES[mode_name], **mode_changes)
    result = training_loss(spy, batch, mode, SigmaSampler(), [sample_generator(3, 0, 0)])
    return spy.calls[0], result


def test_t2av_inputs_and_loss():
    batch = make_batch()
    call, result = run("t2av", batch)
    generator = sample_generator(3, 0, 0)  # video: sigma + noise, then audio: sigma + noise
    video = generated_stream(video_tokens(batch), SigmaSampler(), generator)
    audio = generated_stream(audio_tokens(batch), SigmaSampler(), generator)
    torch.testing.assert_close(call["hidden_states"], video.latent)
    torch.testing.assert_close(call["audio_hidden_states"], audio.latent)
    torch.testing.assert_close(call["timestep"], 1000 * video.timesteps)
    torch.testing.assert_close(call["sigma"], 1000 * video.sigma)
    torch.testing.assert_close(call["audio_sigma"], 1000 * audio.sigma)
    assert call["video_coords"].dtype == torch.float32
    torch.testing.assert_close(call["video_coords"], video_positions(1, 2, 2, 3, 25.0))  # seconds at the clip's fps
    torch.testing.assert_close(call["audio_coords"], audio_positions(1, 5))
    torch.testing.assert_close(result.video, video.target.pow(2).mean(dim=(1, 2)))  # zero prediction: mean target^2
    torch.testing.assert_close(result.loss, result.video + result.audio)


def test_t2v_calls_the_model_without_audio():
    call, result = run("t2v", make_batch())
    assert call["audio_hidden_states"] is None and "audio_timestep" not in call
    assert result.audio is None and result.audio_sigma is None
    torch.testing.assert_close(result.loss, result.video)


def test_v2a_passes_the_video_clean_at_sigma_zero_and_trains_audio_only():
    batch = make_batch()
    call, result = run("v2a", batch)
    torch.testing.assert_close(call["hidden_states"], video_tokens(batch))
    assert (call["timestep"] == 0).all() and (call["sigma"] == 0).all()
    assert (call["audio_timestep"] > 0).all()
    assert result.video is None and result.video_sigma is None
    torch.testing.assert_close(result.loss, result.audio)


def test_a2v_passes_the_audio_clean_at_sigma_zero_and_trains_video_only():
    batch = make_batch()
    call, result = run("a2v", batch)
    torch.testing.assert_close(call["audio_hidden_states"], audio_tokens(batch))
    assert (call["audio_timestep"] == 0).all() and (call["audio_sigma"] == 0).all()
    assert result.audio is None
    torch.testing.assert_close(result.loss, result.video)


def test_i2v_first_frame_is_clean_at_timestep_zero_and_out_of_the_loss():
    batch = make_batch()
    call, result = run("i2v", batch, first_frame_p=1.0)
    first = 2 * 3  # one latent frame of 2 x 3 tokens
    torch.testing.assert_close(call["hidden_states"][:, :first], video_tokens(batch)[:, :first])
    assert (call["timestep"][:, :first] == 0).all() and (call["timestep"][:, first:] > 0).all()
    assert (call["sigma"] > 0).all()  # the sample keeps its sigma
    generator = sample_generator(3, 0, 0)
    video = generated_stream(video_tokens(batch), SigmaSampler(), generator, first_frame_tokens=first,
                             first_frame_p=1.0)  # fmt: skip
    torch.testing.assert_close(result.video, video.target[:, first:].pow(2).mean(dim=(1, 2)))
    # an image (one latent frame) is not conditioned: nothing would be left to learn
    call, _ = run("i2v", make_batch(frames=1), first_frame_p=1.0)
    assert (call["timestep"] > 0).all()
    assert MODES["i2v"].first_frame_p == 0.5  # ltx-trainer's i2v_lora.yaml


@pytest.mark.parametrize("name", ["t2v", "t2av", "i2v", "a2v", "v2a"])
def test_draws_depend_on_seed_and_step_only(name):
    batch = make_batch()
    first, _ = run(name, batch)
    second, _ = run(name, batch)
    torch.testing.assert_close(first["hidden_states"], second["hidden_states"])
    spy = Spy()
    training_loss(spy, batch, MODES[name], SigmaSampler(), [sample_generator(3, 1, 0)])
    assert not torch.equal(spy.calls[0]["timestep"], first["timestep"]) or name == "v2a"


def test_a_batch_draws_what_its_samples_draw_alone():
    """Per-sample generators: one process with a batch of 2 sees what 2 processes with a batch of 1 see."""
    first, second = make_batch(), make_batch(fps=25.0)
    second = dataclasses.replace(second, video_latents=second.video_latents + 1, audio_latents=second.audio_latents - 1)
    both = Batch(*(torch.cat([a, b]) for a, b in zip((first.video_latents, first.audio_latents, first.video_context,
                 first.audio_context), (second.video_latents, second.audio_latents, second.video_context,
                 second.audio_context))), fps=25.0)  # fmt: skip
    spy = Spy()
    together = training_loss(
        spy, both, MODES["i2v"], SigmaSampler(), [sample_generator(0, 5, 0), sample_generator(0, 5, 1)]
    )
    alone = [
        training_loss(Spy(), one, MODES["i2v"], SigmaSampler(), [sample_generator(0, 5, slot)])
        for slot, one in enumerate((first, second))
    ]
    torch.testing.assert_close(together.loss, torch.cat([r.loss for r in alone]))
    torch.testing.assert_close(together.video_sigma, torch.cat([r.video_sigma for r in alone]))
    with pytest.raises(ValueError, match="got 1 generators for a batch of 2: pass one per sample"):
        training_loss(spy, both, MODES["t2av"], SigmaSampler(), [sample_generator(0, 5, 0)])


def test_ic_lora_appends_clean_reference_tokens_with_scaled_positions():
    batch = make_batch(frames=2)  # clip grid 2 x 2 x 3
    reference = torch.randn(1, 128, 2, 1, 1)  # wrong: 2 x 3 cannot be divided by one factor into 1 x 1
    with pytest.raises(ValueError, match="reference latents 1x1 are not the clip's 2x3 divided by one whole factor"):
        run("ic_lora", dataclasses.replace(batch, reference_latents=reference))
    batch = Batch(torch.randn(1, 128, 2, 2, 4), None, batch.video_context, batch.audio_context, 25.0,
                  reference_latents=torch.randn(1, 128, 2, 1, 2))  # fmt: skip
    call, result = run("ic_lora", batch, first_frame_p=0.0)
    clip_tokens = 2 * 2 * 4
    reference_tokens = batch.reference_latents.flatten(2).transpose(1, 2)
    assert call["hidden_states"].shape == (1, clip_tokens + 4, 128)
    torch.testing.assert_close(call["hidden_states"][:, clip_tokens:], reference_tokens)  # clean
    assert (call["timestep"][:, clip_tokens:] == 0).all() and (call["timestep"][:, :clip_tokens] > 0).all()
    expected = video_positions(1, 2, 1, 2, 25.0)
    expected[:, 1:] *= 2  # the reference's own grid, space x the downscale factor
    torch.testing.assert_close(call["video_coords"][:, :, clip_tokens:], expected)
    torch.testing.assert_close(call["video_coords"][:, :, :clip_tokens], video_positions(1, 2, 2, 4, 25.0))
    video = generated_stream(batch.video_latents.flatten(2).transpose(1, 2), SigmaSampler(), sample_generator(3, 0, 0))
    torch.testing.assert_close(result.video, video.target.pow(2).mean(dim=(1, 2)))  # the clip's tokens only


def test_audio_mode_calls_the_model_with_one_isolated_placeholder_video_token():
    batch = make_batch()
    call, result = run("audio", batch)
    audio = generated_stream(audio_tokens(batch), SigmaSampler(), sample_generator(3, 0, 0))  # audio draws first
    torch.testing.assert_close(call["audio_hidden_states"], audio.latent)
    torch.testing.assert_close(call["audio_sigma"], 1000 * audio.sigma)
    assert call["isolate_modalities"] is True  # no audio<->video attention: the audio sees no video at all
    assert call["hidden_states"].shape == (1, 1, 128) and not call["hidden_states"].any()
    assert call["encoder_hidden_states"].shape == (1, 1, 32)
    assert (call["timestep"] == 0).all() and (call["sigma"] == 0).all()
    assert result.video is None and result.video_sigma is None
    torch.testing.assert_close(result.audio, audio.target.pow(2).mean(dim=(1, 2)))
    torch.testing.assert_close(result.loss, result.audio)
    assert MODES["audio"].lora_targets == "audio"  # ltx-trainer's t2a_lora.yaml adapts audio attention + FFN


@pytest.mark.parametrize("layout", ["ltx2", "ltx23"])
def test_the_audio_only_call_equals_ltx_core_without_video(layout):
    """ltx-trainer's text-to-audio calls ltx-core's LTXModel with video=None; our placeholder call gives the same
    audio velocities (fp32, tiny random weights through our key map)."""
    from _transformer_helpers import build_pair, empty_perturbations, make_inputs

    from ltx2_diffusers.training.step import audio_only_inputs

    reference, ours = build_pair(layout)
    inputs = make_inputs(layout, 2, video_sigma=[0.9, 0.4], audio_sigma=[0.3, 0.8])
    _, audio = inputs.ltx_core()
    with torch.no_grad():
        video_expected, expected = reference(None, audio, empty_perturbations(2))
        kwargs = {k: v for k, v in inputs.ours().items() if k.startswith("audio_")}
        placeholder = audio_only_inputs(inputs.video_context, ours.config.in_channels, torch.device("cpu"),
                                        torch.float32)  # fmt: skip
        _, got = ours(**kwargs, **placeholder, return_dict=False)
        _, joint = ours(**inputs.ours())
    assert video_expected is None
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)
    assert (joint - expected).abs().max() > 1e-3  # with the video present the audio differs: the test can fail
