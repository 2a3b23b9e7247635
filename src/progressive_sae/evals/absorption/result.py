"""Result records of the absorption evaluation: per class, per (SAE, view), per task."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from progressive_sae.evals.common import Estimate, GranularityView
from progressive_sae.evals.hierarchy.result import estimate_dict, finite

STATUSES = ("scored", "gated", "too_few")
"""A class is scored, gated (its residual probe's test F1 < gate) or has too few rows."""


@dataclass(frozen=True)
class ClassProbe:
    """The ground-truth residual probe of one class."""

    name: str
    """Class label (e.g. the letter 'a')."""
    rows: tuple[int, int, int]
    """Rows of this class in the train, validation and test splits."""
    test_f1: float | None
    """The residual probe's F1 on the test split (None: too few rows)."""
    status: str
    """'scored', 'gated' or 'too_few'."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rows": list(self.rows), "test_f1": finite(self.test_f1),
                "status": self.status}


@dataclass(frozen=True)
class ClassAbsorption:
    """Absorption of one class by one SAE view."""

    name: str
    """Class label."""
    main_latents: tuple[int, ...]
    """The k main latents (k-sparse search: grow k while validation F1 rises > f1_jump)."""
    sparse_f1: float
    """Validation F1 of the k-sparse probe at the chosen k."""
    true_positives: int
    """Test rows of this class that the residual probe calls positive (where it is measured)."""
    mean_absorption_fraction: float | None
    """Mean absorption fraction over those rows (None: no true positive)."""
    full_absorption_rate: float | None
    """Share of those rows with full absorption."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "main_latents": list(self.main_latents),
                "sparse_f1": finite(self.sparse_f1), "true_positives": self.true_positives,
                "mean_absorption_fraction": finite(self.mean_absorption_fraction),
                "full_absorption_rate": finite(self.full_absorption_rate)}


@dataclass(frozen=True)
class ViewAbsorption:
    """Absorption scores of one SAE at one granularity view, over the scored classes."""

    sae: str
    """Name of the SAE."""
    view: GranularityView
    """Which latents were used."""
    mean_absorption_fraction: Estimate | None
    """Mean over classes of each class's mean absorption fraction (lower is better)."""
    full_absorption_rate: Estimate | None
    """Mean over classes of each class's full-absorption rate (lower is better)."""
    mean_main_latents: float | None
    """Mean number of main latents per class (> 1: the concept is split)."""
    classes: tuple[ClassAbsorption, ...]
    """Per scored class."""

    def to_dict(self) -> dict[str, Any]:
        return {"sae": self.sae, "view": self.view.to_dict(), "label": self.view.label,
                "mean_absorption_fraction": estimate_dict(self.mean_absorption_fraction),
                "full_absorption_rate": estimate_dict(self.full_absorption_rate),
                "mean_main_latents": finite(self.mean_main_latents),
                "classes": [c.to_dict() for c in self.classes]}


@dataclass(frozen=True)
class AbsorptionResult:
    """Absorption of every SAE at every view on one labelled task."""

    task: str
    """Task name ('first-letter', 'word-start', …, or the caller's)."""
    probes: tuple[ClassProbe, ...]
    """Ground-truth probe of each class, with its gate status."""
    views: tuple[ViewAbsorption, ...]
    """One entry per (SAE, view)."""
    splits: tuple[int, int, int]
    """Rows in the train, validation and test splits."""
    config: dict[str, Any]
    """The AbsorptionConfig used."""
    seconds: float
    """Wall time (activations, probes and every SAE)."""
    details: dict[str, Any] = field(default_factory=dict)
    """Task specifics, e.g. the first-letter template, an example prompt and read position."""

    @property
    def scored_classes(self) -> list[str]:
        return [p.name for p in self.probes if p.status == "scored"]

    def to_dict(self) -> dict[str, Any]:
        return {"evaluation": "absorption", "task": self.task,
                "bootstrap_unit": "true-positive row (class membership kept)",
                "splits": list(self.splits), "config": self.config,
                "seconds": finite(self.seconds), "details": self.details,
                "scored_classes": self.scored_classes,
                "gated_classes": [p.name for p in self.probes if p.status == "gated"],
                "probes": [p.to_dict() for p in self.probes],
                "views": [v.to_dict() for v in self.views]}
