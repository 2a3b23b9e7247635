"""Latent records (+ the SAE, an optional LM and optional scores) → the browser's payload.

The payload is one JSON-able dict, embedded in the page as is:

    version      1
    title        page title
    meta         {label: value} shown in the page header
    score_names  names of the score columns, e.g. ["simulation", "fuzzing"]
    latents      columns, one entry per latent shown (in SAE order):
                 index [int], frequency [float] (fraction of tokens), max [float],
                 explanation [str|null], scores {name: [float|null]},
                 top_tokens [[token id]] (the peak tokens of its top windows)
    tokens       {"<token id>": display text} for every id the page uses
    details      one dict per latent, same order, read only when it is selected:
                 histogram {edges [bins+1], counts [bins]} (non-zero activations),
                 top [window], quantiles [{label, windows [window]}],
                 neighbors [[latent, cosine]], promoted / suppressed [[token id, logit]]
                 (absent without an LM)
    window       [token ids, [position, activation, position, activation, …]]: the
                 activations listed sparsely (only non-zero ones)

Numbers are rounded to 4 significant digits; a 16k-latent page stays in the tens of MB.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from progressive_sae.errors import PSAEError
from progressive_sae.interp.browser.logit_effect import logit_effects
from progressive_sae.interp.browser.neighbors import nearest_by_decoder
from progressive_sae.interp.browser.tokens import token_strings
from progressive_sae.interp.records import LatentRecords

VERSION = 1


@dataclass
class PayloadConfig:
    """How much of each latent the page shows."""

    top_windows: int = 10
    """Top activating windows shown per latent (at most what the records kept)."""
    quantiles: int = 5
    """Activation rank-quantiles the reservoir windows are grouped into."""
    per_quantile: int = 2
    """Windows shown per quantile."""
    neighbors: int = 8
    """Nearest latents by decoder cosine."""
    logit_tokens: int = 10
    """Tokens listed as most promoted and most suppressed."""
    top_tokens: int = 4
    """Peak tokens listed in the latent table (searchable)."""

    def __post_init__(self) -> None:
        for name in ("top_windows", "quantiles", "per_quantile", "neighbors", "logit_tokens",
                     "top_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise PSAEError(f"{name}={value!r}: expected an integer ≥ 0")


@dataclass
class LatentScores:
    """Explanations and scores of some latents (from `psae interp`)."""

    explanations: dict[int, str]
    """Latent → explanation."""
    scores: dict[str, dict[int, float | None]]
    """Score name → latent → value (None = undefined, e.g. a constant simulation)."""
    source: str = ""
    """Where they come from (shown in the page header)."""


def round_sig(values: Any, digits: int = 4) -> np.ndarray:
    """Values rounded to `digits` significant digits (as float64; JSON prints them short)."""
    x = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = digits - 1 - np.floor(np.log10(np.abs(x)))
    shift = np.where(np.isfinite(shift), shift, 0)
    up = shift >= 0  # divide by an exact power of ten either way: no 1.2340000000000002
    scale = 10.0 ** np.abs(shift)
    return np.where(up, np.round(x * np.where(up, scale, 1)) / np.where(up, scale, 1),
                    np.round(x / np.where(up, 1, scale)) * np.where(up, 1, scale))


def _round(value: float) -> float:
    return float(round_sig(value))


class _WindowSet:
    """One of the records' per-latent window sets ('top' or 'res') as numpy arrays."""

    def __init__(self, records: LatentRecords, which: str) -> None:
        t = records.tensors
        self.wid = t[f"{which}_wid"].numpy()
        self.score = t[f"{which}_score"].numpy()
        self.tokens = t[f"{which}_tokens"].numpy()
        self.acts = t[f"{which}_acts"].numpy()

    def kept(self, latent: int) -> np.ndarray:
        """Slots of `latent` that hold a window, in stored order."""
        return np.flatnonzero(self.wid[latent] >= 0)

    def gather(self, latents: list[np.ndarray], slots: list[np.ndarray]
               ) -> tuple[np.ndarray, np.ndarray]:
        """Tokens and activations [M, W] of the windows (latent, slot), in order."""
        lat = np.concatenate(latents or [np.zeros(0, np.int64)]).astype(np.int64)
        slot = np.concatenate(slots or [np.zeros(0, np.int64)]).astype(np.int64)
        return self.tokens[lat, slot], self.acts[lat, slot]

    def peak_tokens(self, latent: int, slots: np.ndarray, count: int) -> list[int]:
        """The token at each window's peak, first `count` distinct ones in slot order."""
        rows = self.acts[latent, slots]
        peaks = self.tokens[latent, slots, rows.argmax(1)] if len(slots) else []
        seen: list[int] = []
        for token, row in zip(np.asarray(peaks).tolist(), rows):
            if row.max() > 0 and token >= 0 and token not in seen:
                seen.append(token)
        return seen[:count]


