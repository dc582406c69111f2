"""LTX-2 LoRA files: read (ltx-trainer, ComfyUI, kohya / musubi-tuner and diffusers / peft key styles), then fuse into
the weights or attach as switchable peft adapters with the same effect, on the transformer and the text connectors.

The rule (spec §8.2, plus the third-party alpha convention): for every linear layer with a LoRA pair,

    W' = W + sum_i (B_i * strength_i * alpha_i / rank_i) @ A_i          (each product in the LoRA's dtype)

where alpha_i / rank_i is 1 unless the file says otherwise: a kohya / ComfyUI `.alpha` tensor, or the `lora_alpha` /
`alpha_pattern` of a diffusers file's adapter metadata. ltx-trainer files carry neither (they train with alpha = rank),
so for them this is exactly the reference's rule. `use_alpha=False` gives the reference's literal rule (ltx-core ignores
`.alpha`) for parity with ltx-pipelines on third-party files.

Everything in a file is checked before any weight changes: dtypes (bf16 / fp16 / fp32 only, no silent casts), finite
values, positive finite alphas, pairs of matching rank, names that are linear layers, shapes that fit the model.
"""

import json
import logging
import math
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .lora_keys import KOHYA_PREFIX, parse_lora_key
from .safetensors_io import read_header, read_tensor

logger = logging.getLogger(__name__)

FUSABLE_DTYPES: tuple[torch.dtype, ...] = (torch.bfloat16, torch.float16, torch.float32)
LORA_DTYPES: tuple[torch.dtype, ...] = (torch.bfloat16, torch.float16, torch.float32)
COMPONENTS: tuple[str, ...] = ("transformer", "connectors")
LORA_ADAPTER_METADATA_KEY = "lora_adapter_metadata"  # where diffusers' save_lora_weights writes the peft config


@dataclass(frozen=True)
class LTX2LoRA:
    """A LoRA for the LTX-2 transformer and (optionally) its text connectors, keyed by diffusers module name.

    layers: transformer module name (e.g. `transformer_blocks.0.attn1.to_q`) -> (A (r, in), B (out, r)), as stored.
    alphas: module name -> alpha, for modules whose file gives one (`.alpha` tensor or adapter metadata).
    metadata: the safetensors `__metadata__` (e.g. `reference_downscale_factor` of an IC-LoRA), {} if none.
    skipped: keys left out by `read_lora(..., allow_unknown=True)`.
    connector_layers / connector_alphas: the same for `LTX2TextConnectors` (e.g. `text_proj_in`,
        `video_connector.transformer_blocks.0.attn1.to_q`).
    source: the file (or "the LoRA state dict"), named by every error.
    keys: "<component>.<module name>" -> the file's key of its A tensor, named by every error.
    """

    layers: Mapping[str, tuple[Tensor, Tensor]]
    alphas: Mapping[str, float] = field(default_factory=dict)
    metadata: Mapping[str, str] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()
    connector_layers: Mapping[str, tuple[Tensor, Tensor]] = field(default_factory=dict)
    connector_alphas: Mapping[str, float] = field(default_factory=dict)
    source: str = "the LoRA state dict"
    keys: Mapping[str, str] = field(default_factory=dict)

    @property
    def ranks(self) -> dict[str, int]:
        return {name: a.shape[0] for name, (a, _) in self.layers.items()}

    def component(self, name: str) -> tuple[Mapping[str, tuple[Tensor, Tensor]], Mapping[str, float]]:
        """(layers, alphas) of "transformer" or "connectors"."""
        if name not in COMPONENTS:
            raise ValueError(f"LoRA component must be one of {COMPONENTS}, got {name!r}")
        return (self.layers, self.alphas) if name == "transformer" else (self.connector_layers, self.connector_alphas)

    def key(self, component: str, name: str) -> str:
        return self.keys.get(f"{component}.{name}", f"{component}.{name}.lora_A.weight")

    @property
    def reference_downscale_factor(self) -> int:
        """IC-LoRA reference-video downscale factor from the file's metadata (1 when absent, as in the reference)."""
        value = self.metadata.get("reference_downscale_factor", "1")
        try:
            factor = float(value)
        except ValueError:
            factor = 0.0
        if factor < 1 or factor != int(factor):
            raise ValueError(f"LoRA metadata reference_downscale_factor={value!r}: expected a whole number >= 1")
        return int(factor)

    def scale(self, name: str, use_alpha: bool = True, component: str = "transformer") -> float:
        """The factor on B @ A besides strength: alpha / rank where the file gives an alpha (and use_alpha), else 1."""
        layers, alphas = self.component(component)
        if not use_alpha or name not in alphas:
            return 1.0
        return alphas[name] / layers[name][0].shape[0]


