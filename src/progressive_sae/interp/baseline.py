"""The LLM-free baseline interpreter: token and bigram look-up tables (always labelled).

From a latent's train windows it learns the mean scaled activation (0–10) of every token
id and of every (previous token, token) pair seen there. Its explanation lists the tokens
with the highest means; it simulates a window by looking each token up (the bigram's mean
when that pair was seen, else the token's, else 0), says a fuzzing window is correctly
marked when its marked tokens' mean prediction reaches `threshold`, and that a latent fires
in a detection window when any token's prediction does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from progressive_sae.interp.prompts import TokenText, scaled
from progressive_sae.interp.records import Window
from progressive_sae.interp.sampling import LatentExamples
from progressive_sae.interp.scorers.common import Failure
from progressive_sae.interp.scorers.fuzzing import Shown

LABEL = "baseline"


def _pair_keys(tokens: np.ndarray) -> np.ndarray:
    """(previous, token) pairs of consecutive tokens as one int64 each."""
    tokens = tokens.astype(np.int64)
    return (tokens[:-1] << 32) | tokens[1:]


def _means(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct keys and the mean value of each."""
    distinct, where = np.unique(keys, return_inverse=True)
    sums = np.bincount(where, weights=values, minlength=distinct.size)
    return distinct, sums / np.bincount(where, minlength=distinct.size)


def _look_up(keys: np.ndarray, table: tuple[np.ndarray, np.ndarray]
             ) -> tuple[np.ndarray, np.ndarray]:
    """(found, value) per key: whether the key is in the table, and its mean there."""
    known, means = table
    at = np.minimum(np.searchsorted(known, keys), max(known.size - 1, 0))
    found = known[at] == keys if known.size else np.zeros(keys.shape, bool)
    return found, np.where(found, means[at] if known.size else 0.0, 0.0)


@dataclass(frozen=True)
class LookupTable:
    """Mean scaled activation per token id and per (previous, token) pair, as sorted keys
    and their means (fitted once per latent: a latent's windows are looked up in bulk)."""

    unigram: tuple[np.ndarray, np.ndarray]
    bigram: tuple[np.ndarray, np.ndarray]

    @classmethod
    def fit(cls, item: LatentExamples) -> LookupTable:
        tokens = [np.asarray(w.tokens, dtype=np.int64) for w in item.train]
        values = [np.asarray(scaled(w.acts, item.max_act), dtype=np.float64)
                  for w in item.train]
        if not tokens:
            empty = (np.zeros(0, np.int64), np.zeros(0))
            return cls(empty, empty)
        pairs = np.concatenate([_pair_keys(t) for t in tokens])
        pair_values = np.concatenate([v[1:] for v in values])
        return cls(_means(np.concatenate(tokens), np.concatenate(values)),
                   _means(pairs, pair_values))

    def token_means(self) -> dict[int, float]:
        """Token id → its mean scaled activation in the train windows."""
        return dict(zip(self.unigram[0].tolist(), self.unigram[1].tolist()))

    def predict(self, tokens: np.ndarray) -> list[float]:
        """Per token: the bigram's mean when that pair was seen, else the token's, else 0."""
        tokens = np.asarray(tokens, dtype=np.int64)
        _, out = _look_up(tokens, self.unigram)
        if tokens.size > 1:
            seen, pair_means = _look_up(_pair_keys(tokens), self.bigram)
            out[1:] = np.where(seen, pair_means, out[1:])
        return out.tolist()


class BaselineInterpreter:
    """An `Interpreter` without an LLM (see the module docstring)."""

    label = LABEL
    uses_llm = False

    def __init__(self, text: TokenText, top_tokens: int = 5, threshold: float = 1.0) -> None:
        self.text, self.top_tokens, self.threshold = text, top_tokens, threshold

    def cost(self, method: str, windows: int) -> int:
        return 0

    def explain(self, items: Sequence[LatentExamples]) -> list[str | Failure]:
        out: list[str | Failure] = []
        for item in items:
            table = LookupTable.fit(item)
            ranked = sorted(((v, t) for t, v in table.token_means().items() if v > 0),
                            key=lambda p: (-p[0], p[1]))[: self.top_tokens]
            if not ranked:
                out.append(Failure(None, "no train token reaches 1 on the 0–10 scale"))
                continue
            listed = ", ".join(f"{self.text(t)!r} ({v:.1f})" for v, t in ranked)
            out.append(f"tokens {listed} [baseline look-up table]")
        return out

    def simulate(self, items: Sequence[LatentExamples], explanations: Sequence[str],
                 windows: Sequence[Sequence[Window]]) -> list[list[list[float] | Failure]]:
        tables = [LookupTable.fit(item) for item in items]
        return [[table.predict(w.tokens) for w in ws] for table, ws in zip(tables, windows)]

    def judge(self, items: Sequence[LatentExamples], explanations: Sequence[str],
              shown: Sequence[Sequence[Shown]]) -> list[list[bool | Failure]]:
        out: list[list[bool | Failure]] = []
        for item, ss in zip(items, shown):
            table = LookupTable.fit(item)
            verdicts: list[bool | Failure] = []
            for s in ss:
                predicted = np.asarray(table.predict(s.tokens))
                picked = predicted if s.marks is None else predicted[s.marks]
                score = picked.max() if s.marks is None else picked.mean()
                verdicts.append(bool(picked.size and score >= self.threshold))
            out.append(verdicts)
        return out
