"""The Hub round trip for what this package saves: model cards, and pushing a folder as a Hub repo.

A card is written whenever something a user may share is saved (a pipeline or model `save_pretrained`, a converted
checkpoint folder, a trained LoRA). It is built with `huggingface_hub.ModelCard` / `ModelCardData`, so the Hub reads
its metadata: `library_name: diffusers`, the pipeline tag, the Lightricks repo it derives from, the weights' license
(Lightricks' LTX-2 Community License: the weights keep their license whatever this package's code license is), tags,
and for converted files the source file's name and sha256. A README that is not ours is never overwritten.

Pushing checks everything that can be checked locally (folder contents, repo id, token, offline mode) before any
request, then creates the repo (and branch) and uploads in one commit, with the card's snippet naming the repo.
Nothing in the local folder is written by a push.
"""

from __future__ import annotations

import contextvars
import fnmatch
import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

# The model generations and the Lightricks repos their weights come from (the card's base_model).
BASE_MODELS = {"2.0": "Lightricks/LTX-2", "2.3": "Lightricks/LTX-2.3", "2.5": "Lightricks/LTX-2.5"}
VERSION_TAGS = {"2.0": "ltx-2", "2.3": "ltx-2.3", "2.5": "ltx-2.5"}
LICENSE_NAME = "ltx-2-community-license"
LICENSE_LINK = "https://github.com/Lightricks/LTX-2/blob/main/LICENSE"
CARD_MARKER = "ltx2-diffusers"  # a tag on every card we write: how a README is recognised as ours

# What a pipeline class makes, as the Hub's pipeline tag, and the extra tags it earns.
PIPELINE_TAGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "LTX2AVPipeline": ("text-to-video", ("image-to-video", "text-to-audio")),
    "LTX2AVTwoStagePipeline": ("text-to-video", ("image-to-video", "text-to-audio")),
    "LTX2AVTwoStageHQPipeline": ("text-to-video", ("image-to-video", "text-to-audio")),
    "LTX2AVKeyframeInterpolationPipeline": ("image-to-video", ("text-to-video", "text-to-audio")),
    "LTX2AVICLoRAPipeline": ("video-to-video", ("text-to-audio",)),
    "LTX2AVAudioToVideoPipeline": ("text-to-video", ("audio-to-video",)),
    "LTX2AVRetakePipeline": ("video-to-video", ("text-to-audio",)),
}

# Files a push uploads from a folder we saved: weights, configs, tokenizer files and the card. Anything else in the
# folder (a stray checkpoint of another format, editor backups, partial outputs: hidden names) stays local.
UPLOAD_PATTERNS = ("README.md", "*.json", "*.safetensors", "*.model", "*.txt", "*.jinja")


@dataclass(frozen=True)
class CardSource:
    """A checkpoint file a folder was converted from: its name and sha256 go into the card."""

    file_name: str
    sha256: str

    @classmethod
    def of(cls, path: str | os.PathLike, chunk_bytes: int = 64 << 20) -> CardSource:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(chunk_bytes):
                digest.update(chunk)
        return cls(os.path.basename(os.fspath(path)), digest.hexdigest())


@dataclass(frozen=True)
class CardInfo:
    """What a card says. `what` is "pipeline", "model" or "lora"; `class_name` the class that loads the folder."""

    what: str
    class_name: str
    model_version: str | None = None
    repo_id: str | None = None  # the snippet loads this id; None: a placeholder the push fills in
    sources: tuple[CardSource, ...] = ()
    extra_tags: tuple[str, ...] = ()
    base_model: str | None = None  # overrides the version's Lightricks repo (e.g. a LoRA trained on a converted repo)
    description: str = ""
    extra_data: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.what not in ("pipeline", "model", "lora"):
            raise ValueError(f"CardInfo.what={self.what!r}: expected 'pipeline', 'model' or 'lora'")
        if self.model_version is not None and self.model_version not in BASE_MODELS:
            raise ValueError(f"CardInfo.model_version={self.model_version!r}: expected one of {sorted(BASE_MODELS)}")


