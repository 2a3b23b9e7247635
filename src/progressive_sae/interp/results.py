"""Per-latent score files (jsonl, rewritten atomically) and the summary of a run.

`scores/<sae>.<interpreter>.jsonl` holds one `LatentResult` per line; a run that stops keeps
every finished line and a re-run scores only the latents missing from it. The summary has
one `SummaryRow` per SAE × interpreter × bucket × method (mean with a bootstrap interval
over the latents whose score is defined) and per frequency quantile.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from progressive_sae.atomic import write_bytes_atomic
from progressive_sae.errors import PSAEError
from progressive_sae.evals.common import bootstrap_mean
from progressive_sae.interp.scoring import LatentResult


def scores_path(out: Path, sae: str, interpreter: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", interpreter)
    return out / "scores" / f"{sae}.{safe}.jsonl"


def read_scores(path: Path) -> list[LatentResult]:
    """The results already written (none if the file does not exist)."""
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(LatentResult.from_dict(json.loads(line)))
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise PSAEError(f"{path}:{number} is not a latent score line ({err}); delete the "
                            "file to score its latents again") from None
    return rows


def write_scores(path: Path, rows: Iterable[LatentResult]) -> None:
    text = "".join(json.dumps(r.to_dict(), allow_nan=False, sort_keys=True) + "\n"
                   for r in rows)
    write_bytes_atomic(path, text.encode())


@dataclass(frozen=True)
class SummaryRow:
    """Mean score of one method over a group of latents, with its bootstrap interval."""

    sae: str
    """SAE name ('random' = the randomly initialised control)."""
    interpreter: str
    """'baseline' or 'llm:<model>'."""
    bucket: str
    """Granularity bucket label, or 'all'."""
    quantile: int | None
    """Frequency quantile, or None for the whole bucket."""
    method: str
    """'simulation', 'fuzzing' or 'detection'."""
    mean: float | None
    """Mean over the latents with a defined score; None when there are none."""
    low: float | None
    """Lower end of the 95% bootstrap interval."""
    high: float | None
    """Upper end."""
    scored: int
    """Latents with a defined score."""
    undefined: int
    """Latents scored but undefined (constant prediction, all answers failed, …)."""
    skipped: int
    """Latents drawn but skipped (too few windows)."""
    failed_answers: int
    """Unusable LLM answers over the group's latents."""
    llm_calls: int
    """LLM requests made for the group's latents."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def summarise(rows: Sequence[LatentResult], methods: Sequence[str], seed: int = 0
              ) -> list[SummaryRow]:
    """Rows per SAE × interpreter × bucket (and 'all') × method, and per quantile."""
    groups: dict[tuple[str, str, str, int | None], list[LatentResult]] = {}
    for r in rows:
        for bucket in (r.bucket, "all"):
            groups.setdefault((r.sae, r.interpreter, bucket, None), []).append(r)
            if bucket != "all":
                groups.setdefault((r.sae, r.interpreter, bucket, r.quantile), []).append(r)
    out = []
    for (sae, interpreter, bucket, quantile), members in groups.items():
        scored = [r for r in members if r.skipped is None]
        for method in methods:
            values = [r.value(method) for r in scored if r.value(method) is not None]
            estimate = bootstrap_mean(values, seed=seed) if values else None
            failed = sum(len(r.scores[method].failures) for r in scored if method in r.scores)
            out.append(SummaryRow(
                sae, interpreter, bucket, quantile, method,
                _finite(estimate.value) if estimate else None,
                _finite(estimate.low) if estimate else None,
                _finite(estimate.high) if estimate else None,
                len(values), len(scored) - len(values), len(members) - len(scored), failed,
                sum(r.llm_calls for r in scored)))
    return sorted(out, key=lambda s: (s.sae, s.interpreter, s.bucket != "all", s.bucket,
                                      -1 if s.quantile is None else s.quantile, s.method))


@dataclass
class InterpResult:
    """What `interpret` returns and writes to `<out>/summary.json`."""

    out: str
    """The run's folder."""
    saes: dict[str, dict[str, Any]]
    """Per SAE: num_latents, buckets, records folder, whether it is the random control."""
    interpreters: list[str]
    """Labels of the interpreters that scored latents."""
    methods: list[str]
    """Methods computed."""
    summary: list[SummaryRow]
    """Means per SAE × interpreter × bucket × method (and per quantile)."""
    plots: dict[str, str] = field(default_factory=dict)
    """Plot name → PNG path."""
    timing: dict[str, float] = field(default_factory=dict)
    """Seconds spent: records, scoring per interpreter, per latent scored."""
    llm: dict[str, Any] = field(default_factory=dict)
    """LLM client statistics (calls, cache hits) when the client reports them."""
    config: dict[str, Any] = field(default_factory=dict)
    """The InterpConfig used."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["summary"] = [s.to_dict() for s in self.summary]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InterpResult:
        """From `to_dict`'s output; keys a caller added beside it (e.g. `psae run`'s
        browsers) are left out."""
        known = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in data.items() if k in known}
        return cls(**{**fields, "summary": [SummaryRow(**s) for s in data["summary"]]})

    @classmethod
    def load(cls, out: str | Path) -> InterpResult:
        """The result of a finished run from its `summary.json`."""
        from progressive_sae.json_files import read_json_object

        path = Path(out) / "summary.json"
        data = read_json_object(path, f"{out} holds no interpretability run (no summary.json)")
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError) as err:
            raise PSAEError(f"{path} is not an interpretability summary ({err})") from None

    def mean(self, sae: str, method: str, bucket: str = "all",
             interpreter: str | None = None) -> float | None:
        """Mean score of a group (the first interpreter when none is named)."""
        interpreter = interpreter or (self.interpreters[0] if self.interpreters else "")
        for s in self.summary:
            if (s.sae, s.interpreter, s.bucket, s.quantile, s.method) == (
                    sae, interpreter, bucket, None, method):
                return s.mean
        return None
