"""Safetensors files read and written a tensor at a time, with plain file reads and writes; safe output paths.

`safetensors.safe_open` memory-maps the whole file, which fails outright for a file larger than the machine's memory
(a 43 GB checkpoint on a 24 GB machine), and the touched pages of a mapped file count as resident memory. Here a header
is parsed and validated the way safetensors validates it (and stricter: every malformed field is a ValueError that
names the file), one tensor is read on demand, and a file is written by copying each tensor from its source file in
bounded chunks (converted to another dtype on the way if asked). Also the diffusers weight layout of a model folder
(one file, or numbered shards with an index). Pickle-based checkpoints (.bin, .ckpt, .pt) are refused, never loaded.

Outputs (a converted folder, an exported file) are built under a hidden name beside the target,
`.<name>.partial-<host>-<pid>-<token>`, and renamed into place. An existing target is replaced only when asked and only when
it is recognisably ours: a folder with our manifest (`OUTPUT_MANIFEST_NAME`) holding nothing we did not write, or an
LTX-2 safetensors file; never an input. The old output is renamed aside (`.<name>.old-<host>-<pid>-<token>`) before the new
one is renamed in, so one of them is always there. Leftovers of a killed run (their pid no longer alive) are removed by
the next run for the same target, which says so.
"""

import hashlib
import json
import math
import os
import re
import secrets
import shutil
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
WEIGHTS_INDEX_NAME = "diffusion_pytorch_model.safetensors.index.json"
OUTPUT_MANIFEST_NAME = "ltx2_conversion_manifest.json"  # what a converted folder holds, written by us
_CHUNK_BYTES = 32 * 2**20  # copy granularity: bounds memory whatever the tensor size
_MAX_HEADER_BYTES = 100 * 2**20  # safetensors' own limit
_MAX_JSON_BYTES = 64 * 2**20  # config.json, index json, model_index.json: real ones are a few kB (an index a few MB)
PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl", ".pickle")

SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")
FP8_DTYPES = ("F8_E4M3", "F8_E5M2")


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of a safetensors file: where its bytes are and what they are."""

    path: str
    name: str
    dtype: str  # safetensors dtype string, e.g. "BF16"
    shape: tuple[int, ...]
    offset: int  # absolute byte offset in `path`
    nbytes: int


def check_not_pickle(path: str | os.PathLike) -> None:
    """Refuse PyTorch pickle checkpoints by name: loading one can run arbitrary code, and nothing here unpickles."""
    if os.fspath(path).lower().endswith(PICKLE_SUFFIXES):
        raise ValueError(
            f"{os.fspath(path)} is a pickle-based PyTorch checkpoint; this converter reads only .safetensors files "
            "(unpickling a file can run any code in it). Use the .safetensors release of the model."
        )


def _open_regular_file(path: str) -> int:
    """The size of `path`, which must be an existing regular file (errors name it: missing, a folder, a link loop)."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file.") from None
    except OSError as error:  # a symlink loop (ELOOP), a path through a file (ENOTDIR), permissions
        raise ValueError(f"{path} cannot be opened: {error.strerror or error}.") from None
    if os.path.isdir(path):
        raise ValueError(f"{path} is a directory, not a safetensors file.")
    if not os.path.isfile(path):
        raise ValueError(f"{path} is not a regular file (a device, pipe or socket), not a safetensors file.")
    return status.st_size


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} appears twice")
        out[key] = value
    return out


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def read_header(path: str | os.PathLike) -> tuple[dict[str, TensorEntry], dict[str, str] | None]:
    """({name: TensorEntry}, `__metadata__` or None) of a safetensors file, checked the way safetensors checks it
    (header size and JSON, dtypes, each tensor's byte count against its shape, tensors packed back to back up to the
    end of the file) and stricter (no duplicate keys; metadata a string -> string map; every field of the right type).
    Raises ValueError naming the file on anything malformed.

    Read with plain file reads: `safetensors.safe_open` maps the whole file, which fails outright when the file is
    larger than the machine's memory (a 43 GB checkpoint on a 24 GB machine)."""
    path = os.fspath(path)
    check_not_pickle(path)
    size = _open_regular_file(path)

    def corrupt(why: str) -> ValueError:
        return ValueError(
            f"{path} is not a readable safetensors file ({why}). It is probably truncated or corrupt: download it "
            "again and compare its size and sha256 with the Hub's."
        )

    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise corrupt(f"only {size} bytes")
        if prefix.startswith((b"PK\x03\x04", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")):
            raise ValueError(
                f"{path} is a pickle / zip PyTorch checkpoint under another name, not a safetensors file; nothing "
                "here unpickles files (that can run any code in them). Use the .safetensors release of the model."
            )
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > min(_MAX_HEADER_BYTES, size - 8):
            raise corrupt(f"its header claims {header_len} bytes, the file has {size - 8} after the length field")
        try:
            header = json.loads(f.read(header_len), object_pairs_hook=_unique_keys)
        except (ValueError, RecursionError) as error:  # JSONDecodeError, UnicodeDecodeError, duplicate keys
            raise corrupt(f"its header is not valid JSON: {error}") from None
    if not isinstance(header, dict):
        raise corrupt(f"its header is a JSON {type(header).__name__}, not an object")
    data_start = 8 + header_len
    metadata = header.pop("__metadata__", None)
    if metadata is not None and not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise corrupt("its __metadata__ is not a map of strings to strings")
    entries, spans = {}, []
    for name, info in header.items():
        if not (isinstance(info, dict) and {"dtype", "shape", "data_offsets"} <= info.keys()):
            raise corrupt(f"tensor {name!r} has a malformed entry {str(info)[:200]}")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not (isinstance(shape, list) and all(_is_count(n) for n in shape)):
            raise corrupt(f"tensor {name!r} has the shape {str(shape)[:200]}, expected a list of integers >= 0")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(n) for n in offsets)):
            raise corrupt(f"tensor {name!r} has data_offsets {str(offsets)[:200]}, expected two integers >= 0")
        if dtype not in SAFETENSORS_DTYPES:
            raise ValueError(
                f"{path}: tensor {name!r} has dtype {str(dtype)[:50]}, which this converter cannot handle."
            )
        begin, stop = offsets
        expected = SAFETENSORS_DTYPES[dtype].itemsize * math.prod(shape)
        if not begin <= stop or stop - begin != expected:
            raise corrupt(f"tensor {name!r} spans bytes {begin}..{stop}, but {dtype}{shape} needs {expected}")
        entries[name] = TensorEntry(path, name, dtype, tuple(shape), data_start + begin, stop - begin)
        spans.append((begin, stop))
    end = 0
    for begin, stop in sorted(spans):
        if begin != end:
            raise corrupt(f"its tensors overlap or leave a gap at byte {end}")
        end = stop
    if data_start + end != size:
        raise corrupt(f"the header describes {data_start + end} bytes but the file has {size}")
    return entries, metadata


