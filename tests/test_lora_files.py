"""LoRA files as third-party tools write them (kohya alpha, musubi-tuner spelling, connector keys) and as a hostile
tester would (NaN, wrong dtypes, bad alphas and strengths, mismatched shapes, keys of no module): each applied as
ComfyUI applies it, or refused naming the key and the file before any weight changes."""

import copy
import json
import re

import pytest
import torch
from helpers.lora import assert_unchanged, random_pair, run_text_and_transformer, state_dicts, tiny_models
from safetensors.torch import save_file

from ltx2_diffusers.loaders.lora import fuse_lora, load_lora_adapter, read_lora

Q, FF = "transformer_blocks.0.attn1.to_q", "transformer_blocks.1.ff.net.2"
CONNECTOR_Q = "video_connector.transformer_blocks.0.attn1.to_q"


@pytest.fixture(scope="module")
def models():
    return tiny_models("2.0")


@pytest.fixture(scope="module")
def models_23():
    return tiny_models("2.3")


def kohya_file(transformer, path, alpha=8.0, rank=4, prefix="lora_unet_"):
    """kohya / ComfyUI style: lora_down / lora_up and a scalar alpha per module."""
    tensors = {}
    for seed, name in enumerate((Q, FF, "proj_in")):
        a, b = random_pair(transformer.get_submodule(name), rank, seed)
        flat = prefix + name.replace(".", "_")
        tensors |= {f"{flat}.lora_down.weight": a, f"{flat}.lora_up.weight": b, f"{flat}.alpha": torch.tensor(alpha)}
    save_file(tensors, str(path))
    return tensors


def test_kohya_alpha_scales_as_comfyui(models, tmp_path):
    transformer, _ = models
    tensors = kohya_file(transformer, tmp_path / "kohya.safetensors", alpha=8.0, rank=4)
    lora = read_lora(tmp_path / "kohya.safetensors")
    assert lora.alphas == {Q: 8.0, FF: 8.0, "proj_in": 8.0} and lora.scale(Q) == 2.0
    fused = copy.deepcopy(transformer)
    fuse_lora(fused, lora, strength=0.7)
    # ComfyUI's rule for a lora_up / lora_down / alpha triple: W + strength * (alpha / rank) * (up @ down)
    for name in (Q, FF, "proj_in"):
        flat = "lora_unet_" + name.replace(".", "_")
        up, down = tensors[f"{flat}.lora_up.weight"], tensors[f"{flat}.lora_down.weight"]
        expected = transformer.get_submodule(name).weight + 0.7 * (8.0 / 4) * (up @ down)
        torch.testing.assert_close(fused.get_submodule(name).weight, expected, rtol=0, atol=1e-6)
    # the same as an adapter, and the reference's literal rule (use_alpha=False) at rank / alpha = half the effect
    adapter = copy.deepcopy(transformer)
    load_lora_adapter(adapter, lora, "kohya", strength=0.7)
    plain = copy.deepcopy(transformer)
    fuse_lora(plain, lora, strength=1.4, use_alpha=False)
    with torch.no_grad():
        expected = run_text_and_transformer(models[1], fused)
        for other in (adapter, plain):
            for got, want in zip(run_text_and_transformer(models[1], other)[2:], expected[2:]):
                torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_musubi_spelling_reads_as_the_dotted_file(models):
    transformer, connectors = models
    dotted, musubi = {}, {}
    for seed, name in enumerate((Q, FF, "proj_in", "time_embed.linear")):
        a, b = random_pair(transformer.get_submodule(name), 2, seed)
        original = name.replace("proj_in", "patchify_proj").replace("time_embed", "adaln_single")
        dotted |= {f"diffusion_model.{original}.lora_A.weight": a, f"diffusion_model.{original}.lora_B.weight": b}
        flat = "lora_unet_model_" + original.replace(".", "_")
        musubi |= {f"{flat}.lora_down.weight": a, f"{flat}.lora_up.weight": b}
    for seed, (original, name) in enumerate(
        [("video_embeddings_connector", "video_connector"), ("audio_embeddings_connector", "audio_connector")]
    ):
        a, b = random_pair(connectors.get_submodule(f"{name}.transformer_blocks.0.ff.net.2"), 2, seed + 10)
        dotted |= {f"diffusion_model.{original}.transformer_1d_blocks.0.ff.net.2.lora_A.weight": a,
                   f"diffusion_model.{original}.transformer_1d_blocks.0.ff.net.2.lora_B.weight": b}  # fmt: skip
        flat = "lora_unet_" + ("embeddings_connector" if name == "video_connector" else original)
        musubi |= {f"{flat}_transformer_1d_blocks_0_ff_net_2.lora_down.weight": a,
                   f"{flat}_transformer_1d_blocks_0_ff_net_2.lora_up.weight": b}  # fmt: skip
    expected, got = read_lora(dotted), read_lora(musubi)
    assert set(got.layers) == {Q, FF, "proj_in", "time_embed.linear"} == set(expected.layers)
    assert set(got.connector_layers) == {"video_connector.transformer_blocks.0.ff.net.2",
                                         "audio_connector.transformer_blocks.0.ff.net.2"}  # fmt: skip
    assert set(got.connector_layers) == set(expected.connector_layers)
    for ours, theirs in ((got.layers, expected.layers), (got.connector_layers, expected.connector_layers)):
        for name, (a, b) in theirs.items():
            assert torch.equal(ours[name][0], a) and torch.equal(ours[name][1], b)


