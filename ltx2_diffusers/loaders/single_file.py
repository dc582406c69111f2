"""Lightricks' single-file checkpoints <-> diffusers pipeline folders, streaming, and `from_single_file`.

Conversion copies tensors one at a time, in chunks, with plain file reads and writes (`safetensors_io.py`): never a
whole state dict, and no memory map either (pages of a mapped 43 GB file count as resident memory once touched). Names
come from the per-component key maps (`*_keys.py`, data), configs from the file's metadata (`metadata.py`). With dtype
"keep" every tensor's bytes are copied unchanged, and the file's `__metadata__` is kept verbatim in the folder
(`ltx2_original_metadata.json`), so original -> folder -> original gives the same tensors and the same metadata.

Tensors a key map names but the diffusers class does not hold (e.g. statistics ltx-core never reads) are kept under
their original names in `<component>/ltx2_original_extra.safetensors`. Keys outside every component's prefixes are an
error, or with `allow_unknown=True` are kept in `ltx2_original_unknown.safetensors` at the folder root; both files are
ignored by `from_pretrained` and restored by the reverse conversion. A key under a component's prefix that its map
does not know is always an error: that component would be incomplete or wrong.
"""

import inspect
import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

import torch

from . import metadata as md
from . import validation
from .safetensors_io import (
    FLOAT_DTYPES,
    FP8_DTYPES,
    PlannedTensor,
    TensorEntry,
    atomic_file_write,
    commit_staging_dir,
    make_staging_dir,
    prepare_output,
    read_folder_weights,
    read_header,
    read_json,
    read_tensor,
    write_safetensors,
    write_sharded,
)

EXTRA_TENSORS_NAME = "ltx2_original_extra.safetensors"
UNKNOWN_TENSORS_NAME = "ltx2_original_unknown.safetensors"
PIPELINE_CLASS = "LTX2AVPipeline"
LIBRARY = "ltx2_diffusers"
DEFAULT_MAX_SHARD_SIZE = 5 * 10**9  # what diffusers' converter uses ("5GB")

