"""Reading a cache as an ActivationSource: memory-mapped, verified, shuffled."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from progressive_sae.data.cache.format import (
    DEFAULT_SHUFFLE_BUFFER,
    TOKEN_COLUMNS,
    from_storage,
    manifest_path,
    read_manifest,
    sha256_file,
)
from progressive_sae.errors import PSAEError


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
            if sha256_file(path) != shard["sha256"][kind]:
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

