"""diffusers' LTX-2 LoRA loader surface (`LTX2LoraLoaderMixin` of diffusers 0.42) for our pipelines.

The same methods, arguments and behaviour as diffusers' mixin, over `loaders/lora.py`: every key style `read_lora`
reads (ltx-trainer, ComfyUI, kohya / musubi-tuner, diffusers / peft), alpha / rank applied where a file gives an alpha,
and connector LoRA layers applied to `self.connectors` (diffusers drops most of them). Differences, all on purpose:
- every file is checked before any weight changes, and bad files, unknown keys and unknown keyword arguments raise
  (diffusers warns and loads what it can);
- only safetensors files are read (no pickle path); a folder or Hub repo with several candidate files needs
  `weight_name` (diffusers picks the first with a warning);
- `unfuse_lora` restores the weights bit for bit from a copy taken by `fuse_lora` (kept on the CPU: the adapted
  layers' weights), and the adapters' scales with them; diffusers subtracts the delta again, which rounds;
- `save_lora_weights` also saves connector layers (`connectors_lora_layers`).
"""

import json
import os
from collections.abc import Callable, Mapping

import torch
from diffusers.loaders.lora_base import LORA_WEIGHT_NAME_SAFE, LoraBaseMixin
from torch import Tensor, nn

from .lora import (
    COMPONENTS,
    LORA_ADAPTER_METADATA_KEY,
    LTX2LoRA,
    check_lora_tensor,
    check_strength,
    load_lora_adapter,
    read_lora,
)

_HUB_OPTIONS = (  # huggingface_hub 2 takes no proxies
    "cache_dir",
    "force_download",
    "local_files_only",
    "token",
    "revision",
)
_FETCH_OPTIONS = (*_HUB_OPTIONS, "subfolder", "weight_name", "use_safetensors")


