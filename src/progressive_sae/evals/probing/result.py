"""What sparse probing reports: per task the residual probe (and gating), per SAE, view, task
and k the sparse probe's test accuracy, and per SAE, view and k the mean over scored tasks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from progressive_sae.evals.common import Estimate
from progressive_sae.evals.probing.stats import json_safe


@dataclass(frozen=True)
class TaskRecord:
    """A task and how well the full residual stream predicts it."""

    name: str
    """Task name."""
    description: str
    """What its two classes are."""
    classes: list[str]
    """(class 0, class 1)."""
    train: int
    """Training texts."""
    test: int
    """Test texts."""
    residual: Estimate
    """Test accuracy of the probe on the full mean-pooled residual."""
    gated: bool
    """True when `residual` < GATE_ACCURACY: the task is reported, not scored."""
    llm_top_k: dict[int, Estimate] = field(default_factory=dict)
    """Per k, the top-k probe on the residual dimensions (SAEBench's llm_top_k)."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "classes": self.classes,
                "train": self.train, "test": self.test, "residual": self.residual.to_dict(),
                "gated": self.gated,
                "llm_top_k": {str(k): e.to_dict() for k, e in self.llm_top_k.items()}}


@dataclass(frozen=True)
class ProbeScore:
    """The top-k sparse probe of one SAE view on one task."""

    sae: str
    """SAE name."""
    granularity: int
    """G of the view."""
    mode: str
    """'relative' or 'prefix'."""
    task: str
    """Task name."""
    k: int
    """Latents the probe reads; 0: every latent of the view (SAEBench's sae_test_accuracy)."""
    accuracy: Estimate
    """Test accuracy with its bootstrap interval over test texts."""
    latents: list[int]
    """The k latents, by decreasing |mean difference| on the training texts ([] for k = 0)."""

    def to_dict(self) -> dict[str, Any]:
        return {"sae": self.sae, "granularity": self.granularity, "mode": self.mode,
                "task": self.task, "k": self.k, "accuracy": self.accuracy.to_dict(),
                "latents": self.latents}


@dataclass(frozen=True)
class ProbeSummary:
    """Mean top-k accuracy of one SAE view over the ungated tasks."""

    sae: str
    """SAE name."""
    granularity: int
    """G of the view."""
    mode: str
    """'relative' or 'prefix'."""
    k: int
    """Latents per probe; 0: every latent of the view."""
    accuracy: Estimate
    """Mean over each dataset's tasks, then over datasets (SAEBench's); interval from
    resampling every task's test texts independently."""
    tasks: int
    """Tasks averaged."""
    datasets: int = 1
    """Datasets they belong to."""

    def to_dict(self) -> dict[str, Any]:
        return {"sae": self.sae, "granularity": self.granularity, "mode": self.mode,
                "k": self.k, "accuracy": self.accuracy.to_dict(), "tasks": self.tasks,
                "datasets": self.datasets}


@dataclass
class ProbingResult:
    """Everything `evaluate_probing` measured."""

    config: dict[str, Any]
    """The ProbingConfig used."""
    hook: str
    """Hook point of the residual stream."""
    tasks: list[TaskRecord] = field(default_factory=list)
    """Tasks with their residual probes."""
    scores: list[ProbeScore] = field(default_factory=list)
    """Sparse-probe scores of ungated tasks."""
    summary: list[ProbeSummary] = field(default_factory=list)
    """Per SAE, view and k: the mean over ungated tasks (by dataset, then over datasets)."""
    residual_mean: Estimate | None = None
    """Residual-probe accuracy over ungated tasks, averaged as the summaries (the ceiling the
    SAEs are set beside; SAEBench's llm_test_accuracy)."""
    llm_top_k: dict[int, Estimate] = field(default_factory=dict)
    """Per k, the top-k probe on the residual, averaged as the summaries."""
    seconds: float = 0.0
    """Wall time of the evaluation (measured, noisy)."""

    def headline(self, k: int = 1, granularity: int | None = None,
                 mode: str = "relative") -> dict[str, Estimate]:
        """Per SAE: mean top-k accuracy over scored tasks at `granularity` (None: each SAE's
        full size) — the number a claims table compares."""
        largest: dict[str, int] = {}
        for s in self.summary:
            largest[s.sae] = max(largest.get(s.sae, 0), s.granularity)
        return {s.sae: s.accuracy for s in self.summary if s.k == k and (
            s.granularity == largest[s.sae] if granularity is None
            else s.granularity == granularity and s.mode == mode)}

    def to_dict(self) -> dict[str, Any]:
        return json_safe({
            "config": self.config, "hook": self.hook,
            "tasks": [t.to_dict() for t in self.tasks],
            "scores": [s.to_dict() for s in self.scores],
            "summary": [s.to_dict() for s in self.summary],
            "residual_mean": self.residual_mean.to_dict() if self.residual_mean else None,
            "llm_top_k": {str(k): e.to_dict() for k, e in self.llm_top_k.items()},
            "seconds": self.seconds,
        })  # type: ignore[return-value]