def read_json(path: str | os.PathLike, what: str = "a JSON object") -> dict:
    """A JSON object from a small file; every problem is a ValueError naming the file (missing, a folder, too large,
    not JSON, duplicate keys, not an object)."""
    path = os.fspath(path)
    size = _open_regular_file(path)
    if size > _MAX_JSON_BYTES:
        raise ValueError(f"{path} is {size} bytes; {what} this size is not something this converter wrote or reads.")
    try:
        with open(path, "rb") as f:
            value = json.loads(f.read(), object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}); expected {what}.") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} holds a JSON {type(value).__name__}; expected {what}.")
    return value


def read_tensor(entry: TensorEntry, device: str | torch.device = "cpu") -> torch.Tensor:
    """One tensor of a file, read into memory (no memory map, see `read_header`)."""
    tensor = torch.empty(entry.shape, dtype=SAFETENSORS_DTYPES[entry.dtype])
    with open(entry.path, "rb") as f:
        f.seek(entry.offset)
        if entry.nbytes and f.readinto(memoryview(tensor.view(-1).view(torch.uint8).numpy())) != entry.nbytes:
            raise ValueError(f"{entry.path}: ended inside tensor {entry.name!r}: the file is truncated.")
    return tensor.to(device)


@dataclass(frozen=True)
class PlannedTensor:
    """A tensor to write: its source, its name in the output file, and the dtype it is written in."""

    source: TensorEntry
    name: str  # name in the output file
    dtype: str  # output dtype
    scale: TensorEntry | None = None  # a per-tensor fp8 scale to apply: written as source.float() * scale

    @property
    def nbytes(self) -> int:
        return (
            self.source.nbytes
            // SAFETENSORS_DTYPES[self.source.dtype].itemsize
            * SAFETENSORS_DTYPES[self.dtype].itemsize
        )


