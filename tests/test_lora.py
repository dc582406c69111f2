"""LoRA (loaders/lora.py): fusion equals ltx-core's `apply_loras` (bf16 weights bit for bit, fp32 outputs), the peft
adapter equals the fusion and switches off, the ComfyUI and diffusers key styles read to the same LoRA, and errors."""

import copy
import logging
import re

import pytest
import torch
from _transformer_helpers import OUR_CONFIGS, build_pair, init_every_parameter, make_inputs
from ltx_core.loader.fuse_loras import _prepare_deltas, apply_loras
from ltx_core.loader.primitives import LoraStateDictWithStrength, StateDict
from safetensors.torch import save_file

from ltx2_diffusers.loaders.lora import LTX2LoRA, fuse_lora, load_lora_adapter, read_lora
from ltx2_diffusers.loaders.transformer_keys import original_to_diffusers_keys
from ltx2_diffusers.models.transformer_ltx2 import LTX2VideoTransformer3DModel

LAYOUT = "ltx2"
# original module path -> rank: every attention kind, both FFNs, and renamed modules (patchify_proj, adaln_single)
MODULES = {
    "transformer_blocks.0.attn1.to_q": 2,
    "transformer_blocks.0.attn1.to_k": 2,
    "transformer_blocks.0.attn1.to_v": 2,
    "transformer_blocks.0.attn1.to_out.0": 2,
    "transformer_blocks.1.attn2.to_k": 3,
    "transformer_blocks.1.attn2.to_out.0": 2,
    "transformer_blocks.1.audio_attn1.to_q": 2,
    "transformer_blocks.2.audio_attn2.to_v": 2,
    "transformer_blocks.1.audio_to_video_attn.to_q": 3,
    "transformer_blocks.2.video_to_audio_attn.to_out.0": 2,
    "transformer_blocks.0.ff.net.0.proj": 2,
    "transformer_blocks.2.ff.net.2": 4,
    "transformer_blocks.1.audio_ff.net.2": 2,
    "patchify_proj": 2,
    "adaln_single.emb.timestep_embedder.linear_1": 2,
}


def random_lora(reference: torch.nn.Module, seed: int, dtype=torch.float32) -> dict[str, torch.Tensor]:
    """ltx-trainer format: `diffusion_model.<original module>.lora_A.weight` (r, in) / `.lora_B.weight` (out, r)."""
    generator = torch.Generator().manual_seed(seed)
    weights = reference.state_dict()
    lora = {}
    for module, rank in MODULES.items():
        out_features, in_features = weights[f"{module}.weight"].shape
        a = torch.randn(rank, in_features, generator=generator) / in_features**0.5
        b = 0.5 * torch.randn(out_features, rank, generator=generator) / rank**0.5
        lora[f"diffusion_model.{module}.lora_A.weight"] = a.to(dtype)
        lora[f"diffusion_model.{module}.lora_B.weight"] = b.to(dtype)
    return lora


def ltx_core_lora(lora: dict[str, torch.Tensor], strength: float) -> LoraStateDictWithStrength:
    """What ltx-core's builder hands to apply_loras: LTXV_LORA_COMFY_RENAMING_MAP drops `diffusion_model.`."""
    sd = {k.replace("diffusion_model.", ""): v for k, v in lora.items()}
    return LoraStateDictWithStrength(StateDict(sd, torch.device("cpu"), 0, {v.dtype for v in sd.values()}), strength)


