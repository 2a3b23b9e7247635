"""Activation rows of an LM run over the windows of a text: what `extract` writes to a cache
and what a live stream mixes into training batches (one code path, so both see the very same
numbers).

Windows are grouped into passes of `batch_size` windows (pass p holds windows p·B … p·B+B-1),
right-padded to the longest, run through the LM up to the deepest hook, and every real
position is kept (the prepended BOS dropped with `exclude_bos`). Under data parallelism rank r
runs the passes p ≡ r (mod world): each rank reads its own windows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np
import torch

from progressive_sae.errors import PSAEError
from progressive_sae.lm.text import TextConfig, bos_id, iter_windows

ActivationFn = Callable[[Any, torch.Tensor, str], torch.Tensor]
"""`activations(lm, input_ids [B, T], hook) -> [B, T, d]`."""

TORCH_DTYPES = {"float16": torch.float16, "float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass
class PassRows:
    """The kept rows of one forward pass."""

    index: int
    """Pass number p (windows p·B … p·B+B-1)."""
    acts: list[torch.Tensor]
    """Per hook, [n, d] CPU rows in the requested dtype."""
    tokens: torch.Tensor
    """[n] token ids."""
    sequences: torch.Tensor
    """[n] window index of each row."""
    positions: torch.Tensor
    """[n] place of each row in its window."""


def pass_rows(
    lm: Any, text_config: TextConfig, hooks: list[str], batch_size: int,
    exclude_bos: bool = True, dtype: str = "float32", start_pass: int = 0, rank: int = 0,
    world: int = 1, activation_fn: ActivationFn | None = None,
) -> Iterator[PassRows]:
    """The rows of passes start_pass, start_pass + 1, … that belong to `rank`, in order."""
    if dtype not in TORCH_DTYPES:
        raise PSAEError(f"dtype={dtype!r}: expected one of {sorted(TORCH_DTYPES)}")
    tokenizer = getattr(lm, "tokenizer", None)
    if tokenizer is None:
        raise PSAEError("the language model has no tokenizer: expected lm.tokenizer")
    run = _runner(lm, hooks, activation_fn)
    drop_bos = bool(exclude_bos) and bos_id(text_config, tokenizer) is not None
    pad = pad_id(tokenizer)
    device = lm_device(lm)
    windows = islice(iter_windows(text_config, tokenizer), start_pass * batch_size, None)
    index = start_pass
    while True:
        batch = list(islice(windows, batch_size))
        if not batch:
            return
        if index % world == rank:
            yield _rows(run, index, batch, batch_size, pad, device, drop_bos,
                        TORCH_DTYPES[dtype])
        index += 1


def _runner(lm: Any, hooks: list[str], activation_fn: ActivationFn | None
            ) -> Callable[[torch.Tensor], list[torch.Tensor]]:
    if activation_fn is not None:
        return lambda ids: [activation_fn(lm, ids, hook) for hook in hooks]
    from progressive_sae.lm.hooks import activations_at

    return lambda ids: activations_at(lm, ids, hooks)


def _rows(run: Callable[[torch.Tensor], list[torch.Tensor]], index: int,
          batch: list[np.ndarray], batch_size: int, pad: int, device: torch.device | None,
          drop_bos: bool, dtype: torch.dtype) -> PassRows:
    ids, lengths = pad_windows(batch, pad)
    try:
        with torch.inference_mode():
            outs = run(ids.to(device) if device else ids)
    except torch.OutOfMemoryError:
        raise PSAEError(f"the LM ran out of memory on a pass of {len(batch)} windows of "
                        f"{ids.shape[1]} tokens: lower the windows per pass (batch_size) or "
                        "use a larger device") from None
    keep = torch.arange(ids.shape[1])[None, :] < lengths[:, None]
    if drop_bos:
        keep[:, 0] = False
    acts = []
    for out in outs:
        if out.ndim != 3 or tuple(out.shape[:2]) != tuple(ids.shape):
            raise PSAEError(f"activations of shape {tuple(out.shape)} for input_ids of "
                            f"shape {tuple(ids.shape)}: expected [batch, tokens, d]")
        acts.append(out.detach().to(dtype).cpu()[keep])
    first = index * batch_size
    return PassRows(
        index=index, acts=acts, tokens=ids[keep],
        sequences=(first + torch.arange(ids.shape[0]))[:, None].expand_as(ids)[keep],
        positions=torch.arange(ids.shape[1]).expand_as(ids)[keep],
    )


def pad_windows(windows: list[np.ndarray], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded [B, T] ids and the lengths. Causal attention keeps the real positions
    independent of the padding after them, so no attention mask is needed."""
    lengths = torch.tensor([len(w) for w in windows], dtype=torch.long)
    ids = torch.full((len(windows), int(lengths.max())), pad, dtype=torch.long)
    for row, window in enumerate(windows):
        ids[row, :len(window)] = torch.from_numpy(window)
    return ids, lengths


def pad_id(tokenizer: Any) -> int:
    for name in ("pad_token_id", "eos_token_id", "bos_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return 0


def lm_device(lm: Any) -> torch.device | None:
    device = getattr(lm, "device", None)
    if isinstance(device, (torch.device, str)):
        return torch.device(device)
    model = getattr(lm, "model", None)
    if isinstance(model, torch.nn.Module):
        parameter = next(model.parameters(), None)
        if parameter is not None:
            return parameter.device
    return None
