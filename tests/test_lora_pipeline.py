"""LTX2LoraLoaderMixin (loaders/lora_pipeline.py), diffusers' LTX-2 LoRA surface, on the tiny pipeline: an adapter at
weight w equals fusing at w, fuse/unfuse restores the weights bit for bit, unload removes every adapter, save/load
round-trips (connector layers included), and a file written by diffusers' own LTX2Pipeline.save_lora_weights loads."""

import copy

import pytest
import torch
from diffusers.loaders.lora_pipeline import LTX2LoraLoaderMixin as DiffusersLTX2LoraLoaderMixin
from helpers.lora import assert_unchanged, random_pair, run_text_and_transformer, state_dicts, tiny_models
from peft import LoraConfig, get_peft_model_state_dict
from safetensors.torch import save_file

from ltx2_diffusers.loaders.lora import fuse_lora, read_lora
from ltx2_diffusers.loaders.lora_pipeline import LTX2LoraLoaderMixin
from ltx2_diffusers.pipelines.pipeline_ltx2_av import LTX2AVPipeline
from ltx2_diffusers.pipelines.tiny import build_tiny_pipeline

Q, FF = "transformer_blocks.0.attn1.to_q", "transformer_blocks.1.audio_ff.net.2"
CONNECTOR_Q = "video_connector.transformer_blocks.0.attn1.to_q"


class LoRAPipeline(
    LTX2AVPipeline, LTX2LoraLoaderMixin
):  # diffusers' order: LTX2Pipeline(DiffusionPipeline, ..., mixin)
    """What the pipelines' base class becomes once the mixin is wired in."""


@pytest.fixture(scope="module")
def pipe_and_base():
    transformer, connectors = tiny_models("2.0", num_layers=2)  # 2 of the tiny pipeline's 30 blocks: fast tests
    pipe = LoRAPipeline(
        **{**build_tiny_pipeline(seed=0).components, "transformer": transformer, "connectors": connectors}
    )
    return (
        pipe,
        state_dicts(pipe.transformer, pipe.connectors),
        run_text_and_transformer(pipe.connectors, pipe.transformer),
    )


@pytest.fixture
def pipe(pipe_and_base):
    pipe, before, _ = pipe_and_base
    yield pipe
    pipe.unload_lora_weights()  # every test starts from the bare models
    for model, expected in zip((pipe.transformer, pipe.connectors), before):
        model.load_state_dict(expected)


def kohya_lora(pipe, alpha: float = 8.0) -> dict[str, torch.Tensor]:
    """musubi-spelled transformer layers with alpha != rank, and a ComfyUI-spelled connector layer."""
    tensors = {}
    for seed, name in enumerate((Q, FF)):
        a, b = random_pair(pipe.transformer.get_submodule(name), 4, seed)
        flat = "lora_unet_model_" + name.replace(".", "_")
        tensors |= {f"{flat}.lora_down.weight": a, f"{flat}.lora_up.weight": b, f"{flat}.alpha": torch.tensor(alpha)}
    a, b = random_pair(pipe.connectors.get_submodule(CONNECTOR_Q), 2, 7)
    key = "diffusion_model.video_embeddings_connector.transformer_1d_blocks.0.attn1.to_q"
    return tensors | {f"{key}.lora_A.weight": a, f"{key}.lora_B.weight": b}


def assert_outputs_close(got, expected, atol=1e-5):
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=0, atol=atol)


def test_adapter_weight_equals_fusion_and_unfuse_restores_exactly(pipe, pipe_and_base):
    _, before, base = pipe_and_base
    lora = kohya_lora(pipe)
    pipe.load_lora_weights(lora, adapter_name="style")
    assert pipe.get_list_adapters() == {"transformer": ["style"], "connectors": ["style"]}
    pipe.set_adapters("style", 0.6)
    adapter = run_text_and_transformer(pipe.connectors, pipe.transformer)
    # the functional fusion at 0.6 (alpha / rank = 2 included) on copies
    transformer, connectors = copy.deepcopy(pipe.transformer), copy.deepcopy(pipe.connectors)
    transformer.unload_lora(), connectors.unload_lora()
    fuse_lora(transformer, lora, 0.6, connectors=connectors)
    fused_copy = run_text_and_transformer(connectors, transformer)
    assert_outputs_close(adapter, fused_copy)
    assert (adapter[0] - base[0]).abs().max() > 1e-3 and (adapter[3] - base[3]).abs().max() > 1e-4  # both visible
    # diffusers' fuse_lora at lora_scale 0.6 from weight 1.0
    pipe.set_adapters("style", 1.0)
    at_one = run_text_and_transformer(pipe.connectors, pipe.transformer)
    pipe.fuse_lora(components=["transformer", "connectors"], lora_scale=0.6)
    assert pipe.fused_loras == {"style"}
    assert_outputs_close(run_text_and_transformer(pipe.connectors, pipe.transformer), fused_copy)
    pipe.unfuse_lora(components=["transformer", "connectors"])
    for model, expected in zip((pipe.transformer, pipe.connectors), before):
        base_weights = {k.replace(".base_layer", ""): v for k, v in model.state_dict().items() if "lora_" not in k}
        assert all(torch.equal(base_weights[k], v) for k, v in expected.items())  # bit for bit
    assert pipe.fused_loras == set()
    # the adapters are back at weight 1 (diffusers' unfuse would leave their scale multiplied by lora_scale)
    assert_outputs_close(run_text_and_transformer(pipe.connectors, pipe.transformer), at_one, atol=0)
    pipe.disable_lora()
    assert_outputs_close(run_text_and_transformer(pipe.connectors, pipe.transformer), base, atol=0)