def _snippet(info: CardInfo) -> str:
    repo = info.repo_id or "<this repo id or local folder>"
    if info.what == "pipeline":
        return (
            "```python\n"
            "import torch\n"
            "import ltx2_diffusers  # registers the LTX-2 pipelines and models with diffusers\n"
            "from diffusers import DiffusionPipeline\n"
            "from ltx2_diffusers.utils.media import export_to_video_with_audio\n\n"
            f'pipe = DiffusionPipeline.from_pretrained("{repo}", torch_dtype=torch.bfloat16).to("cuda")\n'
            'out = pipe("a red fox runs through fresh snow, wind noise", generator=torch.Generator().manual_seed(0))\n'
            "export_to_video_with_audio(out.frames[0], out.audio[0], 'fox.mp4', fps=24.0,\n"
            "                           audio_sample_rate=pipe.vocoder.config.output_sampling_rate)\n"
            "```"
        )
    if info.what == "model":
        return (
            "```python\n"
            "import torch\n"
            f"from ltx2_diffusers import {info.class_name}\n\n"
            f'model = {info.class_name}.from_pretrained("{repo}", torch_dtype=torch.bfloat16)\n'
            "```"
        )
    return (
        "```python\n"
        "import torch\n"
        "from ltx2_diffusers import LTX2AVPipeline\n\n"
        f'pipe = LTX2AVPipeline.from_pretrained("{info.base_model or "Lightricks/LTX-2"}", '
        "torch_dtype=torch.bfloat16)\n"
        f'pipe.load_lora_weights("{repo}", adapter_name="lora")\n'
        "```"
    )


def build_model_card(info: CardInfo):
    """The card as a `huggingface_hub.ModelCard` (metadata + body)."""
    from huggingface_hub import ModelCard, ModelCardData

    base_model = info.base_model or (BASE_MODELS[info.model_version] if info.model_version else None)
    if info.what == "pipeline":
        pipeline_tag, more_tags = PIPELINE_TAGS.get(info.class_name, ("text-to-video", ()))
    else:
        pipeline_tag, more_tags = ("text-to-video", ())
    tags = [CARD_MARKER, "audio-video", *more_tags]
    if info.model_version:
        tags.insert(1, VERSION_TAGS[info.model_version])
    if info.what == "lora":
        tags.append("lora")
    tags.extend(t for t in info.extra_tags if t not in tags)
    data = ModelCardData(
        library_name="diffusers",
        pipeline_tag=pipeline_tag,
        base_model=base_model,
        base_model_relation="adapter" if info.what == "lora" and base_model else None,
        license="other",
        license_name=LICENSE_NAME,
        license_link=LICENSE_LINK,
        tags=tags,
        **({"ltx2_source_files": [{"file_name": s.file_name, "sha256": s.sha256} for s in info.sources]}
           if info.sources else {}),
        **({"ltx2_description": info.description} if info.description else {}),
        **info.extra_data,
    )
    title = info.repo_id.split("/")[-1] if info.repo_id else f"LTX-2 {info.what}: {info.class_name}"
    lines = [f"# {title}", ""]
    if info.description:
        lines += [info.description, ""]
    what = {"pipeline": "A diffusers pipeline folder", "model": "A diffusers model folder", "lora": "A LoRA"}[info.what]
    lines += [
        f"{what} (`{info.class_name}`) for [ltx2-diffusers](https://pypi.org/project/ltx2-diffusers/), the "
        "Diffusers-native implementation of Lightricks' LTX-2 audio-video models"
        + (f", model version LTX-{info.model_version}" if info.model_version else "")
        + (f", derived from [{base_model}](https://huggingface.co/{base_model})." if base_model else "."),
        "",
    ]
    if info.sources:
        lines += ["Converted losslessly from:", ""]
        lines += [f"- `{s.file_name}` (sha256 `{s.sha256}`)" for s in info.sources]
        lines += ["", "`python scripts/convert_checkpoint.py --reverse` turns this folder back into that file.", ""]
    lines += ["## Usage", "", _snippet(info), "", "## License", ""]
    lines += [
        "The weights are Lightricks' and are released under the "
        f"[LTX-2 Community License]({LICENSE_LINK}); using them is subject to its terms. The ltx2-diffusers code "
        "that loads them is Apache-2.0.",
        "",
    ]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def is_our_card(readme: str | os.PathLike) -> bool:
    """True when `readme` is a card this package wrote (its metadata carries our marker tag)."""
    from huggingface_hub import ModelCard

    try:
        tags = ModelCard.load(readme).data.tags or []
    except Exception:  # any README we cannot parse as a card is, by definition, not one of ours
        return False
    return CARD_MARKER in tags


