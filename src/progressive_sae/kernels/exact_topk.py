"""Each row's k largest exact values, from a fast product's candidates.

The exact values are `product_bound.exact_values` (fp32, one entry at a time). A fast
product (bf16 where the hardware multiplies it natively) only proposes candidates: its
values y are augmented so that no exact value exceeds upper(y) = y + r|y| (see
`product_bound`). Then

1. each row's largest y are re-scored exactly and the top k taken among them (or, once a
   block has left most of its rows to widen, every entry with y at or above a threshold
   set per row, so that fewer rows need step 2);
2. every entry that was not re-scored has y at most the smallest candidate's (below the
   threshold), so its exact value is at most upper(that y). A row where such an entry
   could still change the choice (reach the k-th exact value, or a batch's cut, and be
   positive) is widened to every entry that can (`score_reaching`), from the row's y while
   its block is in memory; if that set is a large share of the row, the row's product is
   recomputed in fp32 (a tiny bound) and the same test runs.

So the choice is provably the top k of the exact values, whatever the fast product's dtype;
equal exact values go to the lower latent, and a row's entries stand by value, equal values
by latent (`best_by_value_then_latent`).
"""

from __future__ import annotations

import torch

from progressive_sae.kernels.product_block import ProductBlock, largest

Code = tuple[torch.Tensor, torch.Tensor]
"""(values [B, K], latent indices [B, K]); zero values are padding."""

MARGIN = 1.0
"""Candidates re-scored per row beyond the k needed, in units of k (bf16 products). Fewer
leave more rows to widen. Encoding 4096 rows at d=768, N=16384, k=32, median of 5
interleaved runs in one process, MARGIN 0.75 / 1.0 / 1.5 / 2.0 (2026-12-07, after the bound
measured the inputs' rounding): an SAE after 10 steps on the synthetic rows 389 / 383 / 400 /
417 ms, after 25 steps 364 / 367 / 387 / 390, after 45 steps 372 / 372 / 380 / 398; on
SmolLM2-135M's layers.9 rows (d=576) after 10 steps 349 / 334 / 329 / 337, after 25 steps
306 / 304 / 323 / 327 (the same codes). Under the looser bound before it, 1.5 had been the
best (1.0 / 1.5 / 2.0 after 12 steps: 453 / 419 / 428 ms)."""
EXACT_GRADE_MARGIN = 8
"""Extra candidates per row when the product is an fp32 one (its bound is tiny)."""
WIDE_ROWS = 8.0
"""Rows whose widened set exceeds this many times their candidates are scored apart (the
others are not padded to their width)."""
FP32_SHARE = 0.25
"""A row that more than this share of its entries can reach is recomputed in fp32. Scoring
entry by entry costs ~60 ns an entry at d=576–768; a row of an fp32 product, ~1 ms when a
few rows are recomputed (SmolLM2-135M, N=16,384: 7–11 rows took 8–13 ms) and ~0.2 ms in a
large batch: scoring a quarter of the row is already as dear."""
SCAN_SLACK = 1.5
"""Entries a row scans by threshold (a TopK rule's `scan`), in units of the mean number that
could reach the k-th value in the rows left unsettled."""
SAMPLE_STRIDE = 16
"""The scan's threshold comes from every SAMPLE_STRIDE-th column of a row."""


def best_by_value_then_latent(values: torch.Tensor, latents: torch.Tensor, k: int) -> Code:
    """Each row's k largest values, largest first; equal values go to the lower latent and
    stand in latent order, so the code is the same whichever candidates held it (the order
    of a row's entries is the order its decode sums them in)."""
    width = values.shape[1]
    top = values.topk(min(k + 1, width), dim=1, sorted=True)
    chosen = top.values[:, :k], latents.gather(1, top.indices[:, :k])
    # Only equal values leave a choice (across the k-th place: which; within: their order);
    # those rows are sorted carefully.
    tied = (top.values.diff(dim=1) == 0).any(1).nonzero().squeeze(1)
    if tied.numel():
        by_latent = latents[tied].argsort(dim=1)
        v, lat = values[tied].gather(1, by_latent), latents[tied].gather(1, by_latent)
        v, order = torch.sort(v, dim=1, descending=True, stable=True)
        chosen[0][tied], chosen[1][tied] = v[:, :k], lat.gather(1, order[:, :k])
    return chosen


def padded(t: torch.Tensor, width: int, value: float) -> torch.Tensor:
    """`t` [r, K ≤ width] right-padded with `value` to [r, width]."""
    return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)


