"""LoRA for training: which linear layers get adapters (`--lora_targets`), and the trained adapter written as files.

Two files with the same numbers (ltx-trainer spec §4.3, §4.4):
- `pytorch_lora_weights.safetensors`: diffusers / peft names, `transformer.<module>.lora_A.weight` (r, in) and
  `.lora_B.weight` (out, r), with diffusers' `lora_adapter_metadata` (r, lora_alpha, target_modules);
- `comfyui_lora_weights.safetensors`: the ltx-trainer / ComfyUI layout, `diffusion_model.<original module>.lora_A/B.
  weight`, no alpha tensors: what ltx-core's LoRA fusion and ComfyUI load.
peft trains with scale alpha / r, but ltx-core fuses B @ A with no alpha factor (trap T8), so alpha / r is folded into B
before writing; the diffusers metadata then says lora_alpha = r. Both files load with the package's LoRA loader
(`ltx2_diffusers.loaders.lora`) and give the trained model's outputs.
"""

import json
import os
from pathlib import Path

import torch
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from torch import Tensor, nn

from ..loaders.renames import rename_keys
from ..loaders.transformer_keys import TRANSFORMER_RENAMES_INVERSE
from .data import write_atomic

DIFFUSERS_WEIGHT_NAME = "pytorch_lora_weights.safetensors"
COMFY_WEIGHT_NAME = "comfyui_lora_weights.safetensors"

_ATTENTION = ("to_q", "to_k", "to_v", "to_out.0")


def _attention(*names: str) -> tuple[str, ...]:
    return tuple(f"{name}.{projection}" for name in names for projection in _ATTENTION)


# Module-name suffixes inside each transformer block; peft adapts a module whose name equals one or ends in "." + one,
# so `attn1.to_q` does not select `audio_attn1.to_q` (spec §4.2).
LORA_TARGET_PRESETS: dict[str, tuple[str, ...]] = {
    "video": _attention("attn1", "attn2") + ("ff.net.0.proj", "ff.net.2"),
    "audio": _attention("audio_attn1", "audio_attn2") + ("audio_ff.net.0.proj", "audio_ff.net.2"),
    "cross-modal": _attention("audio_to_video_attn", "video_to_audio_attn"),
}
LORA_TARGET_PRESETS["all"] = (
    LORA_TARGET_PRESETS["video"] + LORA_TARGET_PRESETS["audio"] + LORA_TARGET_PRESETS["cross-modal"]
)


def _matches(name: str, target: str) -> bool:
    return name == target or name.endswith("." + target)


def resolve_lora_targets(spec: str, transformer: nn.Module) -> tuple[str, ...]:
    """`--lora_targets`: a preset (video, audio, cross-modal, all) or a comma list of module-name suffixes (e.g.
    ltx-trainer's default `to_k,to_q,to_v,to_out.0`). Every target must select at least one linear layer."""
    if spec in LORA_TARGET_PRESETS:
        targets = LORA_TARGET_PRESETS[spec]
    else:
        targets = tuple(t.strip() for t in spec.split(",") if t.strip())
        if not targets:
            raise ValueError(f"--lora_targets {spec!r} names no module; use one of {sorted(LORA_TARGET_PRESETS)}")
    linears = [name for name, module in transformer.named_modules() if isinstance(module, nn.Linear)]
    missing = [t for t in targets if not any(_matches(name, t) for name in linears)]
    if missing:
        raise ValueError(
            f"--lora_targets {spec!r}: {missing} match no linear layer of the transformer. Use a preset "
            f"({', '.join(sorted(LORA_TARGET_PRESETS))}) or module-name suffixes such as 'attn1.to_q', 'ff.net.2', "
            f"e.g. one of {linears[:4]}"
        )
    return targets


def lora_config(rank: int, alpha: float, targets: tuple[str, ...], dropout: float = 0.0) -> LoraConfig:
    """peft's LoraConfig as ltx-trainer builds it: Kaiming-uniform A, zero B (step 0 is the base model), scale
    alpha / r, no bias, no DoRA (spec §4.1)."""
    if rank < 1 or alpha <= 0 or not 0.0 <= dropout < 1.0:
        raise ValueError(f"need rank >= 1, lora_alpha > 0 and 0 <= lora_dropout < 1, got {rank}, {alpha}, {dropout}")
    return LoraConfig(
        r=rank, lora_alpha=alpha, target_modules=list(targets), lora_dropout=dropout, init_lora_weights=True
    )


