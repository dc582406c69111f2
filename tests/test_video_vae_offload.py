"""The VAE's public entry points run accelerate's hooks, so enable_model_cpu_offload moves it before it computes."""

import torch
from accelerate.hooks import ModelHook, add_hook_to_module
from helpers.video_vae import tiny_config

from ltx2_diffusers import AutoencoderKLLTX2Video


class CountingHook(ModelHook):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def pre_forward(self, module, *args, **kwargs):
        self.calls += 1
        return args, kwargs


def test_encode_decode_and_decode_stream_call_the_offload_hook():
    vae = AutoencoderKLLTX2Video(**tiny_config("ltx2", "zeros", "reflect")).eval()
    hook = CountingHook()
    add_hook_to_module(vae, hook)
    video = torch.randn(1, 3, 9, 64, 64)
    with torch.no_grad():
        latents = vae.encode(video).latent_dist.mode()
        assert hook.calls == 1
        vae.decode(latents)
        assert hook.calls == 2
        chunks = list(vae.decode_stream(latents))
        assert hook.calls == 3 and sum(c.shape[2] for c in chunks) == 9
