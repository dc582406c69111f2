"""GPU checks of the transformer (run on the lent GPU; skipped without CUDA): bf16 parity with ltx-core on CUDA,
and a block compiled by inductor with fullgraph=True under each SDPA backend."""

import pytest
import torch
from _transformer_helpers import OUR_CONFIGS, build_pair, empty_perturbations, make_inputs

from ltx2_diffusers.models.attention import sdpa_backend

pytestmark = pytest.mark.gpu

# flash and cuDNN kernels need head dims that are multiples of 8: the CPU tests' 8 / 4 are too small
for _layout in ("ltx2", "ltx23"):
    OUR_CONFIGS[f"{_layout}_gpu"] = dict(
        OUR_CONFIGS[_layout], attention_head_dim=64, cross_attention_dim=128, audio_attention_head_dim=32,
        audio_cross_attention_dim=64,
    )  # fmt: skip


def to_cuda_bf16(inputs):
    for name, value in inputs.__dict__.items():
        if isinstance(value, torch.Tensor):
            dtype = torch.bfloat16 if name in ("video", "audio", "video_context", "audio_context") else value.dtype
            setattr(inputs, name, value.to("cuda", dtype))
    inputs.video_positions = inputs.video_positions.bfloat16()
    return inputs


@pytest.mark.parametrize("layout", ["ltx2_gpu", "ltx23_gpu"])
@pytest.mark.parametrize("backend", ["cudnn", "flash", "efficient", "math"])
def test_bf16_cuda_close_to_ltx_core(layout, backend):
    reference, ours = build_pair(layout)
    reference, ours = reference.to("cuda", torch.bfloat16), ours.to("cuda", torch.bfloat16)
    inputs = to_cuda_bf16(make_inputs(layout, 2, video_sigma=[0.9, 0.5], condition_first_frame=True))
    with torch.no_grad(), sdpa_backend("math"):
        expected = reference(*inputs.ltx_core(), empty_perturbations(2))
    ours.set_attention_backend(backend)
    with torch.no_grad():
        got = ours(**inputs.ours())
    # different kernels round differently; O(1) outputs, bf16 has 8 bits
    torch.testing.assert_close(got[0].float(), expected[0].float(), rtol=0, atol=0.1)
    torch.testing.assert_close(got[1].float(), expected[1].float(), rtol=0, atol=0.1)


def test_block_compiles_with_inductor_under_cudnn():
    _, ours = build_pair("ltx23_gpu")
    ours = ours.to("cuda", torch.bfloat16)
    inputs = to_cuda_bf16(make_inputs("ltx23_gpu", 2))
    ours.set_attention_backend("cudnn")
    with torch.no_grad():
        expected = ours(**inputs.ours())
        torch._dynamo.reset()
        ours.compile_repeated_blocks(fullgraph=True, dynamic=False)
        got = ours(**inputs.ours())
    torch.testing.assert_close(got[0].float(), expected[0].float(), rtol=0, atol=0.05)
