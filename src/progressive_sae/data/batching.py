"""Cutting a source into training batches, deterministically and resumably."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from progressive_sae.data.source import ActivationSource, IterableSource
from progressive_sae.errors import PSAEError


def iterate_batches(
    source: ActivationSource | IterableSource,
    global_batch: int,
    start_batch: int = 0,
    rank: int = 0,
    world: int = 1,
) -> Iterator[torch.Tensor]:
    """Yield this rank's slice of global batches start_batch, start_batch + 1, ….

    Random-access sources are read in order and wrap around at the end (epochs);
    iterables are re-chunked and replayed up to `start_batch`, and end when exhausted.
    """
    if global_batch % world:
        raise PSAEError(f"batch_size={global_batch}: expected a multiple of the {world} processes")
    local = global_batch // world
    lo, hi = rank * local, (rank + 1) * local
    if isinstance(source, IterableSource):
        yield from _iterable_batches(source, global_batch, start_batch, lo, hi)
        return
    total = len(source)
    if total == 0:
        raise PSAEError("the activation source holds no rows")
    batch = start_batch
    while True:
        start = (batch * global_batch + lo) % total
        parts, need = [], hi - lo
        while need > 0:
            take = min(need, total - start)
            parts.append(source.rows(start, start + take))
            need -= take
            start = 0
        yield parts[0] if len(parts) == 1 else torch.cat(parts)
        batch += 1


def first_rows(source: ActivationSource | IterableSource, global_batch: int,
               rows: int) -> torch.Tensor:
    """The first `rows` rows of the global batches, as every process reads them."""
    parts, got = [], 0
    for batch in iterate_batches(source, global_batch):
        parts.append(batch)
        got += batch.shape[0]
        if got >= rows:
            break
    return torch.cat(parts)[:rows]


def _iterable_batches(
    source: IterableSource, global_batch: int, start_batch: int, lo: int, hi: int
) -> Iterator[torch.Tensor]:
    buffer: list[torch.Tensor] = []
    held = 0
    index = 0
    seen_any = False
    for chunk in source:
        seen_any = seen_any or chunk.shape[0] > 0
        buffer.append(chunk)
        held += chunk.shape[0]
        while held >= global_batch:
            joined = torch.cat(buffer)
            batch, rest = joined[:global_batch], joined[global_batch:]
            buffer, held = [rest], rest.shape[0]
            if index >= start_batch:
                yield batch[lo:hi]
            index += 1
    if not seen_any:
        raise PSAEError("the activation source holds no rows")
