"""FP8 inference path (models/fp8.py): quantisation bounds, layer policy, a tiny transformer close to float32,
state-dict behaviour; CPU runs the float32 emulation, the GPU tests (`-m gpu`) run torch._scaled_mm and compile."""

import copy

import pytest
import torch
from _transformer_helpers import OUR_CONFIGS, init_every_parameter, make_inputs

from ltx2_diffusers.models.fp8 import (
    FP8_DTYPE,
    GRANULARITIES,
    REFERENCE_BF16_BLOCKS,
    FP8Linear,
    dequantize_fp8,
    disable_fp8,
    enable_fp8,
    fp8_layer_names,
    fp8_linear,
    is_fp8,
    quantize_fp8,
)
from ltx2_diffusers.models.transformer_ltx2 import LTX2VideoTransformer3DModel

# every block linear 16 wide (torch._scaled_mm needs multiples of 16): audio 2 heads x 8 instead of 2 x 4
OUR_CONFIGS["fp8"] = dict(OUR_CONFIGS["ltx2"], audio_attention_head_dim=8, audio_cross_attention_dim=16)
OUR_CONFIGS["fp8_ltx23"] = dict(OUR_CONFIGS["ltx23"], audio_attention_head_dim=8, audio_cross_attention_dim=16)
ATTENTIONS = ("attn1", "attn2", "audio_attn1", "audio_attn2", "audio_to_video_attn", "video_to_audio_attn")


def build(layout: str = "fp8", seed: int = 0) -> LTX2VideoTransformer3DModel:
    model = LTX2VideoTransformer3DModel(**OUR_CONFIGS[layout]).eval()
    init_every_parameter(model, seed)
    return model


def relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return ((got.float() - expected.float()).norm() / expected.float().norm()).item()


def bf16_kwargs(inputs, device: str = "cpu") -> dict:
    """Our forward's kwargs with latents, contexts and video positions in bf16 (as the pipelines pass them)."""
    bf16 = ("hidden_states", "audio_hidden_states", "encoder_hidden_states", "audio_encoder_hidden_states")
    kwargs = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.ours().items()}
    for name in bf16 + ("video_coords",):
        kwargs[name] = kwargs[name].bfloat16()
    return kwargs


def block_linears(block: int) -> set[str]:
    names = {f"transformer_blocks.{block}.{a}.{p}" for a in ATTENTIONS for p in ("to_q", "to_k", "to_v", "to_out.0")}
    return names | {f"transformer_blocks.{block}.{ff}.net.{p}" for ff in ("ff", "audio_ff") for p in ("0.proj", "2")}


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_quantize_dequantize_error_bound(granularity):
    x = torch.randn(64, 256) * torch.logspace(-3, 2, 64)[:, None]  # rows spanning five decades
    x[3, 7] = 1000.0  # an outlier
    x_fp8, scale = quantize_fp8(x, granularity)
    assert x_fp8.dtype == FP8_DTYPE and scale.dtype == torch.float32
    assert scale.shape == ((64, 1) if granularity == "rowwise" else ())
    error = (dequantize_fp8(x_fp8, scale) - x).abs()
    # e4m3: 3 mantissa bits -> half-ulp relative error 2^-4 for normals; below 2^-6 (scaled) the subnormal spacing
    # 2^-9 gives an absolute error of at most 2^-10 in scaled units
    bound = torch.maximum(x.abs() * 2**-4, scale * 2**-10) * (1 + 1e-5)
    assert (error <= bound).all()
    # the largest magnitude (per row / per tensor) maps to e4m3's largest finite value, exactly
    amax = x.abs().amax(dim=-1, keepdim=True) if granularity == "rowwise" else x.abs().amax()
    torch.testing.assert_close(x_fp8.float().abs().amax(dim=-1).max(), torch.tensor(448.0))
    torch.testing.assert_close(scale * 448, amax)