def write_model_card(folder: str | os.PathLike, info: CardInfo) -> Path | None:
    """Write `folder/README.md` for `info`. A README that is not ours is kept (returns None, says so in the log);
    one of ours is replaced. Written to a temporary name and renamed, so a failure leaves the old file."""
    from diffusers.utils import logging

    path = Path(folder) / "README.md"
    if path.exists() and not is_our_card(path):
        logging.get_logger(__name__).warning(
            f"{path} exists and was not written by ltx2-diffusers: kept as it is (no model card written). Delete it "
            "to get the generated card, or add the card's fields to it yourself."
        )
        return None
    text = str(build_model_card(info))
    partial = path.with_name(f".README.md.partial-{os.getpid()}")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


# ----------------------------------------------------------------------------------------------------------------------
# What a folder is


@dataclass(frozen=True)
class FolderKind:
    what: str  # "pipeline" | "model" | "lora"
    class_name: str
    model_version: str | None


def _version_of_transformer_config(config: dict) -> str:
    """presets' rule on a saved config.json; keys an older diffusers folder leaves out take the class defaults."""
    from .pipelines.presets import model_version_from_config

    return model_version_from_config({"gated_attn": False, "use_prompt_embeddings": True, **config})


def inspect_folder(folder: str | os.PathLike) -> FolderKind:
    """What a local folder holds: a pipeline (model_index.json), a model (config.json with a class name) or a LoRA
    (pytorch_lora_weights.safetensors). Raises a ValueError naming the folder otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder: push takes a folder saved by save_pretrained or the converter")

    def read_json(path: Path) -> dict:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path} cannot be read as JSON ({error}): the folder looks damaged") from error
        if not isinstance(data, dict):
            raise ValueError(f"{path} holds a JSON {type(data).__name__}, expected an object")
        return data

    if (folder / "model_index.json").is_file():
        index = read_json(folder / "model_index.json")
        class_name = index.get("_class_name")
        if not isinstance(class_name, str):
            raise ValueError(f"{folder / 'model_index.json'} has no _class_name: not a diffusers pipeline folder")
        version = None
        if (folder / "transformer" / "config.json").is_file():
            version = _version_of_transformer_config(read_json(folder / "transformer" / "config.json"))
        return FolderKind("pipeline", class_name, version)
    if (folder / "config.json").is_file():
        config = read_json(folder / "config.json")
        class_name = config.get("_class_name")
        if not isinstance(class_name, str):
            raise ValueError(f"{folder / 'config.json'} has no _class_name: not a diffusers model folder")
        version = _version_of_transformer_config(config) if "Transformer" in class_name else None
        return FolderKind("model", class_name, version)
    if (folder / "pytorch_lora_weights.safetensors").is_file():
        return FolderKind("lora", "LoRA", None)
    raise ValueError(
        f"{folder} holds neither model_index.json (a pipeline), config.json (a model) nor "
        "pytorch_lora_weights.safetensors (a LoRA): nothing to push. Save with save_pretrained or convert first."
    )


def upload_plan(folder: str | os.PathLike, patterns: Sequence[str] = UPLOAD_PATTERNS) -> list[str]:
    """The folder's files a push uploads (paths relative to the folder, '/'-separated, sorted). Hidden files (our
    partial outputs among them) are never included; symlinked files (a linked Gemma) are uploaded as files."""
    files = []
    for path in sorted(Path(folder).rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if any(part.startswith(".") for part in relative.split("/")) or not path.is_file():
            continue
        if any(fnmatch.fnmatchcase(relative, pattern) for pattern in patterns):
            files.append(relative)
    return files


def check_push(repo_id: str, token: str | None) -> str:
    """Everything about a push that can be known without a request: the repo id's form, a token, offline mode.
    Returns the token to use."""
    from huggingface_hub import constants, get_token
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        raise ValueError(f"repo id {repo_id!r} is not of the form 'namespace/name' (e.g. 'my-user/ltx-2-diffusers')")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ValueError(f"repo id {repo_id!r} is not valid on the Hub: {error}") from None
    if constants.HF_HUB_OFFLINE:
        raise ValueError("HF_HUB_OFFLINE is set: unset it to push (nothing was uploaded)")
    token = token or get_token()
    if not token:
        raise ValueError(
            "no Hugging Face token: run `hf auth login`, set HF_TOKEN, or pass token= (nothing was uploaded)"
        )
    return token


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool | None = None,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Upload a folder this package saved (pipeline, model or LoRA) to `repo_id` in one commit; returns the commit
    URL. The card uploaded names `repo_id` in its snippet (the local README is left untouched); a README that is not
    ours is uploaded as it is. Raises ValueError before any request when the folder, the id or the token is wrong."""
    from huggingface_hub import CommitOperationAdd, HfApi

    kind = inspect_folder(folder)
    token = check_push(repo_id, token)
    files = upload_plan(folder)
    if not files:
        raise ValueError(f"{folder} holds no file to upload (weights, configs, card)")
    readme = Path(folder) / "README.md"
    card_bytes = None
    if not readme.exists() or is_our_card(readme):
        info = _card_for_push(readme, kind, repo_id)
        card_bytes = str(build_model_card(info)).encode("utf-8")
    operations = [
        CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(Path(folder) / name))
        for name in files
        if not (name == "README.md" and card_bytes is not None)
    ]
    if card_bytes is not None:
        operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card_bytes))
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    if revision is not None and revision != "main":
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    info = api.create_commit(
        repo_id,
        operations=operations,
        commit_message=commit_message or f"Upload {kind.class_name} with ltx2-diffusers",
        revision=revision,
    )
    return info.commit_url