# component -> (key-map module, name prefix of its three API names in that module)
KEY_MAPS: dict[str, tuple[str, str]] = {
    "transformer": ("transformer_keys", ""),
    "connectors": ("connector_keys", ""),
    "vae": ("video_vae_keys", ""),
    "audio_vae": ("audio_keys", "audio_vae_"),
    "vocoder": ("audio_keys", "vocoder_"),
    "latent_upsampler": ("upsampler_keys", ""),
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

DTYPE_CHOICES = {"keep": None, "bf16": "BF16", "fp32": "F32"}


# ---------------------------------------------------------------------------------------------------------------------
# Key maps and classes


def key_map(component: str) -> tuple[tuple[str, ...], Callable, Callable, tuple[str, ...]]:
    """(ORIGINAL_PREFIXES, original_to_diffusers_keys, diffusers_to_original_keys, ORIGINAL_IGNORED_KEYS) of a
    component's key-map module; the last one (keys the map deliberately leaves out) is optional there."""
    module_name, prefix = KEY_MAPS[component]
    module = import_module(f"{__package__}.{module_name}")
    return (
        getattr(module, f"{prefix.upper()}ORIGINAL_PREFIXES"),
        getattr(module, f"{prefix}original_to_diffusers_keys"),
        getattr(module, f"{prefix}diffusers_to_original_keys"),
        tuple(getattr(module, f"{prefix.upper()}ORIGINAL_IGNORED_KEYS", ())),
    )


def resolve_class(class_name: str) -> type:
    """Our model class of that name (`ltx2_diffusers.<name>`)."""
    return getattr(import_module("ltx2_diffusers"), class_name)


def expected_state_dict_shapes(class_name: str, config: dict) -> dict[str, tuple[int, ...]]:
    """{state-dict name: shape} of the class built from `config`, on the meta device (no memory, no init cost)."""
    from accelerate import init_empty_weights

    # the meta device as well: init_empty_weights leaves torch.randn / arange in __init__ (tables, filters) real
    with init_empty_weights(include_buffers=True), torch.device("meta"):
        model = resolve_class(class_name).from_config(config)
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def split_by_component(keys: Iterable[str], components: Iterable[str] = MODEL_COMPONENTS) -> tuple[dict, list[str]]:
    """({component: [keys]}, unknown keys) by each map's ORIGINAL_PREFIXES; the longest matching prefix wins, which
    puts `model.diffusion_model.video_embeddings_connector.*` with the connectors, not the transformer."""
    prefixes = [(p, c) for c in components for p in key_map(c)[0]]
    prefixes.sort(key=lambda pc: -len(pc[0]))
    grouped: dict[str, list[str]] = {}
    unknown: list[str] = []
    for key in keys:
        owner = next((c for p, c in prefixes if key.startswith(p)), None)
        if owner is None:
            unknown.append(key)
        else:
            grouped.setdefault(owner, []).append(key)
    return grouped, unknown


def _text_proj_in_factor(entries: dict[str, TensorEntry], caption_channels: int) -> int | None:
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


# ---------------------------------------------------------------------------------------------------------------------
# Planning: file -> {component: (class, config, tensors)}


@dataclass
class ComponentPlan:
    class_name: str
    config: dict
    tensors: dict[str, TensorEntry]  # diffusers name -> source tensor
    extras: dict[str, TensorEntry] = field(default_factory=dict)  # original name -> tensor the class does not hold


@validation.names_the_file_on_malformed_config
def plan_checkpoint(
    path: str | os.PathLike, components: tuple[str, ...] | None = None
) -> tuple[dict, list, dict, dict]:
    """Read a combined Lightricks file: ({component: ComponentPlan}, unknown keys, `__metadata__`, parsed config)."""
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
    scaled = [k for k in entries if k.endswith((".weight_scale", ".input_scale"))]
    if scaled:
        raise ValueError(
            f"{path} is a pre-quantised fp8 checkpoint (per-tensor scales such as {scaled[0]!r}, for ltx-core's "
            "fp8-scaled-mm path): its weights are not usable without those scales, which diffusers classes do not "
            "hold. Convert the bf16 file, or an fp8-cast file (plain float8 weights, kept or upcast with --upcast-fp8)."
        )
    grouped, unknown = split_by_component(entries, MODEL_COMPONENTS)
    if components is not None:
        grouped = {c: k for c, k in grouped.items() if c in components}
    caption_channels = config.get("transformer", {}).get("caption_channels", md.GEMMA_3_12B_HIDDEN_SIZE)
    factor = _text_proj_in_factor(entries, caption_channels)
    configs = md.component_configs_from_original(config, factor, tuple(grouped))
    order = [c for c in MODEL_COMPONENTS if c in grouped]  # file order: transformer, connectors, vae, ...
    for c in order:  # every component's metadata against its tensor names before any model is built
        _check_before_building(c, *configs[c], grouped[c], path)
    plans = {c: _plan_component(c, *configs[c], {k: entries[k] for k in grouped[c]}, path) for c in order}
    return plans, sorted(unknown), metadata, config


def _check_before_building(component: str, class_name: str, config: dict, names: Iterable[str], path) -> None:
    """Header-only checks (value types, block counts against the names): a file whose metadata claims 100,000
    blocks is refused at once instead of after minutes of building."""
    source = f"{path} (its {component} metadata)"
    validation.check_config_values(resolve_class(class_name), config, source)
    validation.check_block_counts(class_name, config, names, source)


def _plan_component(
    component: str, class_name: str, config: dict, entries: dict[str, TensorEntry], path
) -> ComponentPlan:
    _, to_diffusers, _, ignored = key_map(component)
    mapping = to_diffusers(entries, config)
    dropped = [k for k in entries if k not in mapping and k not in ignored]
    if dropped:
        raise ValueError(f"The {component} key map gave no name to {dropped[:5]} and does not list them as ignored.")
    expected = expected_state_dict_shapes(class_name, config)
    tensors = {mapping[k]: e for k, e in entries.items() if mapping.get(k) in expected}
    # kept under their original names: keys the map ignores, or names the class does not hold
    extras = {k: e for k, e in entries.items() if mapping.get(k) not in expected}
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
    validation.check_floating({k: entries[k] for k, n in mapping.items() if n in tensors}, class_name, str(path))
    return ComponentPlan(class_name, config, tensors, extras)


@validation.names_the_file_on_malformed_config
def plan_upsampler(path: str | os.PathLike) -> tuple[ComponentPlan, dict]:
    """Read a Lightricks latent-upsampler file: (ComponentPlan, `__metadata__`)."""
    entries, metadata = read_header(path)
    config = md.upsampler_config_from_original(md.parse_original_metadata(metadata, str(path)))
    _check_before_building("latent_upsampler", "LTX2LatentUpsamplerModel", config, entries, path)
    return _plan_component("latent_upsampler", "LTX2LatentUpsamplerModel", config, entries, path), metadata


# ---------------------------------------------------------------------------------------------------------------------
# Reports


@dataclass
class ConversionReport:
    """What a conversion wrote: per component the class, tensor count and bytes; keys kept aside."""

    output: str
    model_version: str | None = None
    kind: str | None = None
    components: dict[str, dict[str, Any]] = field(default_factory=dict)
    unknown_keys: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, component: str, class_name: str, tensors: Iterable, extras: Iterable = ()) -> None:
        tensors, extras = list(tensors), list(extras)
        self.components[component] = {
            "class": class_name,
            "tensors": len(tensors),
            "bytes": sum(t.nbytes for t in tensors),
            "extra_tensors": [t.name for t in extras],
        }

    def __str__(self) -> str:
        lines = [f"Wrote {self.output}" + (f" (LTX-{self.model_version}, {self.kind})" if self.model_version else "")]
        for name, c in self.components.items():
            lines.append(f"  {name:<17} {c['class']:<28} {c['tensors']:>6} tensors {c['bytes'] / 1e9:>9.3f} GB")
            if c["extra_tensors"]:
                lines.append(f"    kept aside (not loaded by the class): {', '.join(c['extra_tensors'])}")
        if self.unknown_keys:
            lines.append(f"  unknown keys kept aside ({len(self.unknown_keys)}): {', '.join(self.unknown_keys[:10])}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------------
# Original -> folder


def _output_dtype(entry: TensorEntry, dtype: str, upcast_fp8: bool) -> str:
    if dtype not in DTYPE_CHOICES:
        raise ValueError(f"dtype={dtype!r}; expected one of {list(DTYPE_CHOICES)}.")
    target = DTYPE_CHOICES[dtype]
    if entry.dtype in FP8_DTYPES:
        return (target or "BF16") if upcast_fp8 else entry.dtype
    if entry.dtype in FLOAT_DTYPES and target is not None:
        return target
    return entry.dtype


def _write_component(folder: Path, plan: ComponentPlan, dtype: str, upcast_fp8: bool, max_shard: int):
    folder.mkdir(exist_ok=True)
    planned = [PlannedTensor(e, name, _output_dtype(e, dtype, upcast_fp8)) for name, e in sorted(plan.tensors.items())]
    write_sharded(folder, planned, max_shard)
    config = {"_class_name": plan.class_name, "_diffusers_version": _diffusers_version(), **plan.config}
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    if plan.extras:
        extras = [PlannedTensor(e, name, e.dtype) for name, e in sorted(plan.extras.items())]
        write_safetensors(folder / EXTRA_TENSORS_NAME, extras, {"format": "pt"})
    return planned


def _diffusers_version() -> str:
    import diffusers

    return diffusers.__version__


def convert_original_to_diffusers(
    checkpoint: str | os.PathLike | None,
    output_dir: str | os.PathLike,
    *,
    upsampler: str | os.PathLike | None = None,
    text_encoder: str | os.PathLike | None = None,
    link_text_encoder: bool = False,
    kind: str | None = None,
    dtype: str = "keep",
    upcast_fp8: bool = False,
    allow_unknown: bool = False,
    max_shard_size: int = DEFAULT_MAX_SHARD_SIZE,
    overwrite: bool = False,
) -> ConversionReport:
    """Lightricks single file (+ upscaler file) -> a pipeline folder (model_index.json, one folder per component).

    kind: "dev" or "distilled" (the scheduler), None to read it from the file name. dtype: "keep", "bf16" or "fp32" for
    floating tensors; fp8 tensors stay fp8 unless `upcast_fp8` (then bf16 under "keep"). text_encoder: a local Gemma-3
    folder copied (or symlinked, `link_text_encoder`) into text_encoder/ and tokenizer/. A file holding only some
    components converts those. Nothing is left at `output_dir` if anything fails.
    """
    if checkpoint is None and upsampler is None:
        raise ValueError("Nothing to convert: pass a checkpoint, an upsampler file, or both.")
    if dtype not in DTYPE_CHOICES:
        raise ValueError(f"dtype={dtype!r}; expected one of {list(DTYPE_CHOICES)}.")
    if kind is not None and kind not in md.SCHEDULER_KINDS:
        raise ValueError(f"kind={kind!r}; expected one of {md.SCHEDULER_KINDS} (or None: from the file name).")
    output = Path(output_dir)
    inputs = [p for p in (checkpoint, upsampler, text_encoder) if p is not None]
    output_notes = prepare_output(output, overwrite=overwrite, inputs=inputs)  # before any work: fail fast
    if checkpoint is not None and upsampler is None and _is_upsampler_file(checkpoint):
        checkpoint, upsampler = None, checkpoint  # an upscaler file given as the checkpoint: convert it on its own
    plans, unknown, metadata, config = {}, [], None, None
    if checkpoint is not None:
        plans, unknown, metadata, config = plan_checkpoint(checkpoint)
        if unknown and not allow_unknown:
            raise ValueError(
                f"{checkpoint} has {len(unknown)} keys no LTX-2 component claims, e.g. {unknown[:5]}. If the file is "
                "an LTX-2 checkpoint with additions you want to keep, pass allow_unknown=True (--allow-unknown): they "
                f"are kept in {UNKNOWN_TENSORS_NAME}."
            )
    upsampler_metadata = None
    if upsampler is not None:
        plans["latent_upsampler"], upsampler_metadata = plan_upsampler(upsampler)
    if "transformer" in plans and kind is None:
        kind = md.model_kind_from_name(checkpoint)
    report = ConversionReport(str(output), kind=kind, notes=output_notes)
    if metadata is not None:
        report.model_version = md.detect_model_version(metadata, config)
    standalone = checkpoint is None  # an upscaler alone is written as a model folder, its files at the root
    tmp = make_staging_dir(output)
    try:
        for component, plan in plans.items():
            folder = tmp if standalone else tmp / component
            written = _write_component(folder, plan, dtype, upcast_fp8, max_shard_size)
            report.add(component, plan.class_name, written, plan.extras.values())
        if unknown:
            entries = read_header(checkpoint)[0]
            write_safetensors(
                tmp / UNKNOWN_TENSORS_NAME, [PlannedTensor(entries[k], k, entries[k].dtype) for k in unknown], None
            )
            report.unknown_keys = unknown
        if "transformer" in plans:
            (tmp / "scheduler").mkdir()
            scheduler = {"_class_name": "LTX2Scheduler", "_diffusers_version": _diffusers_version()}
            scheduler.update(md.scheduler_config(kind))
            (tmp / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler, indent=2) + "\n")
        gemma = _add_text_encoder(tmp, Path(text_encoder), link_text_encoder) if text_encoder is not None else {}
        original = {"checkpoint": metadata, "upsampler": upsampler_metadata, "kind": kind}
        (tmp / md.ORIGINAL_METADATA_FILENAME).write_text(json.dumps(original, indent=2) + "\n")
        if not standalone:
            (tmp / "model_index.json").write_text(json.dumps(_model_index(plans, gemma), indent=2) + "\n")
        report.notes += commit_staging_dir(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


def _is_upsampler_file(path: str | os.PathLike) -> bool:
    metadata = read_header(path)[1] or {}
    try:
        return json.loads(metadata.get("config", "{}")).get("_class_name") == "LatentUpsampler"
    except (ValueError, RecursionError, AttributeError):  # JSONDecodeError is a ValueError
        return False  # plan_checkpoint reports a broken `config` with its own message


def _model_index(plans: dict[str, ComponentPlan], gemma: dict[str, list]) -> dict:
    # The upscaler is not a pipeline component (as on the Hub, latent_upsampler/ sits beside the pipeline's folders).
    index: dict[str, Any] = {"_class_name": PIPELINE_CLASS, "_diffusers_version": _diffusers_version()}
    for component in MODEL_COMPONENTS:
        index[component] = [LIBRARY, plans[component].class_name] if component in plans else [None, None]
    index["scheduler"] = [LIBRARY, "LTX2Scheduler"] if "transformer" in plans else [None, None]
    index["text_encoder"] = gemma.get("text_encoder", [None, None])
    index["tokenizer"] = gemma.get("tokenizer", [None, None])
    return index


_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.json",
    "chat_template.jinja",
    "preprocessor_config.json",
    "processor_config.json",
)


