"""Activation rules that choose latents exactly, from a fast product's candidates.

Every rule decides on the exact pre-activations (`product_bound.exact_values`); a fast
product (bf16 where the hardware multiplies it natively) only proposes candidates, and
`exact_topk` finds each row's largest exact values from them. So the choice is provably
the rule's choice on the exact values: the same latents as an fp32 reference, on every
device, whatever the fast product's dtype. Equal exact values go to the lower latent
(TopK); BatchTopK keeps every entry tied at its cut; thresholds are strict (> θ). A code's
entries stand in one canonical order (TopK: by value, equal values by latent; the other
rules: by latent), so how the candidates were found never changes a result, down to the
order in which a decode sums them.

Rules work on blocks of batch rows (`ProductBlock`), so the encoder never holds the whole
B × N product. Each rule is also callable on a dense matrix of exact values, where it is
the plain reference.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from progressive_sae.kernels.exact_topk import (
    SCAN_SLACK,
    WIDE_ROWS,
    Code,
    certified_topk,
    padded,
    score_reaching,
)
from progressive_sae.kernels.product_block import ProductBlock, largest

BATCH_CANDIDATES = 2
"""BatchTopK: candidates per row, in units of k, before a row is widened."""
SCAN_AFTER = 0.5
"""A TopK rule whose block left more than this share of its rows unsettled takes the next
blocks' candidates by threshold (`exact_topk.certified_topk`'s scan) instead of by a top-k."""
PROBE_ROWS = 64
"""A TopK rule decides its first block's first PROBE_ROWS rows apart, so that the rest of
that block can already scan if those rows needed it."""


@runtime_checkable
class SelectionRule(Protocol):
    def __call__(self, exact: torch.Tensor) -> Code:
        """The rule on a dense [B, N] matrix of exact pre-activations (the reference)."""

    def pick(self, block: ProductBlock) -> object:
        """This block's part of the choice (candidates or, for row rules, the choice)."""

    def finish(self, parts: list, recompute: Recompute) -> Code:
        """The rule's choice for the batch from every block's part, in row order."""


class Recompute(Protocol):
    def __call__(self, rows: torch.Tensor) -> ProductBlock:
        """The fast product of the given global batch rows."""


def concat_rows(codes: list[Code], fill: float = 0.0) -> Code:
    """Stack per-block codes of different widths, padding values with `fill`."""
    width = max(v.shape[1] for v, _ in codes)
    return (torch.cat([padded(v, width, fill) for v, _ in codes]),
            torch.cat([padded(i, width, 0) for _, i in codes]))


def _pack(values: torch.Tensor, latents: torch.Tensor, keep: torch.Tensor) -> Code:
    """The kept entries of each row first, in latent order, as a [B, K] code padded with
    zeros (K ≥ 1)."""
    width = max(1, int(keep.sum(1).max())) if keep.numel() else 1
    # Kept entries in latent order (a canonical order: the reference's), the rest after.
    beyond = torch.iinfo(latents.dtype).max
    order = torch.sort(latents.masked_fill(~keep, beyond), dim=1, stable=True).indices
    order = order[:, :width]
    kept = keep.gather(1, order)
    return values.gather(1, order) * kept, latents.gather(1, order)


class TopK:
    """Each row's k largest exact pre-activations, among `columns` (default all)."""

    def __init__(self, k: int, columns: torch.Tensor | None = None) -> None:
        self.k = k
        self.columns = columns
        self.scan = 0
        """Entries a row scans by threshold in the next block (0: the top-k candidates)."""
        self._probed = False

    def __call__(self, exact: torch.Tensor) -> Code:
        pre = exact if self.columns is None else exact[:, self.columns]
        k = min(self.k, pre.shape[1])
        values, order = torch.sort(pre, dim=1, descending=True, stable=True)
        latents = order[:, :k]
        return values[:, :k], latents if self.columns is None else self.columns[latents]

    def pick(self, block: ProductBlock) -> Code:
        if self.columns is not None:
            block = block.restrict(self.columns)
        rows = block.y.shape[0]
        if not self._probed and rows >= 4 * PROBE_ROWS:
            self._probed = True
            return concat_rows([self._pick(block.between(0, PROBE_ROWS)),
                                self._pick(block.between(PROBE_ROWS, rows))])
        return self._pick(block)

    def _pick(self, block: ProductBlock) -> Code:
        stats = {"unsettled": 0, "reach": 0}
        code = certified_topk(block, self.k, self.scan, stats)
        # Where most rows need more than the candidates (real activations: the bf16 bound is
        # loose next to the gaps between the largest values), later blocks scan for about as
        # many entries as could reach the k-th value. Only speed depends on it.
        if stats["unsettled"] > SCAN_AFTER * block.y.shape[0]:
            self.scan = max(self.scan, round(SCAN_SLACK * stats["reach"] / stats["unsettled"]))
        return code

    def finish(self, parts: list, recompute: Recompute) -> Code:
        return concat_rows(parts)


