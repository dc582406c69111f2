"""Planning a Lightricks single file: which tensor goes to which component, under which diffusers name, with which
config. Nothing is read but the header.

The loaders never import the model classes (models import the loaders' key tables, not the other way round): the
caller passes them, as `classes` ({class name: class}), and each class is built on the meta device to learn the names
and shapes it holds. `ltx2_diffusers.conversion` passes ours; a model class's `from_single_file` passes itself.
"""

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import torch

from . import audio_keys, connector_keys, transformer_keys, upsampler_keys, validation, video_vae_keys
from . import metadata as md
from .fp8_files import ScaledFp8, find_scaled_fp8
from .safetensors_io import TensorEntry, read_header

ModelClasses = Mapping[str, type]  # class name -> class, e.g. {"LTX2VideoTransformer3DModel": ...}


def require_classes(classes: ModelClasses | None, what: str) -> ModelClasses:
    if classes is None:
        raise TypeError(
            f"{what} needs the model classes (classes={{class name: class}}): the loaders do not import the models. "
            "Call it through ltx2_diffusers.conversion, which passes ours."
        )
    return classes


@dataclass(frozen=True)
class KeyMap:
    """A component's key map (a `*_keys.py` module): its prefixes in the file, both renames, keys it leaves out."""

    prefixes: tuple[str, ...]
    to_diffusers: Callable[..., dict[str, str]]
    to_original: Callable[..., dict[str, str]]
    ignored: tuple[str, ...] = ()


KEY_MAPS: dict[str, KeyMap] = {
    "transformer": KeyMap(
        transformer_keys.ORIGINAL_PREFIXES,
        transformer_keys.original_to_diffusers_keys,
        transformer_keys.diffusers_to_original_keys,
    ),
    "connectors": KeyMap(
        connector_keys.ORIGINAL_PREFIXES,
        connector_keys.original_to_diffusers_keys,
        connector_keys.diffusers_to_original_keys,
    ),
    "vae": KeyMap(
        video_vae_keys.ORIGINAL_PREFIXES,
        video_vae_keys.original_to_diffusers_keys,
        video_vae_keys.diffusers_to_original_keys,
        video_vae_keys.ORIGINAL_IGNORED_KEYS,
    ),
    "audio_vae": KeyMap(
        audio_keys.AUDIO_VAE_ORIGINAL_PREFIXES,
        audio_keys.audio_vae_original_to_diffusers_keys,
        audio_keys.audio_vae_diffusers_to_original_keys,
    ),
    "vocoder": KeyMap(
        audio_keys.VOCODER_ORIGINAL_PREFIXES,
        audio_keys.vocoder_original_to_diffusers_keys,
        audio_keys.vocoder_diffusers_to_original_keys,
    ),
    "latent_upsampler": KeyMap(
        upsampler_keys.ORIGINAL_PREFIXES,
        upsampler_keys.original_to_diffusers_keys,
        upsampler_keys.diffusers_to_original_keys,
    ),
}
COMPONENT_OF_CLASS: dict[str, str] = {
    "LTX2VideoTransformer3DModel": "transformer",
    "LTX2TextConnectors": "connectors",
    "AutoencoderKLLTX2Video": "vae",
    "AutoencoderKLLTX2Audio": "audio_vae",
    "LTX2Vocoder": "vocoder",
    "LTX2VocoderWithBWE": "vocoder",
    "LTX2LatentUpsamplerModel": "latent_upsampler",
}
# Order of the components in the combined file (the upsampler lives in a file of its own).
MODEL_COMPONENTS = ("transformer", "connectors", "vae", "audio_vae", "vocoder")


def expected_state_dict_shapes(cls: type, config: dict) -> dict[str, tuple[int, ...]]:
    """{state-dict name: shape} of `cls` built from `config`, on the meta device (no memory, no init cost)."""
    from accelerate import init_empty_weights

    # the meta device as well: init_empty_weights leaves torch.randn / arange in __init__ (tables, filters) real
    with init_empty_weights(include_buffers=True), torch.device("meta"):
        model = cls.from_config(config)
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def split_by_component(keys: Iterable[str], components: Iterable[str] = MODEL_COMPONENTS) -> tuple[dict, list[str]]:
    """({component: [keys]}, unknown keys) by each map's prefixes; the longest matching prefix wins, which puts
    `model.diffusion_model.video_embeddings_connector.*` with the connectors, not the transformer."""
    prefixes = sorted(((p, c) for c in components for p in KEY_MAPS[c].prefixes), key=lambda pc: -len(pc[0]))
    grouped: dict[str, list[str]] = {}
    unknown: list[str] = []
    for key in keys:
        owner = next((c for p, c in prefixes if key.startswith(p)), None)
        if owner is None:
            unknown.append(key)
        else:
            grouped.setdefault(owner, []).append(key)
    return grouped, unknown


