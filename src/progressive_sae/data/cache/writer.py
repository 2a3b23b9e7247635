"""Writing a cache: shards appended atomically, resumable after an interruption."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from progressive_sae.atomic import write_bytes_atomic, write_json_atomic
from progressive_sae.data.cache.format import (
    FORMAT,
    MANIFEST,
    SHARD_NAME,
    STORAGE,
    TOKEN_COLUMNS,
    VERSION,
    as_int64,
    default_rows_per_shard,
    normalise,
    npy_bytes,
    read_manifest,
    short_json,
    to_storage,
)
from progressive_sae.errors import PSAEError


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
        self.meta = normalise(meta or {})
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
        table = np.stack([as_int64(sequences), as_int64(positions), as_int64(tokens)], axis=1)
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
        self.manifest.update(normalise(fields))
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
            data = npy_bytes(array)
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
                    f"{where} was written with {key}={short_json(manifest.get(key))} but this run "
                    f"asks for {key}={short_json(value)}: use another folder, or the same settings "
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
            elif SHARD_NAME.match(path.name) and path.name not in listed:
                path.unlink()


