"""The tiny two-stage pipeline on a CUDA device in bf16: model CPU offload gives the same clip (the upsampler and the
transformer's second use included), and a stage-2 adapter leaves stage 1 untouched."""

import pytest
import torch

from ltx2_diffusers.loaders.lora import LTX2LoRA, load_lora_adapter
from ltx2_diffusers.pipelines.tiny import build_tiny_two_stage_pipeline

pytestmark = pytest.mark.gpu

CALL = dict(height=128, width=192, num_frames=17, num_inference_steps=2, output_type="pt")


def generate(pipe, **kwargs):
    seen = {}

    def callback(p, step_index, timestep, tensors):
        seen[step_index] = tensors["video_latents"].float().cpu()

    out = pipe(
        "a cat playing piano", generator=torch.Generator("cuda").manual_seed(0), callback_on_step_end=callback,
        **CALL, **kwargs,
    )  # fmt: skip
    return out, seen


def random_lora(transformer, seed: int) -> LTX2LoRA:
    generator = torch.Generator().manual_seed(seed)
    layers = {}
    for name, module in transformer.named_modules():
        if name.startswith("transformer_blocks.") and name.split(".", 2)[-1] in ("attn1.to_q", "attn1.to_v"):
            a = torch.randn(2, module.in_features, generator=generator) / module.in_features**0.5
            layers[name] = (a, 0.5 * torch.randn(module.out_features, 2, generator=generator))
    return LTX2LoRA(layers)


@pytest.mark.parametrize("model_version", ["2.0", "2.3"])
def test_two_stage_bf16_on_gpu_offload_and_stage_2_adapter(model_version):
    pipe = build_tiny_two_stage_pipeline(model_version=model_version).to("cuda", torch.bfloat16)
    on_gpu, seen = generate(pipe)
    assert on_gpu.frames.shape == (1, 17, 3, 128, 192)
    assert torch.isfinite(on_gpu.frames).all() and torch.isfinite(on_gpu.audio).all()
    assert [tuple(v.shape) for v in seen.values()] == [(1, 18, 128)] * 2 + [(1, 72, 128)] * 3

    offloaded = build_tiny_two_stage_pipeline(model_version=model_version).to(torch.bfloat16)
    offloaded.enable_model_cpu_offload()
    again, _ = generate(offloaded)
    torch.testing.assert_close(again.frames.cpu(), on_gpu.frames.cpu(), rtol=0, atol=0)
    torch.testing.assert_close(again.audio.cpu(), on_gpu.audio.cpu(), rtol=0, atol=0)

    load_lora_adapter(pipe.transformer, random_lora(pipe.transformer, 0), adapter_name="distilled")
    pipe.transformer.disable_adapters()
    refined, seen_refined = generate(pipe, stage_2_adapter="distilled")
    for step in (0, 1):  # stage 1 without the adapter
        torch.testing.assert_close(seen_refined[step], seen[step], rtol=0, atol=0)
    assert (refined.frames.float() - on_gpu.frames.float()).abs().max() > 1e-2