@dataclass
class ComponentPlan:
    class_name: str
    config: dict
    tensors: dict[str, TensorEntry]  # diffusers name -> source tensor
    extras: dict[str, TensorEntry] = field(default_factory=dict)  # original name -> tensor the class does not hold
    scales: dict[str, TensorEntry] = field(default_factory=dict)  # diffusers name -> its fp8 scale (scaled files)
    fp8_layout: str | None = None  # "ltx" / "comfy" when the file is scaled fp8 (fp8_files.py)


def _text_proj_in_factor(entries: Mapping[str, TensorEntry], caption_channels: int) -> int | None:
    """Gemma's hidden-state count (layers + 1): the projection's input width over Gemma's width."""
    for name in (
        "text_embedding_projection.aggregate_embed.weight",
        "text_embedding_projection.video_aggregate_embed.weight",
    ):
        if name in entries:
            width = entries[name].shape[1]
            if width % caption_channels:
                raise ValueError(f"{name} has {width} inputs, not a multiple of caption_channels={caption_channels}.")
            return width // caption_channels
    return None


# LTX-2.5's split files (spec 1.2 §1.2): the transformer file holds the connector blocks, the text-encoder file
# (Gemma-4 + projection) the connectors' feature-extractor projection; the video VAE file names its tensors bare.
PROJECTION_PREFIX = "text_embedding_projection."
CONNECTOR_BLOCK_PREFIXES = connector_keys.ORIGINAL_PREFIXES[:2]
SPLIT_VAE_PREFIXES = ("encoder.", "decoder.", "per_channel_statistics.")


def projection_entries(
    path: str | os.PathLike, entries: Mapping[str, TensorEntry], text_encoder_file: str | os.PathLike | None,
    components: tuple[str, ...] | None,
) -> dict[str, TensorEntry]:
    """The connectors' `text_embedding_projection.*` tensors a file lacks, from LTX-2.5's text-encoder file: {} when
    the file holds them itself (a monolith) or the connectors are not wanted. A file with connector blocks and no
    projection (LTX-2.5's transformer file) needs `text_encoder_file`; a file with both may not be given one."""
    has_blocks = any(k.startswith(CONNECTOR_BLOCK_PREFIXES) for k in entries)
    has_projection = any(k.startswith(PROJECTION_PREFIX) for k in entries)
    if text_encoder_file is None:
        if has_blocks and not has_projection and (components is None or "connectors" in components):
            raise ValueError(
                f"{path} holds the text connectors' blocks but not their {PROJECTION_PREFIX}* projection: an LTX-2.5 "
                "split transformer file, whose projection lives in the text-encoder file (e.g. text_encoders/"
                "gemma4-12b-with-proj-ltx-2.5-bf16.safetensors). Pass text_encoder_file= (that file), or load only "
                "the transformer (LTX2VideoTransformer3DModel.from_single_file)."
            )
        return {}
    if has_projection:
        raise ValueError(
            f"{path} holds its own {PROJECTION_PREFIX}* tensors, so text_encoder_file={str(text_encoder_file)!r} "
            "would give them twice: drop text_encoder_file."
        )
    if not has_blocks:
        raise ValueError(
            f"text_encoder_file is given, but {path} holds no text-connector blocks "
            f"({CONNECTOR_BLOCK_PREFIXES[0]}*) for its projection: pass the LTX-2.5 transformer file."
        )
    companion = read_header(text_encoder_file)[0]
    found = {k: e for k, e in companion.items() if k.startswith(PROJECTION_PREFIX)}
    if not found:
        raise ValueError(
            f"{text_encoder_file} holds no {PROJECTION_PREFIX}* tensors: not an LTX-2.5 text-encoder file with the "
            "projection (text_encoders/gemma4-12b-with-proj-ltx-2.5-bf16.safetensors)."
        )
    return found


