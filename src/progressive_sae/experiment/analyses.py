"""The analyses of a `psae run` (SPEC §4.1–4.5) over its scored points and SAEs: plots + data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from progressive_sae.analysis.activation_mass import (
    ActivationMassCurve,
    activation_mass_curve,
    plot_activation_mass,
)
from progressive_sae.analysis.correlation import (
    CorrelationResult,
    metric_correlations,
    plot_metric_correlations,
)
from progressive_sae.analysis.frontier import (
    SIDE_SERIES,
    FrontierPoint,
    plot_frontier,
    scaling_points,
)
from progressive_sae.analysis.power_law import (
    DictionaryPowerLaw,
    dictionary_power_law,
    plot_power_law,
)
from progressive_sae.analysis.scaling_law import (
    ScalingLawFit,
    fit_scaling_law,
    plot_scaling_law,
)
from progressive_sae.analysis.splitting import (
    FeatureSplitting,
    decoder_similarity,
    plot_decoder_similarity,
    plot_split_counts,
    split_counts,
)
from progressive_sae.errors import PSAEError
from progressive_sae.experiment.config import ExperimentConfig
from progressive_sae.experiment.runner import main_runs
from progressive_sae.progressive import ranking
from progressive_sae.report.claims import DISTILLED
from progressive_sae.sae.base import SparseAutoencoder

if TYPE_CHECKING:
    from progressive_sae.experiment.catalogue import Catalogue

BASELINE_SERIES = "TopK baselines (trained at size G)"
BASELINE_STYLE = {"color": "black", "marker": "s", "linestyle": "--"}
DISTILLED_STYLE = {"color": "crimson", "marker": "D", "linestyle": "-."}


@dataclass
class Analyses:
    """Everything the report shows besides the raw points."""

    plots: list[Path] = field(default_factory=list)
    power_law: dict[str, DictionaryPowerLaw] = field(default_factory=dict)
    scaling_law: ScalingLawFit | None = None
    scaling_law_error: str | None = None
    splitting: FeatureSplitting | None = None
    splitting_pair: tuple[str, str] | None = None
    activation_mass: dict[str, ActivationMassCurve] = field(default_factory=dict)
    block_similarity: dict[str, float] = field(default_factory=dict)
    """Mean |cos| of decoder rows within a Matryoshka block over that across blocks."""
    correlation: CorrelationResult | None = None
    """FVU, recaptured loss and RSA correlated over every scored point."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "plots": [p.name for p in self.plots],
            "power_law": {name: r.to_dict() for name, r in self.power_law.items()},
            "scaling_law": self.scaling_law.to_dict() if self.scaling_law else None,
            "scaling_law_error": self.scaling_law_error,
            "feature_splitting": {"small": self.splitting_pair[0], "large": self.splitting_pair[1],
                                  **self.splitting.to_dict()} if self.splitting else None,
            "activation_mass": {name: c.to_dict() for name, c in self.activation_mass.items()},
            "block_similarity": self.block_similarity,
            "metric_correlation": self.correlation.to_dict() if self.correlation else None,
        }


def run_analyses(cfg: ExperimentConfig, cat: Catalogue, points: Sequence[FrontierPoint],
                 plots_dir: Path) -> Analyses:
    result = Analyses()
    n, k = cfg.grid.num_latents, cfg.grid.k
    progressive = [p for p in points if not p.series.startswith(SIDE_SERIES)]
    styles = {BASELINE_SERIES: BASELINE_STYLE, DISTILLED: DISTILLED_STYLE}
    metrics = [("fvu", "FVU"), ("ce_ratio", "recaptured LM loss"), ("rsa", "RSA")]
    for metric, title in metrics:
        if any(p.value(metric) is not None for p in progressive):
            result.plots.append(plot_frontier(
                progressive, metric, plots_dir / f"frontier_{metric}.png",
                title=f"Progressive-coding frontier: {title} vs G\n(N={n}, k={k}, "
                      f"{cfg.eval.mode} sparsity)", styles=styles))
    sparsity = [FrontierPoint(p.series.removeprefix("sparsity: "), p.sae, p.num_latents,
                              p.trained_k, p.fidelity)
                for p in points if p.series.startswith("sparsity:")]
    if sparsity:
        result.plots.append(plot_frontier(
            sparsity, "fvu", plots_dir / "sparsity_frontier_fvu.png", x="l0",
            title=f"Sparsity–fidelity frontier (N={n}; @G = first G latents)"))
        if any(p.value("ce_ratio") is not None for p in sparsity):
            result.plots.append(plot_frontier(
                sparsity, "ce_ratio", plots_dir / "sparsity_frontier_ce_ratio.png", x="l0",
                title=f"Sparsity frontier: recaptured LM loss (N={n})"))

    result.correlation = metric_correlations(points)
    if any(p.n >= 3 for p in result.correlation.pairs):
        result.plots.append(plot_metric_correlations(result.correlation,
                                                     plots_dir / "metric_correlation.png"))
    _power_law(cfg, cat, result, plots_dir)
    _scaling_law(points, result, plots_dir)
    _splitting(cfg, cat, result, plots_dir)
    _activation_mass(cfg, cat, result, plots_dir)
    return result


