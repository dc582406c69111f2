"""Lightricks' single-file checkpoints <-> diffusers pipeline folders, streaming. (`from_single_file` is in
`from_single_file.py`, the plan both share in `plan.py`; their names are re-exported here.)

Conversion copies tensors one at a time, in chunks, with plain file reads and writes (`safetensors_io.py`): never a
whole state dict, and no memory map either (pages of a mapped 43 GB file count as resident memory once touched). Names
come from the per-component key maps (`*_keys.py`, data), configs from the file's metadata (`metadata.py`). With dtype
"keep" every tensor's bytes are copied unchanged, and the file's `__metadata__` is kept verbatim in the folder
(`ltx2_original_metadata.json`), so original -> folder -> original gives the same tensors and the same metadata.

Tensors a key map leaves out because the diffusers class does not hold them (e.g. statistics ltx-core never reads) are
kept under their original names in `<component>/ltx2_original_extra.safetensors`, as are a scaled-fp8 file's input
scales and marker (`fp8_files.py`); its weight scales either stay beside their weights or are applied (`upcast_fp8`). Keys outside every component's prefixes are an
error, or with `allow_unknown=True` are kept in `ltx2_original_unknown.safetensors` at the folder root; both files are
ignored by `from_pretrained` and restored by the reverse conversion. A key under a component's prefix that its map
does not know is always an error: that component would be incomplete or wrong.

The model classes are an argument (`classes`), never imported here: `ltx2_diffusers.conversion` passes ours.
"""

import inspect
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..hub import write_conversion_card
from . import fp8_files, validation
from . import metadata as md
from .from_single_file import (
    FromLTX2SingleFileMixin,
    load_component_from_single_file,
    pipeline_from_single_file,
    target_device,
)
from .plan import (
    COMPONENT_OF_CLASS,
    KEY_MAPS,
    MODEL_COMPONENTS,
    ComponentPlan,
    ModelClasses,
    expected_state_dict_shapes,
    plan_checkpoint,
    plan_upsampler,
    require_classes,
    split_by_component,
    upsampler_config,
)
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
    write_safetensors,
    write_sharded,
)

__all__ = [  # the planning names are re-exported for the converter's callers
    "COMPONENT_OF_CLASS",
    "MODEL_COMPONENTS",
    "ComponentPlan",
    "ConversionReport",
    "FromLTX2SingleFileMixin",
    "convert_diffusers_to_original",
    "convert_original_to_diffusers",
    "expected_state_dict_shapes",
    "load_component_from_single_file",
    "pipeline_from_single_file",
    "target_device",
    "plan_checkpoint",
    "plan_upsampler",
    "split_by_component",
]

EXTRA_TENSORS_NAME = "ltx2_original_extra.safetensors"
UNKNOWN_TENSORS_NAME = "ltx2_original_unknown.safetensors"
PIPELINE_CLASS = "LTX2AVPipeline"  # the class model_index.json names
LIBRARY = "ltx2_diffusers"
DEFAULT_MAX_SHARD_SIZE = 5 * 10**9  # what diffusers' converter uses ("5GB")