def to_diffusers_names(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    original = {"model.diffusion_model." + k: v for k, v in state_dict.items()}
    mapping = original_to_diffusers_keys(original, OUR_CONFIGS[LAYOUT])
    return {mapping[k]: v for k, v in original.items()}


def run(model: LTX2VideoTransformer3DModel, inputs) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return model(**inputs.ours())


@pytest.fixture(scope="module")
def pair():
    return build_pair(LAYOUT, seed=3)


@pytest.fixture(scope="module")
def lora_file(pair, tmp_path_factory):
    path = tmp_path_factory.mktemp("lora") / "lora_weights_step_00100.safetensors"
    save_file(random_lora(pair[0], seed=5), str(path), metadata={"reference_downscale_factor": "2"})
    return path


def test_read_ltx_trainer_file(lora_file):
    lora = read_lora(lora_file)
    expected = {m.replace("patchify_proj", "proj_in").replace("adaln_single", "time_embed") for m in MODULES}
    assert set(lora.layers) == expected
    a, b = lora.layers["transformer_blocks.2.ff.net.2"]
    assert a.shape == (4, 64) and b.shape == (16, 4)
    assert lora.ranks["transformer_blocks.1.attn2.to_k"] == 3 and lora.alphas == {} and lora.skipped == ()
    assert lora.metadata["reference_downscale_factor"] == "2" and lora.reference_downscale_factor == 2
    assert read_lora(lora_file, metadata={"reference_downscale_factor": "4"}).reference_downscale_factor == 4
    with pytest.raises(ValueError, match=r"reference_downscale_factor='1.5': expected a whole number"):
        _ = LTX2LoRA(layers=lora.layers, metadata={"reference_downscale_factor": "1.5"}).reference_downscale_factor


def test_fuse_bf16_weights_equal_ltx_core_apply_loras(pair):
    reference, ours = pair
    lora_1, lora_2 = (random_lora(reference, seed, torch.bfloat16) for seed in (5, 6))
    base = {k: v.to(torch.bfloat16) for k, v in reference.state_dict().items()}
    fused = apply_loras(
        StateDict(base, torch.device("cpu"), 0, {torch.bfloat16}),
        [ltx_core_lora(lora_1, 0.8), ltx_core_lora(lora_2, -0.5)],
    ).sd
    model = copy.deepcopy(ours).to(torch.bfloat16)
    fuse_lora(model, [(read_lora(lora_1), 0.8), (read_lora(lora_2), -0.5)])
    got, expected = model.state_dict(), to_diffusers_names(fused)
    assert set(got) == set(expected)
    base_ours = to_diffusers_names(base)
    assert sum(not torch.equal(got[k], base_ours[k]) for k in got) == len(MODULES)  # exactly the LoRA's modules
    for key in got:
        assert torch.equal(got[key], expected[key]), key
    # one LoRA at one strength: the same path as the CLI's `--lora PATH 0.8`
    model = copy.deepcopy(ours).to(torch.bfloat16)
    fuse_lora(model, read_lora(lora_1), 0.8)
    fused = apply_loras(StateDict(base, torch.device("cpu"), 0, {torch.bfloat16}), [ltx_core_lora(lora_1, 0.8)]).sd
    expected = to_diffusers_names(fused)
    assert all(torch.equal(v, expected[k]) for k, v in model.state_dict().items())


def test_fuse_fp32_outputs_match_ltx_core(pair, lora_file):
    reference, ours = pair
    lora_sd = random_lora(reference, seed=5)
    reference = copy.deepcopy(reference)
    with torch.no_grad():  # ltx-core's own delta code (apply_loras itself refuses float32 weights)
        for key, weight in reference.state_dict().items():
            delta = _prepare_deltas([ltx_core_lora(lora_sd, 0.8)], key, torch.float32, torch.device("cpu"))
            if delta is not None:
                weight.add_(delta)
    inputs = make_inputs(LAYOUT, batch_size=2)
    before = run(ours, inputs)
    model = copy.deepcopy(ours)
    model.fuse_ltx2_lora(lora_file, strength=0.8)
    video, audio = run(model, inputs)
    with torch.no_grad():
        expected_video, expected_audio = reference(*inputs.ltx_core(), perturbations=None)
    torch.testing.assert_close(video, expected_video, rtol=0, atol=1e-5)
    torch.testing.assert_close(audio, expected_audio, rtol=0, atol=1e-5)
    assert (video - before[0]).abs().max() > 1e-2 and (audio - before[1]).abs().max() > 1e-2


def test_adapter_equals_fusion_switches_off_and_scales(pair, lora_file):
    _, ours = pair
    inputs = make_inputs(LAYOUT, batch_size=2)
    base = run(ours, inputs)
    fused = copy.deepcopy(ours)
    fuse_lora(fused, read_lora(lora_file), 0.8)
    model = copy.deepcopy(ours)
    assert model.load_ltx2_lora(lora_file, adapter_name="style", strength=0.8) == "style"
    for got, expected in zip(run(model, inputs), run(fused, inputs)):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    model.disable_adapters()  # what a two-stage pipeline does in stage 1
    for got, expected in zip(run(model, inputs), base):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    model.enable_adapters()
    for got, expected in zip(run(model, inputs), run(fused, inputs)):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    model.set_adapters("style", weights=0.0)  # diffusers' strength control keeps the same meaning
    for got, expected in zip(run(model, inputs), base):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    model.set_adapters("style", weights=0.8)
    for got, expected in zip(run(model, inputs), run(fused, inputs)):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_two_adapters_equal_summed_fusion(pair, lora_file):
    reference, ours = pair
    second = read_lora(random_lora(reference, seed=6))
    inputs = make_inputs(LAYOUT, batch_size=1)
    fused = copy.deepcopy(ours)
    fuse_lora(fused, [(read_lora(lora_file), 0.8), (second, -0.5)])
    model = copy.deepcopy(ours)
    load_lora_adapter(model, lora_file, "first", strength=0.8)
    load_lora_adapter(model, second, "second", strength=-0.5)
    assert set(model.active_adapters()) == {"first", "second"}
    for got, expected in zip(run(model, inputs), run(fused, inputs)):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="adapter 'first' is already loaded"):
        load_lora_adapter(model, second, "first")


