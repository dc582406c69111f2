"""`from_single_file`: one model (or the pipeline) straight from a Lightricks single file onto its device.

The model is built on the meta device and filled one tensor at a time (read, cast, moved), so the host never holds
more than one tensor beyond the model itself, and nothing when loading onto a GPU. Names and configs come from the same
plan as the converter's (`plan.py`); the model classes are passed in (the loaders do not import the models).
"""

import os
from collections.abc import Callable, Mapping
from typing import Any

import torch

from ..hub import resolve_single_file
from . import diffusion_decoder_keys, duration_head_keys, fp8_files
from . import metadata as md
from .plan import (
    COMPONENT_OF_CLASS,
    KEY_MAPS,
    ModelClasses,
    meta_model,
    plan_checkpoint,
    plan_upsampler,
    require_classes,
)
from .safetensors_io import read_header, read_tensor

PIPELINE_CLASS = "LTX2AVPipeline"
FP8_CHOICES = ("dequantize", "keep")


def target_device(device: str | torch.device | None, device_map: Any = None) -> torch.device:
    """The one device to load onto, from `device` or diffusers' `device_map` (a device, or {"": device})."""
    if device_map is not None:
        if isinstance(device_map, Mapping):
            if set(device_map) != {""}:
                raise ValueError(
                    f"device_map={device_map!r}: from_single_file loads a model onto one device, so only "
                    '{"": device} (or the device itself) is accepted. Spread a model over devices after loading '
                    "(enable_model_cpu_offload or the memory planner)."
                )
            device_map = device_map[""]
        if isinstance(device_map, str) and device_map in ("auto", "balanced", "balanced_low_0", "sequential"):
            raise ValueError(
                f"device_map={device_map!r} plans a placement over several devices; from_single_file loads onto one: "
                "pass device='cuda' (or device_map='cuda')."
            )
        mapped = torch.device(device_map)
        if device is not None and torch.device(device) != mapped:
            raise ValueError(f"device={device!r} and device_map={device_map!r} disagree; pass one of them.")
        return mapped
    return torch.device("cpu" if device is None else device)


def _set_tensor(model: torch.nn.Module, name: str, tensor: torch.Tensor) -> None:
    """Replace the (meta) parameter or buffer `name` of `model` by `tensor`, keeping requires_grad."""
    owner, _, leaf = name.rpartition(".")
    module = model.get_submodule(owner) if owner else model
    if leaf in module._parameters:
        old = module._parameters[leaf]
        trainable = old.requires_grad and tensor.is_floating_point() and tensor.dtype not in _FP8_TORCH
        module._parameters[leaf] = torch.nn.Parameter(tensor, requires_grad=trainable)
    elif leaf in module._buffers:
        module._buffers[leaf] = tensor
    else:
        raise ValueError(f"{type(model).__name__} has no parameter or buffer {name!r}.")


_FP8_TORCH = (torch.float8_e4m3fn, torch.float8_e5m2)
# (model, module name, fp8 weight, its float32 per-tensor scale) -> None: puts an FP8 layer in place of the linear
FP8LayerBuilder = Callable[[torch.nn.Module, str, torch.Tensor, torch.Tensor], None]