def _add_text_encoder(root: Path, source: Path, link: bool) -> dict[str, list]:
    """Copy (or symlink) a local Gemma-3 folder's model files to text_encoder/ and tokenizer files to tokenizer/."""
    if not (source / "config.json").is_file():
        raise ValueError(f"text_encoder={source} has no config.json: pass a local Gemma-3 folder (as on the Hub).")
    model_config = read_json(source / "config.json", "a transformers model config")
    architectures = model_config.get("architectures") or ["Gemma3ForConditionalGeneration"]
    if not (isinstance(architectures, list) and isinstance(architectures[0], str)):
        raise ValueError(f"{source / 'config.json'}: `architectures` is {architectures!r}, expected a list of names.")
    tokenizer_config = source / "tokenizer_config.json"
    if not tokenizer_config.is_file():
        raise ValueError(
            f"text_encoder={source} has no tokenizer_config.json; the tokenizer must sit beside the model."
        )
    tokenizer_class = read_json(tokenizer_config, "a tokenizer config").get("tokenizer_class") or "GemmaTokenizer"
    if not isinstance(tokenizer_class, str):
        raise ValueError(f"{tokenizer_config}: `tokenizer_class` is {tokenizer_class!r}, expected a class name.")
    (root / "text_encoder").mkdir()
    (root / "tokenizer").mkdir()
    for item in sorted(source.iterdir()):
        if not item.is_file():
            continue
        target = root / ("tokenizer" if item.name in _TOKENIZER_FILES else "text_encoder") / item.name
        if link:
            target.symlink_to(item.resolve())
        else:
            shutil.copy2(item, target)
    return {"text_encoder": ["transformers", architectures[0]], "tokenizer": ["transformers", tokenizer_class]}


