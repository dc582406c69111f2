"""The tiny pipeline on a CUDA device in bf16: model CPU offload gives the same clip, the output is well-formed."""

import pytest
import torch

from ltx2_diffusers.pipelines.tiny import build_tiny_pipeline

pytestmark = pytest.mark.gpu

CALL = dict(height=128, width=128, num_frames=17, num_inference_steps=2, output_type="pt")


def generate(pipe, device: str):
    return pipe("a cat playing piano", generator=torch.Generator(device).manual_seed(0), **CALL)


@pytest.mark.parametrize("model_version", ["2.0", "2.3"])
def test_bf16_on_gpu_and_model_cpu_offload_agree(model_version):
    pipe = build_tiny_pipeline(model_version=model_version).to("cuda", torch.bfloat16)
    on_gpu = generate(pipe, "cuda")
    assert on_gpu.frames.shape == (1, 17, 3, 128, 128)
    assert torch.isfinite(on_gpu.frames).all() and torch.isfinite(on_gpu.audio).all()
    assert on_gpu.audio.shape[:2] == (1, 2)

    offloaded = build_tiny_pipeline(model_version=model_version).to(torch.bfloat16)
    offloaded.enable_model_cpu_offload()
    again = generate(offloaded, "cuda")
    torch.testing.assert_close(again.frames.cpu(), on_gpu.frames.cpu(), rtol=0, atol=0)
    torch.testing.assert_close(again.audio.cpu(), on_gpu.audio.cpu(), rtol=0, atol=0)