def _card_for_push(readme: Path, kind: FolderKind, repo_id: str) -> CardInfo:
    """The card a push uploads: the local card's facts (version, base model, source files, extra tags, description)
    kept, its snippet pointed at `repo_id`. Without a local card: what the folder itself tells."""
    if not readme.exists():
        return CardInfo(kind.what, kind.class_name, kind.model_version, repo_id=repo_id)
    from huggingface_hub import ModelCard

    card = ModelCard.load(readme)
    data = card.data.to_dict()
    versions = {tag: version for version, tag in VERSION_TAGS.items()}
    version = next((versions[t] for t in data.get("tags") or [] if t in versions), kind.model_version)
    known = {CARD_MARKER, "audio-video", "lora", *VERSION_TAGS.values(), *(t for _, (_, ts) in PIPELINE_TAGS.items()
                                                                         for t in ts)}
    sources = tuple(CardSource(e["file_name"], e["sha256"]) for e in data.get("ltx2_source_files") or [])
    base = data.get("base_model")
    return CardInfo(
        kind.what,
        kind.class_name,
        version,
        repo_id=repo_id,
        sources=sources,
        extra_tags=tuple(t for t in data.get("tags") or [] if t not in known),
        base_model=base if base and base != (BASE_MODELS.get(version) if version else None) else None,
        description=data.get("ltx2_description") or "",
    )