# ---------------------------------------------------------------------------------------------------------------------
# Folder -> original


def _folder_component(folder: Path) -> tuple[str, dict, dict[str, TensorEntry], dict[str, TensorEntry]]:
    """(class, config, tensors, kept-aside tensors) of a model folder; every tensor is checked against the model its
    config.json describes (names, shapes, floating dtypes) before anything is written."""
    config_path = folder / "config.json"
    config = read_json(config_path, "a diffusers model config")
    class_name = config.pop("_class_name", None)
    if class_name not in COMPONENT_OF_CLASS:
        raise ValueError(f"{config_path} names the class {class_name!r}, not an LTX-2 model class.")
    # keys a hand-written config leaves out take our class's defaults, as from_pretrained would
    signature = inspect.signature(resolve_class(class_name).__init__).parameters.values()
    defaults = {p.name: p.default for p in signature if p.default is not inspect.Parameter.empty}
    config = json.loads(json.dumps({**defaults, **{k: v for k, v in config.items() if not k.startswith("_")}}))
    validation.check_config_values(resolve_class(class_name), config, str(config_path))
    entries = read_folder_weights(folder)
    validation.check_block_counts(class_name, config, entries, str(config_path))
    expected = expected_state_dict_shapes(class_name, config)
    validation.check_folder_tensors(expected, entries, class_name, str(folder))
    extras = read_header(folder / EXTRA_TENSORS_NAME)[0] if os.path.lexists(folder / EXTRA_TENSORS_NAME) else {}
    return class_name, config, entries, extras