def read_lora(
    path_or_state_dict: str | os.PathLike | Mapping[str, Tensor],
    metadata: Mapping[str, str] | None = None,
    allow_unknown: bool = False,
) -> LTX2LoRA:
    """Read a LoRA file (or state dict) in any of the accepted key styles (docs/lora.md) into an `LTX2LoRA`.

    Raises a ValueError naming the key and the file for: a key that is no LoRA tensor of a linear layer of the
    transformer or the connectors (unless `allow_unknown=True`: then skipped with a warning), a tensor that is not
    bf16 / fp16 / fp32 (int8, bool, fp8: no silent casts), NaN or infinite values, an alpha that is not one positive
    finite number, a module without its A or B, ranks of A and B that differ, and one module in two key styles.
    `metadata` is used for a state dict; a file's own `__metadata__` is read from the file.
    """
    if isinstance(path_or_state_dict, Mapping):
        state_dict, source = dict(path_or_state_dict), "the LoRA state dict"
        metadata = dict(metadata or {})
    else:
        entries, file_metadata = read_header(path_or_state_dict)
        source = os.fspath(path_or_state_dict)
        state_dict = {name: read_tensor(entry) for name, entry in entries.items()}
        metadata = {**(file_metadata or {}), **(metadata or {})}

    parts: dict[tuple[str, str], dict[str, tuple[str, Tensor]]] = {}  # (component, module) -> {part: (key, tensor)}
    unknown = []
    for key, tensor in state_dict.items():
        parsed = parse_lora_key(key)
        if parsed is None:
            unknown.append(key)
            continue
        component, module, part = parsed
        check_lora_tensor(source, key, tensor, part)
        found = parts.setdefault((component, module), {})
        if part in found:
            raise ValueError(
                f"{source}: {found[part][0]!r} and {key!r} are both the {part} tensor of {component} module "
                f"{module!r}: one file must not spell one module in two key styles"
            )
        found[part] = (key, tensor)
    if unknown:
        kohya = any(k.startswith(KOHYA_PREFIX) for k in unknown)
        message = (
            f"{source}: {len(unknown)} key(s) are not LoRA tensors of a linear layer of the LTX-2 transformer or its "
            f"text connectors: {sorted(unknown)[:8]}. Expected `<prefix><module path>.lora_A.weight` / "
            f"`.lora_B.weight` (or `.lora_down.weight` / `.lora_up.weight`, `.alpha`)"
            + (", kohya names (`lora_unet_*`) of a linear layer of the LTX-2 or LTX-2.3 transformer" if kohya else "")
            + ". LoRAs for the text encoder or the VAEs, DoRA and LoKr tensors are not supported."
        )
        if not allow_unknown:
            raise ValueError(message + " Pass allow_unknown=True to skip these keys.")
        logger.warning(message + " Skipped (allow_unknown=True).")

    layers: dict[str, dict[str, tuple[Tensor, Tensor]]] = {c: {} for c in COMPONENTS}
    alphas: dict[str, dict[str, float]] = {c: {} for c in COMPONENTS}
    keys = {}
    for (component, module), found in parts.items():
        if "A" not in found or "B" not in found:
            missing = "B (lora_B / lora_up)" if "A" in found else "A (lora_A / lora_down)"
            keys_found = [k for k, _ in found.values()]
            raise ValueError(f"{source}: {component} module {module!r} has no {missing} tensor; keys: {keys_found}")
        (key_a, a), (key_b, b) = found["A"], found["B"]
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
            raise ValueError(
                f"{source}: {key_a!r} has shape {tuple(a.shape)} and {key_b!r} {tuple(b.shape)}; expected A "
                "(rank, in_features) and B (out_features, rank) with the same rank"
            )
        layers[component][module] = (a, b)
        keys[f"{component}.{module}"] = key_a
        if "alpha" in found:
            alphas[component][module] = float(found["alpha"][1].reshape(()).item())
    if not any(layers.values()):
        raise ValueError(f"{source}: no LoRA layers for the LTX-2 transformer or its text connectors found")
    _alphas_from_adapter_metadata(source, metadata, layers, alphas)
    return LTX2LoRA(
        layers=layers["transformer"],
        alphas=alphas["transformer"],
        metadata=metadata,
        skipped=tuple(unknown),
        connector_layers=layers["connectors"],
        connector_alphas=alphas["connectors"],
        source=source,
        keys=keys,
    )


