"""Safetensors files read and written a tensor at a time, with plain file reads and writes.

`safetensors.safe_open` memory-maps the whole file, which fails outright for a file larger than the machine's memory
(a 43 GB checkpoint on a 24 GB machine), and the touched pages of a mapped file count as resident memory. Here a header
is parsed and validated the way safetensors validates it, one tensor is read on demand, and a file is written by
copying each tensor from its source file in bounded chunks (converted to another dtype on the way if asked). Also the
diffusers weight layout of a model folder (one file, or numbered shards with an index).
"""

import json
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
WEIGHTS_INDEX_NAME = "diffusion_pytorch_model.safetensors.index.json"
_CHUNK_BYTES = 32 * 2**20  # copy granularity: bounds memory whatever the tensor size

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


_MAX_HEADER_BYTES = 100 * 2**20  # safetensors' own limit


def read_header(path: str | os.PathLike) -> tuple[dict[str, TensorEntry], dict[str, str] | None]:
    """({name: TensorEntry}, `__metadata__` or None) of a safetensors file, checked the way safetensors checks it
    (header size and JSON, dtypes, each tensor's byte count against its shape, tensors packed back to back up to the
    end of the file). Raises ValueError on a truncated or corrupt file.

    Read with plain file reads: `safetensors.safe_open` maps the whole file, which fails outright when the file is
    larger than the machine's memory (a 43 GB checkpoint on a 24 GB machine)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file.")
    size = os.path.getsize(path)

    def corrupt(why: str) -> ValueError:
        return ValueError(
            f"{path} is not a readable safetensors file ({why}). It is probably truncated or corrupt: download it "
            "again and compare its size and sha256 with the Hub's."
        )

    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise corrupt(f"only {size} bytes")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > min(_MAX_HEADER_BYTES, size - 8):
            raise corrupt(f"its header claims {header_len} bytes")
        try:
            header = json.loads(f.read(header_len))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise corrupt(f"its header is not JSON: {error}") from None
    if not isinstance(header, dict):
        raise corrupt("its header is not a JSON object")
    data_start = 8 + header_len
    metadata = header.pop("__metadata__", None)
    entries, spans = {}, []
    for name, info in header.items():
        try:
            dtype, shape, (begin, stop) = info["dtype"], tuple(int(n) for n in info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise corrupt(f"tensor {name!r} has a malformed entry {info!r}") from None
        if dtype not in SAFETENSORS_DTYPES:
            raise ValueError(f"{path}: tensor {name!r} has dtype {dtype}, which this converter cannot handle.")
        expected = SAFETENSORS_DTYPES[dtype].itemsize * int(torch.Size(shape).numel())
        if not 0 <= begin <= stop or stop - begin != expected:
            raise corrupt(f"tensor {name!r} spans bytes {begin}..{stop}, but {dtype}{list(shape)} needs {expected}")
        entries[name] = TensorEntry(path, name, dtype, shape, data_start + begin, stop - begin)
        spans.append((begin, stop))
    end = 0
    for begin, stop in sorted(spans):
        if begin != end:
            raise corrupt(f"its tensors overlap or leave a gap at byte {end}")
        end = stop
    if data_start + end != size:
        raise corrupt(f"the header describes {data_start + end} bytes but the file has {size}")
    return entries, metadata


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
    if (folder / WEIGHTS_INDEX_NAME).is_file():
        index = json.loads((folder / WEIGHTS_INDEX_NAME).read_text())
        entries: dict[str, TensorEntry] = {}
        for shard in sorted(set(index["weight_map"].values())):
            entries.update(read_header(folder / shard)[0])
        if set(entries) != set(index["weight_map"]):
            raise ValueError(f"{folder / WEIGHTS_INDEX_NAME} does not list exactly the tensors of its shards.")
        return entries
    if (folder / WEIGHTS_NAME).is_file():
        return read_header(folder / WEIGHTS_NAME)[0]
    raise ValueError(f"{folder} has neither {WEIGHTS_NAME} nor {WEIGHTS_INDEX_NAME}.")


def atomic_file_write(path: Path, tensors: list[PlannedTensor], metadata: dict[str, str], overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise ValueError(f"{path} already exists; pass overwrite=True (--overwrite) or choose another name.")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.partial-", dir=path.parent)
    os.close(fd)
    try:
        write_safetensors(tmp, tensors, metadata)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