def encode_windows(tokens: np.ndarray, acts: np.ndarray) -> list[list[Any]]:
    """Windows [M, W] as [token ids, [position, activation, …]]: padding slots (token -1,
    which may open a sequence's first window) dropped, activations listed sparsely."""
    keep = tokens >= 0
    position = np.cumsum(keep, axis=1) - 1
    window, slot = np.nonzero((acts > 0) & keep)
    positions = position[window, slot].tolist()
    values = round_sig(acts[window, slot]).tolist()
    bounds = np.searchsorted(window, np.arange(len(tokens) + 1)).tolist()
    out = []
    for m, row in enumerate(tokens.tolist()):
        a, b = bounds[m], bounds[m + 1]
        sparse = [v for pair in zip(positions[a:b], values[a:b]) for v in pair]
        out.append([[t for t in row if t >= 0], sparse])
    return out


def _histogram(counts: np.ndarray, edges: list[float]) -> dict[str, list[float]]:
    """The bins from the first to the last non-empty one."""
    nonzero = np.flatnonzero(counts)
    if nonzero.size == 0:
        return {"edges": [], "counts": []}
    lo, hi = int(nonzero[0]), int(nonzero[-1]) + 1
    return {"edges": edges[lo:hi + 1], "counts": counts[lo:hi].tolist()}


def quantile_groups(scores: np.ndarray, wids: np.ndarray, quantiles: int, per_quantile: int
                    ) -> list[tuple[str, np.ndarray]]:
    """Windows (given by their max activation and number) split into `quantiles` groups of
    consecutive ranks (sizes as np.array_split), lowest first; `per_quantile` of each, evenly
    spread over the group, as indices into the inputs, with a label naming the group's
    range. Plain Python on purpose: it runs once per latent on a few dozen windows."""
    n = len(scores)
    if n == 0 or quantiles == 0 or per_quantile == 0:
        return []
    ranked = np.lexsort((wids, scores)).tolist()
    values = np.asarray(scores, dtype=np.float64).tolist()
    count = min(quantiles, n)
    size, extra = divmod(n, count)
    out, start = [], 0
    for number in range(count):
        length = size + (number < extra)
        group = ranked[start:start + length]
        start += length
        k = min(per_quantile, length)
        picks = [0] if k == 1 else sorted({round(i * (length - 1) / (k - 1)) for i in range(k)})
        low, high = values[group[0]], values[group[-1]]
        out.append((f"activation quantile {number + 1} of {count} "
                    f"(window max {low:.4g} – {high:.4g})",
                    np.array([group[p] for p in picks], dtype=np.int64)))
    return out