def check_lora_tensor(source: str, key: str, tensor: Tensor, part: str) -> None:
    """Refuse weights that are not bf16 / fp16 / fp32 or not finite, and alphas that are not one positive number."""
    if part == "alpha":
        if tensor.numel() != 1 or tensor.dtype == torch.bool or tensor.is_complex():
            raise ValueError(
                f"{source}: {key!r} is a {tensor.dtype} tensor of shape {tuple(tensor.shape)}; an alpha is one number"
            )
        alpha = float(tensor.float().reshape(()).item()) if tensor.dtype.is_floating_point else int(tensor.item())
        if not math.isfinite(alpha) or alpha <= 0:
            raise ValueError(
                f"{source}: {key!r} = {alpha}: an alpha must be a positive finite number (the LoRA is applied at "
                "alpha / rank; kohya reads 0 as 'alpha = rank', ComfyUI as scale 0, so 0 is refused as ambiguous). "
                "Fix or remove the key."
            )
        return
    if tensor.dtype not in LORA_DTYPES:
        raise ValueError(
            f"{source}: {key!r} is {tensor.dtype}; LoRA weights must be one of {LORA_DTYPES} (quantised or integer "
            "LoRA tensors are not cast silently). Convert the file to bf16 or float32."
        )
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(
            f"{source}: {key!r} holds NaN or infinite values: the file is corrupt or the training diverged"
        )


def _alphas_from_adapter_metadata(
    source: str, metadata: Mapping[str, str], layers: dict[str, dict], alphas: dict[str, dict]
) -> None:
    """A diffusers-saved file keeps its peft config as JSON under `lora_adapter_metadata`, keys prefixed by component
    (`transformer.lora_alpha`, `transformer.alpha_pattern`, ...): alpha per module as peft resolves it."""
    raw = metadata.get(LORA_ADAPTER_METADATA_KEY)
    if raw is None:
        return
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"{source}: metadata {LORA_ADAPTER_METADATA_KEY!r} is not valid JSON ({error})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{source}: metadata {LORA_ADAPTER_METADATA_KEY!r} is not a JSON object")
    for component in COMPONENTS:
        own = {k[len(component) + 1 :]: v for k, v in config.items() if k.startswith(f"{component}.")}
        if not own or not layers[component]:
            continue
        for flag in ("use_dora", "lora_bias"):
            if own.get(flag):
                raise ValueError(f"{source}: the adapter metadata sets {component}.{flag}=true, which is not supported")
        default, patterns = own.get("lora_alpha"), own.get("alpha_pattern") or {}
        if not isinstance(patterns, dict):
            raise ValueError(f"{source}: adapter metadata {component}.alpha_pattern is not a JSON object")
        for name, (a, _) in layers[component].items():
            # peft's rule (peft.utils.other.get_pattern_key): the first pattern matching the end of the name wins
            try:
                pattern = next((p for p in patterns if re.match(rf"(.*\.)?({p})$", name)), None)
            except re.error as error:
                raise ValueError(f"{source}: adapter metadata {component}.alpha_pattern: {error}") from None
            alpha = patterns[pattern] if pattern is not None else default
            if alpha is None:
                continue
            if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not math.isfinite(alpha) or alpha <= 0:
                raise ValueError(
                    f"{source}: adapter metadata gives {component} module {name!r} alpha {alpha!r}; "
                    "expected a positive finite number"
                )
            if own.get("use_rslora"):  # scaling alpha / sqrt(r) = (alpha sqrt(r)) / r
                alpha = alpha * math.sqrt(a.shape[0])
            if name in alphas[component] and alphas[component][name] != float(alpha):
                raise ValueError(
                    f"{source}: {component} module {name!r} has alpha {alphas[component][name]} in its `.alpha` "
                    f"tensor but {alpha} in the adapter metadata"
                )
            alphas[component][name] = float(alpha)


