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
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from progressive_sae.atomic import write_bytes_atomic, write_json_atomic
from progressive_sae.errors import PSAEError

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
_SHARD_NAME = re.compile(r"^(acts|tokens)_(\d+)\.npy$")


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
    if not file.is_file():
        raise PSAEError(f"{file.parent} is not an activation cache (no {MANIFEST})")
    try:
        manifest = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PSAEError(f"{file} is not valid JSON ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PSAEError(f"{file} is not a progressive-sae activation cache manifest")
    if manifest.get("version") != VERSION:
        raise PSAEError(f"{file} has cache format version {manifest.get('version')!r}: "
                        f"expected {VERSION}")
    return manifest


def _normalise(value: Any) -> Any:
    """The value as it reads back from JSON (tuples → lists, paths → strings)."""
    return json.loads(json.dumps(value, default=str))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 * 2**20):
            digest.update(chunk)
    return digest.hexdigest()


def _npy_bytes(array: np.ndarray) -> bytes:
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


class CacheWriter:
    """Writes rows into shards of a cache folder, resuming after the shards already listed.

    `meta` holds the settings that define the cache (model, hook, text config, …); they are
    written to the manifest's top level, and a resumed writer whose `meta`, `dtype` or
    `rows_per_shard` (when given) differ from the manifest's refuses with a PSAEError. A
    manifest that lists no shard yet (a run stopped before its first) is simply replaced.
    """

    def __init__(
        self,
        out_dir: str | Path,
        *,
        dtype: str = "float16",
        rows_per_shard: int | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        if dtype not in STORAGE:
            raise PSAEError(f"dtype={dtype!r}: expected one of {sorted(STORAGE)}")
        if rows_per_shard is not None and (
            isinstance(rows_per_shard, bool) or not isinstance(rows_per_shard, int)
            or rows_per_shard < 1
        ):
            raise PSAEError(f"rows_per_shard={rows_per_shard!r}: expected a positive integer")
        self.dir = Path(out_dir)
        self.meta = _normalise(meta or {})
        reserved = sorted(set(self.meta) & set(self._own_keys()))
        if reserved:
            raise ValueError(f"meta key {reserved[0]!r} is reserved for the cache itself")
        self.manifest_path = self.dir / MANIFEST
        if self.manifest_path.is_file():
            manifest = read_manifest(self.dir)
            if not manifest["shards"] and not manifest["complete"]:
                # A run that stopped before its first shard: start anew.
                self._clean()
                self.manifest_path.unlink()
        if self.manifest_path.is_file():
            self._check_resume(manifest, dtype, rows_per_shard)
            self.manifest = manifest
            self._clean()
        else:
            if self.dir.exists() and (not self.dir.is_dir() or any(
                not p.name.startswith(".") for p in self.dir.iterdir()
            )):
                raise PSAEError(f"{self.dir} exists and is not an activation cache "
                                "(no manifest.json): expected a new or empty folder")
            self.dir.mkdir(parents=True, exist_ok=True)
            self._clean()
            self.manifest = {
                "format": FORMAT, "version": VERSION, "complete": False,
                "dtype": dtype, "storage_dtype": STORAGE[dtype], "d": None,
                "rows_per_shard": rows_per_shard, "total_rows": 0,
                "token_columns": TOKEN_COLUMNS, "shards": [], **self.meta,
            }
            self._write_manifest()
        self._buffer: list[tuple[np.ndarray, np.ndarray]] = []
        self._buffered = 0

    @staticmethod
    def _own_keys() -> tuple[str, ...]:
        return ("format", "version", "complete", "dtype", "storage_dtype", "d",
                "rows_per_shard", "total_rows", "token_columns", "shards")

    # -- state -----------------------------------------------------------------------------

    @property
    def complete(self) -> bool:
        return bool(self.manifest["complete"])

    @property
    def rows_written(self) -> int:
        """Rows in the shards already on disk (excluding rows still buffered)."""
        return int(self.manifest["total_rows"])

    @property
    def shards(self) -> list[dict[str, Any]]:
        return self.manifest["shards"]

    @property
    def d(self) -> int | None:
        return self.manifest["d"]

    @property
    def dtype(self) -> str:
        return self.manifest["dtype"]

    def written_rows_from(self, sequence: int) -> int:
        """How many rows already on disk belong to sequences ≥ `sequence`."""
        count = 0
        for shard in reversed(self.shards):
            if shard["last_sequence"] < sequence:
                break
            if shard["first_sequence"] >= sequence:
                count += shard["rows"]
            else:
                table = np.load(self.dir / shard["tokens"], mmap_mode="r", allow_pickle=False)
                count += int(np.count_nonzero(table[:, 0] >= sequence))
        return count

    def last_sequence(self) -> int | None:
        """Sequence of the last row on disk (None before the first shard)."""
        return self.shards[-1]["last_sequence"] if self.shards else None

    # -- writing ---------------------------------------------------------------------------

    def add(
        self,
        activations: torch.Tensor | np.ndarray,
        tokens: torch.Tensor | np.ndarray,
        sequences: torch.Tensor | np.ndarray,
        positions: torch.Tensor | np.ndarray,
    ) -> None:
        """Append rows ([n, d] activations and n tokens, sequence indices and positions)."""
        if self.complete:
            raise PSAEError(f"{self.dir} is a complete cache: nothing more can be added")
        acts = to_storage(activations, self.dtype)
        if acts.ndim != 2:
            raise PSAEError(f"activations of shape {acts.shape}: expected [rows, d]")
        n, d = acts.shape
        if self.d is None:
            self.manifest["d"] = int(d)
            if self.manifest["rows_per_shard"] is None:
                self.manifest["rows_per_shard"] = default_rows_per_shard(d, self.dtype)
        elif d != self.d:
            raise PSAEError(f"activations of width {d}: the cache at {self.dir} holds d={self.d}")
        table = np.stack([_int64(sequences), _int64(positions), _int64(tokens)], axis=1)
        if table.shape[0] != n:
            raise ValueError(f"{n} activation rows but {table.shape[0]} tokens/positions")
        if n == 0:
            return
        self._buffer.append((acts, table))
        self._buffered += n
        rps = self.manifest["rows_per_shard"]
        while self._buffered >= rps:
            self._flush(rps)

    def note(self, **fields: Any) -> None:
        """Record informative entries in the manifest now (not compared on resume)."""
        clash = sorted(set(fields) & (set(self._own_keys()) | set(self.meta)))
        if clash:
            raise ValueError(f"manifest key {clash[0]!r} cannot be changed by note()")
        self.manifest.update(_normalise(fields))
        self._write_manifest()

    def finish(self, **extra: Any) -> Path:
        """Write the remaining rows as the last shard, mark the cache complete, return its
        manifest path. `extra` entries (e.g. whether the text ran out) go to the manifest."""
        if self._buffered:
            self._flush(self._buffered)
        if self.rows_written == 0:
            raise PSAEError(f"no activation rows were written to {self.dir}")
        self.manifest["complete"] = True
        self.note(**extra)
        return self.manifest_path

    def _flush(self, rows: int) -> None:
        acts = np.concatenate([a for a, _ in self._buffer])
        table = np.concatenate([t for _, t in self._buffer])
        rest = (acts[rows:], table[rows:])
        acts, table = acts[:rows], table[:rows]
        index = len(self.shards)
        names = {"activations": f"acts_{index:05d}.npy", "tokens": f"tokens_{index:05d}.npy"}
        checksums = {}
        for key, array in (("activations", acts), ("tokens", table)):
            data = _npy_bytes(array)
            checksums[key] = hashlib.sha256(data).hexdigest()
            write_bytes_atomic(self.dir / names[key], data)
        self.shards.append({
            "index": index, "rows": int(rows), **names, "sha256": checksums,
            "first_sequence": int(table[0, 0]), "last_sequence": int(table[-1, 0]),
        })
        self.manifest["total_rows"] = self.rows_written + int(rows)
        self._write_manifest()
        self._buffer = [rest] if rest[0].shape[0] else []
        self._buffered = int(rest[0].shape[0])

    def _write_manifest(self) -> None:
        write_json_atomic(self.manifest_path, self.manifest)

    def _check_resume(self, manifest: dict, dtype: str, rows_per_shard: int | None) -> None:
        where = self.manifest_path
        wanted = {"dtype": dtype, **self.meta}
        if rows_per_shard is not None and manifest.get("rows_per_shard") is not None:
            wanted["rows_per_shard"] = rows_per_shard
        for key, value in wanted.items():
            if manifest.get(key) != value:
                raise PSAEError(
                    f"{where} was written with {key}={_short(manifest.get(key))} but this run "
                    f"asks for {key}={_short(value)}: use another folder, or the same settings "
                    "to resume"
                )
        if manifest.get("rows_per_shard") is None and rows_per_shard is not None:
            manifest["rows_per_shard"] = rows_per_shard
        for shard in manifest["shards"]:
            for key in ("activations", "tokens"):
                if not (self.dir / shard[key]).is_file():
                    raise PSAEError(f"{self.dir / shard[key]} is missing: the cache at "
                                    f"{self.dir} is damaged; delete it and extract again")

    def _clean(self) -> None:
        """Remove temporary files and shard files the manifest does not list (left by a run
        stopped between writing a shard and updating the manifest)."""
        listed = {s[k] for s in getattr(self, "manifest", {"shards": []})["shards"]
                  for k in ("activations", "tokens")}
        for path in self.dir.iterdir():
            if path.name.startswith(".") and path.name.endswith(".tmp") and path.is_file():
                path.unlink()
            elif _SHARD_NAME.match(path.name) and path.name not in listed:
                path.unlink()


def _int64(values: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.int64).reshape(-1)


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."


class CachedActivations:
    """A cache folder as an `ActivationSource`: float32 rows, memory-mapped, shuffled.

    Shuffle: the rows are cut into windows of `shuffle_buffer` rows (in disk order, across
    shard boundaries), each window into blocks of `block` rows, and row i of the source is
    found by permuting the blocks of its window with a generator seeded by (seed, window).
    The map from a source row to a disk row is thus a fixed, seeded permutation computable
    for any range, so `rows(start, stop)` is random-access and a resumed trainer reads the
    same rows as an uninterrupted one. A partial last block stays at the end of its window.
    `shuffle_buffer=0` reads in disk order (text order). Larger windows mix better; reads
    gather rows from anywhere in the window (a memory map, so no memory is held for it).

    Checksums: with `verify="lazy"` (default) a shard's files are hashed the first time a
    read touches it; `"open"` hashes every shard up front; `"none"` skips. A mismatch, or a
    shard of the wrong shape, raises a PSAEError naming the file.
    """

    def __init__(
        self,
        path: str | Path,
        shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
        seed: int = 0,
        block: int = 1,
        verify: str = "lazy",
        allow_incomplete: bool = False,
    ) -> None:
        for name, value, low in (("shuffle_buffer", shuffle_buffer, 0), ("block", block, 1),
                                 ("seed", seed, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise PSAEError(f"{name}={value!r}: expected an integer ≥ {low}")
        if verify not in ("lazy", "open", "none"):
            raise PSAEError(f"verify={verify!r}: expected 'lazy', 'open' or 'none'")
        self.manifest = read_manifest(path)
        self.dir = manifest_path(path).parent
        if not self.manifest.get("complete") and not allow_incomplete:
            raise PSAEError(f"the activation cache at {self.dir} is incomplete (extraction "
                            "stopped early?): run the same extraction again to finish it")
        if not self.manifest["shards"]:
            raise PSAEError(f"the activation cache at {self.dir} holds no rows")
        self.dtype = self.manifest["dtype"]
        self.d_in = int(self.manifest["d"])
        self.hook = self.manifest.get("hook")
        counts = np.array([s["rows"] for s in self.manifest["shards"]], dtype=np.int64)
        self._ends = np.cumsum(counts)
        self._starts = self._ends - counts
        self._len = int(self._ends[-1])
        self.seed, self.block = seed, block
        self.shuffle = shuffle_buffer > 0
        self._window = max(block, shuffle_buffer // block * block)
        self._perms: OrderedDict[int, np.ndarray] = OrderedDict()
        self._verified: set[int] = set()
        self._verify = verify
        if verify == "open":
            for index in range(len(counts)):
                self._check_shard(index)

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return (f"CachedActivations({str(self.dir)!r}, rows={self._len}, d={self.d_in}, "
                f"hook={self.hook!r})")

    # -- the row map -------------------------------------------------------------------------

    def physical_rows(self, start: int, stop: int) -> np.ndarray:
        """Disk-order indices of source rows [start, stop)."""
        if not 0 <= start <= stop <= self._len:
            raise PSAEError(f"rows [{start}, {stop}) of a cache of {self._len} rows: "
                            "expected 0 ≤ start ≤ stop ≤ len")
        index = np.arange(start, stop, dtype=np.int64)
        if not self.shuffle or start == stop:
            return index
        window, block = self._window, self.block
        out = np.empty_like(index)
        first, last = start // window, (stop - 1) // window
        for w in range(first, last + 1):
            lo = max(start, w * window) - start
            hi = min(stop, (w + 1) * window) - start
            base = w * window
            offset = index[lo:hi] - base
            blocks = min(window, self._len - base) // block
            perm = self._permutation(w, blocks)
            inside = offset < blocks * block
            mapped = offset.copy()
            mapped[inside] = perm[offset[inside] // block] * block + offset[inside] % block
            out[lo:hi] = base + mapped
        return out

    def _permutation(self, window: int, blocks: int) -> np.ndarray:
        perm = self._perms.get(window)
        if perm is None:
            rng = np.random.default_rng([self.seed, window])
            perm = rng.permutation(blocks)
            self._perms[window] = perm
            while len(self._perms) > 4:
                self._perms.popitem(last=False)
        else:
            self._perms.move_to_end(window)
        return perm

    # -- reading -----------------------------------------------------------------------------

    def rows(self, start: int, stop: int) -> torch.Tensor:
        """Float32 rows [start, stop) as a [stop - start, d_in] tensor."""
        stored = self._gather(self.physical_rows(start, stop), "activations")
        return from_storage(stored, self.dtype)

    def token_table(self, start: int, stop: int) -> np.ndarray:
        """int64 [n, 3] (sequence, position, token) of source rows [start, stop)."""
        return self._gather(self.physical_rows(start, stop), "tokens")

    def tokens(self, start: int, stop: int) -> torch.Tensor:
        """Token ids of source rows [start, stop)."""
        return torch.from_numpy(self.token_table(start, stop)[:, 2].copy())

    def positions(self, start: int, stop: int) -> torch.Tensor:
        """[n, 2] (sequence, position in its window) of source rows [start, stop)."""
        return torch.from_numpy(self.token_table(start, stop)[:, :2].copy())

    def read_physical(self, indices: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        """Float32 activations and (sequence, position, token) of rows in disk order."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= self._len):
            raise PSAEError(f"disk rows outside [0, {self._len})")
        return (from_storage(self._gather(indices, "activations"), self.dtype),
                self._gather(indices, "tokens"))

    def verify(self) -> None:
        """Hash every shard now (PSAEError naming the first corrupt one)."""
        for index in range(len(self._ends)):
            self._check_shard(index)

    def _gather(self, physical: np.ndarray, kind: str) -> np.ndarray:
        n = physical.shape[0]
        width = self.d_in if kind == "activations" else len(TOKEN_COLUMNS)
        dtype = self.manifest["storage_dtype"] if kind == "activations" else np.int64
        out = np.empty((n, width), dtype=dtype)
        if n == 0:
            return out
        in_order = n == 1 or bool(np.all(physical[1:] > physical[:-1]))
        order = np.arange(n) if in_order else np.argsort(physical, kind="stable")
        ordered = physical[order]
        shard_of = np.searchsorted(self._ends, ordered, side="right")
        cuts = np.flatnonzero(np.diff(shard_of)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, n]):
            shard = int(shard_of[lo])
            local = ordered[lo:hi] - self._starts[shard]
            array = self._open(shard, kind)
            if local[-1] - local[0] == hi - lo - 1:
                chunk = array[local[0]:local[-1] + 1]
            else:
                chunk = array[local]
            if in_order:
                out[lo:hi] = chunk
            else:
                out[order[lo:hi]] = chunk
            del array
        return out

    def _open(self, shard: int, kind: str) -> np.ndarray:
        if self._verify != "none" and shard not in self._verified:
            self._check_shard(shard)
        path = self.dir / self.manifest["shards"][shard][kind]
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            raise PSAEError(f"{path} is missing from the activation cache") from None
        except (ValueError, OSError, EOFError) as err:
            raise PSAEError(f"{path} is not a readable .npy shard ({err})") from None

    def _check_shard(self, index: int) -> None:
        shard = self.manifest["shards"][index]
        for kind, width, dtype in (
            ("activations", self.d_in, self.manifest["storage_dtype"]),
            ("tokens", len(TOKEN_COLUMNS), "int64"),
        ):
            path = self.dir / shard[kind]
            if not path.is_file():
                raise PSAEError(f"{path} is missing from the activation cache")
            if _sha256(path) != shard["sha256"][kind]:
                raise PSAEError(f"{path} is corrupt: its sha256 differs from the manifest's; "
                                "extract this cache again")
            try:
                array = np.load(path, mmap_mode="r", allow_pickle=False)
            except (ValueError, OSError, EOFError) as err:
                raise PSAEError(f"{path} is not a readable .npy shard ({err})") from None
            if array.shape != (shard["rows"], width) or array.dtype != np.dtype(dtype):
                raise PSAEError(f"{path} holds {array.dtype} {array.shape}: the manifest "
                                f"expects {dtype} ({shard['rows']}, {width})")
            del array
        self._verified.add(index)


def check_sae_fits(sae: Any, source: Any) -> None:
    """PSAEError unless the SAE's d_in (or an int) equals the source's width."""
    d_in = sae if isinstance(sae, int) else getattr(sae, "d_in", None)
    width = getattr(source, "d_in", None)
    if d_in is not None and width is not None and int(d_in) != int(width):
        where = f" at {source.dir}" if isinstance(source, CachedActivations) else ""
        hook = f" (hook {source.hook})" if getattr(source, "hook", None) else ""
        raise PSAEError(f"the SAE reads d_in={d_in} but the activation cache{where}{hook} "
                        f"holds d={width}")