def test_unload_removes_every_adapter(pipe, pipe_and_base):
    _, before, base = pipe_and_base
    pipe.load_lora_weights(kohya_lora(pipe), adapter_name="a")
    pipe.load_lora_weights(kohya_lora(pipe, alpha=2.0))  # diffusers' default name
    assert pipe.get_list_adapters() == {"transformer": ["a", "default_1"], "connectors": ["a", "default_1"]}
    pipe.unload_lora_weights()
    assert pipe.get_list_adapters() == {}
    assert_unchanged((pipe.transformer, pipe.connectors), before)
    assert_outputs_close(run_text_and_transformer(pipe.connectors, pipe.transformer), base, atol=0)


def test_save_then_load_round_trips(pipe, tmp_path):
    pipe.load_lora_weights(kohya_lora(pipe), adapter_name="a")
    expected = run_text_and_transformer(pipe.connectors, pipe.transformer)
    pipe.save_lora_weights(
        tmp_path,
        transformer_lora_layers=get_peft_model_state_dict(pipe.transformer, adapter_name="a"),
        transformer_lora_adapter_metadata=pipe.transformer.peft_config["a"].to_dict(),
        connectors_lora_layers=get_peft_model_state_dict(pipe.connectors, adapter_name="a"),
        connectors_lora_adapter_metadata=pipe.connectors.peft_config["a"].to_dict(),
    )
    saved = read_lora(tmp_path / "pytorch_lora_weights.safetensors")
    assert set(saved.layers) == {Q, FF} and set(saved.connector_layers) == {CONNECTOR_Q}
    assert saved.alphas == {Q: 8.0, FF: 8.0}  # alpha / rank = 2 travels in the adapter metadata
    state_dict, metadata = LoRAPipeline.lora_state_dict(tmp_path, return_lora_metadata=True)
    assert f"transformer.{Q}.alpha" in state_dict and metadata["transformer.r"] == 4
    pipe.unload_lora_weights()
    pipe.load_lora_weights(tmp_path, weight_name="pytorch_lora_weights.safetensors", adapter_name="b")
    assert_outputs_close(run_text_and_transformer(pipe.connectors, pipe.transformer), expected, atol=0)
    pipe.unload_lora_weights()
    pipe.load_lora_weights(state_dict, adapter_name="c")  # lora_state_dict's layout loads too
    assert_outputs_close(run_text_and_transformer(pipe.connectors, pipe.transformer), expected, atol=0)


def test_file_saved_by_diffusers_ltx2_pipeline_loads(pipe, pipe_and_base, tmp_path):
    trained = copy.deepcopy(pipe.transformer)
    config = LoraConfig(r=2, lora_alpha=6, target_modules=["to_q", "ff.net.2"], init_lora_weights=False)
    trained.add_adapter(config, adapter_name="trained")
    expected = run_text_and_transformer(pipe.connectors, trained)
    # LTX2Pipeline.save_lora_weights is this classmethod of diffusers' mixin (imported alone: diffusers' pipeline
    # module pulls in every LTX-2 pipeline and Gemma)
    DiffusersLTX2LoraLoaderMixin.save_lora_weights(
        tmp_path,
        transformer_lora_layers=get_peft_model_state_dict(trained, adapter_name="trained"),
        transformer_lora_adapter_metadata=trained.peft_config["trained"].to_dict(),
    )
    pipe.load_lora_weights(tmp_path)
    assert pipe.get_list_adapters() == {"transformer": ["default_0"]}
    assert read_lora(tmp_path / "pytorch_lora_weights.safetensors").scale(Q) == 3.0  # lora_alpha / r from metadata
    assert_outputs_close(run_text_and_transformer(pipe.connectors, pipe.transformer), expected)
    assert (expected[2] - pipe_and_base[2][2]).abs().max() > 1e-3