DTYPE_CHOICES = {"keep": None, "bf16": "BF16", "fp32": "F32"}
QUANTIZATION_CONFIG = "quantization_config"  # the config.json key diffusers' from_pretrained reads
SCALED_FP8_METHOD = "ltx2_scaled_fp8"  # a folder keeping a scaled-fp8 file's weights with their scales


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
    """config.json and the weights; a scaled-fp8 file's scales are applied (upcast_fp8) or written beside their
    weights under the name models/fp8.py's FP8Linear gives them (`<name>_scale`, e.g. `to_q.weight_scale`)."""
    folder.mkdir(exist_ok=True)
    planned = []
    for name, e in sorted(plan.tensors.items()):
        scale = plan.scales.get(name) if upcast_fp8 else None
        planned.append(PlannedTensor(e, name, _output_dtype(e, dtype, upcast_fp8), scale))
    if not upcast_fp8:
        planned += [PlannedTensor(e, f"{name}_scale", e.dtype) for name, e in plan.scales.items()]
        planned.sort(key=lambda t: t.name)
    write_sharded(folder, planned, max_shard)
    config = {"_class_name": plan.class_name, "_diffusers_version": _diffusers_version(), **plan.config}
    if plan.scales and not upcast_fp8:
        # fp8 weights whose true values need their scales: a quantisation diffusers does not know, so that
        # from_pretrained fails loudly (it names this method) instead of loading the fp8 numbers as they are
        config[QUANTIZATION_CONFIG] = {"quant_method": SCALED_FP8_METHOD, "scale_suffix": "_scale"}
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    extras = plan.extras  # with a scaled-fp8 file: its marker / input scales (without weight scales on the way back)
    if extras:
        planned_extras = [PlannedTensor(e, name, e.dtype) for name, e in sorted(extras.items())]
        write_safetensors(folder / EXTRA_TENSORS_NAME, planned_extras, {"format": "pt"})
    return planned, [PlannedTensor(e, name, e.dtype) for name, e in sorted(extras.items())]


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
    classes: ModelClasses | None = None,
    text_encoder_file: str | os.PathLike | None = None,
) -> ConversionReport:
    """Lightricks single file (+ upscaler file) -> a pipeline folder (model_index.json, one folder per component).

    kind: "dev" or "distilled" (the scheduler), None to read it from the file name. dtype: "keep", "bf16" or "fp32" for
    floating tensors; fp8 tensors stay fp8 unless `upcast_fp8` (then bf16 under "keep"). A scaled-fp8 file's weights
    (per-tensor scales, `fp8_files.py`) are dequantised by `upcast_fp8` (weight.float() * scale, then that dtype), or
    else kept with their scales beside them (`<name>.weight_scale`); either way the way back gives the same file.
    text_encoder: a local Gemma-3 folder copied (or symlinked, `link_text_encoder`) into text_encoder/ and tokenizer/.
    A file holding only some components converts those. Nothing is left at `output_dir` if anything fails.
    classes: {class name: model class} (`ltx2_diffusers.conversion` passes ours).
    text_encoder_file: LTX-2.5's text-encoder file (Gemma-4 + projection), whose `text_embedding_projection.*`
    completes the connectors of its split transformer file (only the projection is read from it).
    """
    classes = require_classes(classes, "convert_original_to_diffusers")
    if checkpoint is None and upsampler is None:
        raise ValueError("Nothing to convert: pass a checkpoint, an upsampler file, or both.")
    if dtype not in DTYPE_CHOICES:
        raise ValueError(f"dtype={dtype!r}; expected one of {list(DTYPE_CHOICES)}.")
    if kind is not None and kind not in md.SCHEDULER_KINDS:
        raise ValueError(f"kind={kind!r}; expected one of {md.SCHEDULER_KINDS} (or None: from the file name).")
    output = Path(output_dir)
    inputs = [p for p in (checkpoint, upsampler, text_encoder, text_encoder_file) if p is not None]
    output_notes = prepare_output(output, overwrite=overwrite, inputs=inputs)  # before any work: fail fast
    if checkpoint is not None and upsampler is None and _is_upsampler_file(checkpoint):
        checkpoint, upsampler = None, checkpoint  # an upscaler file given as the checkpoint: convert it on its own
    plans, unknown, metadata, config = {}, [], None, None
    if checkpoint is not None:
        plans, unknown, metadata, config = plan_checkpoint(checkpoint, classes, text_encoder_file=text_encoder_file)
        if unknown and not allow_unknown:
            raise ValueError(
                f"{checkpoint} has {len(unknown)} keys no LTX-2 component claims, e.g. {unknown[:5]}. If the file is "
                "an LTX-2 checkpoint with additions you want to keep, pass allow_unknown=True (--allow-unknown): they "
                f"are kept in {UNKNOWN_TENSORS_NAME}."
            )
    upsampler_metadata = None
    if upsampler is not None:
        plans["latent_upsampler"], upsampler_metadata = plan_upsampler(upsampler, classes["LTX2LatentUpsamplerModel"])
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
            written, kept_aside = _write_component(folder, plan, dtype, upcast_fp8, max_shard_size)
            report.add(component, plan.class_name, written, kept_aside)
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
        write_conversion_card(tmp, [p for p in (checkpoint, upsampler) if p is not None])  # sources' names + sha256
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


def _folder_component(
    folder: Path, classes: ModelClasses
) -> tuple[str, dict, dict[str, TensorEntry], dict[str, TensorEntry]]:
    """(class, config, tensors, kept-aside tensors) of a model folder; every tensor is checked against the model its
    config.json describes (names, shapes, floating dtypes) before anything is written."""
    config_path = folder / "config.json"
    config = read_json(config_path, "a diffusers model config")
    class_name = config.pop("_class_name", None)
    if class_name not in COMPONENT_OF_CLASS:
        raise ValueError(f"{config_path} names the class {class_name!r}, not an LTX-2 model class.")
    cls = classes[class_name]
    # keys a hand-written config leaves out take our class's defaults, as from_pretrained would
    signature = inspect.signature(cls.__init__).parameters.values()
    defaults = {p.name: p.default for p in signature if p.default is not inspect.Parameter.empty}
    config.pop(QUANTIZATION_CONFIG, None)  # written by a conversion that kept fp8 scales: not the model's config
    config = json.loads(json.dumps({**defaults, **{k: v for k, v in config.items() if not k.startswith("_")}}))
    validation.check_config_values(cls, config, str(config_path))
    entries = read_folder_weights(folder)
    validation.check_block_counts(class_name, config, entries, str(config_path))
    expected = expected_state_dict_shapes(cls, config)
    # a folder that kept a scaled-fp8 file's weights holds each weight's scale beside it
    scales = {n for n in entries if n.endswith(fp8_files.FOLDER_SCALE_SUFFIXES) and n[: -len("_scale")] in entries}
    validation.check_folder_tensors(expected, {n: e for n, e in entries.items() if n not in scales}, class_name,
                                    str(folder))
    extras = read_header(folder / EXTRA_TENSORS_NAME)[0] if os.path.lexists(folder / EXTRA_TENSORS_NAME) else {}
    return class_name, config, entries, extras


