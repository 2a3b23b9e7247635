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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from progressive_sae.errors import PSAEError
from progressive_sae.interp.browser.logit_effect import logit_effects
from progressive_sae.interp.browser.neighbors import nearest_by_decoder
from progressive_sae.interp.browser.tokens import token_strings
from progressive_sae.interp.records import LatentRecords, Window

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


def _round(value: float) -> float:
    return float(f"{float(value):.4g}")


def _encode_window(window: Window) -> list[list[Any]]:
    nonzero = np.flatnonzero(window.acts > 0)
    sparse: list[float] = []
    for pos in nonzero:
        sparse += [int(pos), _round(window.acts[pos])]
    return [[int(t) for t in window.tokens], sparse]


def _histogram(records: LatentRecords, latent: int) -> dict[str, list[float]]:
    counts = records.histogram[latent]
    nonzero = np.flatnonzero(counts)
    if nonzero.size == 0:
        return {"edges": [], "counts": []}
    lo, hi = int(nonzero[0]), int(nonzero[-1]) + 1
    edges = records.hist_edges[lo:hi + 1]
    return {"edges": [_round(e) for e in edges], "counts": [int(c) for c in counts[lo:hi]]}


def quantile_windows(windows: list[Window], quantiles: int, per_quantile: int
                     ) -> list[tuple[str, list[Window]]]:
    """The windows split into `quantiles` groups by the rank of their max activation (lowest
    first), and `per_quantile` of each, evenly spread over the group."""
    if not windows or quantiles == 0 or per_quantile == 0:
        return []
    ranked = sorted(windows, key=lambda w: (w.max_act, w.wid))
    groups = [g for g in np.array_split(np.arange(len(ranked)), min(quantiles, len(ranked)))
              if g.size]
    out = []
    for number, group in enumerate(groups, 1):
        picks = np.unique(np.linspace(0, group.size - 1, min(per_quantile, group.size))
                          .round().astype(int))
        chosen = [ranked[group[p]] for p in picks]
        low, high = ranked[group[0]].max_act, ranked[group[-1]].max_act
        label = (f"activation quantile {number} of {len(groups)} "
                 f"(window max {_round(low):g} – {_round(high):g})")
        out.append((label, chosen))
    return out


def _peak_tokens(windows: list[Window], count: int) -> list[int]:
    seen: list[int] = []
    for window in windows:
        if not window.acts.size:
            continue
        token = int(window.tokens[int(window.acts.argmax())])
        if token not in seen:
            seen.append(token)
        if len(seen) == count:
            break
    return seen


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
    cfg = cfg or PayloadConfig()
    n = records.num_latents
    shown = np.arange(n) if latents is None else np.asarray(list(latents), dtype=np.int64)
    if shown.size and (shown.min() < 0 or shown.max() >= n):
        raise PSAEError(f"latents {shown.min()}…{shown.max()}: the records hold latents "
                        f"0…{n - 1}")
    if W_dec.shape[0] < n:
        raise PSAEError(f"a decoder of {W_dec.shape[0]} rows for records of {n} latents: "
                        "expected the SAE the records were collected from")
    index = torch.from_numpy(shown)
    near, cosine = nearest_by_decoder(W_dec[:n], index, cfg.neighbors)
    effects = None
    if lm is not None and cfg.logit_tokens:
        vocab = len(tokenizer) if tokenizer is not None else None
        effects = logit_effects(lm, W_dec, index, cfg.logit_tokens, vocab_size=vocab)

    used: set[int] = set()
    details, top_tokens = [], []
    for row, latent in enumerate(shown.tolist()):
        top = records.windows(latent, "top")[:cfg.top_windows]
        groups = quantile_windows(records.windows(latent, "res"), cfg.quantiles,
                                  cfg.per_quantile)
        for window in top + [w for _, ws in groups for w in ws]:
            used.update(int(t) for t in window.tokens)
        detail: dict[str, Any] = {
            "histogram": _histogram(records, latent),
            "top": [_encode_window(w) for w in top],
            "quantiles": [{"label": label, "windows": [_encode_window(w) for w in ws]}
                          for label, ws in groups],
            "neighbors": [[int(j), _round(c)] for j, c in zip(near[row].tolist(),
                                                             cosine[row].tolist())],
        }
        if effects is not None:
            up_ids, up, down_ids, down = (t[row].tolist() for t in effects)
            detail["promoted"] = [[int(t), _round(v)] for t, v in zip(up_ids, up)]
            detail["suppressed"] = [[int(t), _round(v)] for t, v in zip(down_ids, down)]
            used.update(int(t) for t in up_ids + down_ids)
        details.append(detail)
        top_tokens.append(_peak_tokens(top, cfg.top_tokens))

    score_names = sorted(scores.scores) if scores is not None else []
    table: dict[str, Any] = {
        "index": shown.tolist(),
        "frequency": [_round(f) for f in records.frequency[shown]],
        "max": [_round(m) for m in records.max_activation[shown]],
        "explanation": [scores.explanations.get(j) if scores else None for j in shown.tolist()],
        "scores": {name: [_none_or_round(scores.scores[name].get(j)) for j in shown.tolist()]
                   for name in score_names} if scores else {},
        "top_tokens": top_tokens,
    }
    return {"version": VERSION, "title": title, "meta": dict(meta or {}),
            "score_names": score_names, "latents": table,
            "tokens": token_strings(tokenizer, used), "details": details}


def _none_or_round(value: float | None) -> float | None:
    if value is None or not np.isfinite(value):
        return None
    return _round(value)
