"""refinement.encode_stage_1_conditions: the two-stage pipelines' stage-1 image and keyframes, encoded at the stage-1
size. A float tensor given at the output size is resized first; a PIL image is prepared at the stage-1 size directly;
a float tensor of another size is refused with the argument's name."""

import numpy as np
import pytest
import torch
from PIL import Image

from ltx2_diffusers.models.autoencoder_kl_ltx2 import AutoencoderKLLTX2Video
from ltx2_diffusers.pipelines.condition_encoding import encode_conditions
from ltx2_diffusers.pipelines.refinement import encode_stage_1_conditions
from ltx2_diffusers.pipelines.tiny import TINY_VAE_CONFIG

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def vae() -> AutoencoderKLLTX2Video:
    torch.manual_seed(0)
    return AutoencoderKLLTX2Video(**TINY_VAE_CONFIG).eval()


@torch.no_grad()
def test_images_are_encoded_at_the_stage_1_size(vae):
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 256, (128, 192, 3), dtype=np.uint8))
    tensor = torch.rand(3, 128, 192) * 2 - 1  # a prepared image at the output size 128 x 192
    conditions = encode_stage_1_conditions(
        vae, picture, 0.8, [(tensor, 8, 0.5)], 128, 192, (64, 96), crf=0, device=CPU
    )
    assert [(c.frame_index, c.strength, tuple(c.latent.shape)) for c in conditions] == [
        (0, 0.8, (1, 128, 1, 2, 3)),
        (8, 0.5, (1, 128, 1, 2, 3)),
    ]
    # the PIL image as encode_conditions prepares it at 64 x 96; the tensor resized to 64 x 96 first
    resized = torch.nn.functional.interpolate(tensor[None], size=(64, 96), mode="bilinear", antialias=True)[0]
    expected = encode_conditions(vae, picture, 0.8, [(resized, 8, 0.5)], 64, 96, 0, CPU)
    for got, want in zip(conditions, expected, strict=True):
        assert torch.equal(got.latent, want.latent)
    full_size = encode_conditions(vae, None, 1.0, [(tensor, 8, 0.5)], 128, 192, 0, CPU)[0].latent
    assert full_size.shape[-2:] == (4, 6)  # without the resize the tensor would be encoded at the output size


def test_a_tensor_not_at_the_output_size_is_refused(vae):
    with pytest.raises(ValueError, match=r"keyframes\[0\] image is a float tensor of shape \(3, 64, 96\)"):
        encode_stage_1_conditions(vae, None, 1.0, [(torch.zeros(3, 64, 96), 8, 1.0)], 128, 192, (64, 96), 0, CPU)
