"""Skip the blocks before a splice: replay their output from the clean pass on the same tokens.

Scoring many SAEs at one hook point runs the LM on the same windows once per SAE, and blocks
0..L compute the same thing every time. On the first pass over a batch, block L's output is
captured; on later passes, blocks 0..L are swapped for stand-ins that return it, so only the
blocks after L (plus the embeddings and the head) run. The result is exactly that of the full
forward pass: the later blocks see the same tensor, in the same dtype, with the same masks.

The stand-ins answer every attribute the model's forward reads from its layers (Gemma-2 reads
each layer's `attention_type`) from the block they replace. Captured outputs are kept in a
small least-recently-used store per model, bounded in bytes, keyed by the layer and the
tokens' and mask's contents; the LM's weights are assumed frozen while it is in use.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import OrderedDict
from collections.abc import Iterator

import torch
from torch import nn

DEFAULT_MAX_BYTES = 512 << 20
"""Captured block outputs kept per model, at most (least recently used dropped first)."""


def _tensor_bytes(output: object) -> int:
    items = output if isinstance(output, tuple) else (output,)
    return sum(t.numel() * t.element_size() for t in items if isinstance(t, torch.Tensor))


def batch_key(layer: int, input_ids: torch.Tensor, mask: torch.Tensor | None) -> tuple:
    """What makes two passes share blocks 0..layer: the layer, the tokens and the mask."""
    digest = hashlib.blake2b(digest_size=16)
    for t in (input_ids, mask):
        if t is not None:
            digest.update(str((tuple(t.shape), t.dtype, t.device)).encode())
            digest.update(t.detach().cpu().contiguous().numpy().tobytes())
        else:
            digest.update(b"none")
    return (layer, digest.hexdigest())


class BlockOutputCache:
    """Block outputs of clean passes, least recently used dropped beyond `max_bytes`."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, object] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple) -> object | None:
        output = self._items.get(key)
        if output is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return output

    def put(self, key: tuple, output: object) -> None:
        size = _tensor_bytes(output)
        if size > self.max_bytes or key in self._items:
            return
        self._items[key] = output
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, dropped = self._items.popitem(last=False)
            self._bytes -= _tensor_bytes(dropped)

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0


class _Replay(nn.Module):
    """Stands in for one block: returns the captured output of block L, whatever it is given."""

    def __init__(self, block: nn.Module, output: object) -> None:
        super().__init__()
        # Kept out of the module tree (no parameters, no hooks of its own).
        self.__dict__["_block"] = block
        self.__dict__["_output"] = output

    def forward(self, *args: object, **kwargs: object) -> object:
        return self.__dict__["_output"]

    def __getattr__(self, name: str) -> object:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.__dict__["_block"], name)


def _detached(output: object) -> object:
    if isinstance(output, tuple):
        return tuple(t.detach() if isinstance(t, torch.Tensor) else t for t in output)
    return output.detach() if isinstance(output, torch.Tensor) else output


@contextlib.contextmanager
def blocks_replayed(blocks: nn.ModuleList, layer: int, output: object) -> Iterator[nn.Module]:
    """Blocks 0..layer answer `output` for the duration; yields the stand-in of block `layer`
    (register the splice hook on it). The real blocks are always put back."""
    originals = [blocks[i] for i in range(layer + 1)]
    stand_ins = [_Replay(block, output) for block in originals]
    try:
        for i, stand_in in enumerate(stand_ins):
            blocks[i] = stand_in
        yield stand_ins[layer]
    finally:
        for i, block in enumerate(originals):
            blocks[i] = block


def capture_hook(store: list) -> object:
    """A forward hook that keeps the block's (detached) output and leaves it unchanged."""

    def hook(module: nn.Module, args: object, output: object) -> None:
        store.append(_detached(output))

    return hook
