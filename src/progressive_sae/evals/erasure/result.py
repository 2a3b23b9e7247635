"""What targeted concept erasure reports: SCR per direction and SAEBench's chosen direction,
TPP, per SAE, granularity view and number of ablated latents."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from progressive_sae.evals.common import Estimate
from progressive_sae.evals.probing.stats import json_safe


@dataclass(frozen=True)
class ErasureScore:
    """One score of one SAE view after ablating its top-n latents."""

    metric: str
    """'scr_dir1', 'scr_dir2', 'scr' (SAEBench's chosen direction) or 'tpp'."""
    sae: str
    """SAE name."""
    granularity: int
    """G of the view."""
    mode: str
    """'relative' or 'prefix'."""
    n: int
    """Latents ablated (fewer when fewer have a non-zero attribution)."""
    value: Estimate
    """The score with its bootstrap interval over test texts (value None/NaN: undefined)."""
    parts: dict[str, float] = field(default_factory=dict)
    """SCR: the ablated accuracy; TPP: the intended and mean unintended accuracy drops."""
    task: str = ""
    """SCR pair of a per-pair score; "" for the mean over pairs (SAEBench's) and for TPP."""

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "sae": self.sae, "granularity": self.granularity,
                "mode": self.mode, "n": self.n, "task": self.task,
                "value": self.value.to_dict(), "parts": dict(self.parts)}


@dataclass
class ErasureResult:
    """Everything `evaluate_erasure` measured."""

    config: dict[str, Any]
    """The ErasureConfig used."""
    hook: str
    """Hook point of the residual stream."""
    scr_setup: dict[str, Any] | None = None
    """SCR pairs, each with its residual-probe accuracies (A_base, A_oracle per direction),
    gating and the SAEBench guard."""
    tpp_setup: dict[str, Any] | None = None
    """TPP classes, their probes' clean balanced accuracies, gating."""
    scores: list[ErasureScore] = field(default_factory=list)
    """Scores of the ungated parts."""
    seconds: float = 0.0
    """Wall time of the evaluation (measured, noisy)."""

    def select(self, metric: str, task: str = "") -> list[ErasureScore]:
        """Scores of `metric`; by default the means over SCR pairs (and TPP)."""
        return [s for s in self.scores if s.metric == metric and s.task == task]

    def headline(self, metric: str = "scr", n: int = 20, granularity: int | None = None,
                 mode: str = "relative") -> dict[str, Estimate]:
        """Per SAE: `metric` ('scr', 'tpp', 'scr_dir1', 'scr_dir2') after ablating n latents at
        `granularity` (None: each SAE's full size) — the number a claims table compares."""
        scores = [s for s in self.select(metric) if s.n == n]  # means over SCR pairs
        largest: dict[str, int] = {}
        for s in scores:
            largest[s.sae] = max(largest.get(s.sae, 0), s.granularity)
        return {s.sae: s.value for s in scores if (
            s.granularity == largest[s.sae] if granularity is None
            else s.granularity == granularity and s.mode == mode)}

    def to_dict(self) -> dict[str, Any]:
        return json_safe({"config": self.config, "hook": self.hook, "scr_setup": self.scr_setup,
                          "tpp_setup": self.tpp_setup,
                          "scores": [s.to_dict() for s in self.scores],
                          "seconds": self.seconds})  # type: ignore[return-value]