def _to_original_names(
    component: str, config: dict, entries: dict[str, TensorEntry], extras: Mapping[str, TensorEntry]
) -> list[tuple[str, TensorEntry]]:
    """(original name, tensor) of a component folder's weights; fp8 scales (`<name>_scale`, kept by a conversion that
    did not dequantise) get the name the source file's layout gives them (its marker, if any, is among `extras`)."""
    scales = {n: e for n, e in entries.items() if n.endswith(fp8_files.FOLDER_SCALE_SUFFIXES) and n[:-6] in entries}
    weights = {n: e for n, e in entries.items() if n not in scales}
    mapping = KEY_MAPS[component].to_original(weights, config)
    layout = fp8_files.layout_of(extras)
    named = [(mapping[name], entry) for name, entry in weights.items()]
    return named + [(fp8_files.original_scale_name(mapping[n[:-6]], layout), e) for n, e in scales.items()]


def _kept_extras(extras: dict[str, TensorEntry], entries: dict[str, TensorEntry], report: "ConversionReport"):
    """A folder's kept-aside tensors to write back. A scaled-fp8 file's marker and input scales describe fp8 weights
    with scales: once the weights were dequantised (no scales left in the folder) they would mislead, so they stay out."""
    if any(n.endswith(fp8_files.FOLDER_SCALE_SUFFIXES) for n in entries):
        return extras
    fp8_aside = [n for n in extras if fp8_files.is_fp8_aside(n)]
    if fp8_aside:
        report.notes.append(f"fp8 scale tensors left out (the weights were dequantised): {', '.join(fp8_aside[:5])}")
    return {n: e for n, e in extras.items() if n not in fp8_aside}


def _configs_equal(a: dict, b: dict) -> bool:
    return json.loads(json.dumps(a)) == json.loads(json.dumps(b))


def convert_diffusers_to_original(
    folder: str | os.PathLike,
    output_file: str | os.PathLike | None,
    *,
    upsampler_output: str | os.PathLike | None = None,
    dtype: str = "keep",
    overwrite: bool = False,
    classes: ModelClasses | None = None,
) -> ConversionReport:
    """A pipeline folder (ours or diffusers') -> Lightricks' single file, metadata rebuilt (verbatim when the folder
    keeps the source file's metadata and its configs still match it), plus the upsampler file when asked.
    classes: {class name: model class} (`ltx2_diffusers.conversion` passes ours)."""
    classes = require_classes(classes, "convert_diffusers_to_original")
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
        _write_upsampler_file(root, stored.get("upsampler"), Path(output_file), dtype, overwrite, report, classes)
        return report
    present = [c for c in MODEL_COMPONENTS if (root / c / "config.json").is_file()]
    if output_file is not None and not present:
        raise ValueError(f"{root} has none of the component folders {MODEL_COMPONENTS} (each with a config.json).")
    if output_file is not None:
        components, tensors = {}, []
        for component in present:
            class_name, config, entries, extras = _folder_component(root / component, classes)
            components[component] = (class_name, config)
            extras = _kept_extras(extras, entries, report)
            named = _to_original_names(component, config, entries, extras) + list(extras.items())
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
            root / "latent_upsampler",
            stored.get("upsampler"),
            Path(upsampler_output),
            dtype,
            overwrite,
            report,
            classes,
        )
    elif (root / "latent_upsampler").is_dir():
        report.notes.append("latent_upsampler/ not exported: pass upsampler_output (--upsampler-output) for it.")
    return report


def _write_upsampler_file(
    folder: Path,
    stored: dict | None,
    path: Path,
    dtype: str,
    overwrite: bool,
    report: ConversionReport,
    classes: ModelClasses,
) -> None:
    class_name, config, entries, extras = _folder_component(folder, classes)
    named = _to_original_names("latent_upsampler", config, entries, extras) + list(extras.items())
    tensors = [PlannedTensor(e, name, _output_dtype(e, dtype, False)) for name, e in named]
    metadata = stored
    if stored is None or not _configs_equal(upsampler_config(md.parse_original_metadata(stored), entries), config):
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
    version = md.model_version_of_transformer(components["transformer"][1]) if "transformer" in components else None
    return md.original_metadata(config, version and f"{version}.0")


def _check_unique(tensors: list[PlannedTensor]) -> None:
    seen: set[str] = set()
    for t in tensors:
        if t.name in seen:
            raise ValueError(f"Two tensors would be written as {t.name!r}: the folder's components overlap.")
        seen.add(t.name)