def test_refused_files_and_arguments_leave_the_pipeline_unchanged(pipe, pipe_and_base, tmp_path):
    _, before, _ = pipe_and_base
    lora = kohya_lora(pipe)
    connector_b = "diffusion_model.video_embeddings_connector.transformer_1d_blocks.0.attn1.to_q.lora_B.weight"
    bad = {**lora, connector_b: lora[connector_b].clone().fill_(float("nan"))}  # the transformer part is fine
    save_file(bad, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError, match=rf"bad\.safetensors: '{connector_b}' holds NaN"):
        pipe.load_lora_weights(str(tmp_path / "bad.safetensors"))
    wrong = {**lora, connector_b: torch.ones(7, 2)}
    with pytest.raises(ValueError, match=r"connectors module 'video_connector.transformer_blocks.0.attn1.to_q': A"):
        pipe.load_lora_weights(wrong)
    assert_unchanged((pipe.transformer, pipe.connectors), before)
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['wieght_name'\]"):
        pipe.load_lora_weights(lora, wieght_name="x.safetensors")
    with pytest.raises(ValueError, match="only safetensors LoRA files are read"):
        pipe.load_lora_weights(str(tmp_path), use_safetensors=False)
    with pytest.raises(ValueError, match="weight_name / subfolder apply to a folder or Hub repo, not to a state dict"):
        pipe.load_lora_weights(lora, weight_name="x.safetensors")
    save_file({k: v.clone() for k, v in lora.items()}, str(tmp_path / "good.safetensors"))
    with pytest.raises(ValueError, match=r"holds 2 .safetensors files \['bad.safetensors', 'good.safetensors'\]: pass"):
        pipe.load_lora_weights(str(tmp_path))
    with pytest.raises(ValueError, match="offline a Hub repo needs weight_name="):
        pipe.load_lora_weights("someone/some-lora")
    assert_unchanged((pipe.transformer, pipe.connectors), before)
    pipe.load_lora_weights(str(tmp_path), weight_name="good.safetensors", adapter_name="good")
    with pytest.raises(ValueError, match="adapter_weights=nan: a LoRA strength must be a finite number"):
        pipe.set_adapters("good", float("nan"))
    with pytest.raises(ValueError, match="adapter_weights=inf: a LoRA strength must be a finite number"):
        pipe.set_adapters(["good"], [{"transformer": 1.0, "connectors": float("inf")}])
    with pytest.raises(ValueError, match="lora_scale=inf: a LoRA strength must be a finite number"):
        pipe.fuse_lora(lora_scale=float("inf"))
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['fuse_unet'\]"):
        pipe.fuse_lora(fuse_unet=True)
    with pytest.raises(ValueError, match="safe_serialization=False would write a pickle"):
        pipe.save_lora_weights(tmp_path, transformer_lora_layers={"x": torch.ones(1)}, safe_serialization=False)
    with pytest.raises(ValueError, match=r"save_lora_weights\(\): 'transformer.x' holds NaN"):
        pipe.save_lora_weights(tmp_path, transformer_lora_layers={"x": torch.tensor([float("nan")])})


def test_hotswap_replaces_an_adapter_in_place(pipe):
    first = kohya_lora(pipe)
    second = {k: v.flip(0) if k.endswith("weight") else v for k, v in first.items()}  # other numbers, same shapes
    pipe.load_lora_weights(second, adapter_name="expected")
    expected = run_text_and_transformer(pipe.connectors, pipe.transformer)
    pipe.unload_lora_weights()
    pipe.load_lora_weights(first, adapter_name="a")
    pipe.load_lora_weights(second, adapter_name="a", hotswap=True)
    assert pipe.get_list_adapters() == {"transformer": ["a"], "connectors": ["a"]}
    assert_outputs_close(run_text_and_transformer(pipe.connectors, pipe.transformer), expected)
    with pytest.raises(ValueError, match="hotswap=True, but the transformer has no adapter 'b' to replace"):
        pipe.load_lora_weights(second, adapter_name="b", hotswap=True)
    other_alpha = {k: torch.tensor(2.0) if k.endswith(".alpha") else v for k, v in second.items()}
    with pytest.raises(ValueError, match=r"cannot hotswap it into adapter 'a': peft refuses it .*alpha_pattern"):
        pipe.load_lora_weights(other_alpha, adapter_name="a", hotswap=True)
    fewer = {k: v for k, v in second.items() if "audio_ff" not in k}
    with pytest.raises(ValueError, match=r"cannot hotswap it into adapter 'a': it adapts other transformer modules"):
        pipe.load_lora_weights(fewer, adapter_name="a", hotswap=True)
    assert_outputs_close(run_text_and_transformer(pipe.connectors, pipe.transformer), expected, atol=0)  # still there
