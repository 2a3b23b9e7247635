"""The LLM-free baseline interpreter: token and bigram look-up tables (always labelled).

From a latent's train windows it learns the mean scaled activation (0–10) of every token
id and of every (previous token, token) pair seen there. Its explanation lists the tokens
with the highest means; it simulates a window by looking each token up (the bigram's mean
when that pair was seen, else the token's, else 0), says a fuzzing window is correctly
marked when its marked tokens' mean prediction reaches `threshold`, and that a latent fires
in a detection window when any token's prediction does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from progressive_sae.interp.prompts import TokenText, scaled
from progressive_sae.interp.records import Window
from progressive_sae.interp.sampling import LatentExamples
from progressive_sae.interp.scorers.common import Failure
from progressive_sae.interp.scorers.fuzzing import Shown

LABEL = "baseline"


@dataclass(frozen=True)
class LookupTable:
    """Mean scaled activation per token id and per (previous, token) pair."""

    unigram: dict[int, float]
    bigram: dict[tuple[int, int], float]

    @classmethod
    def fit(cls, item: LatentExamples) -> LookupTable:
        uni: dict[int, list[float]] = defaultdict(list)
        bi: dict[tuple[int, int], list[float]] = defaultdict(list)
        for w in item.train:
            values = scaled(w.acts, item.max_act)
            for i, (token, value) in enumerate(zip(w.tokens.tolist(), values.tolist())):
                uni[token].append(value)
                if i:
                    bi[(int(w.tokens[i - 1]), token)].append(value)
        return cls({t: float(np.mean(v)) for t, v in uni.items()},
                   {p: float(np.mean(v)) for p, v in bi.items()})

    def predict(self, tokens: np.ndarray) -> list[float]:
        out, prev = [], None
        for token in tokens.tolist():
            value = self.bigram.get((prev, token)) if prev is not None else None
            out.append(value if value is not None else self.unigram.get(token, 0.0))
            prev = token
        return out


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
            ranked = sorted(((v, t) for t, v in table.unigram.items() if v > 0),
                            key=lambda p: (-p[0], p[1]))[: self.top_tokens]
            if not ranked:
                out.append(Failure(None, "no train token reaches 1 on the 0–10 scale"))
                continue
            listed = ", ".join(f"{self.text(t)!r} ({v:.1f})" for v, t in ranked)
            out.append(f"tokens {listed} [baseline look-up table]")
        return out

    def simulate(self, items: Sequence[LatentExamples], explanations: Sequence[str],
                 windows: Sequence[Sequence[Window]]) -> list[list[list[float] | Failure]]:
        return [[LookupTable.fit(item).predict(w.tokens) for w in ws]
                for item, ws in zip(items, windows)]

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
