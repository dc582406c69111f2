"""Live peft LoRA adapters over FP8 layers (models/fp8_lora.py) and the input gradient of FP8 layers (models/fp8.py).

CPU runs the float32 emulation of FP8 (the same quantised numbers as torch._scaled_mm); the GPU tests (`-m gpu`) repeat
the equalities with the real kernel and run a full-size two-stage call. What is checked:
- FP8 + adapter equals the LoRA fused into the de-quantised weights, within the FP8 input rounding (tolerance below);
- disabling the adapter gives the FP8-only output bit for bit;
- loading, switching, scaling and deleting adapters, and a two-stage call with its stage-2 adapter, leave every FP8
  weight, scale and bias byte-identical (the same tensors, never re-quantised), and nothing is merged;
- merging into FP8 weights is refused (pipeline, model and loader), and works after disable_fp8();
- the input gradient equals that of a linear holding the de-quantised weight; LoRA parameters train over an FP8 base,
  with gradient checkpointing; FP8 weights get no gradient.
"""

import copy

import pytest
import torch
from helpers.lora import connector_inputs, random_pair, run_text_and_transformer, tiny_models
from helpers.real_files import write_scaled_fp8_transformer
from peft import LoraConfig
from safetensors.torch import save_file

from ltx2_diffusers.loaders.lora import LTX2LoRA, fuse_lora, load_lora_adapter
from ltx2_diffusers.models.fp8 import FP8_DTYPE, FP8Linear, disable_fp8, enable_fp8
from ltx2_diffusers.models.fp8_lora import FP8LoraLinear
from ltx2_diffusers.models.transformer_ltx2 import LTX2VideoTransformer3DModel
from ltx2_diffusers.pipelines.guidance import GuidanceScales
from ltx2_diffusers.pipelines.pipeline_ltx2_av import LTX2AVPipeline
from ltx2_diffusers.pipelines.pipeline_ltx2_av_two_stage import LTX2AVTwoStagePipeline
from ltx2_diffusers.pipelines.refinement import StageAdapters
from ltx2_diffusers.pipelines.tiny import build_tiny_pipeline, build_tiny_two_stage_pipeline

# the tiny model's video stream is 16 wide (its block linears become FP8), its audio stream 8 wide (they stay float32)
Q, FF, AUDIO_V = "transformer_blocks.0.attn1.to_q", "transformer_blocks.1.ff.net.0.proj", "transformer_blocks.0.audio_attn1.to_v"
CONNECTOR_Q = "video_connector.transformer_blocks.0.attn1.to_q"
# FP8 + adapter vs the LoRA fused into the de-quantised float32 weights, relative L2 of the video velocity. Both sides
# share the e4m3 weights; they differ by the rounding of each FP8 layer's input to e4m3 (the adapter's B(A x) is exact
# on both). Measured: 0.0039 with the adapter, 0.0020 without it; the adapter moves the output by 0.13 (relative), so
# an adapter that did not run, or ran at another scale than the fused one, fails by far.
FUSED_TOL = 0.008
# LoRA gradients over FP8 vs over the de-quantised weights, relative L2 per parameter: the forward's input rounding
# (measured at most 0.055). Without the input gradient through FP8 layers most LoRA gradients vanish (tested by hand).
GRAD_TOL = 0.1


def fp8_models(seed: int = 0):
    transformer, connectors = tiny_models("2.0", num_layers=2, seed=seed)
    enable_fp8(transformer)
    return transformer, connectors


def random_lora(transformer, names=(Q, FF, AUDIO_V), rank: int = 2, seed: int = 0) -> LTX2LoRA:
    layers = {}
    for index, name in enumerate(names):
        a, b = random_pair(transformer.get_submodule(name), rank, seed + index)
        layers[name] = (a, 2.0 * b)
    return LTX2LoRA(layers)


def relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return ((got.float() - expected.float()).norm() / expected.float().norm()).item()