def test_comfy_and_diffusers_key_styles_read_the_same(pair):
    reference, ours = pair
    trainer = random_lora(reference, seed=5)
    comfy = {}
    for key, value in trainer.items():
        module = key.removeprefix("diffusion_model.").rsplit(".lora_", 1)[0]
        part = "lora_down" if ".lora_A." in key else "lora_up"
        comfy[f"model.diffusion_model.{module}.{part}.weight"] = value
        comfy[f"model.diffusion_model.{module}.alpha"] = torch.tensor(float(MODULES[module]))
    connector = "model.diffusion_model.video_embeddings_connector.transformer_1d_blocks.0.attn1.to_q"
    comfy[f"{connector}.lora_down.weight"], comfy[f"{connector}.lora_up.weight"] = torch.ones(2, 16), torch.ones(16, 2)
    names = set(ours.state_dict())
    diffusers_style = {}
    original_to_ours = {
        "patchify_proj": "proj_in",
        "adaln_single.emb.timestep_embedder.linear_1": "time_embed.emb.timestep_embedder.linear_1",
    }
    for key, value in trainer.items():
        module, part = key.removeprefix("diffusion_model.").rsplit(".lora_", 1)
        name = original_to_ours.get(module, module)
        assert f"{name}.weight" in names
        diffusers_style[f"transformer.{name}.lora_{part}"] = value
    bare = {k.removeprefix("diffusion_model."): v for k, v in trainer.items()}
    kohya = {}  # musubi-tuner's own format: every dot of the module path an underscore
    for key, value in comfy.items():
        if "connector" in key:
            continue
        module, part = re.fullmatch(
            r"model\.diffusion_model\.(.+)\.(lora_down\.weight|lora_up\.weight|alpha)", key
        ).groups()
        kohya[f"lora_unet_{module.replace('.', '_')}.{part}"] = value
    assert "lora_unet_transformer_blocks_1_audio_to_video_attn_to_q.lora_down.weight" in kohya

    expected = read_lora(trainer)
    from_comfy = read_lora(comfy)
    assert from_comfy.skipped == () and set(from_comfy.connector_layers) == {
        "video_connector.transformer_blocks.0.attn1.to_q"
    }
    assert from_comfy.alphas["proj_in"] == 2.0
    from_comfy = LTX2LoRA(from_comfy.layers, alphas=from_comfy.alphas)  # the transformer part only
    for other in (from_comfy, read_lora(diffusers_style), read_lora(bare), read_lora(kohya)):
        assert set(other.layers) == set(expected.layers)
        for name, (a, b) in expected.layers.items():
            assert torch.equal(other.layers[name][0], a) and torch.equal(other.layers[name][1], b)
    # identical fused weights; alpha == rank makes use_alpha neutral
    models = [copy.deepcopy(ours) for _ in range(3)]
    fuse_lora(models[0], expected, 0.7)
    fuse_lora(models[1], from_comfy, 0.7, use_alpha=True)
    fuse_lora(models[2], read_lora(diffusers_style), 0.7)
    for key, value in models[0].state_dict().items():
        assert torch.equal(models[1].state_dict()[key], value) and torch.equal(models[2].state_dict()[key], value)


