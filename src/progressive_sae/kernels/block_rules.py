"""Activation rules that choose latents one block of batch rows at a time.

The encoder then never holds the whole B × N pre-activation matrix, only one block of rows
(each row complete, so a row's choice costs what it costs on the whole matrix).

* `RowRule` wraps a rule under which each row's choice depends on that row alone (per-row
  top-k, AuxK's top-k among dead latents, a threshold).
* `BatchRule` wraps a rule over the whole batch that keeps, in every row, some of that row's
  largest entries (the batch top-k·B rule of BatchTopK): each block contributes each row's
  largest `width` entries as candidates, the rule runs on the candidates, and rows whose
  candidates were all kept are recomputed wider, so the choice is exactly the dense one.

Every rule is also callable on the whole matrix, where it is the plain dense rule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch

Code = tuple[torch.Tensor, torch.Tensor]
"""(values [B, K], latent indices [B, K]); zero values are padding."""
DenseRule = Callable[[torch.Tensor], Code]
FullRows = Callable[[torch.Tensor], torch.Tensor]
"""Recomputes the complete pre-activations [r, N] of the given batch rows."""


@runtime_checkable
class BlockRule(Protocol):
    def __call__(self, pre: torch.Tensor) -> Code:
        """The rule on the whole [B, N] matrix."""

    def pick(self, block: torch.Tensor) -> Code:
        """Candidates from a block of complete rows of the pre-activations."""

    def finish(self, candidates: Code, full_rows: FullRows, num_latents: int) -> Code:
        """The rule's choice for the batch from every block's candidates, in row order."""


def concat_rows(codes: list[Code]) -> Code:
    """Stack per-block codes of different widths, padding with zero-valued entries."""
    width = max(v.shape[1] for v, _ in codes)

    def pad(t: torch.Tensor, fill: float) -> torch.Tensor:
        return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=fill)

    return (torch.cat([pad(v, 0.0) for v, _ in codes]),
            torch.cat([pad(i, 0) for _, i in codes]))


class RowRule:
    """A rule that decides each row from that row alone."""

    def __init__(self, select: DenseRule) -> None:
        self.select = select

    def __call__(self, pre: torch.Tensor) -> Code:
        return self.select(pre)

    def pick(self, block: torch.Tensor) -> Code:
        return self.select(block)

    def finish(self, candidates: Code, full_rows: FullRows, num_latents: int) -> Code:
        return candidates


class DeadTopK(RowRule):
    """AuxK's rule: each row's k_aux largest pre-activations among the dead latents."""

    def __init__(self, dead: torch.Tensor, k_aux: int) -> None:
        self.dead_idx = dead.nonzero().squeeze(1)
        self.width = min(k_aux, self.dead_idx.numel())
        super().__init__(self._select)

    def _select(self, pre: torch.Tensor) -> Code:
        values, positions = pre[:, self.dead_idx].topk(self.width, dim=1, sorted=False)
        return values, self.dead_idx[positions]


class BatchRule:
    """A batch-wide rule that keeps, in each row, only entries among that row's largest."""

    def __init__(self, select: DenseRule, width: int) -> None:
        self.select = select
        self.width = width
        """Candidates per row and block; rows that need more are recomputed."""

    def __call__(self, pre: torch.Tensor) -> Code:
        return self.select(pre)

    def pick(self, block: torch.Tensor) -> Code:
        return block.topk(min(self.width, block.shape[1]), dim=1, sorted=True)

    def finish(self, candidates: Code, full_rows: FullRows, num_latents: int) -> Code:
        values, indices = candidates
        while True:
            chosen, positions = self.select(values)
            width = values.shape[1]
            kept = torch.zeros_like(values, dtype=torch.bool).scatter_(1, positions, chosen != 0)
            # A row whose every candidate was kept may hold more entries above the cut.
            short = kept.all(1).nonzero().squeeze(1)
            if short.numel() == 0 or width >= num_latents:
                return chosen, torch.gather(indices, 1, positions)
            wider = min(num_latents, 2 * width)
            floor = torch.finfo(values.dtype).min  # never kept: the batch holds enough entries
            values = torch.nn.functional.pad(values, (0, wider - width), value=floor)
            indices = torch.nn.functional.pad(indices, (0, wider - width), value=0)
            top = full_rows(short).topk(wider, dim=1, sorted=True)
            values[short], indices[short] = top.values, top.indices