def _power_law(cfg: ExperimentConfig, cat: Catalogue, result: Analyses, plots_dir: Path) -> None:
    chosen = [r.name for r in cat.runs.values() if r.baseline]
    chosen += [name for family, name in main_runs(cfg, cat.runs).items() if family != "TopK"]
    chosen += cat.external
    for name in chosen:
        result.power_law[name] = dictionary_power_law(cat.saes[name], cat.stats[name])
    if result.power_law:
        result.plots.append(plot_power_law(result.power_law, plots_dir / "power_law.png"))


def _scaling_law(points: Sequence[FrontierPoint], result: Analyses, plots_dir: Path) -> None:
    """Fit eq. 9 over every permuted-TopK (E[z²]) point: sizes, k values and granularities."""
    data = scaling_points(
        p for p in points
        if p.sae.endswith("+mean_sq") and p.sae.split("-")[0] in ("topk", "batchtopk")
        and not p.series.startswith(("prefix:", "relative:")))
    try:
        result.scaling_law = fit_scaling_law(data)
    except PSAEError as err:
        result.scaling_law_error = str(err)
        return
    result.plots.append(plot_scaling_law(result.scaling_law, data, plots_dir / "scaling_law.png"))


def _splitting(cfg: ExperimentConfig, cat: Catalogue, result: Analyses, plots_dir: Path) -> None:
    main = main_runs(cfg, cat.runs)
    shown = cfg.eval.similarity_latents
    for family in ("Matryoshka", "TopK"):
        if family in main:
            name = main[family]
            slug = family.lower()
            result.plots.append(plot_decoder_similarity(
                cat.saes[name], plots_dir / f"decoder_similarity_{slug}.png", shown))
    matryoshka = main.get("Matryoshka")
    if matryoshka is not None:
        bounds = cat.saes[matryoshka].cfg.granularities or []
        for family, name in main.items():
            if family in ("TopK", "Matryoshka"):
                result.block_similarity[family] = block_contrast(cat.saes[name], bounds)
    sizes = sorted((r.num_latents, r.name) for r in cat.runs.values() if r.baseline)
    if len(sizes) >= 2:
        small, large = sizes[0][1], sizes[-1][1]
        result.splitting = split_counts(cat.saes[small], cat.saes[large],
                                        cfg.eval.split_threshold)
        result.splitting_pair = (small, large)
        result.plots.append(plot_split_counts(result.splitting,
                                              plots_dir / "feature_splitting.png"))


@torch.no_grad()
def block_contrast(sae: SparseAutoencoder, bounds: Sequence[int], max_latents: int = 4096) -> float:
    """Mean |cos| between decoder rows in the same block [m_{i-1}, m_i) over that between
    rows of different blocks (first `max_latents` rows): > 1 is the stepped pattern."""
    cos = decoder_similarity(sae, max_latents).abs().double()
    n = cos.shape[0]
    block = torch.zeros(n, dtype=torch.long)
    for b in bounds:
        if b < n:
            block[b:] += 1
    same = block[:, None] == block[None, :]
    off_diag = ~torch.eye(n, dtype=torch.bool)
    within, across = cos[same & off_diag], cos[~same]
    if within.numel() == 0 or across.numel() == 0:
        return float("nan")
    return float(within.mean() / across.mean())


def _activation_mass(cfg: ExperimentConfig, cat: Catalogue, result: Analyses,
                     plots_dir: Path) -> None:
    for family, name in main_runs(cfg, cat.runs).items():
        label = "TopK (unpermuted)" if family == "TopK" else family
        result.activation_mass[label] = activation_mass_curve(cat.stats[name].mean)
        if family == "TopK" and "mean_sq" in cfg.grid.permute_by:
            stats = cat.stats[name]  # the permuted SAE's latent j is latent ranking[j]
            result.activation_mass["TopK permuted by E[z²]"] = activation_mass_curve(
                stats.mean[ranking(stats, "mean_sq")])
    if result.activation_mass:
        result.plots.append(plot_activation_mass(result.activation_mass,
                                                 plots_dir / "activation_mass.png"))

