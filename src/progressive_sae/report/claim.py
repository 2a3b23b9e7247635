"""`Claim`, one claim of a paper beside what a run found, and the verdicts it can carry.

Every group of claims (the paper's frontier claims, the interpretability and seed-002 stages)
builds these, so they sit below all of them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class Claim:
    """One claim of the paper and this run's verdict."""

    claim: str
    """What the paper says."""
    paper: str
    """The paper's own figures."""
    found: str
    """What this run measured."""
    verdict: str
    """'holds', 'does not hold' or 'not tested'."""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def verdict(ok: bool) -> str:
    """The verdict of a claim that was tested: whether it held."""
    return "holds" if ok else "does not hold"


def untested(claim: str, paper: str, why: str) -> Claim:
    """A claim the run could not test, `why` in place of a finding."""
    return Claim(claim, paper, why, "not tested")