def _replace_rows(code: Code, rows: torch.Tensor, new: Code, fill: float) -> Code:
    """`code` with the given rows replaced by `new`, both padded to a common width."""
    width = max(code[0].shape[1], new[0].shape[1])
    values, latents = padded(code[0], width, fill), padded(code[1], width, 0)
    values[rows], latents[rows] = padded(new[0], width, fill), padded(new[1], width, 0)
    return values, latents


class BatchTopK:
    """The k·B largest exact pre-activations of the batch (every entry tied at the cut kept)."""

    def __init__(self, k: int) -> None:
        self.k = k

    def __call__(self, exact: torch.Tensor) -> Code:
        cut = _cut(exact, self.k * exact.shape[0])
        return _pack(exact, torch.arange(exact.shape[1], device=exact.device).expand_as(exact),
                     exact >= cut)

    def pick(self, block: ProductBlock) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = block.y.shape[1]
        width = min(n, BATCH_CANDIDATES * self.k)
        y, positions = largest(block.y, width)
        latents = block.latents(positions)
        if width == n:
            beyond = torch.full((y.shape[0],), float("-inf"), device=y.device)
        else:
            beyond = block.upper(y.min(1).values)
        return block.exact(latents), latents, beyond

    def finish(self, parts: list, recompute: Recompute) -> Code:
        values, latents = concat_rows([(v, i) for v, i, _ in parts], fill=float("-inf"))
        beyond = torch.cat([u for _, _, u in parts])
        total = self.k * values.shape[0]
        cut = _cut(values, total)
        unsettled = ((beyond >= cut) & (beyond > 0)).nonzero().squeeze(1)
        if unsettled.numel():
            # Every entry of these rows that can reach the cut joins the candidates; the cut
            # over more candidates can only rise, so one round settles every row.
            limit = round(WIDE_ROWS * BATCH_CANDIDATES * self.k)
            wide_v, wide_i, reached = score_reaching(recompute(unsettled),
                                                     cut.expand(unsettled.numel()), limit)
            wide = wide_v.masked_fill(~reached, float("-inf")), wide_i
            values, latents = _replace_rows((values, latents), unsettled, wide, float("-inf"))
            cut = _cut(values, total)
        keep = (values >= cut) & (values > float("-inf"))
        return _pack(values.masked_fill(~keep, 0.0), latents, keep)


def _cut(values: torch.Tensor, total: int) -> torch.Tensor:
    """The total-th largest entry (−inf when there are fewer entries)."""
    flat = values.reshape(-1)
    if total >= flat.numel() or total <= 0:
        return values.new_tensor(float("-inf"))
    return flat.topk(total, sorted=False).values.min()


class Threshold:
    """Entries whose exact value exceeds θ (a scalar, or one per latent)."""

    def __init__(self, theta: torch.Tensor) -> None:
        self.theta = theta.detach().to(torch.float32)

    def __call__(self, exact: torch.Tensor) -> Code:
        latents = torch.arange(exact.shape[1], device=exact.device).expand_as(exact)
        keep = exact > self.theta
        return _pack(exact.masked_fill(~keep, 0.0), latents, keep)

    def pick(self, block: ProductBlock) -> Code:
        theta = self.theta if block.columns is None or not self.theta.ndim else (
            self.theta[block.columns])
        upper = block.upper(block.y)
        # Only entries that may exceed θ and 0 are re-scored (values ≤ 0 are zero anyway).
        reach = (upper > theta) & (upper > 0)
        wanted = max(1, int(reach.sum(1).max())) if reach.numel() else 1
        positions = upper.masked_fill(~reach, float("-inf")).topk(
            min(wanted, upper.shape[1]), dim=1, sorted=False).indices
        latents = block.latents(positions)
        values = block.exact(latents)
        theta_at = theta if not theta.ndim else theta[positions]
        keep = reach.gather(1, positions) & (values > theta_at)
        return _pack(values.masked_fill(~keep, 0.0), latents, keep)

    def finish(self, parts: list, recompute: Recompute) -> Code:
        return concat_rows(parts)