@pytest.mark.parametrize("version", ["2.0", "2.3"])
def test_connector_keys_change_connector_outputs(models, models_23, version, tmp_path):
    transformer, connectors = models if version == "2.0" else models_23
    projection = "text_proj_in" if version == "2.0" else "video_text_proj_in"
    original = "aggregate_embed" if version == "2.0" else "video_aggregate_embed"
    tensors, pairs = {}, {}
    for seed, (key, name) in enumerate([
        ("diffusion_model.video_embeddings_connector.transformer_1d_blocks.0.attn1.to_q", CONNECTOR_Q),
        ("diffusion_model.audio_embeddings_connector.transformer_1d_blocks.0.attn1.to_out.0",
         "audio_connector.transformer_blocks.0.attn1.to_out.0"),
        (f"text_embedding_projection.{original}", projection),
    ]):  # fmt: skip
        pairs[name] = random_pair(connectors.get_submodule(name), 2, seed)
        tensors |= {f"{key}.lora_A.weight": pairs[name][0], f"{key}.lora_B.weight": pairs[name][1]}
    save_file(tensors, str(tmp_path / "connector.safetensors"))
    lora = read_lora(tmp_path / "connector.safetensors")
    assert set(lora.connector_layers) == set(pairs) and not lora.layers
    with pytest.raises(ValueError, match=r"connector\.safetensors: 3 LoRA layer\(s\) are for the text connectors.*"
                                         r"pass connectors=pipe.connectors"):  # fmt: skip
        fuse_lora(transformer, lora)
    base = run_text_and_transformer(connectors, transformer)
    fused = copy.deepcopy(connectors)
    fuse_lora(transformer, lora, 0.5, connectors=fused)
    expected = copy.deepcopy(connectors)
    with torch.no_grad():
        for name, (a, b) in pairs.items():
            expected.get_submodule(name).weight += 0.5 * b @ a
    adapter = copy.deepcopy(connectors)
    load_lora_adapter(transformer, lora, "connector", 0.5, connectors=adapter)
    got, want = run_text_and_transformer(fused, transformer), run_text_and_transformer(expected, transformer)
    for index, visible in enumerate((1e-2, 1e-2, 1e-4, 1e-4)):  # both contexts, and through them both velocities
        assert (got[index] - base[index]).abs().max() > visible
        torch.testing.assert_close(got[index], want[index], rtol=0, atol=1e-5)
    for got_adapter, want_fused in zip(run_text_and_transformer(adapter, transformer), got):
        torch.testing.assert_close(got_adapter, want_fused, rtol=0, atol=1e-5)


def _hostile_cases(transformer, connectors):
    a, b = random_pair(transformer.get_submodule(Q), 2, 0)
    ca, cb = random_pair(connectors.get_submodule(CONNECTOR_Q), 2, 1)
    good = {f"diffusion_model.{Q}.lora_A.weight": a, f"diffusion_model.{Q}.lora_B.weight": b,
            "diffusion_model.video_embeddings_connector.transformer_1d_blocks.0.attn1.to_q.lora_A.weight": ca,
            "diffusion_model.video_embeddings_connector.transformer_1d_blocks.0.attn1.to_q.lora_B.weight": cb}  # fmt: skip
    key_a, key_b = f"diffusion_model.{Q}.lora_A.weight", f"diffusion_model.{Q}.lora_B.weight"
    connector_b = "diffusion_model.video_embeddings_connector.transformer_1d_blocks.0.attn1.to_q.lora_B.weight"
    nan, inf = b.clone(), cb.clone()
    nan[0, 0], inf[1, 1] = float("nan"), float("inf")
    alpha_key = f"diffusion_model.{Q}.alpha"
    return {  # label: (tensors, the key the message must name, the rest of the message)
        "nan weight": ({**good, key_b: nan}, key_b, "NaN or infinite"),
        "inf connector weight": ({**good, connector_b: inf}, connector_b, "NaN or infinite"),
        "int8": ({**good, key_b: b.to(torch.int8)}, key_b, "torch.int8; LoRA weights must be one of"),
        "bool": ({**good, key_b: b > 0}, key_b, "torch.bool; LoRA weights must be one of"),
        "fp8": ({**good, key_b: b.to(torch.float8_e4m3fn)}, key_b, "torch.float8_e4m3fn; LoRA weights must be"),
        "nan alpha": ({**good, alpha_key: torch.tensor(float("nan"))}, alpha_key, "positive finite"),
        "inf alpha": ({**good, alpha_key: torch.tensor(float("inf"))}, alpha_key, "positive finite"),
        "negative alpha": ({**good, alpha_key: torch.tensor(-4.0)}, alpha_key, "= -4.0: an alpha must be a positive"),
        "zero alpha": ({**good, alpha_key: torch.tensor(0.0)}, alpha_key, "refused as ambiguous"),
        "bool alpha": ({**good, alpha_key: torch.tensor(True)}, alpha_key, "an alpha is one number"),
        "vector alpha": ({**good, alpha_key: torch.ones(2)}, alpha_key, "an alpha is one number"),
        "rank of A != rank of B": ({**good, key_b: torch.ones(16, 3)}, key_b, r"\(16, 3\); expected A \(rank"),
        "no module": ({**good, f"diffusion_model.{Q[:-1]}z.lora_A.weight": a}, f"{Q[:-1]}z", "not LoRA tensors"),
        "target shape": (
            {**good, key_a: torch.ones(2, 12), key_b: torch.ones(16, 2)},
            key_a,
            r"A \(2, 12\) and B \(16, 2\) do not fit",
        ),  # fmt: skip
        "connector target shape": (
            {**good, connector_b: torch.ones(8, 2)},
            next(k for k in good if "connector" in k),
            r"A \(2, \d+\) and B \(8, 2\) do not fit",
        ),  # fmt: skip
    }