def test_quantize_zeros_and_bad_granularity():
    x_fp8, scale = quantize_fp8(torch.zeros(4, 16), "rowwise")
    assert torch.equal(dequantize_fp8(x_fp8, scale), torch.zeros(4, 16))
    with pytest.raises(ValueError, match="granularity='channel'.*rowwise"):
        quantize_fp8(torch.ones(2, 16), "channel")


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_quantize_bf16_input_same_as_float32(granularity):
    """The division happens in float32 whatever x's dtype (a 0-dim float32 scale would not promote bf16)."""
    x = torch.randn(8, 64).bfloat16()
    for got, expected in zip(quantize_fp8(x, granularity), quantize_fp8(x.float(), granularity)):
        assert torch.equal(got.float(), expected.float())


def test_scaled_mm_path_needs_bf16():
    layer = FP8Linear.from_linear(torch.nn.Linear(32, 16))
    with pytest.raises(ValueError, match="compute in bfloat16, got input dtype torch.float32"):
        fp8_linear(torch.randn(4, 32), layer.weight, layer.weight_scale, layer.bias, "rowwise", emulate=False)


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_emulation_matches_scaled_mm_on_cpu(granularity):
    """The emulated product uses _scaled_mm's scale convention: (a * scale_a) @ (b * scale_b), scale_b (1, N)."""
    linear = torch.nn.Linear(64, 48)
    layer = FP8Linear.from_linear(linear, granularity)
    x = torch.randn(2, 16, 64)
    x_fp8, x_scale = quantize_fp8(x.reshape(-1, 64), granularity)
    w_scale = layer.weight_scale.reshape(1, -1) if granularity == "rowwise" else layer.weight_scale
    try:
        expected = torch._scaled_mm(
            x_fp8, layer.weight.t(), scale_a=x_scale, scale_b=w_scale, bias=linear.bias, out_dtype=torch.float32
        )
    except (RuntimeError, NotImplementedError) as error:  # CPU _scaled_mm is recent; the emulation does not need it
        pytest.skip(f"torch._scaled_mm on CPU: {error}")
    got = layer(x)
    assert got.shape == (2, 16, 48)
    torch.testing.assert_close(got.reshape(-1, 48), expected, rtol=1e-5, atol=1e-5)
    # and it is a linear layer up to FP8 rounding of input and weight (K = 64, O(1) outputs)
    assert relative_error(got, linear(x).detach()) < 0.05


def test_policy_selects_block_qkvo_and_ffn_linears():
    model = LTX2VideoTransformer3DModel(**OUR_CONFIGS["fp8_ltx23"])  # LTX-2.3: also has to_gate_logits
    assert set(fp8_layer_names(model)) == block_linears(0) | block_linears(1) | block_linears(2)
    assert set(fp8_layer_names(model, bf16_blocks=(0, -1))) == block_linears(1)
    with pytest.raises(ValueError, match="block -5 does not exist, the model has 3 blocks"):
        fp8_layer_names(model, bf16_blocks=REFERENCE_BF16_BLOCKS)
    # widths that are not multiples of 16 stay in the model dtype: the default tiny config's audio stream is 8 wide
    narrow = LTX2VideoTransformer3DModel(**OUR_CONFIGS["ltx2"])
    names = set(fp8_layer_names(narrow))
    assert "transformer_blocks.0.attn1.to_q" in names and "transformer_blocks.0.ff.net.2" in names
    assert not any("audio" in name for name in names)


def test_enable_fp8_converts_exactly_the_policy_layers():
    model = build()
    expected = set(fp8_layer_names(model))
    config = enable_fp8(model)
    assert is_fp8(model) and model.fp8_config is config and config.num_fp8_layers == len(expected) == 84
    converted = {name for name, module in model.named_modules() if isinstance(module, FP8Linear)}
    assert converted == expected
    layer = model.transformer_blocks[0].attn1.to_q
    assert layer.weight.dtype == FP8_DTYPE and layer.weight_scale.shape == (16,) and not layer.weight.requires_grad
    assert "granularity=rowwise" in repr(layer)
    assert isinstance(model.proj_out, torch.nn.Linear) and isinstance(model.time_embed.linear, torch.nn.Linear)
    with pytest.raises(ValueError, match="already enabled"):
        enable_fp8(model)
    with pytest.raises(ValueError, match="granularity='int8'"):
        enable_fp8(build(), granularity="int8")
    with_lora = build()
    with_lora.peft_config = {"default": None}  # what PeftAdapterMixin sets when an adapter is loaded
    with pytest.raises(ValueError, match="LoRA adapters are loaded"):
        enable_fp8(with_lora)


