"""The paper's interpretability claims beside what a run found (for reports).

1. Permuted TopK latents score higher than Matryoshka's (simulation and fuzzing).
2. Matryoshka's innermost granularity scores higher than its outermost (paper: 0.74 vs
   0.57 mean simulation correlation).
3. Every trained SAE scores above the randomly initialised one.

A claim is held when the means are ordered as claimed; `separated` adds whether the 95%
bootstrap intervals do not overlap. A mean that is undefined (no latent scored) leaves
the claim undecided (None).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from progressive_sae.interp.plots import CONTROL
from progressive_sae.interp.results import InterpResult, SummaryRow


@dataclass(frozen=True)
class InterpClaim:
    """One claim of the paper and what the run found."""

    claim: str
    """The paper's statement."""
    method: str
    """Score compared."""
    interpreter: str
    """Who explained and scored ('baseline' or 'llm:<model>')."""
    found: str
    """The compared means with their intervals."""
    holds: bool | None
    """Means ordered as claimed; None when a mean is undefined."""
    separated: bool | None
    """Holds, and the 95% intervals do not overlap."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _row(result: InterpResult, sae: str, interpreter: str, bucket: str, method: str
         ) -> SummaryRow | None:
    for s in result.summary:
        if (s.sae, s.interpreter, s.bucket, s.quantile, s.method) == (
                sae, interpreter, bucket, None, method):
            return s
    return None


def _text(label: str, row: SummaryRow | None) -> str:
    if row is None or row.mean is None:
        return f"{label}: undefined"
    return f"{label} {row.mean:.3f} [{row.low:.3f}, {row.high:.3f}] (n={row.scored})"


def _compare(claim: str, method: str, interpreter: str, high: tuple[str, SummaryRow | None],
             low: tuple[str, SummaryRow | None]) -> InterpClaim:
    a, b = high[1], low[1]
    found = f"{_text(*high)} vs {_text(*low)}"
    if a is None or b is None or a.mean is None or b.mean is None:
        return InterpClaim(claim, method, interpreter, found, None, None)
    holds = a.mean > b.mean
    separated = holds and a.low is not None and b.high is not None and a.low > b.high
    return InterpClaim(claim, method, interpreter, found, holds, separated)


def paper_claims(result: InterpResult, permuted_topk: str | None, matryoshka: str | None,
                 methods: tuple[str, ...] = ("simulation", "fuzzing")) -> list[InterpClaim]:
    """The three claims for every interpreter of the run (SAE names as given to
    `interpret`; None skips the claims that need that SAE)."""
    out = []
    for interpreter in result.interpreters:
        for method in [m for m in methods if m in result.methods]:
            def row(sae: str, bucket: str = "all") -> SummaryRow | None:
                return _row(result, sae, interpreter, bucket, method)  # noqa: B023

            if permuted_topk and matryoshka:
                out.append(_compare("permuted TopK latents score higher than Matryoshka's",
                                    method, interpreter, (permuted_topk, row(permuted_topk)),
                                    (matryoshka, row(matryoshka))))
            if matryoshka and matryoshka in result.saes:
                bands = result.saes[matryoshka]["buckets"]
                if len(bands) > 1:
                    out.append(_compare(
                        "Matryoshka's innermost granularity scores higher than its outermost",
                        method, interpreter, (f"inner {bands[0]}", row(matryoshka, bands[0])),
                        (f"outer {bands[-1]}", row(matryoshka, bands[-1]))))
            if CONTROL in result.saes:
                for sae in result.saes:
                    if sae != CONTROL:
                        out.append(_compare("every trained SAE scores above the random one",
                                            method, interpreter, (sae, row(sae)),
                                            (CONTROL, row(CONTROL))))
    return out
