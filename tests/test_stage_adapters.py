"""StageAdapters (pipelines/refinement.py) on a transformer whose adapters were deleted: `delete_adapters` leaves
peft's layers in the model but removes `peft_config`, so diffusers' `active_adapters` / `disable_adapters` raise.
All deleted counts as no adapters; some deleted leaves the others to switch as before."""

import pytest
import torch
from peft import LoraConfig

from ltx2_diffusers.models.transformer_ltx2 import LTX2VideoTransformer3DModel
from ltx2_diffusers.pipelines.refinement import StageAdapters
from ltx2_diffusers.pipelines.tiny import tiny_transformer_config

TO_K = "transformer_blocks.0.attn1.to_k"


def transformer_with(*names: str) -> LTX2VideoTransformer3DModel:
    """The tiny transformer (one block) with a random rank-2 LoRA on every to_k per name."""
    torch.manual_seed(0)
    transformer = LTX2VideoTransformer3DModel(**{**tiny_transformer_config("2.0"), "num_layers": 1}).eval()
    for name in names:
        config = LoraConfig(r=2, lora_alpha=2, target_modules=["to_k"], init_lora_weights=False)
        transformer.add_adapter(config, adapter_name=name)
    return transformer


def to_k_output(transformer: LTX2VideoTransformer3DModel) -> tuple[torch.Tensor, torch.Tensor]:
    """(the to_k layer's output, its base linear's output) on fixed inputs."""
    layer = transformer.get_submodule(TO_K)
    x = torch.randn(1, 3, layer.base_layer.in_features, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return layer(x), layer.base_layer(x)


@pytest.mark.filterwarnings("ignore:Already found a `peft_config`")
def test_all_adapters_deleted_counts_as_no_adapters():
    transformer = transformer_with("style")
    with_lora, base = to_k_output(transformer)
    assert (with_lora - base).abs().max() > 1e-3  # the LoRA moves the layer, so the check below can fail
    transformer.delete_adapters("style")
    assert not getattr(transformer, "peft_config", None)  # peft's layers stay, its config is gone
    with pytest.raises(ValueError, match="No adapter loaded"):
        transformer.active_adapters()  # what StageAdapters used to call
    with StageAdapters(transformer) as adapters:
        assert adapters.active == [] and adapters.loaded == [] and adapters.others("style") == []
        adapters.use(adapters.others("style"))  # stage 1 of a two-stage call: no adapters, nothing to disable
        adapters.use([])
        output, base = to_k_output(transformer)
        assert torch.equal(output, base)
    assert torch.equal(to_k_output(transformer)[0], base)


def test_a_deleted_adapter_cannot_be_used():
    transformer = transformer_with("style")
    transformer.delete_adapters("style")
    with StageAdapters(transformer) as adapters:
        with pytest.raises(ValueError, match=r"adapters \['style'\] are not loaded in the transformer \(loaded: \[\]\)"):
            adapters.use(["style"])


@pytest.mark.filterwarnings("ignore:Already found a `peft_config`")
def test_the_adapters_left_after_a_deletion_switch_and_come_back():
    transformer = transformer_with("style", "distilled")
    transformer.set_adapter(["style", "distilled"])
    transformer.delete_adapters("style")
    assert transformer.active_adapters() == ["distilled"]
    with_lora, base = to_k_output(transformer)
    with StageAdapters(transformer) as adapters:
        assert adapters.active == ["distilled"] and adapters.others("distilled") == []
        adapters.use([])  # disabled: the base layer
        assert torch.equal(to_k_output(transformer)[0], base)
        adapters.use(["distilled"], {"distilled": 0.5})  # half the LoRA's change
        torch.testing.assert_close(to_k_output(transformer)[0] - base, (with_lora - base) / 2, rtol=0, atol=1e-6)
        with pytest.raises(ValueError, match=r"adapters \['style'\] are not loaded .*loaded: \['distilled'\]"):
            adapters.use(["style", "distilled"])
    assert transformer.active_adapters() == ["distilled"]
    assert torch.equal(to_k_output(transformer)[0], with_lora)  # the scale and the enabled state restored
