"""A diffusers pipeline folder of LTX-2.5 -> Lightricks' split per-component files (spec 1.2 §1.2), the reverse of
`from_split_files` / `convert_original_to_diffusers(transformer_file, ..., text_encoder_file=...)`.

Written under `output_dir`, in the released folders and names (`{kind}` dev or distilled, `{dtype}` the tensors' one
floating dtype: bf16, fp16 or fp32):

    diffusion_models/ltx-2.5-22b-{kind}-transformer-{dtype}.safetensors   transformer + connector blocks
                                                                           (`model.diffusion_model.*`), config.transformer
    text_encoders/gemma4-12b-with-proj-ltx-2.5-{dtype}.safetensors        the connectors' `text_embedding_projection.*`
                                                                           + Gemma-4, copied from `text_encoder_file`
    text_encoders/ltx-2.5-text-projection-{dtype}.safetensors             ... without `text_encoder_file`: the
                                                                           projection alone (no Gemma-4 inside)
    vae/ltx-2.5-video-vae-conv-{dtype}.safetensors                        conv VAE, bare `encoder.*` / `decoder.*` /
                                                                           `per_channel_statistics.*`, config.vae
    vae/ltx-2.5-video-vae-{dtype}.safetensors                             diffusion decoder (`decoder.*`, statistics)
                                                                           + the conv encoder, config.vae
    vae/ltx-2.5-audio-vae-{dtype}.safetensors                             `audio_vae.*` + `vocoder.*`
    model_patches/ltx-2.5-duration-head-{dtype}.safetensors               `duration_head.*`

Every file carries the `config` sections its loader reads and `model_version` (the text-encoder file: the metadata of
`text_encoder_file`, verbatim). Tensors are written in name order through the converter's writer (`safetensors_io`),
so the same folder always gives the same bytes, and the round trip files -> pipeline -> files is byte-identical. The
whole set is built in a hidden folder beside `output_dir` and renamed into place at the end: a failure leaves an
existing output as it was, and `overwrite` replaces only a previous output of this converter (recognised by the
`ltx2_conversion_manifest.json` it writes beside the files).
Not kept: tensors the diffusers models do not hold (e.g. the released diffusion VAE file's extra statistics, which
`diffusion_decoder_keys` drops on loading) cannot be written back from a folder.
"""

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from . import diffusion_decoder_keys, duration_head_keys
from . import metadata as md
from .plan import PROJECTION_PREFIX, ModelClasses, require_classes
from .safetensors_io import (
    PlannedTensor,
    TensorEntry,
    commit_staging_dir,
    make_staging_dir,
    prepare_output,
    read_folder_weights,
    read_header,
    read_json,
    read_tensor,
    write_safetensors,
)
from .single_file import ConversionReport, _folder_component, _kept_extras, _rebuilt_metadata, _to_original_names
from .validation import stored_original_metadata

SPLIT_FILE_NAMES: dict[str, str] = {
    "transformer": "diffusion_models/ltx-2.5-22b-{kind}-transformer-{dtype}.safetensors",
    "text_encoder": "text_encoders/gemma4-12b-with-proj-ltx-2.5-{dtype}.safetensors",
    "projection": "text_encoders/ltx-2.5-text-projection-{dtype}.safetensors",
    "vae": "vae/ltx-2.5-video-vae-conv-{dtype}.safetensors",
    "diffusion_vae": "vae/ltx-2.5-video-vae-{dtype}.safetensors",
    "audio": "vae/ltx-2.5-audio-vae-{dtype}.safetensors",
    "duration_head": "model_patches/ltx-2.5-duration-head-{dtype}.safetensors",
}
DTYPE_TAGS = {"BF16": "bf16", "F16": "fp16", "F32": "fp32"}
MODEL_VERSION = "2.5.0"  # what the converter writes for LTX-2.5 (the monolith writer: "{version}.0")
_STAGED_TENSORS = ".tensors"  # inside the staging folder: converted in-memory tensors, deleted before the commit


def _dtype_tag(tensors: list[PlannedTensor], what: str) -> str:
    floating = {t.dtype for t in tensors if t.dtype in DTYPE_TAGS}
    if len(floating) != 1:
        raise ValueError(f"The {what} file would hold floating tensors of {sorted(floating) or 'no'} dtype, but its "
                         "name states one (bf16, fp16 or fp32): save the pipeline in one dtype (e.g. "
                         "pipe.to(torch.bfloat16) before save_pretrained).")  # fmt: skip
    return DTYPE_TAGS[floating.pop()]


