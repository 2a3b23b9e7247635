"""Writes that either complete or leave the previous state untouched."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from progressive_sae.errors import PSAEError


def write_bytes_atomic(path: Path, data: bytes) -> None:
    write_parts_atomic(path, [data])


def write_parts_atomic(path: Path, parts: Iterable[Any]) -> None:
    """Bytes-like parts written one after another to a temporary name, then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            for part in parts:
                f.write(part)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


@contextmanager
def atomic_directory(path: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a scratch directory that replaces `path` only once the block succeeds.

    Without `overwrite`, an existing `path` is never touched (FileExistsError first).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield scratch
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(scratch, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(scratch, path)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def write_folder(path: str | Path, overwrite: bool, fill: Callable[[Path], None]) -> Path:
    """Create `path` atomically by letting `fill` write into a scratch folder."""
    path = Path(path)
    try:
        with atomic_directory(path, overwrite=overwrite) as scratch:
            fill(scratch)
    except FileExistsError:
        raise PSAEError(
            f"{path} already exists; choose another path or allow overwriting"
        ) from None
    return path


_SAFETENSORS_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64",
                       "int32": "I32", "uint8": "U8", "bool": "BOOL", "float64": "F64"}


def write_safetensors_atomic(path: Path, tensors: dict[str, Any]) -> None:
    """A .safetensors file written from the tensors' own memory, one at a time: unlike
    `safetensors.torch.save`, no second copy of a large tensor (a stream's mixing buffer)
    is made in memory. Written to a temporary name and renamed, so it is whole or absent."""
    import torch

    header: dict[str, Any] = {}
    arrays, offset = [], 0
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        kind = str(tensor.dtype).removeprefix("torch.")
        size = tensor.numel() * tensor.element_size()
        header[name] = {"dtype": _SAFETENSORS_DTYPES[kind], "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + size]}
        arrays.append(tensor.reshape(-1).view(torch.uint8).numpy())
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    write_parts_atomic(path, [len(text).to_bytes(8, "little"), text,
                              *(memoryview(array) for array in arrays)])
