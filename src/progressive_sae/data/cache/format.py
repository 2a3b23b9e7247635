"""An on-disk cache of activations: shards of `.npy` files and a `manifest.json`.

Layout of a cache folder::

    manifest.json
    acts_00000.npy      [rows, d] activations (float16, float32, or bfloat16 bits as uint16)
    tokens_00000.npy    [rows, 3] int64 columns (sequence, position, token)
    acts_00001.npy …

Row r of shard s is activation number `s * rows_per_shard + r`; every shard but the last
holds exactly `rows_per_shard` rows, so shard boundaries depend only on the row order.
`sequence` counts the context windows of the text in order, `position` is the token's place
in its window (0 = first token, the BOS when one was prepended) and `token` its id; rows of
one window are contiguous and in position order.

bfloat16 is not a numpy dtype: such caches store the raw 16 bits as uint16
(`storage_dtype: "uint16"`, `dtype: "bfloat16"`) and the reader reinterprets them through torch.

Writing is atomic: each shard file goes to a temporary name and is renamed once complete,
then the manifest (shard list with row counts and sha256 checksums) is replaced atomically.
A writer opened on a folder with a manifest resumes after its last listed shard.

`CachedActivations` reads a cache as an `ActivationSource`: memory-mapped, shard checksums
verified on first touch (or all on open), and shuffled by a seeded, random-access
permutation — see its docstring.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from progressive_sae.errors import PSAEError
from progressive_sae.json_files import read_json_object

FORMAT = "progressive-sae activation cache"
VERSION = 1
MANIFEST = "manifest.json"
TOKEN_COLUMNS = ["sequence", "position", "token"]
STORAGE = {"float16": "float16", "float32": "float32", "bfloat16": "uint16"}
"""Requested dtype → numpy dtype of the stored array."""
SHARD_BYTES = 256 * 2**20
"""Target size of one activation shard when rows_per_shard is not given."""
DEFAULT_SHUFFLE_BUFFER = 2**20
"""Rows per shuffle window of `CachedActivations` (≈1M tokens)."""
SHARD_NAME = re.compile(r"^(acts|tokens)_(\d+)\.npy$")


def default_rows_per_shard(d: int, dtype: str) -> int:
    """≈256 MiB of activations per shard, a multiple of 1024 rows (at least 1024)."""
    itemsize = np.dtype(STORAGE[dtype]).itemsize
    return max(1024, SHARD_BYTES // (d * itemsize) // 1024 * 1024)


def manifest_path(path: str | Path) -> Path:
    """The manifest of a cache given its folder or the manifest itself."""
    path = Path(path)
    return path if path.name == MANIFEST else path / MANIFEST


def read_manifest(path: str | Path) -> dict[str, Any]:
    """A cache's manifest (folder or manifest path); PSAEError if missing or not one."""
    file = manifest_path(path)
    manifest = read_json_object(
        file, f"{file.parent} is not an activation cache (no {MANIFEST})"
    )
    if manifest.get("format") != FORMAT:
        raise PSAEError(f"{file} is not a progressive-sae activation cache manifest")
    if manifest.get("version") != VERSION:
        raise PSAEError(f"{file} has cache format version {manifest.get('version')!r}: "
                        f"expected {VERSION}")
    return manifest


def normalise(value: Any) -> Any:
    """The value as it reads back from JSON (tuples → lists, paths → strings)."""
    return json.loads(json.dumps(value, default=str))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 * 2**20):
            digest.update(chunk)
    return digest.hexdigest()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def to_storage(activations: torch.Tensor | np.ndarray, dtype: str) -> np.ndarray:
    """Activations as the numpy array a cache of `dtype` stores (bf16 → its uint16 bits)."""
    if isinstance(activations, np.ndarray):
        if dtype == "bfloat16" and activations.dtype == np.uint16:
            return activations
        if dtype != "bfloat16":
            return activations.astype(STORAGE[dtype], copy=False)
        activations = torch.from_numpy(np.asarray(activations, dtype=np.float32))
    tensor = activations.detach()
    if dtype == "bfloat16":
        bits = tensor.to(torch.bfloat16).view(torch.int16).cpu().numpy()
        return bits.view(np.uint16)
    return tensor.to(getattr(torch, dtype)).cpu().numpy()


def from_storage(array: np.ndarray, dtype: str) -> torch.Tensor:
    """Float32 tensor of stored activations (converted by torch: faster than numpy's)."""
    if not (array.flags.writeable and array.flags.c_contiguous):
        array = np.array(array)
    if dtype == "bfloat16":
        return torch.from_numpy(array.view(np.int16)).view(torch.bfloat16).float()
    return torch.from_numpy(array).float()



def as_int64(values: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.int64).reshape(-1)


def short_json(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."

