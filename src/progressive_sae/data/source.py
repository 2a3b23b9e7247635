"""Where activations come from. A source knows its width and hands out rows.

Random-access sources (`rows(start, stop)`) let training resume at any step in O(1);
plain iterables of tensors are accepted too and are replayed up to the resume point.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from progressive_sae.errors import PSAEError


@runtime_checkable
class ActivationSource(Protocol):
    """Rows of activations, addressable by position."""

    d_in: int

    def __len__(self) -> int: ...

    def rows(self, start: int, stop: int) -> torch.Tensor:
        """Float32 rows [start, stop) as a [stop - start, d_in] tensor."""
        ...


class TensorSource:
    """An in-memory [T, d] tensor or array."""

    def __init__(self, data: torch.Tensor | np.ndarray) -> None:
        tensor = torch.as_tensor(data)
        if tensor.ndim != 2:
            raise PSAEError(
                f"activations of shape {tuple(tensor.shape)}: expected a 2-D [tokens, d] array"
            )
        if not tensor.is_floating_point():
            raise PSAEError(f"activations of dtype {tensor.dtype}: expected floating point")
        self.data = tensor
        self.d_in = tensor.shape[1]

    def __len__(self) -> int:
        return self.data.shape[0]

    def rows(self, start: int, stop: int) -> torch.Tensor:
        return self.data[start:stop].float()


class NpySource:
    """A [T, d] `.npy` file, read through a memory map that is dropped after each read.

    Re-opening the map per read keeps the process's resident memory at one batch, not the
    whole file, however long training runs.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise PSAEError(f"{self.path} does not exist")
        array = self._open()
        if array.ndim != 2:
            raise PSAEError(
                f"{self.path} holds an array of shape {array.shape}: expected [tokens, d]"
            )
        if not np.issubdtype(array.dtype, np.floating):
            raise PSAEError(f"{self.path} holds {array.dtype} values: expected floating point")
        if array.shape[0] == 0:
            raise PSAEError(f"{self.path} holds no rows (shape {array.shape}): expected ≥ 1")
        self.d_in = int(array.shape[1])
        self._len = int(array.shape[0])

    def _open(self) -> np.ndarray:
        try:
            return np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise PSAEError(f"{self.path} is not a readable .npy array ({err})") from None

    def __len__(self) -> int:
        return self._len

    def rows(self, start: int, stop: int) -> torch.Tensor:
        array = self._open()
        chunk = np.array(array[start:stop], dtype=np.float32)
        del array
        return torch.from_numpy(chunk)


class IterableSource:
    """Any iterable of [n, d] float tensors (re-iterable if training is to resume)."""

    def __init__(self, iterable: Iterable[torch.Tensor], d_in: int | None = None) -> None:
        self.iterable = iterable
        self.d_in = d_in

    def __iter__(self) -> Iterator[torch.Tensor]:
        for item in self.iterable:
            tensor = torch.as_tensor(item)
            if tensor.ndim == 1:
                tensor = tensor.unsqueeze(0)
            if tensor.ndim != 2:
                raise PSAEError(
                    f"an activation chunk of shape {tuple(tensor.shape)}: expected [n, d]"
                )
            yield tensor.float()


def as_source(data: object) -> ActivationSource | IterableSource:
    """Wrap a tensor, array, .npy path, source or iterable of tensors."""
    if isinstance(data, (torch.Tensor, np.ndarray)):
        return TensorSource(data)
    if isinstance(data, (str, Path)):
        path = Path(data)
        if path.suffix != ".npy":
            raise PSAEError(f"{path}: expected a .npy file of activations")
        return NpySource(path)
    if isinstance(data, (ActivationSource, IterableSource)):
        return data
    if isinstance(data, Iterable):
        return IterableSource(data)
    raise PSAEError(f"activations of type {type(data).__name__}: expected a tensor, array, "
                    ".npy path or iterable of tensors")


class RowRange:
    """Rows [start, stop) of a random-access source, seen as a source of their own
    (e.g. one held-out set split into a ranking part and an evaluation part)."""

    def __init__(self, source: ActivationSource, start: int, stop: int) -> None:
        if not 0 <= start < stop <= len(source):
            raise PSAEError(
                f"rows [{start}, {stop}): expected 0 ≤ start < stop ≤ {len(source)}, the "
                "source's row count"
            )
        self.source, self.start, self.stop = source, start, stop
        self.d_in = source.d_in

    def __len__(self) -> int:
        return self.stop - self.start

    def rows(self, start: int, stop: int) -> torch.Tensor:
        stop = min(stop, len(self))
        return self.source.rows(self.start + start, self.start + stop)