def fp8_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every FP8 layer's weight, scale and bias: the tensor objects themselves, by layer name (peft's wrapper left out)."""
    tensors = {}
    for name, module in model.named_modules():
        if isinstance(module, FP8Linear):
            for part in ("weight", "weight_scale", "bias"):
                tensors[f"{name.removesuffix('.base_layer')}.{part}"] = getattr(module, part)
    return tensors


def raw_bytes(tensor: torch.Tensor) -> bytes:
    return tensor.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes()


def snapshot(tensors: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, bytes]]:
    return {name: (tensor, raw_bytes(tensor)) for name, tensor in tensors.items()}


def assert_fp8_untouched(model: torch.nn.Module, before: dict[str, tuple[torch.Tensor, bytes]]) -> None:
    """The same tensor objects (nothing re-assigned or re-quantised) holding the same bytes."""
    now = fp8_tensors(model)
    assert set(now) == set(before) and len(now) > 0
    for name, (tensor, data) in before.items():
        assert now[name] is tensor, f"{name} was replaced"
        assert raw_bytes(tensor) == data, f"{name} changed"
    assert not any(getattr(m, "merged", False) for m in model.modules()), "an adapter was merged"


def test_adapter_over_fp8_equals_lora_fused_into_dequantised_weights():
    transformer, connectors = fp8_models()
    dequantised = copy.deepcopy(transformer)
    disable_fp8(dequantised)  # nn.Linear layers holding weight * scale in float32
    lora = random_lora(transformer)
    fp8_only = run_text_and_transformer(connectors, transformer)[2]
    plain = run_text_and_transformer(connectors, dequantised)[2]

    load_lora_adapter(transformer, lora, adapter_name="style")
    fuse_lora(dequantised, lora)
    assert isinstance(transformer.get_submodule(Q), FP8LoraLinear)
    assert isinstance(transformer.get_submodule(Q).base_layer, FP8Linear)
    assert not isinstance(transformer.get_submodule(AUDIO_V), FP8LoraLinear)  # a float32 layer: peft's own Linear
    got = run_text_and_transformer(connectors, transformer)[2]
    expected = run_text_and_transformer(connectors, dequantised)[2]
    assert relative_error(got, expected) < FUSED_TOL
    assert relative_error(fp8_only, plain) < FUSED_TOL  # the same rounding without the adapter
    assert relative_error(expected, plain) > 10 * FUSED_TOL  # the adapter moves the output far more than that

    # one layer exactly: FP8 base + strength * B (A x), the adapter product in the activation dtype
    layer = transformer.get_submodule(FF)
    x = torch.randn(3, 5, layer.in_features, generator=torch.Generator().manual_seed(1))
    a, b = lora.layers[FF]
    with torch.no_grad():
        torch.testing.assert_close(layer(x), layer.base_layer(x) + (x @ a.t()) @ b.t(), rtol=1e-6, atol=1e-6)


def test_disabling_the_adapter_restores_the_fp8_output_bit_for_bit():
    transformer, connectors = fp8_models()
    before = snapshot(fp8_tensors(transformer))
    fp8_only = run_text_and_transformer(connectors, transformer)[2]
    load_lora_adapter(transformer, random_lora(transformer), adapter_name="style")
    assert (run_text_and_transformer(connectors, transformer)[2] - fp8_only).abs().max() > 1e-2
    transformer.disable_adapters()
    torch.testing.assert_close(run_text_and_transformer(connectors, transformer)[2], fp8_only, rtol=0, atol=0)
    transformer.enable_adapters()
    transformer.set_adapters(["style"], weights=[0.0])
    torch.testing.assert_close(run_text_and_transformer(connectors, transformer)[2], fp8_only, rtol=0, atol=0)
    transformer.delete_adapters("style")
    torch.testing.assert_close(run_text_and_transformer(connectors, transformer)[2], fp8_only, rtol=0, atol=0)
    assert_fp8_untouched(transformer, before)
    load_lora_adapter(transformer, random_lora(transformer), adapter_name="again")
    transformer.unload_lora()  # diffusers puts the base layers back: the FP8 layers themselves
    assert isinstance(transformer.get_submodule(Q), FP8Linear) and not getattr(transformer, "peft_config", None)
    torch.testing.assert_close(run_text_and_transformer(connectors, transformer)[2], fp8_only, rtol=0, atol=0)
    assert_fp8_untouched(transformer, before)


@pytest.mark.filterwarnings("ignore:Already found a `peft_config`")  # add_adapter next to loaded adapters: intended
def test_switching_adapters_and_scales_never_changes_fp8_tensors():
    transformer, connectors = fp8_models()
    before = snapshot(fp8_tensors(transformer))
    load_lora_adapter(transformer, random_lora(transformer, seed=0), adapter_name="one")
    load_lora_adapter(transformer, random_lora(transformer, (Q, "transformer_blocks.1.attn1.to_v"), seed=5), "two")
    transformer.add_adapter(LoraConfig(r=4, target_modules=["to_k"], init_lora_weights=False), adapter_name="three")
    outputs = {}
    for names, weights in [(["one"], [1.0]), (["two"], [0.5]), (["one", "two", "three"], [1.0, -0.5, 2.0])]:
        transformer.set_adapters(names, weights=weights)
        outputs[tuple(names)] = run_text_and_transformer(connectors, transformer)[2]
        assert_fp8_untouched(transformer, before)
    assert (outputs[("one",)] - outputs[("two",)]).abs().max() > 1e-2
    transformer.disable_adapters()
    assert_fp8_untouched(transformer, before)
    transformer.enable_adapters()
    transformer.set_adapters(["one"], weights=[1.0])  # back to the first setting: the same output
    torch.testing.assert_close(run_text_and_transformer(connectors, transformer)[2], outputs[("one",)], rtol=0, atol=0)
    with StageAdapters(transformer) as stages:
        stages.use(["two"], {"two": 0.25})
        run_text_and_transformer(connectors, transformer)
    assert transformer.active_adapters() == ["one"]
    assert_fp8_untouched(transformer, before)
    load_lora_adapter(transformer, random_lora(transformer, seed=9), "one", hotswap=True)  # new tensors, same layers
    assert (run_text_and_transformer(connectors, transformer)[2] - outputs[("one",)]).abs().max() > 1e-2
    assert_fp8_untouched(transformer, before)


def comfyui_lora_file(transformer, connectors, path, alpha: float = 4.0):
    """ComfyUI spelling: `diffusion_model.<original name>.lora_down / lora_up / alpha`, a connector layer included."""
    tensors = {}
    for seed, (name, module) in enumerate(
        [(Q, transformer.get_submodule(Q)), (FF, transformer.get_submodule(FF)),
         (AUDIO_V, transformer.get_submodule(AUDIO_V)),
         ("video_embeddings_connector.transformer_1d_blocks.0.attn1.to_q", connectors.get_submodule(CONNECTOR_Q))]
    ):  # fmt: skip
        a, b = random_pair(module, 2, seed)
        key = f"diffusion_model.{name}"
        tensors |= {f"{key}.lora_down.weight": a, f"{key}.lora_up.weight": 2 * b, f"{key}.alpha": torch.tensor(alpha)}
    save_file(tensors, str(path))
    return path


def test_user_comfyui_lora_loads_onto_an_fp8_pipeline(tmp_path):
    transformer, connectors = fp8_models()
    pipe = LTX2AVPipeline(
        **{**build_tiny_pipeline(seed=0).components, "transformer": transformer, "connectors": connectors}
    )
    dequantised, plain_connectors = copy.deepcopy(transformer), copy.deepcopy(connectors)
    disable_fp8(dequantised)
    path = comfyui_lora_file(transformer, connectors, tmp_path / "style.safetensors")
    before = snapshot(fp8_tensors(transformer))

    pipe.load_lora_weights(path, adapter_name="style")
    fuse_lora(dequantised, path, connectors=plain_connectors)  # alpha / rank = 2 on both sides
    got = run_text_and_transformer(pipe.connectors, pipe.transformer)
    expected = run_text_and_transformer(plain_connectors, dequantised)
    torch.testing.assert_close(got[0], expected[0], rtol=0, atol=1e-5)  # connectors: no FP8 there
    assert relative_error(got[2], expected[2]) < FUSED_TOL
    assert pipe.get_active_adapters() == ["style"]
    pipe.set_adapters("style", 0.5)
    pipe.disable_lora()
    pipe.enable_lora()
    assert_fp8_untouched(pipe.transformer, before)

    with pytest.raises(ValueError, match=r"fuse_lora\(\) on an FP8 transformer: merging would re-quantise"):
        pipe.fuse_lora()
    with pytest.raises(ValueError, match=r"merging a LoRA into an FP8 weight is refused.*disable_fp8\(\), fuse_lora"):
        pipe.transformer.fuse_lora()  # diffusers' model-level fuse: peft's merge, refused per layer
    with pytest.raises(ValueError, match=r"fuse_lora\(\) on an FP8 model: call transformer.disable_fp8.*or load the LoRA as a live adapter"):
        fuse_lora(pipe.transformer, path, connectors=pipe.connectors)
    assert_fp8_untouched(pipe.transformer, before)

    # the documented way to bake it in: disable_fp8, fuse, unload, enable_fp8 (which quantises the fused weights)
    pipe.set_adapters("style", 1.0)
    live = run_text_and_transformer(pipe.connectors, pipe.transformer)[2]
    pipe.transformer.disable_fp8()
    pipe.fuse_lora(components=["transformer", "connectors"])
    pipe.unload_lora_weights()
    pipe.transformer.enable_fp8()
    # the fused weights are quantised afresh: their own e4m3 rounding on top of the input's (measured 0.011)
    assert relative_error(run_text_and_transformer(pipe.connectors, pipe.transformer)[2], live) < 0.02


def test_model_level_fuse_refuses_before_merging_any_layer():
    """An adapter on a plain layer that comes before the FP8 ones (block 0's audio value projection stays bf16 in
    the tiny model): peft would merge it, then fail on the first FP8 layer, leaving the model half fused."""
    transformer, _ = fp8_models()
    plain = "transformer_blocks.0.audio_attn1.to_v"
    assert not isinstance(transformer.get_submodule(plain), FP8Linear)
    assert isinstance(transformer.get_submodule("transformer_blocks.1.attn1.to_q"), FP8Linear)
    config = LoraConfig(r=2, target_modules=[plain, "transformer_blocks.1.attn1.to_q"], init_lora_weights=False)
    transformer.add_adapter(config, adapter_name="style")
    before = snapshot(fp8_tensors(transformer))
    plain_weight = transformer.get_submodule(plain).base_layer.weight.clone()
    with pytest.raises(ValueError, match=r"\['style'\] over an FP8 layer: merging a LoRA into an FP8 weight is refused"):
        transformer.fuse_lora()
    assert_fp8_untouched(transformer, before)  # also: no layer marked merged
    assert torch.equal(transformer.get_submodule(plain).base_layer.weight, plain_weight)
    transformer.disable_fp8()  # the documented way: fusing works once the layers are plain again
    transformer.fuse_lora()
    assert all(m.merged for m in transformer.modules() if hasattr(m, "merged") and m.lora_A)


@pytest.mark.filterwarnings("ignore:Already found a `peft_config`")
def test_adapter_weights_follow_the_model_dtype_and_dora_is_refused():
    transformer, connectors = tiny_models("2.0", num_layers=2)
    transformer.to(torch.bfloat16)
    enable_fp8(transformer)
    assert transformer.get_submodule(Q).compute_dtype == torch.bfloat16
    load_lora_adapter(transformer, random_lora(transformer), adapter_name="style")
    layer = transformer.get_submodule(Q)
    assert layer.lora_A["style"].weight.dtype == torch.bfloat16 and layer.base_layer.weight.dtype == FP8_DTYPE
    x = torch.randn(2, 16, dtype=torch.bfloat16)
    with torch.no_grad():
        assert layer(x).dtype == torch.bfloat16
    transformer.to(torch.float32)  # the FP8 weights stay e4m3; the compute dtype (and the adapters) follow the cast
    assert layer.base_layer.compute_dtype == torch.float32 and layer.base_layer.weight.dtype == FP8_DTYPE
    assert layer.lora_A["style"].weight.dtype == torch.float32
    with pytest.raises(ValueError, match="adapters over FP8 layers are plain LoRA"):
        transformer.add_adapter(LoraConfig(r=2, target_modules=["to_k"], use_dora=True), adapter_name="dora")


def test_adapter_over_a_scaled_fp8_file_kept_in_fp8(tmp_path):
    write_scaled_fp8_transformer(tmp_path / "fp8.safetensors", "comfy")
    model = LTX2VideoTransformer3DModel.from_single_file(tmp_path / "fp8.safetensors", fp8="keep")  # bf16
    layer = model.get_submodule(Q)
    assert isinstance(layer, FP8Linear) and layer.granularity == "tensorwise" and layer.compute_dtype == torch.bfloat16
    before = snapshot(fp8_tensors(model))
    x = torch.randn(2, 5, layer.in_features, dtype=torch.bfloat16)
    with torch.no_grad():
        fp8_only = layer(x)
    lora = random_lora(model, (Q,))
    load_lora_adapter(model, lora, adapter_name="style")
    wrapped = model.get_submodule(Q)
    assert wrapped.lora_A["style"].weight.dtype == torch.bfloat16
    a, b = (t.to(torch.bfloat16) for t in lora.layers[Q])
    with torch.no_grad():
        torch.testing.assert_close(wrapped(x), fp8_only + (x @ a.t()) @ b.t())  # bf16 tolerances
        model.disable_adapters()
        torch.testing.assert_close(wrapped(x), fp8_only, rtol=0, atol=0)
    assert_fp8_untouched(model, before)


def test_state_dict_holds_fp8_tensors_and_refuses_plain_weights():
    transformer, _ = fp8_models()
    load_lora_adapter(transformer, random_lora(transformer), adapter_name="style")
    state = transformer.state_dict()
    assert state[f"{Q}.base_layer.weight"].dtype == FP8_DTYPE and f"{Q}.base_layer.weight_scale" in state
    other, _ = fp8_models(seed=1)
    load_lora_adapter(other, random_lora(other), adapter_name="style")
    other.load_state_dict(state)
    assert torch.equal(other.get_submodule(Q).base_layer.weight.view(torch.uint8), state[f"{Q}.base_layer.weight"].view(torch.uint8))
    plain, _ = tiny_models("2.0", num_layers=2)
    with pytest.raises(ValueError, match=rf"{Q} is an FP8 layer and the state dict holds a torch.float32 weight"):
        fp8_models()[0].load_state_dict(plain.state_dict())


@pytest.mark.parametrize("granularity", ["rowwise", "tensorwise"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_input_gradient_equals_the_dequantised_linear(granularity, dtype):
    torch.manual_seed(0)
    linear = torch.nn.Linear(32, 48).to(dtype)
    layer = FP8Linear.from_linear(linear, granularity)
    reference = layer.to_linear()  # weight * scale, in the bias' dtype
    x = torch.randn(2, 7, 32, dtype=dtype, requires_grad=True)
    grad_y = torch.randn(2, 7, 48, dtype=dtype)
    layer(x).backward(grad_y)
    got = x.grad.clone()
    x.grad = None
    reference(x).backward(grad_y)
    assert got.dtype == dtype
    torch.testing.assert_close(got, x.grad, rtol=0, atol=0)  # the same product in the same dtype
    assert layer.weight.grad is None and layer.bias.grad is None

    layer.bias.requires_grad_(True)  # a trainable bias gets dL/dy summed over tokens
    layer(x.detach()).backward(grad_y)
    torch.testing.assert_close(layer.bias.grad, grad_y.float().sum((0, 1)).to(dtype), rtol=0, atol=0)
    layer.weight.requires_grad_(True)
    with pytest.raises(ValueError, match="the FP8 weight has requires_grad=True, but FP8 weights are frozen"):
        layer(x)
    with torch.no_grad():  # inference does not look at it
        layer(x)


def test_lora_trains_over_an_fp8_base_with_gradient_checkpointing():
    transformer, connectors = fp8_models()
    dequantised = copy.deepcopy(transformer)
    disable_fp8(dequantised)
    config = LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_v", "ff.net.2"], init_lora_weights=False)
    for model in (transformer, dequantised):
        model.add_adapter(copy.deepcopy(config))
    trained = {n: p for n, p in transformer.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in n for n in trained)
    with torch.no_grad():  # the same adapter weights on both
        for name, parameter in dequantised.named_parameters():
            if name in trained:
                parameter.copy_(trained[name])

    def grads(model, checkpointing: bool) -> dict[str, torch.Tensor]:
        model.zero_grad(set_to_none=True)
        model.enable_gradient_checkpointing() if checkpointing else model.disable_gradient_checkpointing()
        model.train()
        with torch.enable_grad():  # the helper without its no_grad decorator
            _, _, video, audio = run_text_and_transformer.__wrapped__(connectors, model)
            (video.square().mean() + audio.square().mean()).backward()
        model.eval()
        return {n: p.grad.clone() for n, p in model.named_parameters() if n in trained}

    plain, checkpointed = grads(transformer, False), grads(transformer, True)
    assert transformer.gradient_checkpointing  # diffusers' flag: the blocks ran under torch.utils.checkpoint
    for name, grad in plain.items():
        assert torch.isfinite(grad).all() and grad.abs().max() > 0, name
        torch.testing.assert_close(checkpointed[name], grad, rtol=1e-5, atol=1e-7)
    for module in transformer.modules():
        if isinstance(module, FP8Linear):
            assert module.weight.grad is None and module.bias.grad is None
    # the same adapter over the de-quantised weights: gradients equal within the FP8 input rounding (a missing input
    # gradient through the FP8 layers would drop every path but the residual one: errors of order 1)
    expected = grads(dequantised, False)
    errors = {name: relative_error(grad, expected[name]) for name, grad in plain.items()}
    assert max(errors.values()) < GRAD_TOL, errors


def test_two_stage_call_switches_the_distilled_adapter_over_fp8_without_touching_it():
    transformer, _ = fp8_models(seed=2)  # 2 blocks instead of the tiny pipeline's 30: a fast call
    pipe = LTX2AVTwoStagePipeline(**{**build_tiny_two_stage_pipeline(seed=2).components, "transformer": transformer})
    pipe.set_progress_bar_config(disable=True)
    fast = dict(num_frames=9, height=128, width=128, num_inference_steps=1, video_guidance=GuidanceScales(),
                audio_guidance=GuidanceScales(), output_type="latent", return_dict=False)  # fmt: skip

    def run(**kwargs):
        seen = {}

        def callback(p, step_index, timestep, tensors):
            seen.setdefault(step_index, tensors["video_latents"].clone())

        video, _ = pipe("a cat", generator=torch.Generator().manual_seed(3), callback_on_step_end=callback,
                        **fast, **kwargs)  # fmt: skip
        return seen[0], video

    base_stage_1, base = run()
    names = ("attn1.to_q", "attn1.to_v", "ff.net.2", "audio_attn1.to_v")  # FP8 layers and a float32 one
    layers = {n: m for n, m in pipe.transformer.named_modules() if n.split(".", 2)[-1] in names and "blocks" in n}
    load_lora_adapter(pipe.transformer, random_lora(pipe.transformer, tuple(layers)), adapter_name="distilled")
    pipe.transformer.disable_adapters()
    before = snapshot(fp8_tensors(pipe.transformer))

    stage_1, refined = run(stage_2_adapter="distilled")
    torch.testing.assert_close(stage_1, base_stage_1, rtol=0, atol=0)  # stage 1 without the adapter
    assert (refined - base).abs().max() > 1e-3  # stage 2 with it
    assert not any(not m.disable_adapters for m in pipe.transformer.modules() if hasattr(m, "lora_A"))
    assert_fp8_untouched(pipe.transformer, before)
    _, again = run()  # adapters off again: the FP8-only result, bit for bit
    torch.testing.assert_close(again, base, rtol=0, atol=0)


# GPU: the same equalities with torch._scaled_mm (CUDA capability 8.9+), in bf16


def cuda_velocity(connectors, transformer) -> torch.Tensor:
    """`run_text_and_transformer`'s video velocity with the models and inputs on CUDA in bf16."""
    states, mask = connector_inputs()
    with torch.no_grad():
        video_context, audio_context, _ = connectors(states.to("cuda", torch.bfloat16), mask.cuda())
        generator = torch.Generator().manual_seed(4)
        video = torch.randn(1, 8, transformer.config.in_channels, generator=generator)
        audio = torch.randn(1, 4, transformer.config.audio_in_channels, generator=generator)
        video_out, _ = transformer(
            hidden_states=video.to("cuda", torch.bfloat16), audio_hidden_states=audio.to("cuda", torch.bfloat16),
            encoder_hidden_states=video_context, audio_encoder_hidden_states=audio_context,
            timestep=torch.tensor([600.0], device="cuda"), num_frames=2, height=2, width=2, fps=24.0,
            audio_num_frames=4, return_dict=False,
        )  # fmt: skip
    return video_out