def _to_original_names(component: str, config: dict, entries: dict[str, TensorEntry]) -> list[tuple[str, TensorEntry]]:
    mapping = key_map(component)[2](entries, config)
    return [(mapping[name], entry) for name, entry in entries.items()]


def _configs_equal(a: dict, b: dict) -> bool:
    return json.loads(json.dumps(a)) == json.loads(json.dumps(b))


def convert_diffusers_to_original(
    folder: str | os.PathLike,
    output_file: str | os.PathLike | None,
    *,
    upsampler_output: str | os.PathLike | None = None,
    dtype: str = "keep",
    overwrite: bool = False,
) -> ConversionReport:
    """A pipeline folder (ours or diffusers') -> Lightricks' single file, metadata rebuilt (verbatim when the folder
    keeps the source file's metadata and its configs still match it), plus the upsampler file when asked."""
    root = Path(folder)
    if not root.is_dir():
        hint = " (a single file converts without --reverse)" if root.is_file() else ""
        raise ValueError(f"{root} is not a folder{hint}; the reverse conversion reads a diffusers pipeline folder.")
    outputs = [Path(p) for p in (output_file, upsampler_output) if p is not None]
    if len(outputs) == 2 and os.path.realpath(outputs[0]) == os.path.realpath(outputs[1]):
        raise ValueError(f"The checkpoint and the upsampler would both be written to {outputs[0]}; give two paths.")
    report = ConversionReport(str(output_file))
    for path in outputs:  # before any work: fail fast, and clean what a killed run left
        report.notes += prepare_output(path, overwrite=overwrite, inputs=[root], folder=False)
    stored = validation.stored_original_metadata(root)
    if os.path.lexists(root / "model_index.json"):
        validation.check_model_index(root, (*MODEL_COMPONENTS, "latent_upsampler"))
    if os.path.lexists(root / "config.json"):  # a model folder: only an upscaler has an original file of its own
        class_name = read_json(root / "config.json", "a diffusers model config").get("_class_name")
        if class_name != "LTX2LatentUpsamplerModel" or output_file is None:
            raise ValueError(
                f"{root} is a {class_name} model folder. Only a latent upsampler has a Lightricks file of its own; "
                "other components are exported from a pipeline folder (with model_index.json)."
            )
        _write_upsampler_file(root, stored.get("upsampler"), Path(output_file), dtype, overwrite, report)
        return report
    present = [c for c in MODEL_COMPONENTS if (root / c / "config.json").is_file()]
    if output_file is not None and not present:
        raise ValueError(f"{root} has none of the component folders {MODEL_COMPONENTS} (each with a config.json).")
    if output_file is not None:
        components, tensors = {}, []
        for component in present:
            class_name, config, entries, extras = _folder_component(root / component)
            components[component] = (class_name, config)
            named = _to_original_names(component, config, entries) + list(extras.items())
            tensors += [PlannedTensor(e, name, _output_dtype(e, dtype, False)) for name, e in named]
            report.add(component, class_name, tensors[-len(named) :][: len(entries)], extras.values())
        if (root / UNKNOWN_TENSORS_NAME).is_file():
            unknown = read_header(root / UNKNOWN_TENSORS_NAME)[0]
            tensors += [PlannedTensor(e, name, e.dtype) for name, e in unknown.items()]
            report.unknown_keys = sorted(unknown)
        metadata = _rebuilt_metadata(stored.get("checkpoint"), components, report)
        _check_unique(tensors)
        notes = atomic_file_write(Path(output_file), sorted(tensors, key=lambda t: t.name), metadata, overwrite, [root])
        report.notes += notes
    if upsampler_output is not None:
        if not (root / "latent_upsampler" / "config.json").is_file():
            raise ValueError(f"{root} has no latent_upsampler/ folder to write to {upsampler_output}.")
        _write_upsampler_file(
            root / "latent_upsampler", stored.get("upsampler"), Path(upsampler_output), dtype, overwrite, report
        )
    elif (root / "latent_upsampler").is_dir():
        report.notes.append("latent_upsampler/ not exported: pass upsampler_output (--upsampler-output) for it.")
    return report