def certified_topk(
    block: ProductBlock, k: int, scan: int = 0, stats: dict[str, int] | None = None
) -> Code:
    """Each row's k largest exact values (ties: lower latent), from the block's y.

    The candidates are each row's k + margin largest y, or with `scan`, every entry with y
    at or above a threshold set for about `scan` of them. `stats` (optional) counts the rows
    the candidates left unsettled and the entries that could reach their k-th values."""
    rows, n = block.y.shape
    k = min(k, n)
    margin = EXACT_GRADE_MARGIN if block.bound.exact_grade else max(1, round(MARGIN * k))
    width = min(n, k + margin)
    if scan > width and SAMPLE_STRIDE * scan < n and rows and not block.bound.exact_grade:
        candidates = _scanned_candidates(block, k, scan)
        if candidates is not None:
            values, latents, beyond, missed = candidates
            if missed.numel():  # rows the threshold gave too few or too many entries
                values[missed], latents[missed] = certified_topk(block.subset(missed), k,
                                                                 stats=stats)
            return _settle(block, k, width, values, latents, beyond, missed, stats)
    y, positions = largest(block.y, width)
    latents = block.latents(positions)
    values, latents = best_by_value_then_latent(block.exact(latents), latents, k)
    if width == n or rows == 0:
        return values, latents
    beyond = block.upper(y.min(1).values)  # the most an entry not re-scored can have
    return _settle(block, k, width, values, latents, beyond, None, stats)


def certified_topk_latents(block: ProductBlock, k: int) -> torch.Tensor:
    """The latents of each row's k largest exact values [r, k], in no order: the same
    positive ones as `certified_topk(block, k)[1]` (which entries of value ≤ 0 fill a row is
    free, as for every rule), without exact values where it can.

    From an exact-grade (fp32) product, take each row's k largest y. The row is settled
    when none of the others can be positive, or when every one of the k has a least exact
    value (`ProductBlock.lower`) above the most the next largest y can have (no tie across
    the cut): no exact value is computed for it. (AuxK's dense path picks k_aux ≈ 300 of a
    few hundred to ~2,000 dead latents a row, most of them ≤ 0 on SmolLM2-135M: there, 288
    of 408 dead latents for 4,096 rows after 25 steps, 98.8% of the rows settle so, and the
    choice takes 33 ms instead of `certified_topk`'s 118.)"""
    rows, n = block.y.shape
    k = min(k, n)
    if not block.bound.exact_grade or k == n or rows == 0:
        return certified_topk(block, k)[1]
    y, positions = block.y.topk(k + 1, dim=1, sorted=False)
    cut = y.argmin(1, keepdim=True)  # the (k+1)-th largest: the one left out
    beyond = block.upper(y.gather(1, cut).squeeze(1))
    inside = torch.ones_like(positions, dtype=torch.bool).scatter_(1, cut, False)
    positions = positions[inside].view(rows, k)
    settled = (beyond <= 0) | (block.lower(positions).min(1).values > beyond)
    latents = block.latents(positions)
    open_rows = (~settled).nonzero().squeeze(1)
    if open_rows.numel():
        latents[open_rows] = certified_topk(block.subset(open_rows), k)[1]
    return latents


def _settle(
    block: ProductBlock, k: int, width: int, values: torch.Tensor, latents: torch.Tensor,
    beyond: torch.Tensor, done: torch.Tensor | None, stats: dict[str, int] | None,
) -> Code:
    """Widen the rows whose candidates did not settle them (`done`: rows decided already)."""
    kth = values[:, -1]
    # Settled: no entry outside the candidates can reach the k-th exact value, nor be > 0.
    open_rows = (beyond >= kth) & (beyond > 0)
    if done is not None and done.numel():
        open_rows[done] = False
    unsettled = open_rows.nonzero().squeeze(1)
    if unsettled.numel():
        wide = _widened_topk(block.subset(unsettled), k, kth[unsettled], width, stats)
        values[unsettled], latents[unsettled] = wide
    return values, latents