def split_vae_entries(entries: dict[str, TensorEntry], config: Mapping) -> dict[str, TensorEntry]:
    """An LTX-2.5 split video VAE file (`config.vae` only, tensors named `encoder.*` / `decoder.*` /
    `per_channel_statistics.*`) -> its tensors under the monolith's `vae.` names; any other file as it is."""
    if set(config) & {"transformer", "audio_vae", "vocoder"} or "vae" not in config:
        return entries
    bare = [k for k in entries if k.startswith(SPLIT_VAE_PREFIXES)]
    if not bare:
        return entries
    if len(bare) != len(entries):
        other = sorted(set(entries) - set(bare))[:5]
        raise ValueError(f"a split video VAE file names its tensors encoder.* / decoder.* / per_channel_statistics.*; "
                         f"this one also has {other}")  # fmt: skip
    if config["vae"].get("_class_name", "CausalVideoAutoencoder") != "CausalVideoAutoencoder":
        raise ValueError(
            f"the video VAE file's decoder is a {config['vae']['_class_name']} (LTX-2.5's diffusion decoder), not the "
            "convolutional CausalVideoAutoencoder: load it with LTX2VideoDiffusionDecoderModel's loader "
            "(loaders/diffusion_decoder_keys.py), or use the conv VAE file (ltx-2.5-video-vae-conv-bf16.safetensors)"
        )
    return {f"vae.{k}": e for k, e in entries.items()}


@validation.names_the_file_on_malformed_config
def plan_checkpoint(
    path: str | os.PathLike,
    classes: ModelClasses,
    components: tuple[str, ...] | None = None,
    text_encoder_file: str | os.PathLike | None = None,
) -> tuple[dict[str, ComponentPlan], list[str], dict, dict]:
    """Read a combined Lightricks file, or one of LTX-2.5's split per-component files (transformer, conv video VAE,
    audio VAE + vocoder): ({component: ComponentPlan}, unknown keys, `__metadata__`, parsed config).
    text_encoder_file: LTX-2.5's text-encoder file, for the connectors of a transformer file (`projection_entries`).
    """
    entries, metadata = read_header(path)
    lora = next((k for k in entries if ".lora_A." in k or ".lora_B." in k), None)
    if lora is not None:
        raise ValueError(
            f"{path} is a LoRA file (e.g. {lora!r}), not a model checkpoint: load it onto the transformer as a LoRA "
            "(e.g. ltx-2-19b-distilled-lora-384 with the dev checkpoint) instead of converting it."
        )
    config = md.parse_original_metadata(metadata, str(path))
    if "_class_name" in config and config.get("_class_name") == "LatentUpsampler":
        raise ValueError(
            f"{path} is a latent upsampler file, not an LTX-2 model checkpoint: load it with "
            "LTX2LatentUpsamplerModel, or convert it on its own or as `upsampler=` (--upsampler) of a checkpoint."
        )
    if not ({"transformer", "vae", "audio_vae", "vocoder"} & config.keys()):
        raise ValueError(
            f"{path}: its config metadata has none of the sections transformer/vae/audio_vae/vocoder (it has "
            f"{sorted(config)}): this is not an LTX-2 checkpoint."
        )
    md.detect_model_version(metadata, config)
    entries = split_vae_entries(entries, config)
    entries = {**entries, **projection_entries(path, entries, text_encoder_file, components)}
    fp8 = find_scaled_fp8(entries, str(path))
    scale_keys = fp8.keys()
    grouped, unknown = split_by_component([k for k in entries if k not in scale_keys], MODEL_COMPONENTS)
    aside, unknown_aside = split_by_component(fp8.aside, MODEL_COMPONENTS)
    if components is not None:
        grouped = {c: k for c, k in grouped.items() if c in components}
    caption_channels = config.get("transformer", {}).get("caption_channels", md.GEMMA_3_12B_HIDDEN_SIZE)
    factor = _text_proj_in_factor(entries, caption_channels)
    configs = md.component_configs_from_original(config, factor, tuple(grouped))
    order = [c for c in MODEL_COMPONENTS if c in grouped]  # file order: transformer, connectors, vae, ...
    for c in order:  # every component's metadata against its tensor names before any model is built
        _check_before_building(c, *configs[c], grouped[c], classes, path)
    plans = {}
    for c in order:
        class_name, component_config = configs[c]
        component_entries = {k: entries[k] for k in grouped[c]}
        plans[c] = _plan_component(c, class_name, component_config, component_entries, classes, path, fp8)
        plans[c].extras.update({k: entries[k] for k in aside.get(c, ())})
    return plans, sorted(unknown + unknown_aside), metadata, config


def _check_before_building(
    component: str, class_name: str, config: dict, names: Iterable[str], classes: ModelClasses, path
) -> None:
    """Header-only checks (value types, block counts against the names): a file whose metadata claims 100,000
    blocks is refused at once instead of after minutes of building."""
    source = f"{path} (its {component} metadata)"
    if classes.get(class_name) is not None:  # an unknown class is _plan_component's error, with its own message
        validation.check_config_values(classes[class_name], config, source)
    validation.check_block_counts(class_name, config, names, source)