def build_payload(
    records: LatentRecords,
    W_dec: torch.Tensor,
    latents: Sequence[int] | None = None,
    tokenizer: Any | None = None,
    lm: Any | None = None,
    scores: LatentScores | None = None,
    meta: dict[str, Any] | None = None,
    title: str = "Feature browser",
    cfg: PayloadConfig | None = None,
) -> dict[str, Any]:
    """The page's data for `latents` (default: every recorded latent).

    `W_dec` is the SAE's decoder ([N, d]; only the recorded latents' rows are compared for
    neighbours); `lm` (a `progressive_sae.lm.LanguageModel`) adds promoted and suppressed
    tokens; `tokenizer` turns token ids into text (ids are shown without one)."""
    with _collector_paused():
        return _build(records, W_dec, latents, tokenizer, lm, scores, meta, title,
                      cfg or PayloadConfig())


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The payload is millions of small lists, none in a cycle: with the cyclic garbage
    collector running, its passes over them took over half of the build."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _build(records: LatentRecords, W_dec: torch.Tensor, latents: Sequence[int] | None,
           tokenizer: Any | None, lm: Any | None, scores: LatentScores | None,
           meta: dict[str, Any] | None, title: str, cfg: PayloadConfig) -> dict[str, Any]:
    n = records.num_latents
    shown = np.arange(n) if latents is None else np.asarray(list(latents), dtype=np.int64)
    if shown.size and (shown.min() < 0 or shown.max() >= n):
        raise PSAEError(f"latents {shown.min()}…{shown.max()}: the records hold latents "
                        f"0…{n - 1}")
    if W_dec.shape[0] < n:
        raise PSAEError(f"a decoder of {W_dec.shape[0]} rows for records of {n} latents: "
                        "expected the SAE the records were collected from")
    index = torch.from_numpy(shown)
    near_t, cosine_t = nearest_by_decoder(W_dec[:n], index, cfg.neighbors)
    near, cosine = near_t.tolist(), round_sig(cosine_t.numpy()).tolist()
    effects = None
    if lm is not None and cfg.logit_tokens:
        vocab = len(tokenizer) if tokenizer is not None else None
        up_ids, up, down_ids, down = logit_effects(lm, W_dec, index, cfg.logit_tokens,
                                                   vocab_size=vocab)
        effects = (up_ids.tolist(), round_sig(up.numpy()).tolist(), down_ids.tolist(),
                   round_sig(down.numpy()).tolist())

    top_set, res_set = _WindowSet(records, "top"), _WindowSet(records, "res")
    chosen: list[tuple[np.ndarray, list[tuple[str, np.ndarray]]]] = []
    where: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {"top": ([], []),
                                                                   "res": ([], [])}
    for latent in shown.tolist():
        top = top_set.kept(latent)[:cfg.top_windows]
        res = res_set.kept(latent)
        groups = [(label, res[picks]) for label, picks in quantile_groups(
            res_set.score[latent, res], res_set.wid[latent, res], cfg.quantiles,
            cfg.per_quantile)]
        chosen.append((top, groups))
        for name, slots in [("top", top)] + [("res", s) for _, s in groups]:
            where[name][0].append(np.full(len(slots), latent))
            where[name][1].append(slots)
    # Every window is gathered and encoded in one vectorised pass per set.
    top_tokens_m, top_acts_m = top_set.gather(*where["top"])
    res_tokens_m, res_acts_m = res_set.gather(*where["res"])
    top_windows = iter(encode_windows(top_tokens_m, top_acts_m))
    res_windows = iter(encode_windows(res_tokens_m, res_acts_m))
    used = [top_tokens_m.ravel(), res_tokens_m.ravel()]
    if effects is not None:
        used += [np.asarray(effects[0]).ravel(), np.asarray(effects[2]).ravel()]
    edges = round_sig(records.hist_edges).tolist()

    details, top_tokens = [], []
    for row, latent in enumerate(shown.tolist()):
        top, groups = chosen[row]
        detail: dict[str, Any] = {
            "histogram": _histogram(records.histogram[latent], edges),
            "top": [next(top_windows) for _ in top],
            "quantiles": [{"label": label, "windows": [next(res_windows) for _ in slots]}
                          for label, slots in groups],
            "neighbors": [list(pair) for pair in zip(near[row], cosine[row])],
        }
        if effects is not None:
            up_ids, up, down_ids, down = (t[row] for t in effects)
            detail["promoted"] = [list(p) for p in zip(up_ids, up)]
            detail["suppressed"] = [list(p) for p in zip(down_ids, down)]
        details.append(detail)
        top_tokens.append(top_set.peak_tokens(latent, top, cfg.top_tokens))

    score_names = sorted(scores.scores) if scores is not None else []
    table: dict[str, Any] = {
        "index": shown.tolist(),
        "frequency": round_sig(records.frequency[shown]).tolist(),
        "max": round_sig(records.max_activation[shown]).tolist(),
        "explanation": [scores.explanations.get(j) if scores else None for j in shown.tolist()],
        "scores": {name: [_none_or_round(scores.scores[name].get(j)) for j in shown.tolist()]
                   for name in score_names} if scores else {},
        "top_tokens": top_tokens,
    }
    return {"version": VERSION, "title": title, "meta": dict(meta or {}),
            "score_names": score_names, "latents": table,
            "tokens": token_strings(tokenizer, _distinct(used)), "details": details}


def _distinct(arrays: list[np.ndarray]) -> list[int]:
    ids = np.unique(np.concatenate([np.asarray(a, np.int64).ravel() for a in arrays] or
                                   [np.zeros(0, np.int64)]))
    return ids[ids >= 0].tolist()


def _none_or_round(value: float | None) -> float | None:
    if value is None or not np.isfinite(value):
        return None
    return _round(value)