def adapter_state_dict(transformer: nn.Module, adapter_name: str = "default") -> dict[str, Tensor]:
    """peft's state dict of the adapter (`<module>.lora_A.weight`, ...), every tensor whole. Under FSDP2 the
    parameters are DTensor shards: each is gathered here, a collective, so every process must call this, in the
    same order (the keys' order is the model's)."""
    from torch.distributed.tensor import DTensor

    state = get_peft_model_state_dict(transformer, adapter_name=adapter_name)
    return {key: value.full_tensor() if isinstance(value, DTensor) else value for key, value in state.items()}


def trained_layers(
    transformer: nn.Module, adapter_name: str = "default", state: dict[str, Tensor] | None = None
) -> dict[str, tuple[Tensor, Tensor]]:
    """{diffusers module name: (A (r, in), B (out, r))} of the adapter, B multiplied by its alpha / r: the deltas
    B @ A the adapter adds at strength 1, as plain tensors. `state`: the adapter's state dict when already gathered
    (`adapter_state_dict`, under FSDP); read from the model otherwise."""
    config = transformer.peft_config[adapter_name]
    if state is None:
        state = adapter_state_dict(transformer, adapter_name)
    layers = {}
    for key, a in state.items():
        if not key.endswith(".lora_A.weight"):
            continue
        module = key.removesuffix(".lora_A.weight")
        b = state[f"{module}.lora_B.weight"]
        scale = _module_alpha(config, module) / a.shape[0]
        layers[module] = (a.detach().float(), b.detach().float() * scale)
    if not layers:
        raise ValueError(f"adapter {adapter_name!r} has no LoRA layers")
    return layers


def _module_alpha(config: LoraConfig, module: str) -> float:
    # rank_pattern / alpha_pattern are not used by the trainer; refuse them rather than export a wrong scale
    if config.rank_pattern or config.alpha_pattern:
        raise ValueError("per-module rank_pattern / alpha_pattern are not supported by the exporter")
    return float(config.lora_alpha)


def original_module_names(names: list[str]) -> dict[str, str]:
    """diffusers module name -> the original (ltx-core / ComfyUI) one, via the transformer's rename table; block
    attention and FFN names are the same in both layouts, `proj_in` is `patchify_proj`, etc."""
    keys = rename_keys([f"{name}.weight" for name in names], TRANSFORMER_RENAMES_INVERSE)
    return {
        name: keys[f"{name}.weight"].removeprefix("model.diffusion_model.").removesuffix(".weight") for name in names
    }


def export_lora(
    transformer: nn.Module,
    output_dir: str | os.PathLike,
    *,
    adapter_name: str = "default",
    dtype: torch.dtype = torch.bfloat16,
    metadata: dict[str, str] | None = None,
    state: dict[str, Tensor] | None = None,
) -> tuple[Path, Path]:
    """Write both LoRA files into `output_dir` (see the module docstring); returns (diffusers path, ComfyUI path).

    dtype: of the saved tensors (ltx-trainer saves bf16); `metadata` (strings) goes into both files' headers, e.g. an
    IC-LoRA's `reference_downscale_factor`. `state`: the gathered adapter state dict under FSDP (`adapter_state_dict`
    called on every process, this on the main one).
    """
    output_dir = Path(output_dir)
    layers = trained_layers(transformer, adapter_name, state)
    ranks = {a.shape[0] for a, _ in layers.values()}
    originals = original_module_names(sorted(layers))
    metadata = dict(metadata or {})

    diffusers_state, comfy_state = {}, {}
    for name, (a, b) in sorted(layers.items()):
        a, b = a.to(dtype).contiguous(), b.to(dtype).contiguous()
        diffusers_state[f"transformer.{name}.lora_A.weight"] = a
        diffusers_state[f"transformer.{name}.lora_B.weight"] = b
        comfy_state[f"diffusion_model.{originals[name]}.lora_A.weight"] = a.clone()
        comfy_state[f"diffusion_model.{originals[name]}.lora_B.weight"] = b.clone()
    rank = max(ranks)
    adapter_metadata = {  # diffusers' packed form; alpha = r because alpha / r is already in B
        "transformer.r": rank,
        "transformer.lora_alpha": rank,
        "transformer.target_modules": sorted(layers),
        "transformer.init_lora_weights": True,
        "transformer.lora_dropout": 0.0,
    }
    diffusers_path, comfy_path = output_dir / DIFFUSERS_WEIGHT_NAME, output_dir / COMFY_WEIGHT_NAME
    write_atomic(
        diffusers_path,
        diffusers_state,
        {**metadata, "format": "pt", "lora_adapter_metadata": json.dumps(adapter_metadata, sort_keys=True)},
    )
    write_atomic(comfy_path, comfy_state, metadata)
    return diffusers_path, comfy_path
