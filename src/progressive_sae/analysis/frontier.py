"""Fidelity frontiers (SPEC §4.1–4.2): metrics against granularity G, or against sparsity.

The progressive-coding frontier scores every SAE at a grid of granularities; the
sparsity–fidelity frontier scores SAEs trained with different k at full size and at
prefixes. Both are lists of `FrontierPoint`s; `series` names the line a point belongs to.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
from tqdm import tqdm

from progressive_sae.analysis.plotting import new_figure, save_figure
from progressive_sae.analysis.scaling_law import ScalingPoint
from progressive_sae.errors import PSAEError
from progressive_sae.evaluation import EvalSet, Fidelity, evaluate_fidelity
from progressive_sae.sae.base import SparseAutoencoder

METRICS = {
    "fvu": "FVU (lower is better)",
    "ce_ratio": "recaptured LM loss CE_clean/CE_spliced (higher is better)",
    "rsa": "RSA (higher is better)",
    "fraction_recovered": "CE fraction recovered vs zero-ablation",
    "l0": "L0 (active latents per token)",
}
"""Metrics a frontier can plot, with their axis labels."""


SIDE_SERIES = ("sparsity:", "scaling:", "prefix:", "relative:")
"""Prefixes of series that are not lines of the progressive frontier: sparsity-frontier and
scaling-law points, and points scored in the run's other granularity mode."""


@dataclass
class FrontierPoint:
    """One SAE scored at one granularity."""

    series: str
    """The line this point belongs to in a plot (e.g. 'TopK permuted by E[z²]')."""
    sae: str
    """Name of the SAE that was scored."""
    num_latents: int
    """That SAE's full size N."""
    trained_k: int
    """The k it was trained with."""
    fidelity: Fidelity
    """The scores."""

    def to_dict(self) -> dict[str, Any]:
        return {"series": self.series, "sae": self.sae, "num_latents": self.num_latents,
                "trained_k": self.trained_k, **self.fidelity.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FrontierPoint:
        own = ("series", "sae", "num_latents", "trained_k")
        return cls(*(data[name] for name in own),
                   Fidelity(**{k: v for k, v in data.items() if k not in own}))

    def value(self, metric: str) -> float | None:
        return getattr(self.fidelity, metric)


def read_result_points(path: str | Path) -> list[FrontierPoint]:
    """The scored points of a `psae run` results.json (or a frontier.json): its "points"."""
    path = Path(path)
    if not path.is_file():
        raise PSAEError(f"{path} does not exist: expected a results.json of psae run")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PSAEError(f"{path} is not valid JSON ({err})") from None
    points = data.get("points") if isinstance(data, dict) else None
    if not isinstance(points, list):
        raise PSAEError(f"{path}: expected a JSON object with a 'points' list (psae run's "
                        "results.json)")
    try:
        return [FrontierPoint.from_dict(p) for p in points]
    except (KeyError, TypeError) as err:
        raise PSAEError(f"{path}: a point is not a scored frontier point ({err})") from None


def scaling_points(points: Iterable[FrontierPoint]) -> list[ScalingPoint]:
    """(N, k, G, FVU) of each distinct (SAE, G) with a positive FVU, for the scaling law."""
    seen, out = set(), []
    for p in points:
        key = (p.sae, p.fidelity.granularity)
        if key not in seen and p.fidelity.fvu > 0:
            seen.add(key)
            out.append(ScalingPoint(p.num_latents, p.trained_k, p.fidelity.granularity,
                                    p.fidelity.fvu))
    return out


def usable_granularities(sae: SparseAutoencoder, granularities: Iterable[int]) -> list[int]:
    """The requested G that this SAE can be scored at (G ≤ N; TopK needs k_G < G)."""
    out = []
    for g in sorted(set(granularities)):
        if g > sae.num_latents or g < 1:
            continue
        if sae.cfg.activation != "jumprelu" and g < sae.num_latents and sae.relative_k(g) >= g:
            continue
        out.append(g)
    return out


def evaluate_points(
    jobs: Sequence[tuple[str, str, SparseAutoencoder, int]], evalset: EvalSet,
    mode: str = "relative", done: Callable[[FrontierPoint], None] | None = None,
    progress: bool = True,
) -> list[FrontierPoint]:
    """Score each (series, name, sae, G) job; `done` sees each point as it is finished
    (the experiment runner saves it, so an interrupted evaluation is not redone)."""
    points = []
    for series, name, sae, g in tqdm(jobs, desc="evaluate", unit="point", disable=not progress):
        point = FrontierPoint(series, name, sae.num_latents, sae.cfg.k,
                              evaluate_fidelity(sae, evalset, g, mode))
        points.append(point)
        if done is not None:
            done(point)
    return points


def progressive_frontier(
    saes: Mapping[str, SparseAutoencoder], evalset: EvalSet, granularities: Iterable[int],
    mode: str = "relative", progress: bool = True,
) -> list[FrontierPoint]:
    """Every SAE (series = its name) at every granularity it allows."""
    grid = list(granularities)
    jobs = [(name, name, sae, g) for name, sae in saes.items()
            for g in usable_granularities(sae, grid)]
    return evaluate_points(jobs, evalset, mode, progress=progress)


def sparsity_frontier(
    saes: Mapping[str, SparseAutoencoder], evalset: EvalSet, prefixes: Iterable[int] = (),
    family: Callable[[str], str] = lambda name: name, progress: bool = True,
) -> list[FrontierPoint]:
    """SAEs trained at different k, each at full size and at each prefix size G < N;
    series = '<family> @G', so one line runs across k at each size."""
    jobs = []
    for name, sae in saes.items():
        for g in usable_granularities(sae, [*prefixes, sae.num_latents]):
            jobs.append((f"{family(name)} @{g}", name, sae, g))
    return evaluate_points(jobs, evalset, progress=progress)


def plot_frontier(
    points: Sequence[FrontierPoint], metric: str, path: str | Path, x: str = "granularity",
    title: str | None = None, styles: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """One line per series of `metric` against `x` ('granularity' or 'l0'), log-x."""
    fig, (ax,) = new_figure()
    series: dict[str, list[FrontierPoint]] = {}
    for p in points:
        if p.value(metric) is not None:
            series.setdefault(p.series, []).append(p)
    palette = matplotlib.colormaps["tab20"].colors
    for i, (name, group) in enumerate(series.items()):
        group = sorted(group, key=lambda p: getattr(p.fidelity, x))
        style = {"marker": "o", "markersize": 4, "color": palette[(2 * i) % 20 + (i // 10) % 2],
                 "linestyle": ":" if "frequency" in name else "-",
                 **(styles or {}).get(name, {})}
        ax.plot([getattr(p.fidelity, x) for p in group], [p.value(metric) for p in group],
                label=name, **style)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("granularity G (latents used)" if x == "granularity" else "L0 (measured)")
    ax.set_ylabel(METRICS.get(metric, metric))
    if metric == "fvu":
        ax.set_yscale("log")
    ax.set_title(title or f"{metric} vs {x}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, path)
