"""A mixing buffer: rows that arrive in text order leave as shuffled training batches.

The buffer is one fixed [capacity, width] tensor (its memory is capacity × width × bytes of
the storage dtype, allocated once). It is filled, its slots are put in a random order by a
seeded local generator, and the first half of that order leaves as batches; the emptied
slots are then refilled with the next rows and the whole buffer is shuffled again — so a
row stays for a geometric number of half-rounds, as in SAELens' activation store. When the
rows run out, what is left leaves as full batches and the next request raises
`RowsExhausted` (saying how many rows were read).

Everything is deterministic given (feed, capacity, batch, seed), and `state()` captures the
buffer between two batches exactly (its tensors and a few integers): restoring it continues
the same batches bit for bit. `capacity=0` mixes nothing: batches are the rows in order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import torch

from progressive_sae.errors import PSAEError


class RowFeed(Protocol):
    """Rows in a fixed order, chunk by chunk, that can start again at any chunk."""

    width: int

    def chunks(self, start: int) -> Iterator[torch.Tensor]:
        """Chunks start, start + 1, … as [n, width] tensors in the storage dtype."""
        ...

    def describe(self) -> str:
        """Where the rows come from, for messages ("text source 'x'")."""
        ...


class RowsExhausted(PSAEError):
    """The feed ran dry before a full batch could be made."""

    def __init__(self, rows_read: int, feed: str) -> None:
        super().__init__(f"{feed} ran dry after {rows_read:,} rows")
        self.rows_read, self.feed = rows_read, feed


class MixingBuffer:
    """Shuffled batches of `batch` rows from a feed, through a buffer of `capacity` rows."""

    def __init__(self, feed: RowFeed, capacity: int, batch: int, seed: int = 0) -> None:
        for name, value, low in (("capacity", capacity, 0), ("batch", batch, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise PSAEError(f"{name}={value!r}: expected an integer ≥ {low}")
        if capacity and capacity < 2 * batch:
            raise PSAEError(f"a buffer of {capacity:,} rows for batches of {batch:,}: expected at "
                            f"least two batches ({2 * batch:,} rows) so that half a buffer "
                            "holds a batch")
        self.feed, self.capacity, self.batch = feed, capacity, batch
        self.generator = torch.Generator().manual_seed(seed)
        self.chunk_index = 0
        """Chunks of the feed taken so far (the last one perhaps only in part: `pending`)."""
        self.rows_read = 0
        self.pending: torch.Tensor | None = None
        self.pool: torch.Tensor | None = None
        self.order = torch.zeros(0, dtype=torch.long)
        """Slots of the pool in their shuffled order; order[:out] leave as batches."""
        self.free = torch.arange(capacity)
        """Slots to fill before the next shuffle."""
        self.taken = self.out = 0
        self.dry = False
        self._chunks: Iterator[torch.Tensor] | None = None

    # -- rows in ---------------------------------------------------------------------------
    def _read(self, n: int) -> torch.Tensor | None:
        """Up to n next rows of the feed (None once it is dry)."""
        parts, got = [], 0
        while got < n:
            if self.pending is None:
                if self._chunks is None:
                    self._chunks = self.feed.chunks(self.chunk_index)
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                self.chunk_index += 1
                self.pending = chunk
            take = min(n - got, self.pending.shape[0])
            parts.append(self.pending[:take])
            self.pending = self.pending[take:] if take < self.pending.shape[0] else None
            got += take
        self.rows_read += got
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _refill_and_mix(self) -> None:
        slots = self.free
        rows = self._read(len(slots)) if len(slots) else None
        got = 0 if rows is None else rows.shape[0]
        if rows is not None:
            if self.pool is None:
                self.pool = torch.empty(self.capacity, rows.shape[1], dtype=rows.dtype)
            self.pool[slots[:got]] = rows
        if got < len(slots):
            self.dry = True
        valid = torch.cat([self.order[self.out:], slots[:got]]).sort().values
        self.order = valid[torch.randperm(len(valid), generator=self.generator)]
        half = self.capacity // 2 // self.batch * self.batch
        self.out = (len(valid) // self.batch * self.batch) if self.dry else half
        self.taken = 0
        self.free = torch.zeros(0, dtype=torch.long)

    # -- batches out -----------------------------------------------------------------------
    def next_batch(self) -> torch.Tensor:
        """The next [batch, width] rows in the storage dtype."""
        if self.capacity == 0:
            rows = self._read(self.batch)
            if rows is None or rows.shape[0] < self.batch:
                raise RowsExhausted(self.rows_read, self.feed.describe())
            return rows
        if self.taken == self.out:
            if self.dry:
                raise RowsExhausted(self.rows_read, self.feed.describe())
            self.free = self.order[:self.out] if self.order.numel() else self.free
            self._refill_and_mix()
            if self.out == 0:
                raise RowsExhausted(self.rows_read, self.feed.describe())
        assert self.pool is not None
        slots = self.order[self.taken:self.taken + self.batch]
        self.taken += self.batch
        return self.pool[slots]

    # -- exact resume ----------------------------------------------------------------------
    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """(tensors, JSON-able integers) of the buffer between two batches."""
        tensors = {"order": self.order.clone(), "free": self.free.clone(),
                   "generator": self.generator.get_state()}
        if self.pool is not None:
            tensors["pool"] = self.pool
        if self.pending is not None:
            tensors["pending"] = self.pending.contiguous()
        info = {"chunk_index": self.chunk_index, "rows_read": self.rows_read,
                "taken": self.taken, "out": self.out, "dry": self.dry,
                "capacity": self.capacity, "batch": self.batch}
        return tensors, info

    def load_state(self, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
        for key in ("capacity", "batch"):
            if info.get(key) != getattr(self, key):
                raise PSAEError(f"the saved stream was mixed with {key}={info.get(key)!r}, not "
                                f"{getattr(self, key)!r}: resume with the run's settings")
        self.order, self.free = tensors["order"].long(), tensors["free"].long()
        self.generator.set_state(tensors["generator"])
        self.pool = tensors.get("pool")
        self.pending = tensors.get("pending")
        self.chunk_index, self.rows_read = int(info["chunk_index"]), int(info["rows_read"])
        self.taken, self.out, self.dry = int(info["taken"]), int(info["out"]), bool(info["dry"])
        self._chunks = None