# ----------------------------------------------------------------------------------------------------------------------
# Cards on save: mixins for the pipelines' base class and the model classes

_saving_pipeline: contextvars.ContextVar[bool] = contextvars.ContextVar("ltx2_saving_pipeline", default=False)


def _version_of(transformer) -> str | None:
    return _version_of_transformer_config(dict(transformer.config)) if transformer is not None else None


class PipelineCardMixin:
    """`save_pretrained` that also writes the folder's model card (one, at the top: the components' folders get none)
    and pushes through `push_folder` (so the card names the repo) instead of diffusers' card-less upload."""

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        safe_serialization: bool = True,
        variant: str | None = None,
        max_shard_size: int | str | None = None,
        push_to_hub: bool = False,
        **kwargs,
    ) -> None:
        push = {name: kwargs.pop(name, None) for name in ("repo_id", "private", "token", "commit_message")}
        if push_to_hub:
            push["repo_id"] = push["repo_id"] or Path(save_directory).name
            check_push(push["repo_id"], push["token"])  # before writing anything
        reset = _saving_pipeline.set(True)
        try:
            super().save_pretrained(
                save_directory,
                safe_serialization=safe_serialization,
                variant=variant,
                max_shard_size=max_shard_size,
                push_to_hub=False,
                **kwargs,
            )
        finally:
            _saving_pipeline.reset(reset)
        info = CardInfo("pipeline", type(self).__name__, _version_of(getattr(self, "transformer", None)))
        write_model_card(save_directory, info)
        if push_to_hub:
            push_folder(save_directory, **push)


class ModelCardMixin:
    """`save_pretrained` that also writes a model card when a model is saved on its own (not inside a pipeline)."""

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        is_main_process: bool = True,
        save_function=None,
        safe_serialization: bool = True,
        variant: str | None = None,
        max_shard_size: int | str = "10GB",
        push_to_hub: bool = False,
        use_flashpack: bool = False,
        **kwargs,
    ) -> None:
        push = {name: kwargs.pop(name, None) for name in ("repo_id", "private", "token", "commit_message")}
        if push_to_hub:
            push["repo_id"] = push["repo_id"] or Path(save_directory).name
            check_push(push["repo_id"], push["token"])
        super().save_pretrained(
            save_directory,
            is_main_process=is_main_process,
            save_function=save_function,
            safe_serialization=safe_serialization,
            variant=variant,
            max_shard_size=max_shard_size,
            push_to_hub=False,
            use_flashpack=use_flashpack,
            **kwargs,
        )
        if not is_main_process or _saving_pipeline.get():
            return
        version = _version_of(self) if "Transformer" in type(self).__name__ else None
        write_model_card(save_directory, CardInfo("model", type(self).__name__, version))
        if push_to_hub:
            push_folder(save_directory, **push)


# ----------------------------------------------------------------------------------------------------------------------
# Pull


def _looks_like_a_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or os.sep in name.strip("/").split("/", 1)[-1] or name.count("/") > 1