def test_alpha_scales_by_default_and_use_alpha_false_ignores_it(pair):
    reference, ours = pair
    lora = read_lora(random_lora(reference, seed=5))
    with_alpha = LTX2LoRA(layers=lora.layers, alphas={name: 2.0 * rank for name, rank in lora.ranks.items()})
    inputs = make_inputs(LAYOUT, batch_size=1)
    outputs = {}
    for label, item, strength, use_alpha in [
        ("reference rule", with_alpha, 1.0, False),
        ("plain", lora, 1.0, True),
        ("alpha", with_alpha, 1.0, True),
        ("double", lora, 2.0, True),
    ]:
        model = copy.deepcopy(ours)
        fuse_lora(model, item, strength, use_alpha=use_alpha)
        outputs[label] = run(model, inputs)[0]
    assert torch.equal(outputs["reference rule"], outputs["plain"])
    torch.testing.assert_close(outputs["alpha"], outputs["double"], rtol=0, atol=1e-5)
    adapter = copy.deepcopy(ours)
    load_lora_adapter(adapter, with_alpha)
    torch.testing.assert_close(run(adapter, inputs)[0], outputs["double"], rtol=0, atol=1e-5)
    adapter = copy.deepcopy(ours)
    load_lora_adapter(adapter, with_alpha, use_alpha=False)
    torch.testing.assert_close(run(adapter, inputs)[0], outputs["plain"], rtol=0, atol=1e-5)


def test_unknown_keys_raise_or_are_skipped(pair, caplog):
    trainer = random_lora(pair[0], seed=5)
    with pytest.raises(ValueError, match=r"not LoRA tensors .*'diffusion_model.transformer_blocks.0.attn1.to_q.dora"):
        read_lora({**trainer, "diffusion_model.transformer_blocks.0.attn1.to_q.dora_scale": torch.ones(16)})
    with pytest.raises(ValueError, match=r"'lora_unet_transformer_blocks_0_attn1_to_z.lora_down.weight'.*kohya names"):
        read_lora({"lora_unet_transformer_blocks_0_attn1_to_z.lora_down.weight": torch.ones(2, 16)})
    with caplog.at_level(logging.WARNING):
        lora = read_lora({**trainer, "something.else": torch.ones(1)}, allow_unknown=True)
    assert "'something.else'" in caplog.text and len(lora.layers) == len(MODULES)
    with pytest.raises(ValueError, match=r"transformer module 'transformer_blocks.0.attn1.to_q' has no B"):
        read_lora({"diffusion_model.transformer_blocks.0.attn1.to_q.lora_A.weight": torch.ones(2, 16)})
    mixed = {"diffusion_model.patchify_proj.lora_A.weight": torch.ones(2, 8), "transformer.proj_in.lora_A.weight": torch.ones(2, 8)}  # fmt: skip
    mixed |= {k.replace("lora_A", "lora_B"): torch.ones(16, 2) for k in mixed}
    with pytest.raises(ValueError, match="are both the A tensor of transformer module 'proj_in'"):
        read_lora(mixed)
    with pytest.raises(ValueError, match=r"'diffusion_model.vae.decoder.conv.lora_A.weight'.*text encoder or the VAEs"):
        read_lora({"diffusion_model.vae.decoder.conv.lora_A.weight": torch.ones(2, 16)})
    with pytest.raises(ValueError, match="no LoRA layers"):
        read_lora({"vae.conv.lora_A.weight": torch.ones(2, 16)}, allow_unknown=True)


