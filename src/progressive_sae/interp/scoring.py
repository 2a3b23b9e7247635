"""Explain and score a list of latents with one interpreter: one record per latent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from progressive_sae.interp.explainer import Interpreter
from progressive_sae.interp.sampling import LatentExamples, Skipped
from progressive_sae.interp.scorers.common import Failure, MethodScore
from progressive_sae.interp.scorers.fuzzing import (
    detection_windows,
    fuzzing_windows,
    score_verdicts,
)
from progressive_sae.interp.scorers.simulation import score_simulation


@dataclass(frozen=True)
class LatentResult:
    """Explanation and scores of one latent by one interpreter (one line of scores.jsonl)."""

    sae: str
    """Name of the SAE."""
    interpreter: str
    """'baseline' or 'llm:<model>'."""
    bucket: str
    """Granularity bucket label '[lo, hi)'."""
    quantile: int
    """Frequency quantile in the bucket (0 = rarest)."""
    latent: int
    """Index in the SAE."""
    frequency: float | None = None
    """Fraction of tokens it fires on."""
    explanation: str | None = None
    """The explanation; None when it failed or the latent was skipped."""
    scores: dict[str, MethodScore] = field(default_factory=dict)
    """Per method ('simulation', 'fuzzing', 'detection')."""
    failures: tuple[Failure, ...] = ()
    """A failed explanation (then every method is undefined)."""
    llm_calls: int = 0
    """LLM requests made for this latent (0 for the baseline)."""
    skipped: str | None = None
    """Why the latent could not be scored (too few windows, …); None when scored."""

    def to_dict(self) -> dict[str, Any]:
        return {"sae": self.sae, "interpreter": self.interpreter, "bucket": self.bucket,
                "quantile": self.quantile, "latent": self.latent,
                "frequency": self.frequency, "explanation": self.explanation,
                "scores": {m: s.to_dict() for m, s in self.scores.items()},
                "failures": [f.to_dict() for f in self.failures],
                "llm_calls": self.llm_calls, "skipped": self.skipped}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatentResult:
        scores = {m: MethodScore(s["value"], s["reason"], s["answered"],
                                 tuple(Failure(**f) for f in s["failures"]))
                  for m, s in data["scores"].items()}
        return cls(data["sae"], data["interpreter"], data["bucket"], data["quantile"],
                   data["latent"], data.get("frequency"), data.get("explanation"), scores,
                   tuple(Failure(**f) for f in data.get("failures", [])),
                   data.get("llm_calls", 0), data.get("skipped"))

    def value(self, method: str) -> float | None:
        score = self.scores.get(method)
        return None if score is None else score.value


def skipped_result(sae: str, interpreter: str, skip: Skipped) -> LatentResult:
    return LatentResult(sae, interpreter, skip.bucket, skip.quantile, skip.latent,
                        skipped=skip.reason)


def score_latents(sae: str, items: Sequence[LatentExamples], interpreter: Interpreter,
                  methods: Sequence[str], seed: int = 0) -> list[LatentResult]:
    """Explain every latent, then run each method over all latents with an explanation."""
    explanations = interpreter.explain(items)
    ok = [i for i, e in enumerate(explanations) if isinstance(e, str)]
    texts = [explanations[i] for i in ok]
    chosen = [items[i] for i in ok]
    per_method: dict[str, list[MethodScore]] = {}
    calls = np.full(len(items), 1 if interpreter.uses_llm else 0)
    if "simulation" in methods:
        windows = [list(item.test) + list(item.nonactivating) for item in chosen]
        predicted = interpreter.simulate(chosen, texts, windows)
        per_method["simulation"] = [
            score_simulation([w.acts for w in ws], p) for ws, p in zip(windows, predicted)]
        calls[ok] += np.array([interpreter.cost("simulation", len(ws)) for ws in windows],
                              dtype=np.int64)
    for method in ("fuzzing", "detection"):
        if method not in methods:
            continue
        shown = [fuzzing_windows(item, seed) if method == "fuzzing"
                 else detection_windows(item) for item in chosen]
        verdicts = interpreter.judge(chosen, texts, shown)
        per_method[method] = [score_verdicts(s, v) for s, v in zip(shown, verdicts)]
        calls[ok] += np.array([interpreter.cost(method, len(s)) for s in shown],
                              dtype=np.int64)
    results = []
    position = {i: n for n, i in enumerate(ok)}
    for i, (item, explanation) in enumerate(zip(items, explanations)):
        common = dict(sae=sae, interpreter=interpreter.label, bucket=item.bucket.label,
                      quantile=item.quantile, latent=item.latent, frequency=item.frequency,
                      llm_calls=int(calls[i]))
        if isinstance(explanation, Failure):
            reason = f"no explanation ({explanation.error})"
            results.append(LatentResult(
                **common, failures=(explanation,),
                scores={m: MethodScore.undefined(reason) for m in methods}))
        else:
            n = position[i]
            results.append(LatentResult(**common, explanation=explanation,
                                        scores={m: per_method[m][n] for m in methods}))
    return results