def local_or_snapshot_folder(
    name_or_path: str | os.PathLike,
    allow_patterns: Sequence[str] | None = None,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
    local_files_only: bool = False,
) -> str:
    """A pipeline's folder: `name_or_path` itself when it is a local folder, else the snapshot of that Hub repo
    (from the cache when offline or `local_files_only`). Errors name what was asked for and why it was not found."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError, RepositoryNotFoundError

    name = os.fspath(name_or_path)
    if os.path.isdir(name):
        return name
    if os.path.exists(name):
        raise ValueError(f"{name} is a file, not a pipeline folder: use from_single_file for a single checkpoint file")
    if _looks_like_a_path(name):
        raise ValueError(f"{name}: no such folder (and it is not a Hub repo id of the form 'namespace/name')")
    offline = local_files_only or constants.HF_HUB_OFFLINE
    try:
        return snapshot_download(
            name,
            allow_patterns=list(allow_patterns) if allow_patterns else None,
            revision=revision,
            cache_dir=cache_dir,
            token=token,
            local_files_only=local_files_only,
        )
    except HFValidationError as error:
        raise ValueError(f"{name!r} is neither a local folder nor a valid Hub repo id: {error}") from None
    except LocalEntryNotFoundError:
        why = "local_files_only=True" if local_files_only else "HF_HUB_OFFLINE is set"
        raise ValueError(
            f"{name}{'@' + revision if revision else ''} is not a local folder and is not in the Hugging Face cache "
            f"({cache_dir or constants.HF_HUB_CACHE}); {why}, so it was not downloaded. Download it once online, or "
            "check the repo id and revision."
        ) from None
    except RepositoryNotFoundError:
        raise ValueError(
            f"{name}: no such Hub repo (or it is private / gated and no token with access was given)"
            + (" — offline" if offline else "")
        ) from None


# ----------------------------------------------------------------------------------------------------------------------
# Glue for the converter and the CLI


def write_conversion_card(folder: str | os.PathLike, sources: Sequence[str | os.PathLike]) -> Path | None:
    """The card of a converter output folder: what it holds (from its own files) and the sha256 of every source."""
    kind = inspect_folder(folder)
    info = CardInfo(kind.what, kind.class_name, kind.model_version,
                    sources=tuple(CardSource.of(path) for path in sources if path is not None))
    return write_model_card(folder, info)


def add_push_arguments(parser, flag: str = "--push_to_hub") -> None:
    """`flag REPO_ID [--private] [--revision BRANCH]` on an argparse parser."""
    parser.add_argument(flag, metavar="REPO_ID", help="upload the output to this Hub repo (namespace/name) when done")
    parser.add_argument("--private", action="store_true", help="with a push: create the repo private")
    parser.add_argument("--revision", help="with a push: the branch to commit to (created if missing)")


_HUB_FILE_URL = re.compile(r"^https://huggingface\.co/([^/]+/[^/]+)/(?:blob|resolve)/([^/]+)/(.+)$")
_REPO_FILE = re.compile(r"^([\w.-]+/[\w.-]+)/(.+\.safetensors)$")


def resolve_single_file(path: str | os.PathLike, *, local_files_only: bool = False) -> str:
    """A single-file checkpoint's local path: `path` itself when it is a local file; for a Hub file, given as
    `https://huggingface.co/ORG/NAME/blob/REVISION/FILE` or `ORG/NAME/FILE`, the file in the Hugging Face cache,
    downloaded unless HF_HUB_OFFLINE is set or `local_files_only`. Errors name the repo, the file and the revision."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    name = os.fspath(path)
    if os.path.lexists(name) or os.path.isabs(name):  # a local path: its reader's own errors (a symlink loop, ...)
        return name
    match = _HUB_FILE_URL.match(name)
    repo_id, revision, filename = match.groups() if match else (None, None, None)
    if match is None and (match := _REPO_FILE.match(name)) is not None:
        repo_id, filename = match.groups()
    if repo_id is None:
        raise ValueError(
            f"{name}: no such file (a Hub file is given as ORG/NAME/FILE.safetensors or its huggingface.co URL)"
        )
    where = f"{repo_id}/{filename}" + (f" at revision {revision}" if revision else "")
    try:
        return hf_hub_download(repo_id, filename, revision=revision, local_files_only=local_files_only)
    except LocalEntryNotFoundError:
        why = "local_files_only=True" if local_files_only else "HF_HUB_OFFLINE is set"
        raise ValueError(
            f"{where} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and {why}: download it once online"
        ) from None
    except EntryNotFoundError:
        raise ValueError(f"{where}: the repo has no such file") from None
    except RepositoryNotFoundError:
        raise ValueError(f"{where}: no such Hub repo (or it is private / gated and no token with access was given)") from None