def _copy_tensor(src: TensorEntry, dtype: str, out, scale: TensorEntry | None = None) -> None:
    """Append `src`'s data to the open file `out`, converted to `dtype` (times `scale`, a one-number tensor, when
    given: computed in float32), through one `_CHUNK_BYTES` buffer."""
    factor = None if scale is None else read_tensor(scale).float().reshape(())
    in_size = SAFETENSORS_DTYPES[src.dtype].itemsize
    buffer = memoryview(bytearray(min(src.nbytes, max(in_size, _CHUNK_BYTES // in_size * in_size))))
    with open(src.path, "rb") as f:
        f.seek(src.offset)
        remaining = src.nbytes
        while remaining:
            view = buffer[: min(len(buffer), remaining)]
            if f.readinto(view) != len(view):
                raise ValueError(f"{src.path}: ended inside tensor {src.name!r}: the file is truncated.")
            remaining -= len(view)
            if dtype == src.dtype and factor is None:
                out.write(view)
            else:
                converted = torch.frombuffer(view, dtype=SAFETENSORS_DTYPES[src.dtype])
                if factor is not None:
                    converted = converted.float() * factor
                converted = converted.to(SAFETENSORS_DTYPES[dtype])
                out.write(converted.view(torch.uint8).numpy())


def write_safetensors(path: str | os.PathLike, tensors: list[PlannedTensor], metadata: dict[str, str] | None) -> None:
    """Write a safetensors file streaming each tensor from its source (same format `safetensors.save_file` writes)."""
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    for t in tensors:
        header[t.name] = {"dtype": t.dtype, "shape": list(t.source.shape), "data_offsets": [offset, offset + t.nbytes]}
        offset += t.nbytes
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # keeps the data 8-byte aligned, as safetensors does
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(encoded)))
        out.write(encoded)
        for t in tensors:
            _copy_tensor(t.source, t.dtype, out, t.scale)


def write_sharded(folder: Path, tensors: list[PlannedTensor], max_shard_size: int) -> None:
    """diffusers' layout: one `diffusion_pytorch_model.safetensors`, or numbered shards plus an index json."""
    shards: list[list[PlannedTensor]] = [[]]
    size = 0
    for t in tensors:
        if shards[-1] and size + t.nbytes > max_shard_size:
            shards.append([])
            size = 0
        shards[-1].append(t)
        size += t.nbytes
    if len(shards) == 1:
        write_safetensors(folder / WEIGHTS_NAME, shards[0], {"format": "pt"})
        return
    weight_map = {}
    for i, shard in enumerate(shards, 1):
        name = f"diffusion_pytorch_model-{i:05d}-of-{len(shards):05d}.safetensors"
        write_safetensors(folder / name, shard, {"format": "pt"})
        weight_map.update({t.name: name for t in shard})
    index = {"metadata": {"total_size": sum(t.nbytes for t in tensors)}, "weight_map": weight_map}
    (folder / WEIGHTS_INDEX_NAME).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")


def read_folder_weights(folder: Path) -> dict[str, TensorEntry]:
    """{name: TensorEntry} of a diffusers model folder: its one weights file, or the shards its index lists. Shard
    names must be plain file names in the folder (an index naming `../x` or `/x` is refused, never followed), and
    each tensor must be in the shard the index says, once."""
    folder = Path(folder)
    index_path = folder / WEIGHTS_INDEX_NAME
    if os.path.lexists(index_path):
        index = read_json(index_path, "a diffusers weight index (an object with a `weight_map`)")
        weight_map = index.get("weight_map")
        if not (isinstance(weight_map, dict) and all(isinstance(v, str) for v in weight_map.values())):
            raise ValueError(f"{index_path}: `weight_map` is not a map of tensor names to shard file names.")
        for shard in set(weight_map.values()):
            if shard in ("", ".", "..") or os.path.basename(shard) != shard or "\\" in shard or "\0" in shard:
                raise ValueError(
                    f"{index_path} names the shard {shard!r}, which is not a plain file name in {folder}; shards "
                    "live beside their index (a path outside the folder is refused, never followed)."
                )
            if not shard.endswith(".safetensors"):
                check_not_pickle(folder / shard)
                raise ValueError(f"{index_path} names the shard {shard!r}; expected a .safetensors file.")
        entries: dict[str, TensorEntry] = {}
        for shard in sorted(set(weight_map.values())):
            for name, entry in read_header(folder / shard)[0].items():
                if name in entries:
                    raise ValueError(
                        f"{folder}: tensor {name!r} is in both {Path(entries[name].path).name} and {shard}."
                    )
                if weight_map.get(name) != shard:
                    raise ValueError(
                        f"{index_path} puts {name!r} in {weight_map.get(name)!r}, but it is in {shard}: the index "
                        "and its shards disagree (re-save the model)."
                    )
                entries[name] = entry
        missing = weight_map.keys() - entries.keys()
        if missing:
            raise ValueError(f"{index_path} lists {len(missing)} tensors its shards lack, e.g. {sorted(missing)[:5]}.")
        return entries
    if os.path.lexists(folder / WEIGHTS_NAME):
        return read_header(folder / WEIGHTS_NAME)[0]
    pickled = [p.name for p in sorted(folder.glob("*")) if p.name.endswith(PICKLE_SUFFIXES)] if folder.is_dir() else []
    if pickled:
        check_not_pickle(folder / pickled[0])
    raise ValueError(f"{folder} has neither {WEIGHTS_NAME} nor {WEIGHTS_INDEX_NAME}.")


# ---------------------------------------------------------------------------------------------------------------------
# Output paths: never an input, never what we did not write, never a moment with neither the old nor the new output


def _host_tag() -> str:
    """6 hex digits of this machine's name: a pid means something only on the machine that wrote it."""
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]


def _hidden_name(target: Path, kind: str) -> Path:
    """`.<name>.<kind>-<host>-<pid>-<token>` beside `target`: host and pid let a later run tell a dead run's leftovers
    (on a shared file system, another machine's are never touched)."""
    return target.parent / f".{target.name}.{kind}-{_host_tag()}-{os.getpid()}-{secrets.token_hex(4)}"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: alive, someone else's
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def remove_stale_partials(target: str | os.PathLike) -> list[str]:
    """Clean up after a killed run that wrote `target` on this machine: `.<name>.partial-<host>-<pid>-*` and
    `.<name>.old-<host>-<pid>-*` beside it whose pid no longer runs. A previous output that such a run had moved aside while
    `target` is missing is put back; the rest is removed. Returns what was done, for the report."""
    target = Path(target)
    pattern = re.compile(rf"\.{re.escape(target.name)}\.(partial|old)-{_host_tag()}-([1-9][0-9]*)-[0-9a-f]{{8}}")
    try:
        names = sorted(os.listdir(target.parent))
    except OSError:  # no parent folder yet: nothing left behind
        return []
    removed, notes = [], []
    for name in names:
        match = pattern.fullmatch(name)
        if match is None or _pid_alive(int(match.group(2))):
            continue
        path = target.parent / name
        if match.group(1) == "old" and not os.path.lexists(target):
            os.rename(path, target)
            notes.append(f"restored the previous {target} from {name}, which an interrupted run had moved aside")
        else:
            _remove(path)
            removed.append(name)
    if removed:
        notes.append(
            f"removed {len(removed)} leftover(s) of an interrupted conversion to {target}: {', '.join(removed)}"
        )
    return notes


def _written_files(folder: Path) -> tuple[set[str], set[str]]:
    """(files and symlinks, real folders) under `folder`, as relative posix paths; links are not followed."""
    files, folders = set(), set()
    for dirpath, dirnames, filenames in os.walk(folder):
        relative = Path(dirpath).relative_to(folder)
        for d in list(dirnames):
            if os.path.islink(os.path.join(dirpath, d)):
                files.add((relative / d).as_posix())
                dirnames.remove(d)
            else:
                folders.add((relative / d).as_posix())
        files.update((relative / f).as_posix() for f in filenames)
    return files, folders


def _why_not_ours(target: Path, folder: bool) -> str | None:
    """Why `target` is not recognisably an output of ours (then it is never replaced); None when it is."""
    if os.path.islink(target):
        return "it is a symbolic link"
    if not folder:
        if not os.path.isfile(target):
            return "it is not a file"
        try:
            metadata = read_header(target)[1] or {}
        except ValueError as error:
            return f"it is not a safetensors file ({error})"
        return None if "config" in metadata else "it is a safetensors file without LTX-2 `config` metadata"
    if not os.path.isdir(target):
        return "it is not a folder"
    manifest_path = target / OUTPUT_MANIFEST_NAME
    if not manifest_path.is_file():
        return f"it has no {OUTPUT_MANIFEST_NAME}, the list of files this converter writes into its outputs"
    try:
        listed = read_json(manifest_path).get("files")
    except ValueError as error:
        return str(error)
    if not (isinstance(listed, list) and all(isinstance(f, str) for f in listed)):
        return f"its {OUTPUT_MANIFEST_NAME} is malformed"
    expected_files = {*listed, OUTPUT_MANIFEST_NAME}
    expected_folders = {parent.as_posix() for f in listed for parent in Path(f).parents if parent != Path(".")}
    files, folders = _written_files(target)
    foreign = sorted((files - expected_files) | (folders - expected_folders))
    if foreign:
        return f"it holds {len(foreign)} entries this converter did not write, e.g. {foreign[:5]}"
    return None


def _check_not_an_input(target: Path, inputs: Iterable[str | os.PathLike]) -> None:
    resolved = Path(os.path.realpath(target))  # realpath, not resolve(): a symlink loop is left to the reader
    for source in inputs:
        source_path = Path(source)
        source_resolved = Path(os.path.realpath(source_path))
        same = resolved == source_resolved or (
            os.path.exists(target) and os.path.exists(source_path) and os.path.samefile(target, source_path)
        )
        if same or resolved in source_resolved.parents or source_resolved in resolved.parents:
            relation = "is" if same else "holds" if resolved in source_resolved.parents else "is inside"
            raise ValueError(
                f"The output {target} {relation} the input {source_path}: writing it would replace or change the "
                "input. Choose an output path outside the input files and folders."
            )


def prepare_output(
    target: str | os.PathLike, *, overwrite: bool, inputs: Iterable[str | os.PathLike] = (), folder: bool = True
) -> list[str]:
    """Check that `target` (a folder, or with folder=False a file) may be written, before any work: not an input nor
    inside or around one; absent, or with `overwrite` a previous output of ours. Cleans a killed run's leftovers
    (`remove_stale_partials`). Returns notes for the report."""
    target = Path(target)
    kind = "folder" if folder else "file"
    if target.name in ("", ".", ".."):
        raise ValueError(f"The output {kind} {str(target)!r} has no name of its own; give a path such as ./ltx-2-out.")
    _check_not_an_input(target, inputs)
    if target.parent.exists() and not target.parent.is_dir():
        raise ValueError(f"The output {target} cannot be created: {target.parent} is a file, not a folder.")
    notes = remove_stale_partials(target)
    if os.path.lexists(target):
        if not overwrite:
            raise ValueError(f"{target} already exists; pass overwrite=True (--overwrite) or choose another {kind}.")
        why = _why_not_ours(target, folder)
        if why is not None:
            raise ValueError(
                f"{target} exists and overwrite replaces only a previous output of this converter, but {why}. Move "
                f"it away yourself or choose another {kind}."
            )
    return notes


def make_staging_dir(target: str | os.PathLike) -> Path:
    """A new hidden folder beside `target` to build the output in (permissions from the umask, like any mkdir)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = _hidden_name(target, "partial")
    os.mkdir(staging)
    return staging


def commit_staging_dir(staging: Path, target: str | os.PathLike) -> list[str]:
    """Write the manifest into `staging` and put it at `target`: an existing output of ours is renamed aside first,
    put back if the rename fails, and deleted last. Returns notes (an old output that could not be deleted)."""
    target = Path(target)
    files, _ = _written_files(staging)
    manifest = {"written_by": "ltx2_diffusers scripts/convert_checkpoint.py", "files": sorted(files)}
    (staging / OUTPUT_MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    aside = None
    if os.path.lexists(target):
        why = _why_not_ours(target, folder=True)  # again: it may have changed while we were converting
        if why is not None:
            raise ValueError(f"{target} changed during the conversion and is no longer replaceable: {why}.")
        aside = _hidden_name(target, "old")
        os.rename(target, aside)
    try:
        os.rename(staging, target)
    except BaseException:
        if aside is not None:
            os.rename(aside, target)
        raise
    if aside is None:
        return []
    try:
        shutil.rmtree(aside)
    except OSError as error:
        return [
            f"the previous {target}, moved to {aside}, could not be fully deleted ({error}); delete it by hand (the "
            f"next conversion to {target} removes it too)"
        ]
    return []


def atomic_file_write(
    path: str | os.PathLike,
    tensors: list[PlannedTensor],
    metadata: dict[str, str] | None,
    overwrite: bool,
    inputs: Iterable[str | os.PathLike] = (),
) -> list[str]:
    """Write a safetensors file at `path` through a hidden file beside it and one atomic rename (the old file, if
    any and if `overwrite` allows, is replaced in that rename). Returns notes for the report."""
    path = Path(path)
    notes = prepare_output(path, overwrite=overwrite, inputs=inputs, folder=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _hidden_name(path, "partial")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # 0666 minus the umask, as open() makes
    try:
        write_safetensors(tmp, tensors, metadata)
        why = _why_not_ours(path, folder=False) if os.path.lexists(path) else None
        if why is not None:
            raise ValueError(f"{path} changed during the conversion and is no longer replaceable: {why}.")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return notes
