"""metadata.jsonl of a training folder: one JSON object a line, read and checked line by line (docs/training.md).

`file_name` (a video, its audio track used when present, an image, or an audio file), `text` (the caption), and
optionally `reference_file_name` (an IC-LoRA reference video) and `audio_file_name` (the soundtrack from another file).
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

METADATA_FILE = "metadata.jsonl"
METADATA_KEYS = ("file_name", "text", "reference_file_name", "audio_file_name")


class DataError(ValueError):
    """A problem with one input file or metadata line; the message names it."""


@dataclass(frozen=True)
class Sample:
    """One line of metadata.jsonl: `path` = data_dir / file_name; `line` counts from 1."""

    file_name: str
    text: str
    path: Path
    line: int
    reference_path: Path | None = None  # IC-LoRA: data_dir / reference_file_name
    audio_path: Path | None = None  # the soundtrack, when not the video's own: data_dir / audio_file_name

    @property
    def where(self) -> str:
        return f"{self.path} ({METADATA_FILE} line {self.line})"


def read_metadata(data_dir: str | os.PathLike) -> list[Sample]:
    """The samples of `data_dir/metadata.jsonl`, checked line by line; a DataError names the file and line."""
    data_dir = Path(data_dir)
    metadata = data_dir / METADATA_FILE
    if not metadata.is_file():
        raise DataError(
            f"{metadata} does not exist: a training folder needs a {METADATA_FILE} with one JSON object a line, "
            '{"file_name": "clip.mp4", "text": "the caption"}'
        )
    samples, seen = [], {}
    for number, raw in enumerate(metadata.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"{metadata} line {number}"
        try:
            entry = json.loads(raw)
        except json.JSONDecodeError as error:
            raise DataError(f"{where} is not valid JSON ({error.msg} at column {error.colno})") from None
        if not isinstance(entry, dict):
            raise DataError(f"{where} is a JSON {type(entry).__name__}, expected an object with file_name and text")
        unknown = [key for key in entry if key not in METADATA_KEYS]
        if unknown:
            raise DataError(f"{where}: unknown keys {unknown}; expected {list(METADATA_KEYS)}")
        file_name, text = entry.get("file_name"), entry.get("text")
        if not isinstance(file_name, str) or not file_name:
            raise DataError(f"{where} has no file_name (a path relative to {data_dir})")
        if not isinstance(text, str) or not text.strip():
            raise DataError(f'{where} ({file_name}) has no caption: add a non-empty "text"')
        path = data_dir / file_name
        if not path.is_file():
            raise DataError(f"{path} ({METADATA_FILE} line {number}) does not exist")
        if file_name in seen:
            raise DataError(f"{where}: {file_name} is listed twice (also on line {seen[file_name]})")
        seen[file_name] = number
        extra = {}
        for key, field_name in (("reference_file_name", "reference_path"), ("audio_file_name", "audio_path")):
            value = entry.get(key)
            if value is not None and (not isinstance(value, str) or not (data_dir / value).is_file()):
                raise DataError(f"{data_dir / str(value)} ({key}, {METADATA_FILE} line {number}) does not exist")
            extra[field_name] = None if value is None else data_dir / value
        samples.append(Sample(file_name, text.strip(), path, number, **extra))
    if not samples:
        raise DataError(f"{metadata} lists no samples")
    return samples