class LTX2LoraLoaderMixin(LoraBaseMixin):
    """Load, switch, fuse, unload and save LoRAs of `self.transformer` and `self.connectors` (docs/lora.md).

    Inherited unchanged from diffusers' `LoraBaseMixin`: `disable_lora`, `enable_lora`, `delete_adapters`,
    `get_active_adapters`, `get_list_adapters`, `set_lora_device`, `enable_lora_hotswap`, `fused_loras`.
    """

    _lora_loadable_modules = ["transformer", "connectors"]
    transformer_name = "transformer"
    connectors_name = "connectors"

    @classmethod
    def lora_state_dict(
        cls, pretrained_model_name_or_path_or_dict: str | os.PathLike | dict[str, Tensor], **kwargs
    ) -> dict[str, Tensor] | tuple[dict[str, Tensor], dict | None]:
        """The LoRA in diffusers' layout: `transformer.<module>.lora_A.weight` / `.lora_B.weight` (and `.alpha` where
        the file gives an alpha), `connectors.<module>...` for connector layers, whatever the file's key style.
        kwargs: diffusers' (`weight_name`, `subfolder`, `cache_dir`, `force_download`, `local_files_only`,
        `token`, `revision`, `use_safetensors`, `return_lora_metadata`); with `return_lora_metadata=True` returns
        (state dict, the file's peft adapter metadata or None)."""
        return_lora_metadata = kwargs.pop("return_lora_metadata", False)
        lora = _fetch_lora(pretrained_model_name_or_path_or_dict, kwargs, "lora_state_dict")
        state_dict = {}
        for component in COMPONENTS:
            layers, alphas = lora.component(component)
            for name, (a, b) in layers.items():
                state_dict[f"{component}.{name}.lora_A.weight"] = a
                state_dict[f"{component}.{name}.lora_B.weight"] = b
                if name in alphas:
                    state_dict[f"{component}.{name}.alpha"] = torch.tensor(alphas[name])
        raw = lora.metadata.get(LORA_ADAPTER_METADATA_KEY)
        metadata = json.loads(raw) if raw is not None else None  # read_lora has checked it parses
        return (state_dict, metadata) if return_lora_metadata else state_dict

    def load_lora_weights(
        self,
        pretrained_model_name_or_path_or_dict: str | os.PathLike | dict[str, Tensor] | LTX2LoRA,
        adapter_name: str | None = None,
        hotswap: bool = False,
        **kwargs,
    ) -> None:
        """Load a LoRA (local file or folder, Hub repo, state dict, or `LTX2LoRA`) as the peft adapter `adapter_name`
        (default: diffusers' `default_<n>`) of the transformer and, for connector layers, of the connectors, active at
        weight 1. kwargs: `low_cpu_mem_usage` and those of `lora_state_dict`. Everything is checked first: a refused
        file leaves both models unchanged. On an FP8 transformer the adapter runs live over the FP8 layers
        (models/fp8_lora.py)."""
        low_cpu_mem_usage = kwargs.pop("low_cpu_mem_usage", False)
        source = pretrained_model_name_or_path_or_dict
        if isinstance(source, LTX2LoRA):
            _refuse_options(kwargs, "load_lora_weights", allowed=())
            lora = source
        else:
            lora = _fetch_lora(source, kwargs, "load_lora_weights")
        if adapter_name is None:
            from diffusers.utils.peft_utils import get_adapter_name

            adapter_name = get_adapter_name(self.transformer)
        load_lora_adapter(
            self.transformer,
            lora,
            adapter_name,
            connectors=self.connectors,
            hotswap=hotswap,
            low_cpu_mem_usage=low_cpu_mem_usage,
            pipeline=self,
        )

    def set_adapters(
        self,
        adapter_names: list[str] | str,
        adapter_weights: float | dict | list[float] | list[dict] | None = None,
    ) -> None:
        """Activate exactly `adapter_names`, at `adapter_weights` (one number for all, one per adapter, or diffusers'
        per-component dicts, e.g. {"transformer": 0.8, "connectors": 0.5}). A weight w gives the output of
        `fuse_lora(lora_scale=w)`. NaN and infinite weights are refused."""
        pending = list(adapter_weights) if isinstance(adapter_weights, list) else [adapter_weights]
        while pending:  # numbers, possibly inside (nested) per-component / per-layer dicts
            value = pending.pop()
            if isinstance(value, dict):
                pending.extend(value.values())
            elif value is not None:
                check_strength(value, "adapter_weights")
        super().set_adapters(adapter_names, adapter_weights)

    def fuse_lora(
        self,
        components: list[str] = ["transformer"],  # noqa: B006 (diffusers' signature)
        lora_scale: float = 1.0,
        safe_fusing: bool = False,
        adapter_names: list[str] | None = None,
        **kwargs,
    ) -> None:
        """Merge the active adapters (or `adapter_names`) of `components` into their weights at `lora_scale` times
        their weights, by peft's merge (diffusers' behaviour). A copy of each adapted weight, and of the adapters'
        scales, is kept on the CPU first, so that `unfuse_lora` restores them exactly. Refused on an FP8 model
        (merging would re-quantise its weights; the message gives the order of calls that bakes a LoRA in)."""
        if kwargs:
            raise TypeError(f"fuse_lora() got unexpected keyword arguments {sorted(kwargs)}")
        check_strength(lora_scale, "lora_scale")
        for component in components:
            if component not in self._lora_loadable_modules:
                raise ValueError(f"fuse_lora(): {component!r} is not one of {self._lora_loadable_modules}")
            model = getattr(self, component)
            if getattr(model, "is_fp8", False):  # models/fp8_lora.py: why merging into FP8 weights is refused
                raise ValueError(
                    f"fuse_lora() on an FP8 {component}: merging would re-quantise its FP8 weights. Keep the LoRA "
                    "as a live adapter (it runs over the FP8 layers; set_adapters / disable_lora switch it), or, to "
                    f"bake it in: {component}.disable_fp8(), fuse_lora(), unload_lora_weights(), "
                    f"{component}.enable_fp8()."
                )
        backups = self.__dict__.setdefault("_lora_fuse_backups", {})
        for component in components:
            for name, module in _tuner_layers(getattr(self, component)):
                if (component, name) not in backups:
                    weight = module.get_base_layer().weight
                    backups[component, name] = (weight.detach().to("cpu", copy=True), dict(module.scaling))
        super().fuse_lora(
            components=components, lora_scale=lora_scale, safe_fusing=safe_fusing, adapter_names=adapter_names
        )

    def unfuse_lora(self, components: list[str] = ["transformer"], **kwargs) -> None:  # noqa: B006
        """Undo `fuse_lora` on `components`: the weights and adapter scales are restored bit for bit."""
        if kwargs:
            raise TypeError(f"unfuse_lora() got unexpected keyword arguments {sorted(kwargs)}")
        super().unfuse_lora(components=components)
        backups = self.__dict__.get("_lora_fuse_backups", {})
        with torch.no_grad():
            for component in components:
                for name, module in _tuner_layers(getattr(self, component)):
                    if (component, name) in backups:
                        weight, scaling = backups.pop((component, name))
                        module.get_base_layer().weight.copy_(weight)
                        module.scaling.update(scaling)

    def unload_lora_weights(self) -> None:
        """Remove every adapter from the transformer and the connectors. Fused LoRAs stay in the weights (as in
        diffusers); they can no longer be unfused."""
        super().unload_lora_weights()
        self.__dict__.pop("_lora_fuse_backups", None)
        self._merged_adapters = set()

    @classmethod
    def save_lora_weights(
        cls,
        save_directory: str | os.PathLike,
        transformer_lora_layers: dict[str, nn.Module | Tensor] | None = None,
        is_main_process: bool = True,
        weight_name: str | None = None,
        save_function: Callable | None = None,
        safe_serialization: bool = True,
        transformer_lora_adapter_metadata: dict | None = None,
        connectors_lora_layers: dict[str, nn.Module | Tensor] | None = None,
        connectors_lora_adapter_metadata: dict | None = None,
    ) -> None:
        """Write `<save_directory>/<weight_name or pytorch_lora_weights.safetensors>` in diffusers' layout
        (`transformer.*`, `connectors.*`), with each component's peft config (e.g. `peft_config[name].to_dict()`) as
        adapter metadata, which `load_lora_weights` reads back (alphas included). Layers are checked first."""
        if not safe_serialization:
            raise ValueError("safe_serialization=False would write a pickle, which load_lora_weights refuses to read")
        if os.path.isfile(save_directory):
            raise ValueError(f"save_directory={os.fspath(save_directory)!r} is a file; pass a folder")
        lora_layers, lora_metadata = {}, {}
        for prefix, layers, metadata in (
            (cls.transformer_name, transformer_lora_layers, transformer_lora_adapter_metadata),
            (cls.connectors_name, connectors_lora_layers, connectors_lora_adapter_metadata),
        ):
            if layers:
                state_dict = layers.state_dict() if isinstance(layers, nn.Module) else layers
                for key, tensor in state_dict.items():
                    check_lora_tensor("save_lora_weights()", f"{prefix}.{key}", tensor, "weight")
                lora_layers[prefix], lora_metadata[prefix] = layers, metadata
            elif metadata:
                raise ValueError(f"{prefix}_lora_adapter_metadata was given without {prefix}_lora_layers")
        if not lora_layers:
            raise ValueError("pass transformer_lora_layers and/or connectors_lora_layers")
        cls._save_lora_weights(
            save_directory=save_directory,
            lora_layers=lora_layers,
            lora_metadata=lora_metadata,
            is_main_process=is_main_process,
            weight_name=weight_name,
            save_function=save_function,
            safe_serialization=safe_serialization,
        )