def load_component_from_single_file(
    cls: type,
    path: str | os.PathLike,
    *,
    torch_dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    device_map: Any = None,
    fp8: str = "dequantize",
    fp8_layer: FP8LayerBuilder | None = None,
    text_encoder_file: str | os.PathLike | None = None,
) -> Any:
    """One model from a Lightricks single file (or, for the latent upsampler, its own file), through the same key map
    and metadata config as the converter; loaded strictly. `cls` is any class named as ours or diffusers' in-tree
    one (e.g. `LTX2VideoTransformer3DModel`), or a subclass of one.

    The model is built on the meta device and filled one tensor at a time, each read from the file, cast to
    `torch_dtype` and moved to the target device (`device`, or diffusers' `device_map` naming one device) before the
    next is read: the host holds one tensor at a time beyond the model itself, and nothing when loading to a GPU.
    fp8: what to do with a scaled-fp8 file's weights (fp8_files.py): "dequantize" (weight.float() * scale, in
    `torch_dtype`, bf16 when None, as ltx-core folds them) or "keep" (e4m3 with its scale, through `fp8_layer`, which
    the transformer's from_single_file passes: FP8Linear layers of models/fp8.py).
    text_encoder_file: LTX-2.5's text-encoder file, whose `text_embedding_projection.*` completes the connectors of
    its split transformer file (only for `LTX2TextConnectors`).
    """
    if fp8 not in FP8_CHOICES:
        raise ValueError(f"fp8={fp8!r}; expected one of {FP8_CHOICES}.")
    path = resolve_single_file(path)  # a Hub file (ORG/NAME/FILE or its URL): from the cache, or downloaded
    device = target_device(device, device_map)
    # the class itself or, for a subclass, the LTX-2 class it extends
    ltx25 = next((k.__name__ for k in cls.__mro__ if k.__name__ in LTX25_LOADERS), None)
    if ltx25 is not None:  # LTX-2.5's files of their own, each through its state-dict key map
        if fp8 != "dequantize" or text_encoder_file is not None:
            raise ValueError(f"{cls.__name__}.from_single_file takes neither fp8= nor text_encoder_file=")
        return LTX25_LOADERS[ltx25](cls, path, torch_dtype=torch_dtype, device=device)
    class_name = next((k.__name__ for k in cls.__mro__ if k.__name__ in COMPONENT_OF_CLASS), None)
    if class_name is None:
        raise TypeError(f"{cls.__name__} is not an LTX-2 model class; expected one of {sorted(COMPONENT_OF_CLASS)}.")
    component = COMPONENT_OF_CLASS[class_name]
    if text_encoder_file is not None and component != "connectors":
        raise ValueError(
            f"text_encoder_file completes the text connectors of an LTX-2.5 transformer file; {cls.__name__} takes "
            "none: drop it (load LTX2TextConnectors with it)"
        )
    if component == "latent_upsampler":
        plan = plan_upsampler(path, cls)[0]
    else:
        plans = plan_checkpoint(path, {class_name: cls}, (component,), text_encoder_file)[0]
        if component not in plans:
            raise ValueError(f"{path} holds no {component} weights (no keys under {KEY_MAPS[component].prefixes}).")
        plan = plans[component]
    if plan.scales and fp8 == "keep" and fp8_layer is None:
        raise ValueError(
            f"fp8='keep': {path} is a scaled-fp8 file, and {cls.__name__} has no FP8 layers to keep its weights in "
            "(only the transformer does); load it with fp8='dequantize'."
        )
    model = meta_model(cls, plan.config)
    kept_fp8 = []
    for name, entry in plan.tensors.items():
        tensor = read_tensor(entry)  # on the host: one tensor at a time
        scale = plan.scales.get(name)
        if scale is not None:
            if fp8 == "keep" and name.endswith(".weight"):
                kept_fp8.append((name, tensor.to(device), read_tensor(scale).float().reshape(()).to(device)))
                continue
            tensor = fp8_files.dequantize(tensor, read_tensor(scale), torch_dtype or torch.bfloat16)
        elif torch_dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(torch_dtype)
        _set_tensor(model, name, tensor.to(device))
        del tensor
    for name, weight, scale in kept_fp8:  # after the biases, which the FP8 layers take over
        fp8_layer(model, name.removesuffix(".weight"), weight, scale)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise ValueError(
            f"{path}: {len(left)} tensors of {cls.__name__} were not filled from the file, e.g. {left[:5]}."
        )
    model = model.to(device)  # the computed buffers were built on the CPU; the parameters are already there
    if torch_dtype is not None:
        model = model.to(torch_dtype)  # the computed buffers too, as from_pretrained(torch_dtype=...) does
    return model.eval()


def _strict_model(cls: type, config: dict, state_dict: dict, path, torch_dtype, device: torch.device):
    model = cls.from_config(config)
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: the file's tensors do not fit {cls.__name__} with its metadata config: missing "
                         f"{sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}.")  # fmt: skip
    model = model.to(device)
    return (model if torch_dtype is None else model.to(torch_dtype)).eval()


def load_diffusion_decoder_from_single_file(cls: type, path, *, torch_dtype=None, device=None):
    """LTX-2.5's diffusion decoder from its video VAE file (`vae/ltx-2.5-video-vae-bf16.safetensors`: `decoder.*`,
    `per_channel_statistics.*` and the conv `encoder.*`, which is not this model's) or a monolith's `vae.*`, config from
    `config.vae` (`_class_name` "CausalDiffusionVAE"), through `diffusion_decoder_keys` (q, k, v split, gates
    folded); loaded strictly."""
    path = resolve_single_file(path)
    entries, metadata = read_header(path)
    config = md.parse_original_metadata(metadata, str(path))
    vae = config.get("vae", {})
    if vae.get("_class_name", "CausalVideoAutoencoder") == "CausalVideoAutoencoder":
        raise ValueError(
            f"{path}: its config.vae is a convolutional CausalVideoAutoencoder, not LTX-2.5's diffusion VAE "
            "(CausalDiffusionVAE): load it with AutoencoderKLLTX2Video"
        )
    keys = [k for k in entries if diffusion_decoder_keys.is_original_decoder_key(k)]
    state = diffusion_decoder_keys.original_to_diffusers({k: read_tensor(entries[k]) for k in keys})
    decoder_config = diffusion_decoder_keys.config_from_original(vae)
    return _strict_model(cls, decoder_config, state, path, torch_dtype, target_device(device))


