"""LTX-2 LoRA files: read (ltx-trainer, ComfyUI and diffusers/peft key styles), fuse into the transformer's weights by
the reference's rule, or attach as a switchable peft adapter with the same effect.

The reference's rule (spec §8.2): for every linear layer with a LoRA pair, W' = W + sum_i (B_i strength_i) @ A_i,
in the weight's dtype, **without** the usual alpha / rank factor. ltx-trainer saves alpha = rank and no alpha tensors,
so the factor is 1 for its files; a third-party LoRA trained with alpha != rank is applied at rank/alpha times its
trained scale unless `use_alpha=True` is passed (docs/lora.md).

Module names are mapped from the original layout to diffusers' through `transformer_keys.TRANSFORMER_RENAMES`.
"""

import functools
import logging
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .renames import rename_keys
from .safetensors_io import read_header, read_tensor
from .transformer_keys import TRANSFORMER_RENAMES, TRANSFORMER_RENAMES_INVERSE

logger = logging.getLogger(__name__)

# Suffix -> which tensor of the pair. ltx-trainer / peft write lora_A/lora_B; ComfyUI (and kohya-style trainers) also
# lora_down/lora_up with a scalar `.alpha` beside them.
_PARTS: tuple[tuple[str, str], ...] = (
    (".lora_A.weight", "A"),
    (".lora_B.weight", "B"),
    (".lora_down.weight", "A"),
    (".lora_up.weight", "B"),
    (".alpha", "alpha"),
)
# Stripped before the module path: the reference's single-file prefix, ltx-trainer's, diffusers' pipeline-level
# `transformer.` and a raw peft model's `base_model.model.`. First match wins; bare module paths are accepted too.
_TRANSFORMER_PREFIXES: tuple[str, ...] = (
    "model.diffusion_model.",
    "diffusion_model.",
    "transformer.",
    "base_model.model.",
)
# Module paths (after the prefix) that belong to other components: the reference ignores them, so do we (with a
# warning). Connector LoRAs (`--train_connectors` in musubi) and diffusers' `connectors.` keys land here.
_OTHER_COMPONENTS: tuple[str, ...] = (
    "video_embeddings_connector.",
    "audio_embeddings_connector.",
    "text_embedding_projection.",
    "connectors.",
    "text_encoder.",
    "vae.",
    "audio_vae.",
    "vocoder.",
)
FUSABLE_DTYPES: tuple[torch.dtype, ...] = (torch.bfloat16, torch.float16, torch.float32)


@dataclass(frozen=True)
class LTX2LoRA:
    """A LoRA for `LTX2VideoTransformer3DModel`, keyed by diffusers module name (e.g. `transformer_blocks.0.attn1.to_q`).

    layers: name -> (A (r, in_features), B (out_features, r)), tensors as stored in the file (dtype unchanged).
    alphas: name -> alpha, only for modules whose file carried an `.alpha` tensor. Ignored unless `use_alpha=True`.
    metadata: the safetensors `__metadata__` (e.g. `reference_downscale_factor` of an IC-LoRA), {} if none.
    skipped: keys of the file that belong to other components (connectors, VAEs) and were not read.
    """

    layers: Mapping[str, tuple[Tensor, Tensor]]
    alphas: Mapping[str, float] = field(default_factory=dict)
    metadata: Mapping[str, str] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()

    @property
    def ranks(self) -> dict[str, int]:
        return {name: a.shape[0] for name, (a, _) in self.layers.items()}

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

    def scale(self, name: str, use_alpha: bool) -> float:
        """The factor on B @ A besides strength: 1 by the reference's rule, alpha / rank with `use_alpha`."""
        if not use_alpha or name not in self.alphas:
            return 1.0
        return self.alphas[name] / self.layers[name][0].shape[0]