def _tuner_layers(model: nn.Module):
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [(name, module) for name, module in model.named_modules() if isinstance(module, BaseTunerLayer)]


def _refuse_options(options: Mapping, caller: str, allowed: tuple[str, ...] = _FETCH_OPTIONS) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"{caller}() got unexpected keyword arguments {unknown}")


def _fetch_lora(source: str | os.PathLike | Mapping[str, Tensor], options: dict, caller: str) -> LTX2LoRA:
    """Read a LoRA from a state dict, a safetensors file, a local folder or a Hub repo (diffusers' options)."""
    _refuse_options(options, caller)
    weight_name, subfolder = options.get("weight_name"), options.get("subfolder")
    if options.get("use_safetensors") is False:
        raise ValueError(
            f"{caller}(use_safetensors=False): only safetensors LoRA files are read (a pickle can run code)"
        )
    if isinstance(source, Mapping):
        if weight_name is not None or subfolder is not None:
            raise ValueError(f"{caller}(): weight_name / subfolder apply to a folder or Hub repo, not to a state dict")
        return read_lora(source)
    path = os.fspath(source)
    if os.path.isfile(path):
        if weight_name is not None or subfolder is not None:
            raise ValueError(f"{caller}(): {path!r} is a file; weight_name / subfolder apply to a folder or Hub repo")
        file = path
    elif os.path.isdir(path):
        folder = os.path.join(path, subfolder or "")
        if not os.path.isdir(folder):
            raise ValueError(f"{caller}(): {folder!r} is not a folder (subfolder={subfolder!r})")
        file = os.path.join(folder, weight_name or _pick_weight_name(os.listdir(folder), folder))
        if not os.path.isfile(file):
            raise ValueError(f"{caller}(): {file!r} does not exist (weight_name={weight_name!r})")
    else:
        file = _download(path, weight_name, subfolder, {k: options[k] for k in _HUB_OPTIONS if k in options}, caller)
    if not file.endswith(".safetensors"):
        raise ValueError(f"{caller}(): {file!r} is not a .safetensors file; only safetensors LoRA files are read")
    return read_lora(file)


def _pick_weight_name(names: list[str], where: str) -> str:
    """diffusers' default file if present, else the only .safetensors file; several candidates need weight_name."""
    candidates = sorted(n for n in names if n.endswith(".safetensors"))
    if LORA_WEIGHT_NAME_SAFE in candidates:
        return LORA_WEIGHT_NAME_SAFE
    if len(candidates) != 1:
        raise ValueError(
            f"{where} holds {len(candidates)} .safetensors files {candidates[:8]}: pass weight_name= to pick one"
        )
    return candidates[0]


def _download(repo_id: str, weight_name: str | None, subfolder: str | None, options: dict, caller: str) -> str:
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.constants import HF_HUB_OFFLINE

    if weight_name is None:
        if options.get("local_files_only") or HF_HUB_OFFLINE:
            raise ValueError(
                f"{caller}(): {repo_id!r} is not a local file or folder, and offline a Hub repo needs weight_name="
            )
        files = HfApi().list_repo_files(repo_id, revision=options.get("revision"), token=options.get("token"))
        prefix = f"{subfolder.strip('/')}/" if subfolder else ""
        names = [f[len(prefix) :] for f in files if f.startswith(prefix) and "/" not in f[len(prefix) :]]
        weight_name = _pick_weight_name(names, f"Hub repo {repo_id!r}")
    return hf_hub_download(repo_id, weight_name, subfolder=subfolder, **options)