def load_duration_head_from_single_file(cls: type, path, *, torch_dtype=None, device=None):
    """LTX-2.5's duration head from its file (`model_patches/ltx-2.5-duration-head-bf16.safetensors`, `duration_head.*`;
    sizes from the tensors, checked against `config.duration_head` / `config.transformer` where stated), through
    `duration_head_keys`; loaded strictly."""
    path = resolve_single_file(path)
    entries, metadata = read_header(path)
    config = md.parse_original_metadata(metadata, str(path)) if metadata and "config" in metadata else {}
    keys = [k for k in entries if k.startswith(duration_head_keys.PREFIX)]
    if not keys:
        raise ValueError(f"{path} holds no {duration_head_keys.PREFIX}* tensors: not an LTX-2.5 duration-head file.")
    original = {k: read_tensor(entries[k]) for k in keys}
    head_config = duration_head_keys.config_from_original(config, original)
    state = duration_head_keys.original_to_diffusers(original)
    return _strict_model(cls, head_config, state, path, torch_dtype, target_device(device))


# LTX-2.5's own files, outside the plan's key-name maps: class name -> loader
LTX25_LOADERS: dict[str, Callable[..., Any]] = {
    "LTX2VideoDiffusionDecoderModel": load_diffusion_decoder_from_single_file,
    "LTX2DurationHead": load_duration_head_from_single_file,
}


class FromLTX2SingleFileMixin:
    """Adds `from_single_file(path, torch_dtype=None, device=None, device_map=None, fp8="dequantize")` to an LTX-2
    model class: the model from a Lightricks single file (the upscaler: from its own file), through the converter's key
    maps and metadata configs, loaded straight onto the device (`load_component_from_single_file`; the connectors of
    an LTX-2.5 transformer file take `text_encoder_file`, the text-encoder file holding their projection)."""

    @classmethod
    def from_single_file(
        cls,
        path: str | os.PathLike,
        *,
        torch_dtype: torch.dtype | None = None,
        device: str | torch.device | None = None,
        device_map: Any = None,
        fp8: str = "dequantize",
        text_encoder_file: str | os.PathLike | None = None,
    ):
        return load_component_from_single_file(
            cls, path, torch_dtype=torch_dtype, device=device, device_map=device_map, fp8=fp8,
            text_encoder_file=text_encoder_file,
        )  # fmt: skip


def pipeline_from_single_file(
    path: str | os.PathLike,
    *,
    classes: ModelClasses | None = None,
    text_encoder: Any = None,
    tokenizer: Any = None,
    processor: Any = None,
    kind: str | None = None,
    torch_dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    pipeline_class: type | None = None,
    text_encoder_file: str | os.PathLike | None = None,
) -> Any:
    """The LTX-2 pipeline from a Lightricks single file: every component it holds, loaded strictly (each through its
    class's `from_single_file`, so the transformer's FP8 handling applies), plus the given Gemma `text_encoder` /
    `tokenizer` objects (None leaves them out) and the optional `processor` (a `Gemma3Processor`, for image-to-video
    prompt enhancement). `classes`: {class name: class} for the models and "LTX2Scheduler"
    (`ltx2_diffusers.conversion` passes ours). The upscaler is not part of the pipeline: load it with
    `LTX2LatentUpsamplerModel.from_single_file(upscaler_file)`. text_encoder_file: LTX-2.5's text-encoder file,
    for the connectors of its split transformer file."""
    classes = require_classes(classes, "pipeline_from_single_file")
    path = resolve_single_file(path)
    plans = plan_checkpoint(path, classes, text_encoder_file=text_encoder_file)[0]
    components: dict[str, Any] = {}
    for component, plan in plans.items():
        cls = classes[plan.class_name]
        extra = {"text_encoder_file": text_encoder_file} if component == "connectors" and text_encoder_file else {}
        components[component] = cls.from_single_file(path, torch_dtype=torch_dtype, device=device, **extra)
    if "transformer" in plans:
        components["scheduler"] = classes["LTX2Scheduler"](**md.scheduler_config(kind or md.model_kind_from_name(path)))
    components["text_encoder"], components["tokenizer"] = text_encoder, tokenizer
    if processor is not None:
        components["processor"] = processor
    pipeline_class = pipeline_class or classes.get(PIPELINE_CLASS)
    if pipeline_class is None:
        raise TypeError(f"pipeline_from_single_file: pass pipeline_class (e.g. {PIPELINE_CLASS}).")
    return pipeline_class(**components)