def _plan_component(
    component: str,
    class_name: str,
    config: dict,
    entries: dict[str, TensorEntry],
    classes: ModelClasses,
    path,
    fp8: ScaledFp8 = ScaledFp8(),
) -> ComponentPlan:
    cls = classes.get(class_name)
    if cls is None:
        raise ValueError(
            f"{path}'s {component} is a {class_name} (from the file's metadata), and no class of that name was given "
            f"(given: {sorted(classes)}); load it with that class."
        )
    key_map = KEY_MAPS[component]
    mapping = key_map.to_diffusers([k for k in entries if k not in key_map.ignored], config)
    expected = expected_state_dict_shapes(cls, config)
    foreign = [k for k, name in mapping.items() if name not in expected]
    if foreign:
        raise ValueError(
            f"{path}: {len(foreign)} {component} keys have no place in {class_name} with the file's config, e.g. "
            f"{foreign[:5]} -> {[mapping[k] for k in foreign[:5]]}: the file holds weights its metadata does not "
            "describe (a file of another model, or a hand-edited one)."
        )
    tensors = {mapping[k]: e for k, e in entries.items() if k in mapping}
    extras = {k: e for k, e in entries.items() if k not in mapping}  # the map's ignored keys, kept under their names
    missing = expected.keys() - tensors.keys()
    if missing:
        raise ValueError(
            f"{path}: the {component} ({class_name}) built from the file's metadata needs {len(missing)} tensors the "
            f"file does not have, e.g. {sorted(missing)[:5]}. The metadata does not describe these weights (a file of "
            "another model, or a partial export)."
        )
    wrong = [(n, e.shape, expected[n]) for n, e in tensors.items() if e.shape != expected[n]]
    if wrong:
        name, shape, want = wrong[0]
        raise ValueError(
            f"{path}: {len(wrong)} {component} tensors do not have the shapes the file's metadata implies, e.g. "
            f"{name!r} is {list(shape)}, expected {list(want)}. The weights and the metadata describe different models."
        )
    validation.check_floating({k: entries[k] for k in mapping}, class_name, str(path))  # the file's own names
    scales = {mapping[k]: fp8.scales[k] for k in entries if k in fp8.scales}
    return ComponentPlan(class_name, config, tensors, extras, scales, fp8.layout)


# ---------------------------------------------------------------------------------------------------------------------
# Latent upsampler files


_RATIONAL_NAMES = ("upsampler.conv.", "upsampler.blur_down.")


def upsampler_config(original: Mapping, keys: Iterable[str]) -> dict:
    """The upsampler file's flat `config` -> LTX2LatentUpsamplerModel config, with the resampler named by the keys.

    At spatial scale 2 the rational resampler (2/1: pixel shuffle by 2, and the blur skipped at stride 1) and the plain
    pixel shuffle compute the same thing and differ only in their names (`upsampler.conv.*` and
    `upsampler.blur_down.kernel` vs `upsampler.0.*`). The LTX-2 x2 file holds the rational names and the LTX-2.3 x2
    file the plain ones, whatever their `rational_resampler` says, so at scale 2 the names decide. At any other scale
    the metadata decides and a name that does not fit it is an error (upsampler_keys.py)."""
    config = md.upsampler_config_from_original(original)
    spatial_only = config["spatial_upsample"] and not config["temporal_upsample"]
    names = [k for k in keys if k.startswith("upsampler.")]
    if spatial_only and config["rational_spatial_scale"] == 2.0 and names:
        config["use_rational_resampler"] = all(k.startswith(_RATIONAL_NAMES) for k in names)
    return config


@validation.names_the_file_on_malformed_config
def plan_upsampler(path: str | os.PathLike, cls: type) -> tuple[ComponentPlan, dict]:
    """Read a Lightricks latent-upsampler file: (ComponentPlan, `__metadata__`)."""
    entries, metadata = read_header(path)
    config = upsampler_config(md.parse_original_metadata(metadata, str(path)), entries)
    classes = {"LTX2LatentUpsamplerModel": cls}
    _check_before_building("latent_upsampler", "LTX2LatentUpsamplerModel", config, entries, classes, path)
    return _plan_component("latent_upsampler", "LTX2LatentUpsamplerModel", config, entries, classes, path), metadata


def meta_model(cls: type, config: dict) -> torch.nn.Module:
    """`cls` from `config` with its parameters on the meta device; buffers are built for real, so the ones a class
    computes instead of storing (persistent=False, e.g. the BWE resampler's filter) are usable."""
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):
        return cls.from_config(config)
