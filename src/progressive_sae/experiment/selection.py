"""Which catalogue SAE a series label names (the labels the report and YAML use)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from progressive_sae.errors import PSAEError
from progressive_sae.experiment.config import ExperimentConfig
from progressive_sae.experiment.frontier_jobs import frontier_jobs
from progressive_sae.sae.base import SparseAutoencoder

if TYPE_CHECKING:
    from progressive_sae.experiment.catalogue import Catalogue


def series_saes(cfg: ExperimentConfig, cat: Catalogue) -> dict[str, str]:
    """Series label → SAE name, for every series drawn from one SAE (not the baselines)."""
    names: dict[str, set[str]] = {}
    for series, name, _ in frontier_jobs(cfg, cat):
        names.setdefault(series, set()).add(name)
    return {series: next(iter(found)) for series, found in names.items() if len(found) == 1}


def pick_saes(cfg: ExperimentConfig, cat: Catalogue, labels: list[str],
              where: str) -> dict[str, SparseAutoencoder]:
    """The SAEs behind `labels`; an unknown label is one line listing the known ones."""
    known = series_saes(cfg, cat)
    missing = [label for label in labels if label not in known]
    if missing:
        raise PSAEError(f"{where}: no SAE series {missing[0]!r} in this run; expected some of "
                        f"{sorted(known)}")
    return {label: cat.saes[known[label]] for label in labels}