@pytest.mark.parametrize(
    ("granularity", "video_tol", "audio_tol"), [("rowwise", 0.05, 0.08), ("tensorwise", 0.07, 0.1)]
)
def test_tiny_transformer_fp8_close_to_float32(granularity, video_tol, audio_tol):
    """Relative L2 error of the whole forward (3 blocks, O(1) outputs). Measured on this model: rowwise 0.020 (video)
    / 0.049 (audio), tensorwise 0.038 / 0.062; bounds about 1.5x that. Why this size: e4m3 keeps 3 mantissa bits
    (rounding up to 2^-4 per value), which makes one FP8 linear about 3.7% off in relative L2 on Gaussian data,
    whatever its width (independent rounding errors grow like the sum itself, sqrt(K)); the residual stream carries
    the unquantised part, and the gated updates add their errors to it."""
    model = build()
    inputs = make_inputs("fp8", 2, video_sigma=[0.9, 0.5], condition_first_frame=True)
    with torch.no_grad():
        expected = model(**inputs.ours())
        enable_fp8(model, granularity=granularity)
        got = model(**inputs.ours())
    assert relative_error(got[0], expected[0]) < video_tol
    assert relative_error(got[1], expected[1]) < audio_tol
    assert relative_error(got[0], expected[0]) > 1e-4  # the FP8 path really ran


def test_bf16_blocks_and_fused_projections():
    model = build()
    inputs = make_inputs("fp8", 1)
    with torch.no_grad():
        expected = model(**inputs.ours())
        fused = copy.deepcopy(model)
        fused.fuse_qkv_projections()
        enable_fp8(fused, bf16_blocks=(0,))
        got = fused(**inputs.ours())
    assert isinstance(fused.transformer_blocks[1].attn1.to_qkv, FP8Linear)
    assert isinstance(fused.transformer_blocks[1].attn2.to_kv, FP8Linear)
    assert isinstance(fused.transformer_blocks[0].attn1.to_qkv, torch.nn.Linear)
    # per block: 2 fused qkv + 4 cross-attention (q, fused kv) + 6 out + 4 FFN = 20; block 0 stays in float32
    assert fused.fp8_config.num_fp8_layers == 2 * 20
    assert relative_error(got[0], expected[0]) < 0.05


def test_cast_to_bf16_keeps_fp8_weights_and_float32_scales():
    model = build()
    enable_fp8(model)
    inputs = make_inputs("fp8", 1)
    with torch.no_grad():
        expected = model(**inputs.ours())
    model.to(torch.bfloat16)
    layer = model.transformer_blocks[0].ff.net[2]
    assert layer.weight.dtype == FP8_DTYPE and layer.weight_scale.dtype == torch.float32
    assert layer.bias.dtype == torch.bfloat16 and model.proj_out.weight.dtype == torch.bfloat16
    with torch.no_grad():
        got = model(**bf16_kwargs(inputs))
    assert got[0].dtype == torch.bfloat16
    assert relative_error(got[0], expected[0]) < 0.05


def test_saving_refuses_and_disable_fp8_saves_a_loadable_checkpoint(tmp_path):
    model = build()
    enable_fp8(model)
    state = model.state_dict()  # the FP8 tensors as they are (peft and diffusers read it when adapters load)
    assert state["transformer_blocks.0.attn1.to_q.weight"].dtype == FP8_DTYPE
    with pytest.raises(ValueError, match=r"save_pretrained\(\) on an FP8 model.*disable_fp8"):
        model.save_pretrained(tmp_path / "fp8")
    assert not (tmp_path / "fp8").exists()  # refused before anything is written
    with pytest.raises(ValueError, match=r"fuse_qkv_projections\(\) on an FP8 model"):
        model.fuse_qkv_projections()
    disable_fp8(model)
    assert not is_fp8(model) and not any(isinstance(m, FP8Linear) for m in model.modules())
    model.save_pretrained(tmp_path / "dequantised")
    reloaded = LTX2VideoTransformer3DModel.from_pretrained(tmp_path / "dequantised").eval()
    inputs = make_inputs("fp8", 1)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs.ours())[0], model(**inputs.ours())[0], rtol=0, atol=0)
        # the dequantised weights are the FP8 values: quantising them again is lossless
        weight = reloaded.transformer_blocks[0].attn1.to_q.weight
        assert torch.equal(dequantize_fp8(*quantize_fp8(weight, "rowwise")), weight)