def _write_upsampler_file(
    folder: Path, stored: dict | None, path: Path, dtype: str, overwrite: bool, report: ConversionReport
) -> None:
    class_name, config, entries, extras = _folder_component(folder)
    named = _to_original_names("latent_upsampler", config, entries) + list(extras.items())
    tensors = [PlannedTensor(e, name, _output_dtype(e, dtype, False)) for name, e in named]
    metadata = stored
    if stored is None or not _configs_equal(
        md.upsampler_config_from_original(md.parse_original_metadata(stored)), config
    ):
        metadata = {"config": json.dumps(md.original_upsampler_config(config))}
    report.notes += atomic_file_write(path, sorted(tensors, key=lambda t: t.name), metadata, overwrite, [folder])
    report.add("latent_upsampler", class_name, tensors[: len(entries)], extras.values())


def _rebuilt_metadata(stored: dict | None, components: dict, report: ConversionReport) -> dict[str, str]:
    """The stored original metadata when it still describes these configs; otherwise metadata rebuilt from them."""
    if stored is not None:
        config = md.parse_original_metadata(stored)
        factor = components["connectors"][1]["text_proj_in_factor"] if "connectors" in components else None
        try:
            derived = md.component_configs_from_original(config, factor, tuple(components))
        except (ValueError, TypeError, AttributeError, KeyError, IndexError):  # stale or hand-edited: rebuilt, noted
            derived = {}
        if derived and all(_configs_equal(list(derived[c]), list(components[c])) for c in components):
            return dict(stored)
        report.notes.append("the stored original metadata no longer matches the configs: metadata rebuilt from them")
    config = md.original_config_from_components(components)
    version = None
    if "transformer" in components:
        version = md.LTX2 if components["transformer"][1]["use_prompt_embeddings"] else md.LTX2_3
    return md.original_metadata(config, version and f"{version}.0")