def _scanned_candidates(
    block: ProductBlock, k: int, scan: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """(values [r, k], latents, beyond [r], missed rows) from each row's entries with y ≥ t,
    t set for about `scan` entries a row from a sample of its columns, all scored exactly.
    Entries left out have y < t, so at most upper(t): that is `beyond`. Rows with fewer than
    k entries at or above t, or over 8·scan, are `missed` (their values are to be replaced)."""
    y = block.y
    rows, n = y.shape
    sample = y[:, ::SAMPLE_STRIDE].contiguous()
    want = min(sample.shape[1], max(1, -(-scan // SAMPLE_STRIDE)))
    threshold = largest(sample, want)[0].min(1).values
    entry_row, position = block.at_least(threshold).nonzero(as_tuple=True)
    counts = torch.bincount(entry_row, minlength=rows)
    kept = (counts >= k) & (counts <= 8 * scan)
    if not bool(kept.any()):
        return None
    scored = best_by_value_then_latent(*_scored_rows(block, entry_row, position, counts, kept), k)
    values = scored[0].new_zeros(rows, scored[0].shape[1])  # the missed rows: the caller's
    latents = scored[1].new_zeros(rows, scored[1].shape[1])
    values[kept], latents[kept] = scored
    beyond = block.upper(threshold)
    return values, latents, beyond, (~kept).nonzero().squeeze(1)


def _scored_rows(
    block: ProductBlock, entry_row: torch.Tensor, position: torch.Tensor, counts: torch.Tensor,
    wanted: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact values and latents of the entries (listed row by row, as `nonzero` gives them)
    of the wanted rows (a mask), one row each in row order, padded with −inf values and
    latent 0 to the widest of them."""
    device = block.y.device
    number = int(wanted.sum())
    width = max(1, int(counts[wanted].max())) if number else 1
    values = torch.full((number, width), float("-inf"), device=device)
    latents = torch.zeros(number, width, dtype=torch.int64, device=device)
    keep = wanted[entry_row]
    entry_row, position = entry_row[keep], position[keep]
    taken = counts * wanted
    # An entry's slot is its rank within its row.
    slot = torch.arange(entry_row.numel(), device=device) - (taken.cumsum(0) - taken)[entry_row]
    compact = (wanted.cumsum(0) - 1)[entry_row]
    entry_latents = block.latents(position)
    values[compact, slot] = block.exact_entries(entry_row, entry_latents)
    latents[compact, slot] = entry_latents
    return values, latents


def _widened_topk(
    block: ProductBlock, k: int, floor: torch.Tensor, width: int,
    stats: dict[str, int] | None = None,
) -> Code:
    """Top-k of rows whose candidates did not settle them: every entry that can reach
    `floor` (the exact value some k entries of the row already have) is re-scored."""
    values, latents, _ = score_reaching(block, floor, round(WIDE_ROWS * width), at_least=k,
                                        stats=stats)
    return best_by_value_then_latent(values, latents, k)


def score_reaching(
    block: ProductBlock, floor: torch.Tensor, limit: int, at_least: int = 1,
    stats: dict[str, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(exact values, latents, reached) of every entry of these rows that can reach `floor`
    [r] and be positive, plus the next largest y up to `at_least` entries a row (`reached`
    False there), each row padded to a common width with −inf values, latent 0 and
    `reached` False.

    Row by row: each row re-scores its own reaching entries (found as a mask, not by a
    top-k). Rows that more than `limit` entries can reach are scored apart, so that the
    others are not padded to their width; a row that more than FP32_SHARE of its entries
    can reach is first recomputed in fp32, whose bound is tighter. (On SmolLM2-135M's
    residual stream, d=576, N=16,384, nearly every row is widened, a few in each block are
    reached by over 1,000 entries while the mean is ~150.)"""
    rows, n = block.y.shape
    entry_row, position = block.reaching(floor).nonzero(as_tuple=True)
    counts = torch.bincount(entry_row, minlength=rows)
    if stats is not None:
        stats["unsettled"] += rows
        stats["reach"] += entry_row.numel()
    to_fp32 = counts > max(limit, FP32_SHARE * n)
    if block.bound.exact_grade:
        to_fp32.zero_()
    short = (counts < min(at_least, n)) & ~to_fp32  # too few reach: filled by y
    wide = (counts > limit) & ~to_fp32
    parts: list[tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = []
    for scored in (~(to_fp32 | short | wide), wide):
        if bool(scored.any()):
            v, i = _scored_rows(block, entry_row, position, counts, scored)
            parts.append((scored.nonzero().squeeze(1), (v, i, v > float("-inf"))))
    if bool(to_fp32.any()):
        which = to_fp32.nonzero().squeeze(1)
        parts.append((which, score_reaching(block.subset(which).in_fp32(), floor[which],
                                            limit, at_least)))
    if bool(short.any()):
        which = short.nonzero().squeeze(1)
        part = block.subset(which)
        # Reaching is y above a threshold: the largest y hold every entry that can.
        positions = largest(part.y, min(at_least, n))[1]
        latents = part.latents(positions)
        parts.append((which, (part.exact(latents), latents,
                              part.reaching(floor[which]).gather(1, positions))))
    width = max([1] + [v.shape[1] for _, (v, _, _) in parts])
    values = torch.full((rows, width), float("-inf"), device=block.y.device)
    latents = torch.zeros(rows, width, dtype=torch.int64, device=block.y.device)
    reached = torch.zeros(rows, width, dtype=torch.bool, device=block.y.device)
    for which, (v, i, r) in parts:
        values[which, : v.shape[1]], latents[which, : i.shape[1]] = v, i
        reached[which, : r.shape[1]] = r
    return values, latents, reached