@pytest.mark.gpu
def test_gpu_adapter_over_scaled_mm_equalities():
    transformer, connectors = tiny_models("2.0", num_layers=2)
    transformer.to("cuda", torch.bfloat16)
    connectors.to("cuda", torch.bfloat16)
    enable_fp8(transformer)
    dequantised = copy.deepcopy(transformer)
    disable_fp8(dequantised)  # bf16 nn.Linear layers holding weight * scale
    lora = random_lora(transformer)
    lora = LTX2LoRA({name: (a, 2 * b) for name, (a, b) in lora.layers.items()})  # a clear effect over bf16 noise
    before = snapshot(fp8_tensors(transformer))
    fp8_only = cuda_velocity(connectors, transformer)
    plain = cuda_velocity(connectors, dequantised)

    load_lora_adapter(transformer, lora, adapter_name="style")
    fuse_lora(dequantised, lora)
    assert transformer.get_submodule(Q).lora_A["style"].weight.dtype == torch.bfloat16
    got, expected = cuda_velocity(connectors, transformer), cuda_velocity(connectors, dequantised)
    # FP8 input rounding plus bf16 rounding of every activation on both sides: this test run on the CPU in bf16
    # (emulated FP8) measures 0.008, and the adapter's effect 0.24
    assert relative_error(got, expected) < 0.03
    assert relative_error(expected, plain) > 0.15
    transformer.disable_adapters()
    torch.testing.assert_close(cuda_velocity(connectors, transformer), fp8_only, rtol=0, atol=0)
    transformer.enable_adapters()
    transformer.set_adapters(["style"], weights=[0.5])
    assert_fp8_untouched(transformer, before)

    layer = transformer.get_submodule(FF).base_layer  # the input gradient through torch._scaled_mm's layer
    x = torch.randn(3, 40, layer.in_features, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    grad_y = torch.randn(3, 40, layer.out_features, device="cuda", dtype=torch.bfloat16)
    layer(x).backward(grad_y)
    got_grad, x.grad = x.grad, None
    layer.to_linear()(x).backward(grad_y)
    torch.testing.assert_close(got_grad, x.grad)  # bf16 tolerances: the same product, maybe another GEMM kernel
    assert layer.weight.grad is None
    x.grad = None  # and compiled in one graph (autograd.Function and torch._scaled_mm), forward and backward
    torch.compile(layer, fullgraph=True)(x).backward(grad_y)
    torch.testing.assert_close(x.grad, got_grad)


def random_distilled_lora(transformer, rank: int, seed: int = 0) -> LTX2LoRA:
    """A random rank-`rank` LoRA on every FP8 layer (the released distilled LoRA is rank 384 on the block linears),
    built on the layers' device in their compute dtype; B(A x) about 5% of the layer's output."""
    generator = torch.Generator(device=next(transformer.parameters()).device).manual_seed(seed)
    layers = {}
    for name, module in transformer.named_modules():
        if isinstance(module, FP8Linear):
            kwargs = dict(generator=generator, device=module.weight.device, dtype=module.compute_dtype)
            a = torch.randn(rank, module.in_features, **kwargs) / module.in_features**0.5
            b = torch.randn(module.out_features, rank, **kwargs) * (0.05 / rank**0.5)
            layers[name] = (a, b)
    return LTX2LoRA(layers)


def fp8_two_stage_with_live_distilled_lora(
    device: str, dtype: torch.dtype, transformer_config: dict, upsampler_config: dict, rank: int, **call
) -> None:
    """A distilled two-stage call with an FP8 transformer and a random distilled LoRA as its live stage-2 adapter,
    against the same call with the adapter off: stage 1 the same bit for bit, stage 2 different, every FP8 tensor
    byte-identical, nothing merged. Models built on `device` in `dtype` (no float32 copy); random text contexts stand
    in for Gemma (not part of what is tested), the tiny pipeline's VAEs and vocoder decode."""
    from ltx2_diffusers import LTX2LatentUpsamplerModel
    from ltx2_diffusers.pipelines.text_encoding import PromptEmbeddings
    from ltx2_diffusers.schedulers.scheduling_ltx2 import LTX2Scheduler

    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            torch.manual_seed(0)
            transformer = LTX2VideoTransformer3DModel(**transformer_config).eval()
            upsampler = LTX2LatentUpsamplerModel(**upsampler_config).eval()
    finally:
        torch.set_default_dtype(default_dtype)
    enable_fp8(transformer)
    tiny = build_tiny_two_stage_pipeline(seed=0).components
    pipe = LTX2AVTwoStagePipeline(
        **{**tiny, "text_encoder": None, "tokenizer": None, "processor": None, "scheduler": LTX2Scheduler.distilled(),
           "transformer": transformer, "latent_upsampler": upsampler},
    )  # fmt: skip
    for name in ("vae", "audio_vae", "vocoder", "connectors"):
        getattr(pipe, name).to(device, dtype)
    pipe.set_progress_bar_config(disable=True)
    load_lora_adapter(transformer, random_distilled_lora(transformer, rank), "distilled", low_cpu_mem_usage=True)
    transformer.disable_adapters()
    generator = torch.Generator(device).manual_seed(0)
    width = transformer_config.get("caption_channels", 3840)
    contexts = torch.randn(2, 1, 1024, width, generator=generator, device=device, dtype=dtype)
    embeds = PromptEmbeddings(contexts[0], contexts[1], torch.ones(1, 1024, dtype=torch.int64, device=device))
    fp8 = fp8_tensors(transformer)
    copies = {name: t.detach().reshape(-1).view(torch.uint8).clone() for name, t in fp8.items()}

    def run(**kwargs):
        seen = {}

        def callback(p, step_index, timestep, tensors):
            seen[step_index] = tensors["video_latents"].float().cpu()

        out = pipe(prompt_embeds=embeds, generator=torch.Generator(device).manual_seed(1), output_type="pt",
                   callback_on_step_end=callback, **call, **kwargs)  # fmt: skip
        return out, seen

    base, base_steps = run()
    live, live_steps = run(stage_2_adapter="distilled")
    assert live.frames.shape == (1, call["num_frames"], 3, call["height"], call["width"])
    assert len(live_steps) == 8 + 3  # the distilled schedule: 8 stage-1 steps, 3 stage-2 steps
    for step in range(8):
        torch.testing.assert_close(live_steps[step], base_steps[step], rtol=0, atol=0)  # stage 1: adapter off
    assert all(torch.isfinite(latents).all() for latents in live_steps.values())
    assert (live_steps[10] - base_steps[10]).abs().max() > 1e-2  # stage 2: the adapter ran
    assert all(m.disable_adapters for m in transformer.modules() if isinstance(m, FP8LoraLinear))  # off again
    for name, tensor in fp8_tensors(transformer).items():
        assert tensor is fp8[name], f"{name} was replaced"
        assert torch.equal(tensor.detach().reshape(-1).view(torch.uint8), copies[name]), f"{name} changed"
    assert not any(getattr(m, "merged", False) for m in transformer.modules())


@pytest.mark.gpu
def test_gpu_full_size_distilled_two_stage_fp8_with_live_distilled_lora():
    """LTX-2 19B (random weights, the released config), FP8 rowwise, the distilled LoRA at rank 384 live in stage 2,
    512 x 768 x 121. Not yet run (written without a GPU): expected well under 3 min on an H100, building the models
    and the 7.8 GB LoRA dominating; peak estimated at 40-60 GiB (38 GB of bf16 weights before FP8, then 19 GB of FP8
    weights, their copy for the byte comparison and the LoRA)."""
    fp8_two_stage_with_live_distilled_lora(
        "cuda", torch.bfloat16, {"rope_type": "split"}, {}, 384, height=512, width=768, num_frames=121
    )