def _check_unique(tensors: list[PlannedTensor]) -> None:
    seen: set[str] = set()
    for t in tensors:
        if t.name in seen:
            raise ValueError(f"Two tensors would be written as {t.name!r}: the folder's components overlap.")
        seen.add(t.name)


# ---------------------------------------------------------------------------------------------------------------------
# from_single_file


def load_component_from_single_file(
    cls: type,
    path: str | os.PathLike,
    *,
    torch_dtype: torch.dtype | None = None,
    device: str | torch.device = "cpu",
) -> Any:
    """One model from a Lightricks single file (or, for the latent upsampler, its own file), through the same key map
    and metadata config as the converter; loaded strictly. `cls` is any class named as ours or diffusers' in-tree
    one (e.g. `LTX2VideoTransformer3DModel`)."""
    from accelerate import init_empty_weights

    # the class itself or, for a subclass (e.g. one adding FromLTX2SingleFileMixin), the LTX-2 class it extends
    class_name = next((k.__name__ for k in cls.__mro__ if k.__name__ in COMPONENT_OF_CLASS), None)
    if class_name is None:
        raise TypeError(f"{cls.__name__} is not an LTX-2 model class; expected one of {sorted(COMPONENT_OF_CLASS)}.")
    component = COMPONENT_OF_CLASS[class_name]
    if component == "latent_upsampler":
        plan = plan_upsampler(path)[0]
    else:
        plans = plan_checkpoint(path, components=(component,))[0]
        if component not in plans:
            raise ValueError(f"{path} holds no {component} weights (no keys under {key_map(component)[0]}).")
        plan = plans[component]
    if plan.class_name != class_name:
        raise ValueError(f"{path}'s {component} is a {plan.class_name}, not a {class_name}; load it with that class.")
    # parameters on the meta device until the file's tensors are assigned; buffers are built for real, so the ones
    # a class computes instead of storing (persistent=False, e.g. the BWE resampler's filter) are usable
    with init_empty_weights(include_buffers=False):
        model = cls.from_config(plan.config)
    state_dict = {}
    for name, entry in plan.tensors.items():
        tensor = read_tensor(entry, device)
        if torch_dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(torch_dtype)
        state_dict[name] = tensor
    model.load_state_dict(state_dict, strict=True, assign=True)
    model = model.to(device)  # the computed buffers were built on the CPU
    if torch_dtype is not None:
        model = model.to(torch_dtype)  # them too, as from_pretrained(torch_dtype=...) does
    return model.eval()