def read_lora(
    path_or_state_dict: str | os.PathLike | Mapping[str, Tensor],
    metadata: Mapping[str, str] | None = None,
    allow_unknown: bool = False,
) -> LTX2LoRA:
    """Read a LoRA file (or state dict) in any of the accepted key styles (docs/lora.md) into an `LTX2LoRA`.

    Keys are `<prefix><module path><part>`: prefix one of `model.diffusion_model.`, `diffusion_model.`, `transformer.`,
    `base_model.model.` or none; module path original (`patchify_proj`, `adaln_single...`) or diffusers (`proj_in`,
    `time_embed...`); part `.lora_A.weight`/`.lora_B.weight`, `.lora_down.weight`/`.lora_up.weight` or `.alpha`.
    Keys of other components (connectors, VAEs) are skipped with a warning. Any other key raises a ValueError naming
    it, unless `allow_unknown=True` (then it is skipped with a warning). `metadata` is used for a state dict; a file's
    own `__metadata__` is read from the file.
    """
    if isinstance(path_or_state_dict, Mapping):
        state_dict, source = dict(path_or_state_dict), "the LoRA state dict"
        metadata = dict(metadata or {})
    else:
        entries, file_metadata = read_header(path_or_state_dict)
        source = os.fspath(path_or_state_dict)
        state_dict = {name: read_tensor(entry) for name, entry in entries.items()}
        metadata = {**(file_metadata or {}), **(metadata or {})}

    parts: dict[str, dict[str, tuple[str, Tensor]]] = {}  # module path -> {"A"/"B"/"alpha": (key, tensor)}
    unknown, skipped = [], []
    for key, tensor in state_dict.items():
        module, part = _split_key(key)
        if module is None:
            unknown.append(key)
            continue
        if module.startswith(_OTHER_COMPONENTS):
            skipped.append(key)
            continue
        if part in parts.setdefault(module, {}):
            raise ValueError(
                f"{source}: {parts[module][part][0]!r} and {key!r} are both the {part} tensor of module {module!r}: "
                "one file must not mix key styles for one module"
            )
        parts[module][part] = (key, tensor)

    if unknown:
        kohya = [k for k in unknown if k.startswith(_KOHYA_PREFIX)]
        hint = (
            " Kohya-style `lora_unet_*` names are read only when the flattened name is a linear layer of the LTX-2 or "
            "LTX-2.3 transformer."
            if kohya
            else ""
        )
        message = (
            f"{source}: {len(unknown)} key(s) are not LoRA tensors of the LTX-2 transformer: {sorted(unknown)[:8]}. "
            "Expected `<prefix><module path>.lora_A.weight` / `.lora_B.weight` (or `.lora_down/.lora_up.weight`, "
            f"`.alpha`).{hint}"
        )
        if not allow_unknown:
            raise ValueError(message + " Pass allow_unknown=True to skip them.")
        logger.warning(message + " Skipped (allow_unknown=True).")
    if skipped:
        logger.warning(
            f"{source}: {len(skipped)} key(s) belong to the text connectors or the VAEs, e.g. {skipped[0]!r}; they "
            "are not applied (the reference applies LoRAs to the transformer only)."
        )

    # original module paths -> diffusers names through the transformer's rename table (a `.weight` is appended so the
    # table's rows see whole parameter names, then removed)
    layers, alphas = {}, {}
    for module, found in parts.items():
        weight = f"model.diffusion_model.{module}.weight"
        name = rename_keys([weight], TRANSFORMER_RENAMES)[weight].removesuffix(".weight")
        if "A" not in found or "B" not in found:
            missing = "B (lora_B / lora_up)" if "A" in found else "A (lora_A / lora_down)"
            raise ValueError(
                f"{source}: module {module!r} has no {missing} tensor; keys: {[k for k, _ in found.values()]}"
            )
        (key_a, a), (key_b, b) = found["A"], found["B"]
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
            raise ValueError(
                f"{source}: module {module!r} has A {tuple(a.shape)} ({key_a}) and B {tuple(b.shape)} ({key_b}); "
                "expected A (rank, in_features) and B (out_features, rank) with the same rank"
            )
        if name in layers:
            raise ValueError(
                f"{source}: two module paths are diffusers module {name!r} (the original and the diffusers name of "
                "one layer): one file must not mix key styles for one module"
            )
        layers[name] = (a, b)
        if "alpha" in found:
            key_alpha, alpha = found["alpha"]
            if alpha.numel() != 1:
                raise ValueError(f"{source}: {key_alpha!r} has shape {tuple(alpha.shape)}; an alpha is one number")
            alphas[name] = float(alpha.reshape(()).item())
    if not layers:
        raise ValueError(f"{source}: no LoRA layers for the LTX-2 transformer found")
    return LTX2LoRA(layers=layers, alphas=alphas, metadata=metadata, skipped=tuple(skipped))