def pipeline_from_split_files(
    *,
    transformer: str | os.PathLike,
    text_encoder_file: str | os.PathLike,
    video_vae: str | os.PathLike,
    audio_vae: str | os.PathLike,
    diffusion_vae: str | os.PathLike | None = None,
    duration_head: str | os.PathLike | None = None,
    classes: ModelClasses | None = None,
    text_encoder: Any = None,
    tokenizer: Any = None,
    kind: str | None = None,
    torch_dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    pipeline_class: type | None = None,
) -> Any:
    """An LTX-2.5 pipeline from its split per-component files (spec 1.2 §1.2), in diffusers' layout: `transformer`
    and `connectors` from the transformer file (+ `text_encoder_file`'s projection), `vae` from the conv video VAE
    file (`ltx-2.5-video-vae-conv-bf16.safetensors`: the encoder conditions on images), the optional
    `diffusion_decoder` from the diffusion VAE file (`ltx-2.5-video-vae-bf16.safetensors`), `audio_vae` and `vocoder`
    from the audio file, the optional `duration_head` from its file; the scheduler by `kind` (None: from the
    transformer file's name). Gemma-4 (`text_encoder`, `tokenizer`) is passed as objects. `classes` must hold our
    model classes, LTX2VideoDiffusionDecoderModel and LTX2DurationHead included, and "LTX2Scheduler"."""
    classes = require_classes(classes, "pipeline_from_split_files")
    needed = ["LTX2VideoTransformer3DModel", "LTX2TextConnectors", "AutoencoderKLLTX2Video", "AutoencoderKLLTX2Audio",
              "LTX2Scheduler", *(["LTX2VideoDiffusionDecoderModel"] if diffusion_vae is not None else []),
              *(["LTX2DurationHead"] if duration_head is not None else [])]  # fmt: skip
    absent = [name for name in needed if name not in classes]
    if absent:
        raise TypeError(f"pipeline_from_split_files: classes lacks {absent}")
    transformer = resolve_single_file(transformer)
    load = {"torch_dtype": torch_dtype, "device": device}
    components: dict[str, Any] = {
        "transformer": load_component_from_single_file(classes["LTX2VideoTransformer3DModel"], transformer, **load),
        "connectors": load_component_from_single_file(
            classes["LTX2TextConnectors"], transformer, text_encoder_file=text_encoder_file, **load
        ),
        "vae": load_component_from_single_file(classes["AutoencoderKLLTX2Video"], video_vae, **load),
        "audio_vae": load_component_from_single_file(classes["AutoencoderKLLTX2Audio"], audio_vae, **load),
    }
    audio_plans = plan_checkpoint(resolve_single_file(audio_vae), classes, ("vocoder",))[0]
    if "vocoder" not in audio_plans:
        raise ValueError(f"{audio_vae} holds no vocoder.* tensors: pass LTX-2.5's audio VAE file (audio VAE + vocoder)")
    components["vocoder"] = load_component_from_single_file(classes[audio_plans["vocoder"].class_name], audio_vae,
                                                            **load)  # fmt: skip
    if diffusion_vae is not None:
        decoder_class = classes["LTX2VideoDiffusionDecoderModel"]
        components["diffusion_decoder"] = load_diffusion_decoder_from_single_file(decoder_class, diffusion_vae, **load)
    if duration_head is not None:
        head_class = classes["LTX2DurationHead"]
        components["duration_head"] = load_duration_head_from_single_file(head_class, duration_head, **load)
    components["scheduler"] = classes["LTX2Scheduler"](**md.scheduler_config(kind or md.model_kind_from_name(transformer)))
    components["text_encoder"], components["tokenizer"] = text_encoder, tokenizer
    pipeline_class = pipeline_class or classes.get(PIPELINE_CLASS)
    if pipeline_class is None:
        raise TypeError(f"pipeline_from_split_files: pass pipeline_class (e.g. {PIPELINE_CLASS}).")
    return pipeline_class(**components)