class FromLTX2SingleFileMixin:
    """Adds `from_single_file(path, torch_dtype=None, device="cpu")` to an LTX-2 model class: the model from a
    Lightricks single file (the upscaler: from its own file), through the converter's key maps and metadata configs."""

    @classmethod
    def from_single_file(
        cls, path: str | os.PathLike, *, torch_dtype: torch.dtype | None = None, device: str | torch.device = "cpu"
    ):
        return load_component_from_single_file(cls, path, torch_dtype=torch_dtype, device=device)


def pipeline_from_single_file(
    path: str | os.PathLike,
    *,
    text_encoder: Any = None,
    tokenizer: Any = None,
    processor: Any = None,
    kind: str | None = None,
    torch_dtype: torch.dtype | None = None,
    pipeline_class: type | None = None,
) -> Any:
    """The LTX-2 pipeline from a Lightricks single file: every component it holds, loaded strictly, plus the given
    Gemma `text_encoder` / `tokenizer` objects (None leaves them out) and the optional `processor` (a
    `Gemma3Processor`, for image-to-video prompt enhancement). The upscaler is not part of the pipeline:
    load it with `load_component_from_single_file(LTX2LatentUpsamplerModel, upscaler_file)`."""
    plans = plan_checkpoint(path)[0]
    components: dict[str, Any] = {}
    for component, plan in plans.items():
        components[component] = load_component_from_single_file(
            resolve_class(plan.class_name), path, torch_dtype=torch_dtype
        )
    if "transformer" in plans:
        scheduler_cls = resolve_class("LTX2Scheduler")
        components["scheduler"] = scheduler_cls(**md.scheduler_config(kind or md.model_kind_from_name(path)))
    components["text_encoder"], components["tokenizer"] = text_encoder, tokenizer
    if processor is not None:
        components["processor"] = processor
    pipeline_class = pipeline_class or resolve_class(PIPELINE_CLASS)
    return pipeline_class(**components)
