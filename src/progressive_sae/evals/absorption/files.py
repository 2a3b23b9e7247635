"""Absorption results on disk: JSON (valid, no NaN) and a PNG, written atomically."""

from __future__ import annotations

import json
from pathlib import Path

from progressive_sae.atomic import write_bytes_atomic
from progressive_sae.evals.absorption.plot import plot_absorption
from progressive_sae.evals.absorption.result import AbsorptionResult
from progressive_sae.evals.hierarchy.plot import plot_hierarchy
from progressive_sae.evals.hierarchy.result import HierarchyResult


def write_result_files(result: AbsorptionResult | HierarchyResult, out: str | Path
                       ) -> list[Path]:
    """`out/hierarchy.{json,png}` or `out/absorption_<task>.{json,png}`."""
    out = Path(out)
    if isinstance(result, HierarchyResult):
        stem, plot = "hierarchy", plot_hierarchy
    else:
        stem, plot = f"absorption_{result.task}", plot_absorption
    text = json.dumps(result.to_dict(), indent=2, sort_keys=True, allow_nan=False)
    write_bytes_atomic(out / f"{stem}.json", (text + "\n").encode())
    return [out / f"{stem}.json", plot(result, out / f"{stem}.png")]  # type: ignore[arg-type]