def _folder_kind(root: Path, kind: str | None) -> str:
    """`kind` when given, else the one the forward conversion recorded, else the one the folder's scheduler has."""
    if kind is not None:
        if kind not in md.SCHEDULER_KINDS:
            raise ValueError(f"kind={kind!r}; expected one of {md.SCHEDULER_KINDS}.")
        return kind
    stored = stored_original_metadata(root).get("kind")
    if stored in md.SCHEDULER_KINDS:
        return stored
    path = root / "scheduler" / "scheduler_config.json"
    if not path.is_file():
        raise ValueError(f"{root} has no scheduler/scheduler_config.json to tell dev from distilled (the transformer "
                         "file's name says which): pass kind='dev' or 'distilled' (--kind).")  # fmt: skip
    sigmas = read_json(path, "a scheduler config").get("fixed_sigmas")
    return "distilled" if sigmas == md.scheduler_config("distilled")["fixed_sigmas"] else "dev"


def _component_tensors(root: Path, component: str, classes: ModelClasses, report: ConversionReport):
    """(class name, config, [(original name, entry)]) of a component folder, through the monolith's key maps."""
    class_name, config, entries, extras = _folder_component(root / component, classes)
    extras = _kept_extras(extras, entries, report)
    named = _to_original_names(component, config, entries, extras) + list(extras.items())
    report.add(component, class_name, [e for _, e in named], extras.values())
    return class_name, config, named


def _staged_entries(staging: Path, name: str, tensors: dict) -> dict[str, TensorEntry]:
    """In-memory tensors (a key map that fuses q, k, v) as file entries the writer can stream from."""
    folder = staging / _STAGED_TENSORS
    folder.mkdir(exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / f"{name}.safetensors"))
    return read_header(folder / f"{name}.safetensors")[0]


def _load_folder_state(folder: Path) -> tuple[dict, dict]:
    config = read_json(folder / "config.json", "a diffusers model config")
    state = {name: read_tensor(entry) for name, entry in read_folder_weights(folder).items()}
    return {k: v for k, v in config.items() if not k.startswith("_")}, state


