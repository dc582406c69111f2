"""Live peft LoRA adapters over FP8 layers (models/fp8.py): the base product runs in FP8, each adapter's B(A x) in
the activation dtype, and switching adapters (`set_adapter`, `disable_adapters`, `set_scale`, strengths) changes flags
and scale factors only: no weight is fused, re-quantised or even read.

    y = FP8Linear(x) + sum_active scaling_i * B_i (A_i dropout(x))       scaling_i = strength_i * alpha_i / r_i

`FP8LoraLinear` is peft's LoRA `Linear` with three changes: its sizes come from the base layer's `in_features` /
`out_features` (peft only knows `nn.Linear`), DoRA and the other variants that read or rewrite the base weight are
refused, and merging into an FP8 weight (`fuse_lora`, `merge_and_unload`) is refused. Refusing is the choice made
here: a merge would de-quantise, add the delta and quantise again, which changes the base rounding for every later
adapter switch and cannot be undone exactly. To bake a LoRA in, fuse it before FP8: `disable_fp8()`, fuse, unload
the adapters, `enable_fp8()` (that call quantises the fused weights, explicitly). After `disable_fp8()` the base layer
is an `nn.Linear` again and merging works as peft's.

Dispatch: peft picks a LoRA layer class per base layer, and offers custom classes through
`LoraConfig._register_custom_module({FP8Linear: FP8LoraLinear})`. diffusers' `load_lora_adapter` builds its own
`LoraConfig`, so that call cannot be made by the user for it; instead `register_lora_layer` (called when the first
FP8 layer is built) wraps peft's `LoraModel._create_new_module` once, so that every config that meets an FP8 layer
gets the mapping registered through that same method before peft dispatches. Other layers are untouched.
"""

from typing import Any

from peft.tuners.lora import LoraModel
from peft.tuners.lora.layer import Linear as LoraLinear
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

MERGE_REFUSED = (
    "{adapters}: merging a LoRA into an FP8 weight is refused (it would de-quantise, add and re-quantise the "
    "weight, which cannot be undone exactly). Keep the adapter live (it runs over the FP8 layer; switch it with "
    "set_adapters / disable_lora), or, to bake it in: disable_fp8(), fuse_lora(), unload_lora_weights(), "
    "enable_fp8()."
)

# base layer type -> LoRA layer type, what `register_lora_layer` adds to every LoraConfig that meets such a layer
_LORA_LAYERS: dict[type[nn.Module], type[BaseTunerLayer]] = {}


class FP8LoraLinear(LoraLinear):
    """peft's LoRA `Linear` over a layer that computes its own product (`FP8Linear`): forward, adapter switching,
    scales, mixed-batch `adapter_names` and hotswap are peft's; merging into an FP8 weight is refused (module
    docstring). Adapter weights are created in the base layer's `compute_dtype` (peft reads that attribute), so their
    matmuls run in the model's dtype."""

    def _get_in_out_features(self, module: nn.Module) -> tuple[int, int]:
        return module.in_features, module.out_features

    def resolve_lora_variant(self, *, config, **kwargs: Any):
        variant = super().resolve_lora_variant(config=config, **kwargs)
        if variant is not None and not isinstance(self.get_base_layer(), nn.Linear):
            raise ValueError(
                f"{type(variant).__name__}: adapters over FP8 layers are plain LoRA (A, B, scaling); DoRA and the "
                "other peft LoRA variants read or rewrite the base weight. Use a plain LoraConfig, or disable_fp8()."
            )
        return variant

    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        if isinstance(self.get_base_layer(), nn.Linear):  # after disable_fp8(): an ordinary layer again
            super().merge(safe_merge=safe_merge, adapter_names=adapter_names)
            return
        names = adapter_names if adapter_names is not None else self.active_adapters
        raise ValueError(MERGE_REFUSED.format(adapters=f"adapter(s) {list(names)} over an FP8 layer"))

    def __repr__(self) -> str:
        return "fp8_" + super().__repr__()


def refuse_merge_over_fp8(model: nn.Module, adapter_names: list[str] | None = None) -> None:
    """Raise `MERGE_REFUSED` before anything merges when `model` has an adapter (of `adapter_names`, default the
    active ones) over an FP8 layer, so a model-level fuse never leaves some layers merged and others not."""
    for module in model.modules():
        if isinstance(module, FP8LoraLinear) and not isinstance(module.get_base_layer(), nn.Linear):
            names = [n for n in (adapter_names or module.active_adapters) if n in module.lora_A]
            if names:
                raise ValueError(MERGE_REFUSED.format(adapters=f"adapter(s) {names} over an FP8 layer"))


def register_lora_layer(base_type: type[nn.Module], lora_type: type[BaseTunerLayer]) -> None:
    """From now on, peft adapts `base_type` layers with `lora_type`, whatever `LoraConfig` is used (the user's in
    `add_adapter`, the one diffusers' `load_lora_adapter` builds). Idempotent. A mapping the config already has for
    that type (the user's own `_register_custom_module`) wins."""
    _LORA_LAYERS[base_type] = lora_type
    if getattr(LoraModel._create_new_module, "registers_lora_layers", False):
        return
    create_new_module = LoraModel._create_new_module

    def create_with_registered_layers(lora_config, adapter_name, target, **kwargs):
        base = target.get_base_layer() if isinstance(target, BaseTunerLayer) else target
        own = lora_config._custom_modules or {}
        for layer_type, layer_lora_type in _LORA_LAYERS.items():
            if isinstance(base, layer_type) and not any(isinstance(base, key) for key in own):
                lora_config._register_custom_module({layer_type: layer_lora_type})
        return create_new_module(lora_config, adapter_name, target, **kwargs)

    create_with_registered_layers.registers_lora_layers = True
    LoraModel._create_new_module = staticmethod(create_with_registered_layers)