LoRAInput = LTX2LoRA | str | os.PathLike | Mapping[str, Tensor]


def _as_lora(lora: LoRAInput) -> LTX2LoRA:
    return lora if isinstance(lora, LTX2LoRA) else read_lora(lora)


def check_strength(value: float, what: str = "strength") -> float:
    """A LoRA strength as a float; NaN, infinities and non-numbers are refused (negative strengths subtract a LoRA, as
    in ltx-core, ComfyUI and diffusers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what}={value!r}: a LoRA strength must be a finite number (e.g. 1.0, 0.6, or -0.5)")
    return float(value)


def _models(lora: LTX2LoRA, transformer: nn.Module, connectors: nn.Module | None) -> dict[str, nn.Module]:
    """The modules each component of `lora` applies to; a LoRA with connector layers needs `connectors`."""
    if lora.connector_layers and connectors is None:
        example = lora.key("connectors", next(iter(lora.connector_layers)))
        raise ValueError(
            f"{lora.source}: {len(lora.connector_layers)} LoRA layer(s) are for the text connectors (e.g. "
            f"{example!r}): pass connectors=pipe.connectors so they are applied, or use pipe.load_lora_weights / "
            "pipe.fuse_lora, which apply both."
        )
    models = {"transformer": transformer} if lora.layers else {}
    if lora.connector_layers:
        models["connectors"] = connectors
    return models


def _linear_layers(model: nn.Module, lora: LTX2LoRA, component: str = "transformer") -> dict[str, nn.Linear]:
    """The linear layer for each LoRA module of `component` (the base layer under a peft wrapper), after checking
    names and shapes."""
    layers = {}
    for name, (a, b) in lora.component(component)[0].items():
        try:
            module = model.get_submodule(name)
        except AttributeError:
            module = None
        module = getattr(module, "base_layer", module)  # peft's LoraLayer wraps the linear it adapts
        if not _is_linear(module):
            fused = (
                " (q/k/v are fused: call unfuse_qkv_projections() first)" if ".to_q" in name or ".to_k" in name else ""
            )
            raise ValueError(
                f"{lora.source}: LoRA key {lora.key(component, name)!r}: {component} module {name!r} is not a linear "
                f"layer of this {type(model).__name__}{fused}; check that the LoRA was trained for this model version "
                "(LTX-2 vs LTX-2.3 layouts differ)"
            )
        expected_a, expected_b = (a.shape[0], module.in_features), (module.out_features, b.shape[1])
        if tuple(a.shape) != expected_a or tuple(b.shape) != expected_b:
            raise ValueError(
                f"{lora.source}: LoRA key {lora.key(component, name)!r}: {component} module {name!r}: A "
                f"{tuple(a.shape)} and B {tuple(b.shape)} do not fit the layer's weight ({module.out_features}, "
                f"{module.in_features}); expected A (rank, {module.in_features}) and B ({module.out_features}, rank): "
                "the LoRA is for a different model size"
            )
        layers[name] = module
    return layers


def _is_linear(module: nn.Module | None) -> bool:
    """An `nn.Linear`, or a layer standing in for one that peft adapts (models/fp8.py's `FP8Linear` declares
    `lora_target_linear = True`; loaders do not import models)."""
    return isinstance(module, nn.Linear) or getattr(module, "lora_target_linear", False)


def _refuse_fp8(model: nn.Module, action: str) -> None:
    if getattr(model, "is_fp8", False):
        raise ValueError(
            f"{action} on an FP8 model: call transformer.disable_fp8(), then {action}, then enable_fp8() again (FP8 "
            "layers are then quantised from the fused weights; merging into FP8 weights would re-quantise them), or "
            "load the LoRA as a live adapter instead (load_lora_adapter / pipe.load_lora_weights: it runs over the "
            "FP8 layers)."
        )


@torch.no_grad()
def fuse_lora(
    transformer: nn.Module,
    lora: LoRAInput | Sequence[tuple[LoRAInput, float]],
    strength: float = 1.0,
    *,
    connectors: nn.Module | None = None,
    use_alpha: bool = True,
) -> None:
    """Add LoRA deltas into the weights in place:

        W <- W + sum_i ((B_i * strength_i * alpha_i / rank_i) @ A_i).to(W.dtype)   (each product in the LoRA's dtype)

    `lora` is one LoRA (an `LTX2LoRA`, a path or a state dict) taken at `strength`, or a list of (lora, strength) pairs
    whose deltas are summed before the one addition, as the reference does. alpha_i / rank_i is 1 where the file gives
    no alpha; `use_alpha=False` ignores alphas (ltx-core's literal rule). Connector layers go into `connectors`, which
    is then required.

    Weights must be bf16, fp16 or float32; an FP8 model is refused: fuse before `enable_fp8()`. Not undoable: keep
    the original weights, or use `load_lora_adapter`. Everything is checked before any weight changes.
    """
    if isinstance(lora, (list, tuple)):
        if strength != 1.0:
            raise ValueError("pass strengths inside the list of (lora, strength) pairs, not as `strength`")
        pairs = [(_as_lora(item), check_strength(item_strength)) for item, item_strength in lora]
    else:
        pairs = [(_as_lora(lora), check_strength(strength))]
    targets: dict[str, dict[str, nn.Linear]] = {c: {} for c in COMPONENTS}
    for item, _ in pairs:
        for component, model in _models(item, transformer, connectors).items():
            _refuse_fp8(model, "fuse_lora()")
            targets[component].update(_linear_layers(model, item, component))
    for component, modules in targets.items():
        for name, module in modules.items():
            if module.weight.dtype not in FUSABLE_DTYPES:
                raise ValueError(
                    f"fuse_lora(): {component} weight {name}.weight is {module.weight.dtype}; LoRAs fuse "
                    f"into {FUSABLE_DTYPES} weights"
                )
    if all(s == 0.0 for _, s in pairs):  # the reference skips fusion altogether for all-zero strengths
        return
    for component, modules in targets.items():
        for name, module in modules.items():
            weight, deltas = module.weight, []
            for item, item_strength in pairs:
                item_layers = item.component(component)[0]
                if name in item_layers:
                    a, b = (t.to(weight.device) for t in item_layers[name])
                    factor = item_strength * item.scale(name, use_alpha, component)
                    deltas.append(((b * factor) @ a).to(weight.dtype))
            weight.add_(deltas[0] if len(deltas) == 1 else torch.stack(deltas).sum(dim=0))


def load_lora_adapter(
    transformer: nn.Module,
    lora: LoRAInput,
    adapter_name: str = "default",
    strength: float = 1.0,
    *,
    connectors: nn.Module | None = None,
    use_alpha: bool = True,
    hotswap: bool = False,
    low_cpu_mem_usage: bool = False,
    pipeline: object | None = None,
) -> str:
    """Attach `lora` as the peft adapter `adapter_name`, active at `strength`, with exactly the effect of
    `fuse_lora(transformer, lora, strength)`: y = W x + strength * (alpha / r) B (A x), alpha / r = 1 where the file
    gives no alpha (every module gets peft's `lora_alpha` through `alpha_pattern` / `rank_pattern`). Connector layers
    become the adapter of the same name on `connectors`, which is then required.

    Switch it with diffusers' PeftAdapterMixin: `disable_adapters()` / `enable_adapters()`, `set_adapters([...],
    weights=[...])` (strengths), `delete_adapters(name)`. Adapters loaded before stay active. `hotswap` and
    `low_cpu_mem_usage` go to diffusers' `load_lora_adapter`, and `pipeline` (the DiffusionPipeline holding the
    models) too, so that its offload hooks are lifted during the load and put back after, as diffusers does.
    On an FP8 model (`enable_fp8`) the adapter runs over the FP8 layers (models/fp8_lora.py): base in FP8, adapter
    in the model dtype, no weight re-quantised when adapters switch. Refused while q/k/v are fused; everything is
    checked before any module changes (for a hotswap too: same modules, ranks and alphas). Returns `adapter_name`.
    """
    lora = _as_lora(lora)
    strength = check_strength(strength)
    models = _models(lora, transformer, connectors)
    configs = {}
    for component, model in models.items():
        _linear_layers(model, lora, component)  # names and shapes, with our messages, before peft touches the model
        configs[component] = _adapter_config(lora, component, use_alpha)
        loaded = adapter_name in (getattr(model, "peft_config", None) or {})
        if loaded and not hotswap:
            raise ValueError(
                f"adapter {adapter_name!r} is already loaded in the {component}: pick another adapter_name or "
                "delete_adapters() it"
            )
        if hotswap and not loaded:
            raise ValueError(f"hotswap=True, but the {component} has no adapter {adapter_name!r} to replace")
        if hotswap:  # a hotswap that fails half way deletes the old adapter (diffusers): check it all first
            _check_hotswap(model, lora, component, adapter_name, configs[component])
    for component, model in models.items():
        state_dict = {}
        for name, (a, b) in lora.component(component)[0].items():
            state_dict[f"{name}.lora_A.weight"] = a
            state_dict[f"{name}.lora_B.weight"] = b
        previously_active = list(model.active_adapters()) if getattr(model, "peft_config", None) else []
        with warnings.catch_warnings():  # several adapters on one model is what this function is for
            warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
            model.load_lora_adapter(
                state_dict,
                prefix=None,
                adapter_name=adapter_name,
                metadata=configs[component],
                hotswap=hotswap,
                low_cpu_mem_usage=low_cpu_mem_usage,
                _pipeline=pipeline,
            )
        model.set_adapter(list(dict.fromkeys([*previously_active, adapter_name])))
        _set_strength(model, adapter_name, strength)
    return adapter_name


def _adapter_config(lora: LTX2LoRA, component: str, use_alpha: bool) -> dict:
    """peft LoraConfig kwargs with lora_alpha / r = the file's alpha / rank per module (1 where it gives no alpha)."""
    layers, _ = lora.component(component)
    ranks = {name: a.shape[0] for name, (a, _) in layers.items()}
    alphas = {name: lora.scale(name, use_alpha, component) * rank for name, rank in ranks.items()}
    rank = max(set(ranks.values()), key=list(ranks.values()).count)  # the most common rank, as diffusers picks it
    # peft matches pattern keys as regexes against the end of a module name: escape dots, and anchor with ^ so that
    # `transformer_blocks.1.attn1.to_q` cannot match inside another name
    return {
        "r": rank,
        "lora_alpha": float(rank),
        "rank_pattern": {f"^{re.escape(n)}": r for n, r in ranks.items() if r != rank},
        "alpha_pattern": {f"^{re.escape(n)}": a for n, a in alphas.items() if a != float(rank)},
        "target_modules": sorted(ranks),
    }


def _check_hotswap(model: nn.Module, lora: LTX2LoRA, component: str, adapter_name: str, config: dict) -> None:
    """peft swaps tensors in place: the same modules, ranks and alphas as the adapter it replaces."""
    from peft import LoraConfig
    from peft.utils.hotswap import check_hotswap_configs_compatible

    old = model.peft_config[adapter_name]
    problem = None
    if set(old.target_modules) != set(config["target_modules"]):
        problem = f"it adapts other {component} modules than adapter {adapter_name!r}"
    else:
        old_ranks = {n: m.r[adapter_name] for n, m in model.named_modules() if adapter_name in getattr(m, "r", {})}
        new_ranks = {n: a.shape[0] for n, (a, _) in lora.component(component)[0].items()}
        changed = [n for n, rank in new_ranks.items() if old_ranks.get(n) != rank]
        if changed:
            name = changed[0]
            problem = (
                f"{component} module {name!r} has rank {new_ranks[name]}, the loaded adapter {old_ranks.get(name)}"
            )
        else:
            try:
                check_hotswap_configs_compatible(old, LoraConfig(**config))
            except ValueError as error:
                problem = f"peft refuses it ({error}): the alpha / rank of each module must stay the same"
    if problem is not None:
        raise ValueError(f"{lora.source}: cannot hotswap it into adapter {adapter_name!r}: {problem}")


def _set_strength(model: nn.Module, adapter_name: str, strength: float) -> None:
    """peft scaling = strength * alpha / r for this adapter only (set_adapters would deactivate the others)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in model.modules():
        if isinstance(module, BaseTunerLayer) and hasattr(module, "set_scale"):
            module.set_scale(adapter_name, strength)