def convert_diffusers_to_split_files(
    folder: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    kind: str | None = None,
    text_encoder_file: str | os.PathLike | None = None,
    overwrite: bool = False,
    classes: ModelClasses | None = None,
) -> ConversionReport:
    """An LTX-2.5 pipeline folder (`save_pretrained`, or the forward conversion's output) -> the split files (module
    docstring) under `output_dir`. Needs transformer/ and connectors/; writes the other files for the components
    present (audio_vae/ and vocoder/ together). kind: "dev" / "distilled" for the transformer file's name (None: as
    the folder records it). text_encoder_file: the released Gemma-4 text-encoder file, whose other tensors and
    metadata are copied beside the folder's projection. classes: ours (`ltx2_diffusers.conversion` passes them)."""
    classes = require_classes(classes, "convert_diffusers_to_split_files")
    root, output = Path(folder), Path(output_dir)
    if not (root / "model_index.json").is_file():
        raise ValueError(f"{root} is not a pipeline folder (no model_index.json); save the pipeline with "
                         "pipe.save_pretrained(folder) first.")  # fmt: skip
    absent = [c for c in ("transformer", "connectors") if not (root / c / "config.json").is_file()]
    if absent:
        raise ValueError(f"{root} has no {' or '.join(absent)}/ folder: the split transformer file holds the "
                         "transformer and the connector blocks, both needed.")  # fmt: skip
    audio = [c for c in ("audio_vae", "vocoder") if (root / c / "config.json").is_file()]
    if len(audio) == 1:
        raise ValueError(f"{root} has {audio[0]}/ without {({'audio_vae', 'vocoder'} - set(audio)).pop()}/: LTX-2.5's "
                         "audio file holds both.")  # fmt: skip
    inputs = [root] + ([Path(text_encoder_file)] if text_encoder_file is not None else [])
    report = ConversionReport(str(output), model_version="2.5", kind=_folder_kind(root, kind))
    report.notes += prepare_output(output, overwrite=overwrite, inputs=inputs)  # before any work: fail fast

    # 1. Every file's tensors and metadata, planned (and checked) before anything is written
    transformer_config = read_json(root / "transformer" / "config.json", "a diffusers model config")
    if md.model_version_of_transformer(transformer_config) != md.LTX2_5:
        raise ValueError(f"{root}/transformer is not an LTX-2.5 transformer (no bias-free video FFN, no keyframe "
                         "embedding): only LTX-2.5 ships as split files; write LTX-2 / LTX-2.3 as one file with "
                         "convert_diffusers_to_original (--reverse).")  # fmt: skip
    transformer = _component_tensors(root, "transformer", classes, report)
    connectors = _component_tensors(root, "connectors", classes, report)
    components = {"transformer": transformer[:2], "connectors": connectors[:2]}
    metadata = _rebuilt_metadata(stored_original_metadata(root).get("checkpoint"), components, report)
    blocks = [(n, e) for n, e in transformer[2] + connectors[2] if not n.startswith(PROJECTION_PREFIX)]
    files: dict[str, tuple[list[tuple[str, TensorEntry]], dict[str, str]]] = {"transformer": (blocks, metadata)}
    projection = [(n, e) for n, e in connectors[2] if n.startswith(PROJECTION_PREFIX)]
    if text_encoder_file is None:
        files["projection"] = (projection, {"model_version": MODEL_VERSION})
    else:
        entries, te_metadata = read_header(text_encoder_file)
        theirs = sorted(n for n in entries if n.startswith(PROJECTION_PREFIX))
        if theirs != sorted(n for n, _ in projection):
            raise ValueError(f"{text_encoder_file} holds the projection tensors {theirs[:4]}, the folder's connectors "
                             f"{sorted(n for n, _ in projection)[:4]}: not this model's text-encoder file.")  # fmt: skip
        gemma = [(n, e) for n, e in entries.items() if not n.startswith(PROJECTION_PREFIX)]
        files["text_encoder"] = (projection + gemma, te_metadata or {})
    conv_encoder: list[tuple[str, TensorEntry]] = []
    if (root / "vae" / "config.json").is_file():
        vae = _component_tensors(root, "vae", classes, report)
        stripped = [(n.removeprefix("vae."), e) for n, e in vae[2]]
        conv_encoder = [(n, e) for n, e in stripped if n.startswith("encoder.")]
        files["vae"] = (stripped, md.original_metadata(md.original_config_from_components({"vae": vae[:2]}), MODEL_VERSION))
    if audio:
        audio_vae, vocoder = (_component_tensors(root, c, classes, report) for c in ("audio_vae", "vocoder"))
        config = md.original_config_from_components({"audio_vae": audio_vae[:2], "vocoder": vocoder[:2]})
        files["audio"] = (audio_vae[2] + vocoder[2], md.original_metadata(config, MODEL_VERSION))

    tmp = make_staging_dir(output)
    try:
        # 2. The two LTX-2.5 models whose key maps fuse tensors (q, k, v): converted in memory, staged as files
        if (root / "diffusion_decoder" / "config.json").is_file():
            config, state = _load_folder_state(root / "diffusion_decoder")
            decoder = _staged_entries(tmp, "diffusion_decoder", diffusion_decoder_keys.diffusers_to_original(state))
            section = {"vae": diffusion_decoder_keys.config_to_original(config)}
            files["diffusion_vae"] = (list(decoder.items()) + conv_encoder, md.original_metadata(section, MODEL_VERSION))
            report.add("diffusion_decoder", "LTX2VideoDiffusionDecoderModel", decoder.values())
        if (root / "duration_head" / "config.json").is_file():
            config, state = _load_folder_state(root / "duration_head")
            head = _staged_entries(tmp, "duration_head", duration_head_keys.diffusers_to_original(state))
            section = duration_head_keys.config_to_original(config)
            files["duration_head"] = (list(head.items()), md.original_metadata(section, MODEL_VERSION))
            report.add("duration_head", "LTX2DurationHead", head.values())

        # 3. One file each, tensors in name order; then the whole set renamed into place
        #    (every file named, so its dtype checked, before the first is written)
        named_files = []
        for name, (named, file_metadata) in files.items():
            planned = sorted((PlannedTensor(e, n, e.dtype) for n, e in named), key=lambda t: t.name)
            relative = SPLIT_FILE_NAMES[name].format(kind=report.kind, dtype=_dtype_tag(planned, name))
            named_files.append((relative, planned, file_metadata))
        written = []
        for relative, planned, file_metadata in named_files:
            (tmp / relative).parent.mkdir(parents=True, exist_ok=True)
            write_safetensors(tmp / relative, planned, file_metadata)
            written.append(relative)
        shutil.rmtree(tmp / _STAGED_TENSORS, ignore_errors=True)
        report.notes += commit_staging_dir(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report.notes.append("files: " + ", ".join(written))
    if text_encoder_file is None:
        report.notes.append(f"no text_encoder_file: {SPLIT_FILE_NAMES['projection'].split('/')[-1].format(dtype='*')} "
                            "holds the text projection alone; Gemma-4 is loaded on its own")  # fmt: skip
    return report


def split_file_paths(output_dir: str | os.PathLike) -> dict[str, Path]:
    """{file kind (SPLIT_FILE_NAMES' keys): path} of the split files under `output_dir` (e.g. for `from_split_files`)."""
    found: dict[str, Path] = {}
    for name, pattern in SPLIT_FILE_NAMES.items():
        regex = re.escape(pattern).replace(r"\{kind\}", "(dev|distilled)").replace(r"\{dtype\}", "(bf16|fp16|fp32)")
        folder = Path(output_dir) / pattern.rpartition("/")[0]
        matches = sorted(p for p in folder.glob("*.safetensors") if re.fullmatch(regex, f"{folder.name}/{p.name}"))
        if len(matches) > 1:
            raise ValueError(f"{folder} holds {len(matches)} {name} files ({[p.name for p in matches]}); keep one.")
        if matches:
            found[name] = matches[0]
    return found


SPLIT_COMPONENTS = ("transformer", "connectors", "vae", "audio_vae", "vocoder", "diffusion_decoder", "duration_head",
                    "scheduler")  # fmt: skip


def save_pipeline_as_split_files(
    pipe: Any,
    output_dir: str | os.PathLike,
    *,
    kind: str | None = None,
    text_encoder_file: str | os.PathLike | None = None,
    overwrite: bool = False,
    classes: ModelClasses | None = None,
) -> ConversionReport:
    """A loaded LTX-2.5 pipeline -> the split files under `output_dir` (`convert_diffusers_to_split_files`). Its model
    components (not Gemma-4) are saved in a hidden folder beside `output_dir` first, deleted afterwards: that needs
    their size in free disk space once more."""
    output = Path(output_dir)
    absent = [c for c in ("transformer", "connectors") if getattr(pipe, c, None) is None]
    if absent:  # every refusal before the components are saved (minutes and their size on disk)
        raise ValueError(f"the pipeline has no {' or '.join(absent)}: the split transformer file holds the "
                         "transformer and the connector blocks, both needed.")  # fmt: skip
    if md.model_version_of_transformer(pipe.transformer.config) != md.LTX2_5:
        raise ValueError("the pipeline's transformer is not an LTX-2.5 transformer: only LTX-2.5 ships as split "
                         "files; write LTX-2 / LTX-2.3 as one file with convert_diffusers_to_original "
                         "(--reverse).")  # fmt: skip
    if kind is not None and kind not in md.SCHEDULER_KINDS:
        raise ValueError(f"kind={kind!r}; expected one of {md.SCHEDULER_KINDS}.")
    if text_encoder_file is not None and not Path(text_encoder_file).is_file():
        raise ValueError(f"text_encoder_file {text_encoder_file} is not a file: pass LTX-2.5's released text-encoder "
                         "file (Gemma-4 + projection), or None to write the projection alone.")  # fmt: skip
    prepare_output(output, overwrite=overwrite)
    output.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{output.name}.pipeline-", dir=output.parent))
    try:
        for name in SPLIT_COMPONENTS:
            component = getattr(pipe, name, None)
            if component is not None:
                component.save_pretrained(folder / name)
        (folder / "model_index.json").write_text(json.dumps({"_class_name": type(pipe).__name__}) + "\n")
        return convert_diffusers_to_split_files(folder, output, kind=kind, text_encoder_file=text_encoder_file,
                                                overwrite=overwrite, classes=classes)  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)