# GPU: torch._scaled_mm itself (CUDA capability 8.9+), bf16, and a block compiled with fullgraph=True

OUR_CONFIGS["fp8_gpu"] = dict(
    OUR_CONFIGS["fp8_ltx23"], attention_head_dim=64, cross_attention_dim=128, audio_attention_head_dim=32,
    audio_cross_attention_dim=64,
)  # fmt: skip


@pytest.mark.gpu
@pytest.mark.parametrize("granularity", GRANULARITIES)
@pytest.mark.parametrize("fast_accum", [False, True])
def test_gpu_scaled_mm_matches_emulation(granularity, fast_accum):
    linear = torch.nn.Linear(512, 768, device="cuda", dtype=torch.bfloat16)
    layer = FP8Linear.from_linear(linear, granularity, fast_accum)
    x = torch.randn(3, 100, 512, device="cuda", dtype=torch.bfloat16)  # M = 300: not a multiple of 16
    got = layer(x)
    emulated = fp8_linear(x, layer.weight, layer.weight_scale, layer.bias, granularity, emulate=True)
    assert got.dtype == torch.bfloat16 and got.shape == (3, 100, 768)
    # same quantised operands; only accumulation order and the bf16 result rounding differ
    assert relative_error(got, emulated) < 0.01
    assert relative_error(got, linear(x)) < 0.05


@pytest.mark.gpu
@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_gpu_transformer_fp8_close_to_bf16_and_block_compiles_fullgraph(granularity):
    model = build("fp8_gpu").to("cuda", torch.bfloat16)
    model.set_attention_backend("cudnn")
    kwargs = bf16_kwargs(make_inputs("fp8_gpu", 2), "cuda")
    with torch.no_grad():
        expected = model(**kwargs)
        enable_fp8(model, granularity=granularity)
        eager = model(**kwargs)
        torch._dynamo.reset()
        model.compile_repeated_blocks(fullgraph=True, dynamic=False)
        compiled = model(**kwargs)
    assert relative_error(eager[0], expected[0]) < 0.05
    assert relative_error(eager[1], expected[1]) < 0.08
    # Inductor computes the amax -> scale -> cast chain in its own order, so some values round to the neighbouring
    # e4m3 number (a 2^-4 relative step): compiled and eager FP8 differ by FP8-level amounts (measured 0.025 on an
    # H100), so the compiled model is held to the same bound against bf16 as the eager one.
    assert relative_error(compiled[0], expected[0]) < 0.05
    assert relative_error(compiled[1], expected[1]) < 0.08


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_scaled_mm_path_traces_without_graph_breaks(granularity):
    """Dynamo traces the real _scaled_mm path (run on CPU here; inductor on CUDA is the GPU test's job): the amax ->
    scale -> cast chain stays on the device, no .item() or data-dependent branch."""
    linear = torch.nn.Linear(64, 32).bfloat16()
    layer = FP8Linear.from_linear(linear, granularity)
    x = torch.randn(2, 24, 64, dtype=torch.bfloat16)

    def real_path(x):
        return fp8_linear(x, layer.weight, layer.weight_scale, layer.bias, granularity, emulate=False)

    try:
        expected = real_path(x)
    except (RuntimeError, NotImplementedError) as error:
        pytest.skip(f"torch._scaled_mm on CPU in bf16: {error}")
    got = torch.compile(real_path, fullgraph=True, backend="aot_eager")(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_fp8_block_compiles_fullgraph_on_cpu():
    model = build()
    enable_fp8(model)
    inputs = make_inputs("fp8", 1)
    with torch.no_grad():
        expected = model(**inputs.ours())
        torch._dynamo.reset()
        for block in model.transformer_blocks:
            block.compile(fullgraph=True, dynamic=False, backend="aot_eager")
        got = model(**inputs.ours())
    torch._dynamo.reset()
    torch.testing.assert_close(got[0], expected[0], rtol=1e-5, atol=1e-5)
