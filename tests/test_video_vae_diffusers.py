"""diffusers' in-tree AutoencoderKLLTX2Video is the format oracle: its folders load into ours strictly, and back."""

import json

import diffusers
import pytest
import torch
from helpers.video_vae import randomize_, tiny_config

from ltx2_diffusers.models.autoencoder_kl_ltx2 import AutoencoderKLLTX2Video


def public_config(model) -> dict:
    return json.loads(json.dumps({k: v for k, v in model.config.items() if not k.startswith("_")}))


@pytest.mark.parametrize("layout,padding", [("ltx2", "reflect"), ("ltx23", "zeros")])
@torch.no_grad()
def test_diffusers_folder_round_trip(tmp_path, layout, padding):
    config = tiny_config(layout, "zeros", padding)
    theirs = diffusers.AutoencoderKLLTX2Video(**config).eval()
    randomize_(theirs, 21)
    theirs.latents_mean.normal_()
    theirs.latents_std.uniform_(0.5, 1.5)
    theirs.save_pretrained(tmp_path / "theirs")

    ours = AutoencoderKLLTX2Video.from_pretrained(tmp_path / "theirs").eval()
    assert public_config(ours) == public_config(theirs)
    state = theirs.state_dict()
    assert ours.state_dict().keys() == state.keys()
    ours.load_state_dict(state, strict=True)  # the same tensors, strictly
    for name, value in ours.state_dict().items():
        assert torch.equal(value, state[name]), name

    video = torch.rand(1, 3, 9, 64, 64, generator=torch.Generator().manual_seed(22)) * 2 - 1
    expected = theirs.encode(video).latent_dist
    posterior = ours.encode(video).latent_dist
    torch.testing.assert_close(posterior.mean, expected.mean, atol=1e-5, rtol=0)
    torch.testing.assert_close(posterior.logvar, expected.logvar, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        ours.decode(expected.mean).sample, theirs.decode(expected.mean).sample, atol=1e-5, rtol=0
    )

    ours.save_pretrained(tmp_path / "ours")
    back = diffusers.AutoencoderKLLTX2Video.from_pretrained(tmp_path / "ours").eval()
    assert back.state_dict().keys() == state.keys()
    for name, value in back.state_dict().items():
        assert torch.equal(value, state[name]), name
    torch.testing.assert_close(back.decode(expected.mean).sample, ours.decode(expected.mean).sample, atol=1e-5, rtol=0)
