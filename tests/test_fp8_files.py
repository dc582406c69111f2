"""Scaled-fp8 single files, both layouts (Lightricks' `.weight_scale`, ComfyUI's `scaled_fp8` + `.scale_weight`):
they load with `from_single_file` (dequantised, or kept as FP8 layers), convert to a folder and back to the same
tensors, and inconsistent scale tensors are refused."""

import pytest
import torch
from helpers.real_files import file_metadata, raw_tensors, write_scaled_fp8_transformer
from safetensors.torch import load_file, save_file

from ltx2_diffusers import conversion
from ltx2_diffusers.loaders import safetensors_io as sio
from ltx2_diffusers.loaders.from_single_file import load_component_from_single_file
from ltx2_diffusers.models.fp8 import FP8Linear
from ltx2_diffusers.models.transformer_ltx2 import LTX2VideoTransformer3DModel

LAYOUTS = ["ltx", "comfy"]
TO_Q = "transformer_blocks.0.attn1.to_q"


@pytest.fixture(scope="module", params=LAYOUTS)
def scaled_file(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(f"fp8-{request.param}") / "ltx-2.3-tiny-distilled-fp8.safetensors"
    reference = write_scaled_fp8_transformer(path, request.param)
    return request.param, path, reference


def test_from_single_file_dequantises_to_the_true_weights(scaled_file):
    _, path, reference = scaled_file
    model = LTX2VideoTransformer3DModel.from_single_file(path, torch_dtype=torch.float32)
    state = model.state_dict()
    assert state.keys() == reference.keys()
    for name, value in reference.items():  # weight.float() * scale, then float32: exact
        assert torch.equal(state[name], value.float()), name
    assert model.get_submodule(TO_Q).weight.dtype == torch.float32 and not model.is_fp8
    default = LTX2VideoTransformer3DModel.from_single_file(path)  # no dtype: bf16, as ltx-core folds the scales
    assert torch.equal(default.get_submodule(TO_Q).weight, reference[f"{TO_Q}.weight"].to(torch.bfloat16))


def test_from_single_file_keeps_fp8_with_the_scales(scaled_file):
    layout, path, reference = scaled_file
    model = LTX2VideoTransformer3DModel.from_single_file(path, fp8="keep")
    layer = model.get_submodule(TO_Q)
    assert isinstance(layer, FP8Linear) and layer.granularity == "tensorwise"
    assert layer.weight.dtype == torch.float8_e4m3fn and layer.weight_scale.dtype == torch.float32
    assert torch.equal(layer.weight.float() * layer.weight_scale, reference[f"{TO_Q}.weight"])
    scales = [k for k in raw_tensors(path) if k.endswith((".weight_scale", ".scale_weight"))]
    assert model.fp8_config.num_fp8_layers == sum(isinstance(m, FP8Linear) for m in model.modules()) == len(scales)
    assert layer.bias.dtype == torch.bfloat16  # the bias is the file's, untouched
    # the FP8 layers compute with the file's weights: the same output as the dequantised model, up to fp8 inputs
    dense = LTX2VideoTransformer3DModel.from_single_file(path).get_submodule(TO_Q)
    x = torch.randn(3, 16, dtype=torch.bfloat16)
    torch.testing.assert_close(layer(x).float(), dense(x).float(), rtol=0.1, atol=0.05)
    with pytest.raises(ValueError, match="fp8='dequantize'; expected one of|expected one of"):
        LTX2VideoTransformer3DModel.from_single_file(path, fp8="cast")


def test_converts_with_the_scales_and_back_to_the_same_tensors(scaled_file, tmp_path):
    layout, path, reference = scaled_file
    report = conversion.convert_original_to_diffusers(path, tmp_path / "kept")
    weights = load_file(str(tmp_path / "kept" / "transformer" / sio.WEIGHTS_NAME))
    assert weights[f"{TO_Q}.weight"].dtype == torch.float8_e4m3fn  # FP8Linear's names: weight + weight_scale
    assert torch.equal(weights[f"{TO_Q}.weight"].float() * weights[f"{TO_Q}.weight_scale"], reference[f"{TO_Q}.weight"])
    aside = report.components["transformer"]["extra_tensors"]
    original = raw_tensors(path)
    assert report.components["transformer"]["tensors"] + len(aside) == len(original)  # every tensor went somewhere
    assert aside == (
        ["model.diffusion_model.scaled_fp8"] if layout == "comfy" else [f"model.diffusion_model.{TO_Q}.input_scale"]
    )
    # diffusers' from_pretrained knows no scaled fp8: it refuses the folder instead of loading unscaled numbers
    with pytest.raises(ValueError, match="Unknown quantization type, got ltx2_scaled_fp8"):
        LTX2VideoTransformer3DModel.from_pretrained(tmp_path / "kept", subfolder="transformer")
    conversion.convert_diffusers_to_original(tmp_path / "kept", tmp_path / "back.safetensors")
    assert raw_tensors(tmp_path / "back.safetensors") == original
    assert file_metadata(tmp_path / "back.safetensors") == file_metadata(path)


def test_converts_dequantised_on_request(scaled_file, tmp_path):
    layout, path, reference = scaled_file
    conversion.convert_original_to_diffusers(path, tmp_path / "up", upcast_fp8=True, dtype="fp32")
    weights = load_file(str(tmp_path / "up" / "transformer" / sio.WEIGHTS_NAME))
    assert weights.keys() == reference.keys()
    assert all(torch.equal(weights[k], v.float()) for k, v in reference.items())
    loaded = LTX2VideoTransformer3DModel.from_pretrained(tmp_path / "up", subfolder="transformer")
    assert torch.equal(loaded.get_submodule(TO_Q).weight, reference[f"{TO_Q}.weight"])
    report = conversion.convert_diffusers_to_original(tmp_path / "up", tmp_path / "back.safetensors")
    back = raw_tensors(tmp_path / "back.safetensors")
    assert not any(k.endswith(("_scale", "scale_weight", "scaled_fp8")) for k in back)  # no stale scales
    assert back[f"model.diffusion_model.{TO_Q}.weight"][0] == "torch.float32"
    assert "fp8 scale tensors left out" in str(report)


def test_inconsistent_scales_are_refused(tmp_path):
    path = tmp_path / "ltx-2.3-tiny-dev-fp8.safetensors"
    write_scaled_fp8_transformer(path, "ltx")
    tensors, metadata = load_file(str(path)), file_metadata(path)
    key = f"model.diffusion_model.{TO_Q}.weight_scale"

    def rewrite(**changes):
        save_file({k: v for k, v in {**tensors, **changes}.items() if v is not None}, str(path), metadata=metadata)

    rewrite(**{key: torch.full((16,), 0.01)})
    with pytest.raises(ValueError, match=r"to_q\.weight_scale' is F32\[16\]; only per-tensor scales"):
        LTX2VideoTransformer3DModel.from_single_file(path)
    rewrite(**{f"model.diffusion_model.{TO_Q}.weight": None})
    with pytest.raises(ValueError, match=r"to_q\.weight_scale' is the scale of .*to_q\.weight', which the file does"):
        LTX2VideoTransformer3DModel.from_single_file(path)
    comfy = {
        k.replace(".weight_scale", ".scale_weight").replace(".input_scale", ".scale_input"): v
        for k, v in tensors.items()
    }
    save_file(comfy, str(path), metadata=metadata)
    with pytest.raises(ValueError, match="ComfyUI-style fp8 scales .* but no 'scaled_fp8' marker"):
        conversion.convert_original_to_diffusers(path, tmp_path / "out")
    save_file({**tensors, "model.diffusion_model.scaled_fp8": torch.empty(0)}, str(path), metadata=metadata)
    with pytest.raises(ValueError, match="mixes two fp8 scale layouts"):
        conversion.convert_original_to_diffusers(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    save_file({**comfy, "model.diffusion_model.scaled_fp8": torch.empty(0)}, str(path), metadata=metadata)
    LTX2VideoTransformer3DModel.from_single_file(path, fp8="keep")  # a consistent ComfyUI file again
    # the loader keeps fp8 only through the FP8 layers a class passes it (the transformer's from_single_file does)
    with pytest.raises(ValueError, match=r"fp8='keep': .* has no FP8 layers .*load it with fp8='dequantize'"):
        load_component_from_single_file(LTX2VideoTransformer3DModel, path, fp8="keep")