CASES = ["nan weight", "inf connector weight", "int8", "bool", "fp8", "nan alpha", "inf alpha", "negative alpha",
         "zero alpha", "bool alpha", "vector alpha", "rank of A != rank of B", "no module", "target shape",
         "connector target shape"]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_hostile_file_is_refused_naming_key_and_file_before_any_change(models, case, tmp_path):
    transformer, connectors = models
    tensors, key, message = _hostile_cases(transformer, connectors)[case]
    path = tmp_path / "hostile.safetensors"
    save_file({k: v.clone() for k, v in tensors.items()}, str(path))
    before = state_dicts(transformer, connectors)
    pattern = rf"^{re.escape(str(path))}: (?=.*{re.escape(key)})(?=.*{message})"
    for apply in (
        lambda: fuse_lora(transformer, path, connectors=connectors),
        lambda: load_lora_adapter(transformer, path, "hostile", connectors=connectors),
    ):
        with pytest.raises(ValueError, match=pattern):
            apply()
        assert_unchanged((transformer, connectors), before)


@pytest.mark.parametrize("strength", [float("nan"), float("inf"), -float("inf"), "1.0", True])
def test_bad_strengths_are_refused(models, strength):
    transformer, connectors = models
    a, b = random_pair(transformer.get_submodule(Q), 2, 0)
    lora = read_lora({f"diffusion_model.{Q}.lora_A.weight": a, f"diffusion_model.{Q}.lora_B.weight": b})
    before = state_dicts(transformer)
    with pytest.raises(ValueError, match="a LoRA strength must be a finite number"):
        fuse_lora(transformer, lora, strength)
    with pytest.raises(ValueError, match="a LoRA strength must be a finite number"):
        fuse_lora(transformer, [(lora, 1.0), (lora, strength)])
    with pytest.raises(ValueError, match="a LoRA strength must be a finite number"):
        load_lora_adapter(transformer, lora, "bad", strength)
    assert_unchanged((transformer,), before)


def test_adapter_metadata_alphas_as_peft_reads_them(models):
    transformer, _ = models
    tensors = {}
    for seed, name in enumerate((Q, FF)):
        a, b = random_pair(transformer.get_submodule(name), 4, seed)
        tensors |= {f"transformer.{name}.lora_A.weight": a, f"transformer.{name}.lora_B.weight": b}
    config = {
        "transformer.r": 4,
        "transformer.lora_alpha": 8,
        "transformer.alpha_pattern": {r"^transformer_blocks\.1\.ff\.net\.2": 2},
    }

    def metadata(**extra):
        return {"lora_adapter_metadata": json.dumps({**config, **extra})}

    assert read_lora(tensors, metadata()).alphas == {Q: 8.0, FF: 2.0}
    rslora = read_lora(tensors, metadata(**{"transformer.use_rslora": True}))
    assert rslora.scale(Q) == 8.0 / 4**0.5 and rslora.scale(FF) == 2.0 / 4**0.5  # peft: alpha / sqrt(r)
    with pytest.raises(
        ValueError, match=r"'transformer_blocks.0.attn1.to_q' has alpha 3.0 in its `.alpha` tensor but 8"
    ):
        read_lora({**tensors, f"transformer.{Q}.alpha": torch.tensor(3.0)}, metadata())
    with pytest.raises(ValueError, match=r"sets transformer.use_dora=true, which is not supported"):
        read_lora(tensors, metadata(**{"transformer.use_dora": True}))
    with pytest.raises(ValueError, match=r"metadata 'lora_adapter_metadata' is not valid JSON"):
        read_lora(tensors, {"lora_adapter_metadata": "{"})
    with pytest.raises(ValueError, match=r"gives transformer module .* alpha -1; expected a positive finite number"):
        read_lora(tensors, metadata(**{"transformer.lora_alpha": -1}))
