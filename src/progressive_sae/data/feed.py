"""What a one-pass trainer reads: every step one batch per hook point, the same for every SAE.

Two feeds share one small interface (`BatchFeed`):

* `StreamFeed`: rows that arrive in order (a live LM, or a cache read in text order) mixed
  by a `MixingBuffer`; one per process, each on its own rows. Its exact state between two
  steps is saved with the checkpoints.
* `SourceFeed`: a random-access `ActivationSource` (a cache, a .npy file), read as the
  single-SAE trainer reads it; its state is the step alone.

`head(n)` gives the first n rows of each hook's batches (to initialise b_dec) and keeps
those batches to be handed out again, so the b_dec rows are trained on as with a cache.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import torch

from progressive_sae.data.batching import first_rows, iterate_batches
from progressive_sae.data.mixing import MixingBuffer, RowFeed
from progressive_sae.data.source import ActivationSource
from progressive_sae.errors import PSAEError


class BatchFeed(Protocol):
    """One batch per hook point per step."""

    hooks: list[str]
    d_in: int

    def head(self, rows: int) -> dict[str, torch.Tensor]:
        """The first `rows` rows of each hook (before the first `next`)."""
        ...

    def next(self) -> dict[str, torch.Tensor]:
        """This process's float32 [batch, d_in] rows of the next step, per hook."""
        ...

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """(tensors, JSON-able facts) that `load_state` continues from exactly."""
        ...

    def load_state(self, tensors: dict[str, torch.Tensor], info: dict[str, Any],
                   step: int) -> None:
        """Continue as after step `step` of the saved run."""
        ...


class StreamFeed:
    """Mixed batches from a feed of rows that hold every hook side by side ([n, H·d])."""

    def __init__(self, feed: RowFeed, hooks: list[str], d_in: int, buffer_rows: int,
                 batch_rows: int, seed: int = 0, facts: dict[str, Any] | None = None) -> None:
        """`facts`: settings a resumed run must share with the saved one (JSON-able)."""
        if feed.width != d_in * len(hooks):
            raise PSAEError(f"rows of width {feed.width}: expected {len(hooks)} hook(s) × "
                            f"d_in={d_in}")
        self.hooks, self.d_in, self.batch_rows = list(hooks), d_in, batch_rows
        self.buffer = MixingBuffer(feed, buffer_rows, batch_rows, seed)
        self.facts = {"hooks": self.hooks, "d_in": d_in, "seed": seed, **(facts or {})}
        self._replay: list[torch.Tensor] = []

    def _split(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        d = self.d_in
        return {hook: rows[:, i * d:(i + 1) * d].float()
                for i, hook in enumerate(self.hooks)}

    def head(self, rows: int) -> dict[str, torch.Tensor]:
        while len(self._replay) * self.batch_rows < rows:
            self._replay.append(self.buffer.next_batch())
        joined = torch.cat(self._replay)[:rows]
        return self._split(joined)

    def next(self) -> dict[str, torch.Tensor]:
        rows = self._replay.pop(0) if self._replay else self.buffer.next_batch()
        return self._split(rows)

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors, info = self.buffer.state()
        if self._replay:
            tensors["replay"] = torch.stack(self._replay)
        return tensors, {**info, "facts": self.facts}

    def load_state(self, tensors: dict[str, torch.Tensor], info: dict[str, Any],
                   step: int) -> None:
        saved = info.get("facts") or {}
        for key in sorted(set(saved) | set(self.facts)):
            if saved.get(key) != self.facts.get(key):
                raise PSAEError(f"the saved stream was read with {key}={saved.get(key)!r}, "
                                f"not {self.facts.get(key)!r}: resume with the run's settings")
        self.buffer.load_state(tensors, info)
        replay = tensors.get("replay")
        self._replay = list(replay.unbind(0)) if replay is not None else []

    @property
    def rows_read(self) -> int:
        return self.buffer.rows_read


class SourceFeed:
    """A random-access source read as the single-SAE trainer reads it (one hook)."""

    def __init__(self, source: ActivationSource, global_batch: int, hook: str = "data",
                 rank: int = 0, world: int = 1) -> None:
        self.source, self.global_batch = source, global_batch
        self.hooks, self.d_in = [hook], source.d_in
        self.rank, self.world = rank, world
        self._batches: Iterator[torch.Tensor] | None = None
        self._step = 0

    def head(self, rows: int) -> dict[str, torch.Tensor]:
        return {self.hooks[0]: first_rows(self.source, self.global_batch, rows)}

    def next(self) -> dict[str, torch.Tensor]:
        if self._batches is None:
            self._batches = iterate_batches(self.source, self.global_batch, self._step,
                                            self.rank, self.world)
        self._step += 1
        return {self.hooks[0]: next(self._batches)}

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return {}, {"step": self._step}

    def load_state(self, tensors: dict[str, torch.Tensor], info: dict[str, Any],
                   step: int) -> None:
        self._step, self._batches = step, None


class SourceRows:
    """A RowFeed over a random-access source in its own order (a cache read with
    shuffle_buffer=0 is text order): its rows mixed exactly as a live stream's would be."""

    def __init__(self, source: ActivationSource, chunk_rows: int = 4096) -> None:
        self.source, self.chunk_rows, self.width = source, chunk_rows, source.d_in

    def chunks(self, start: int) -> Iterator[torch.Tensor]:
        for lo in range(start * self.chunk_rows, len(self.source), self.chunk_rows):
            yield self.source.rows(lo, min(lo + self.chunk_rows, len(self.source)))

    def describe(self) -> str:
        return f"the source of {len(self.source):,} rows"