def test_shape_and_name_errors_name_the_module(pair):
    _, ours = pair
    model = copy.deepcopy(ours)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    name = "transformer_blocks.1.audio_attn1.to_q"
    good = (torch.ones(2, 8), torch.ones(8, 2))
    with pytest.raises(ValueError, match=rf"'diffusion_model.{name}.lora_A.weight' has shape \(2, 8\).*\(8, 3\)"):
        read_lora({f"diffusion_model.{name}.lora_A.weight": good[0], f"diffusion_model.{name}.lora_B.weight": torch.ones(8, 3)})  # fmt: skip
    for a, b in [(torch.ones(2, 16), good[1]), (good[0], torch.ones(16, 2))]:  # wrong in_features, out_features
        video_ok = (torch.ones(2, 16), torch.ones(16, 2))  # a valid module first: checks run before any write
        bad = LTX2LoRA(layers={"transformer_blocks.0.attn1.to_q": video_ok, name: (a, b)})
        with pytest.raises(
            ValueError, match=rf"transformer module '{name}': A \({a.shape[0]}, {a.shape[1]}\).*\(8, 8\)"
        ):
            fuse_lora(model, bad)
        with pytest.raises(ValueError, match=rf"transformer module '{name}'"):
            load_lora_adapter(model, bad)
    gate = LTX2LoRA(layers={"transformer_blocks.0.attn1.to_gate_logits": (torch.ones(2, 16), torch.ones(2, 2))})
    with pytest.raises(ValueError, match="module 'transformer_blocks.0.attn1.to_gate_logits' is not a linear layer"):
        fuse_lora(model, gate)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # nothing written before the checks
    assert not getattr(model, "peft_config", None)
    model.fuse_qkv_projections()
    with pytest.raises(ValueError, match="unfuse_qkv_projections"):
        fuse_lora(model, LTX2LoRA(layers={"transformer_blocks.0.attn1.to_q": (torch.ones(2, 16), torch.ones(16, 2))}))
    with pytest.raises(ValueError, match="strengths inside the list"):
        fuse_lora(ours, [(LTX2LoRA(layers={}), 1.0)], strength=0.5)


def test_fp8_model_and_fp8_weights_are_refused():
    config = dict(OUR_CONFIGS[LAYOUT], audio_attention_head_dim=8, audio_cross_attention_dim=16)  # FP8 needs 16-wide
    model = LTX2VideoTransformer3DModel(**config).eval()
    init_every_parameter(model, seed=0)
    lora = LTX2LoRA(layers={"transformer_blocks.0.attn1.to_q": (torch.ones(2, 16), torch.ones(16, 2))})
    model.enable_fp8()
    with pytest.raises(ValueError, match=r"fuse_lora\(\) on an FP8 model: call transformer.disable_fp8\(\)"):
        fuse_lora(model, lora)
    model.disable_fp8()
    model.transformer_blocks[0].attn1.to_q.weight.data = model.transformer_blocks[0].attn1.to_q.weight.data.to(
        torch.float8_e4m3fn
    )
    with pytest.raises(ValueError, match=r"weight transformer_blocks.0.attn1.to_q.weight is torch.float8_e4m3fn"):
        fuse_lora(model, lora)