def _split_key(key: str) -> tuple[str | None, str | None]:
    """`diffusion_model.x.y.lora_A.weight` -> ("x.y", "A"); (None, None) for a key of no known shape."""
    found = next(((suffix, part) for suffix, part in _PARTS if key.endswith(suffix)), None)
    if found is None:
        return None, None
    module, part = key[: -len(found[0])], found[1]
    for prefix in _TRANSFORMER_PREFIXES:
        if module.startswith(prefix):
            module = module[len(prefix) :]
            break
    if module.startswith(_KOHYA_PREFIX):
        module = _kohya_module(module[len(_KOHYA_PREFIX) :])
    if not module or not re.fullmatch(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*", module):
        return None, None
    return module, part


_KOHYA_PREFIX = "lora_unet_"


def _kohya_module(flat: str) -> str | None:
    """`transformer_blocks_3_audio_attn1_to_out_0` -> `transformer_blocks.3.audio_attn1.to_out.0` (None if no linear
    layer of the transformer has that flattened name). kohya-style trainers (musubi-tuner's own format) write module
    paths with every dot made an underscore; the underscores inside names make that ambiguous without the model's
    module list, so the flattened names are looked up in it."""
    match = re.fullmatch(r"transformer_blocks_(\d+)_(.+)", flat)
    if match:
        inner = _kohya_table()[1].get(match.group(2))
        return None if inner is None else f"transformer_blocks.{match.group(1)}.{inner}"
    return _kohya_table()[0].get(flat)


_TINY = dict(
    num_attention_heads=2, attention_head_dim=8, cross_attention_dim=16, audio_num_attention_heads=2,
    audio_attention_head_dim=4, audio_cross_attention_dim=8, caption_channels=12,
)  # fmt: skip


@functools.cache
def _kohya_table() -> tuple[dict[str, str], dict[str, str]]:
    """({flattened top-level linear name: diffusers name}, {flattened in-block name: in-block diffusers name}), each
    linear known by its original and its diffusers name, over the LTX-2 and LTX-2.3 layouts (one block, meta device)."""
    from ..models.transformer_ltx2 import LTX2VideoTransformer3DModel

    names = set()
    for flags in ({}, {"gated_attn": True, "audio_gated_attn": True, "cross_attn_mod": True,
                       "audio_cross_attn_mod": True, "use_prompt_embeddings": False}):  # fmt: skip
        with torch.device("meta"):
            model = LTX2VideoTransformer3DModel(num_layers=1, **_TINY, **flags)  # names do not depend on sizes
        names |= {name for name, module in model.named_modules() if isinstance(module, nn.Linear)}
    originals = rename_keys([f"{name}.weight" for name in names], TRANSFORMER_RENAMES_INVERSE)
    top, block = {}, {}
    for name in sorted(names):
        original = originals[f"{name}.weight"].removeprefix("model.diffusion_model.").removesuffix(".weight")
        if name.startswith("transformer_blocks.0."):
            table, name, original = (
                block,
                name.removeprefix("transformer_blocks.0."),
                original.removeprefix("transformer_blocks.0."),
            )
        else:
            table = top
        for spelling in {name, original}:
            flat = spelling.replace(".", "_")
            if table.get(flat, name) != name:
                raise ValueError(f"kohya name {flat!r} is ambiguous: {table[flat]!r} and {name!r}")
            table[flat] = name
    return top, block


LoRAInput = LTX2LoRA | str | os.PathLike | Mapping[str, Tensor]


def _as_lora(lora: LoRAInput) -> LTX2LoRA:
    return lora if isinstance(lora, LTX2LoRA) else read_lora(lora)


def _linear_layers(transformer: nn.Module, lora: LTX2LoRA) -> dict[str, nn.Linear]:
    """The linear layer for each LoRA module (the base layer under a peft wrapper), after checking names and shapes."""
    layers = {}
    for name, (a, b) in lora.layers.items():
        try:
            module = transformer.get_submodule(name)
        except AttributeError:
            module = None
        module = getattr(module, "base_layer", module)  # peft's LoraLayer wraps the linear it adapts
        if not isinstance(module, nn.Linear):
            fused = (
                " (q/k/v are fused: call unfuse_qkv_projections() first)" if ".to_q" in name or ".to_k" in name else ""
            )
            raise ValueError(
                f"LoRA module {name!r} is not a linear layer of this transformer{fused}; check that the LoRA was "
                "trained for this model version (LTX-2 vs LTX-2.3 layouts differ)"
            )
        expected_a, expected_b = (a.shape[0], module.in_features), (module.out_features, b.shape[1])
        if tuple(a.shape) != expected_a or tuple(b.shape) != expected_b:
            raise ValueError(
                f"LoRA module {name!r}: A {tuple(a.shape)} and B {tuple(b.shape)} do not fit the layer's weight "
                f"({module.out_features}, {module.in_features}); expected A (rank, {module.in_features}) and "
                f"B ({module.out_features}, rank): the LoRA is for a different model size"
            )
        layers[name] = module
    return layers


def _refuse_fp8(transformer: nn.Module, action: str) -> None:
    if getattr(transformer, "is_fp8", False):
        raise ValueError(
            f"{action} on an FP8 model: call transformer.disable_fp8(), then {action}, then enable_fp8() again "
            "(FP8 layers are quantised from the fused weights)."
        )


@torch.no_grad()
def fuse_lora(
    transformer: nn.Module,
    lora: LoRAInput | Sequence[tuple[LoRAInput, float]],
    strength: float = 1.0,
    *,
    use_alpha: bool = False,
) -> None:
    """Add LoRA deltas into the transformer's weights in place, by the reference's rule (spec §8.2):

        W <- W + sum_i ((B_i * strength_i) @ A_i).to(W.dtype)      (each product in the LoRA's dtype, on W's device)

    `lora` is one LoRA (an `LTX2LoRA`, or a path read with `read_lora`) taken at `strength`, or a list of
    (lora, strength) pairs whose deltas are summed before the one addition, as the reference does. No alpha / rank
    factor, unless `use_alpha=True` multiplies each strength by the file's alpha / rank (ComfyUI's convention).

    Weights must be bf16 (the reference's only non-FP8 dtype), fp16 or float32 (allowed here: tests and exact
    accumulations); an FP8 model is refused: fuse before `enable_fp8()`. Not undoable: keep the original weights, or
    use `load_lora_adapter` for a LoRA that can be switched off. Every module is checked before any weight changes.
    """
    if isinstance(lora, (list, tuple)):
        if strength != 1.0:
            raise ValueError("pass strengths inside the list of (lora, strength) pairs, not as `strength`")
        pairs = [(_as_lora(item), float(item_strength)) for item, item_strength in lora]
    else:
        pairs = [(_as_lora(lora), float(strength))]
    _refuse_fp8(transformer, "fuse_lora()")
    targets: dict[str, nn.Linear] = {}
    for item, _ in pairs:
        targets.update(_linear_layers(transformer, item))
    for name, module in targets.items():
        if module.weight.dtype not in FUSABLE_DTYPES:
            raise ValueError(
                f"fuse_lora(): {name}.weight is {module.weight.dtype}; LoRAs fuse into {FUSABLE_DTYPES} weights"
            )
    if all(s == 0.0 for _, s in pairs):  # the reference skips fusion altogether for all-zero strengths
        return
    for name, module in targets.items():
        weight = module.weight
        deltas = []
        for item, item_strength in pairs:
            if name in item.layers:
                a, b = (t.to(weight.device) for t in item.layers[name])
                deltas.append(((b * (item_strength * item.scale(name, use_alpha))) @ a).to(weight.dtype))
        delta = deltas[0] if len(deltas) == 1 else torch.stack(deltas).sum(dim=0)
        weight.add_(delta)


def load_lora_adapter(
    transformer: nn.Module,
    lora: LoRAInput,
    adapter_name: str = "default",
    strength: float = 1.0,
    *,
    use_alpha: bool = False,
) -> str:
    """Attach `lora` as the peft adapter `adapter_name`, active at `strength`, with exactly the effect of
    `fuse_lora(transformer, lora, strength)`: y = W x + strength * B (A x) (peft's scaling alpha / r is made 1 by
    giving every module lora_alpha = its rank; with `use_alpha=True`, the file's alpha where it has one).

    Switch it with diffusers' PeftAdapterMixin: `transformer.disable_adapters()` / `enable_adapters()` (all adapters),
    `set_adapters([...], weights=[...])` (strengths), `delete_adapters(name)`. Adapters loaded before stay active.
    Refused on an FP8 model and while q/k/v are fused. Returns `adapter_name`.
    """
    lora = _as_lora(lora)
    _refuse_fp8(transformer, "load_lora_adapter()")
    _linear_layers(transformer, lora)  # names and shapes, with our messages, before peft touches the model
    if adapter_name in (getattr(transformer, "peft_config", None) or {}):
        raise ValueError(
            f"adapter {adapter_name!r} is already loaded: pick another adapter_name or delete_adapters() it"
        )

    ranks = lora.ranks
    alphas = {
        name: (lora.alphas[name] if use_alpha and name in lora.alphas else float(rank)) for name, rank in ranks.items()
    }
    rank = max(set(ranks.values()), key=list(ranks.values()).count)  # the most common rank, as diffusers picks it
    # peft matches pattern keys as regexes against the end of a module name: escape dots, and anchor with ^ so that
    # `transformer_blocks.1.attn1.to_q` cannot match inside another name
    config = {
        "r": rank,
        "lora_alpha": float(rank),
        "rank_pattern": {f"^{re.escape(n)}": r for n, r in ranks.items() if r != rank},
        "alpha_pattern": {f"^{re.escape(n)}": a for n, a in alphas.items() if a != float(rank)},
        "target_modules": sorted(ranks),
    }
    state_dict = {}
    for name, (a, b) in lora.layers.items():
        state_dict[f"{name}.lora_A.weight"] = a
        state_dict[f"{name}.lora_B.weight"] = b
    previously_active = list(transformer.active_adapters()) if getattr(transformer, "peft_config", None) else []
    with warnings.catch_warnings():  # several adapters on one model is what this function is for
        warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
        transformer.load_lora_adapter(state_dict, prefix=None, adapter_name=adapter_name, metadata=config)
    transformer.set_adapter([*previously_active, adapter_name])
    _set_strength(transformer, adapter_name, strength)
    return adapter_name


def _set_strength(transformer: nn.Module, adapter_name: str, strength: float) -> None:
    """peft scaling = strength * alpha / r for this adapter only (set_adapters would deactivate the others)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in transformer.modules():
        if isinstance(module, BaseTunerLayer) and hasattr(module, "set_scale"):
            module.set_scale(adapter_name, strength)
