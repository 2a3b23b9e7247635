"""The points a `psae run` scores: (series label, SAE name, granularity G) for every curve.

The pipeline scores these; the stages read the same labels to find the SAE a series names.
"""

from __future__ import annotations

from progressive_sae.analysis.frontier import usable_granularities
from progressive_sae.experiment.catalogue import Catalogue
from progressive_sae.experiment.config import ExperimentConfig
from progressive_sae.experiment.runner import RANKING_LABELS, main_runs
from progressive_sae.report.claims import DISTILLED


def permuted_label(family: str, by: str) -> str:
    return f"{family} permuted by {RANKING_LABELS[by]}"


def frontier_jobs(cfg: ExperimentConfig, cat: Catalogue) -> list[tuple[str, str, int]]:
    """(series, SAE name, G) of every point the analyses need."""
    grid, n, k = cfg.grid, cfg.grid.num_latents, cfg.grid.k
    gs = cfg.eval.resolved_granularities(grid)
    jobs: list[tuple[str, str, int]] = []

    def along(series: str, name: str, sizes: list[int]) -> None:
        if name in cat.saes:
            jobs.extend((series, name, g) for g in usable_granularities(cat.saes[name], sizes))

    for run in (r for r in cat.runs.values() if r.num_latents == n and r.k == k):
        label = run.family if run.family != "TopK" else "TopK, unpermuted"
        along(label, run.name, gs)
        for by in grid.permute_by:
            along(permuted_label(run.family, by), f"{run.name}+{by}", gs)
    for run in cat.runs.values():
        if run.baseline:
            along("TopK baselines (trained at size G)", run.name, [run.num_latents])
            if run.num_latents < n and "mean_sq" in grid.permute_by:
                along(f"TopK-{run.num_latents} permuted by E[z²]", f"{run.name}+mean_sq", gs)
    prefixes = [g for g in cfg.eval.resolved_prefixes(grid) if g < n] + [n]
    for run in cat.runs.values():
        if run.num_latents != n or run.family == "Sampled Matryoshka":
            continue
        name = f"{run.name}+mean_sq" if run.family == "TopK" else run.name
        family = "TopK permuted by E[z²]" if run.family == "TopK" else run.family
        for g in prefixes:
            along(f"sparsity: {family} @{g}", name, [g])
        if run.family == "TopK" and run.k != k:  # more (N, k, G) points for the scaling law
            along(f"scaling: TopK-k{run.k} permuted by E[z²]", name, gs)
    main_topk = main_runs(cfg, cat.runs).get("TopK")
    for g in cfg.grid.resolved_distill() if main_topk else []:
        along(DISTILLED, f"{main_topk}+distilled-{g}", [g])
    for name in cat.external:
        along(name, name, gs)
        for by in grid.permute_by:
            along(f"{name} permuted by {RANKING_LABELS[by]}", f"{name}+{by}", gs)
    return jobs


def other_mode_jobs(cfg: ExperimentConfig, cat: Catalogue, mode: str) -> list:
    """Matryoshka and permuted TopK at the Matryoshka sizes, scored in `mode` too, so the
    claims comparing them can say where the paper's result holds in either mode."""
    main = main_runs(cfg, cat.runs)
    if "Matryoshka" not in main or "TopK" not in main or "mean_sq" not in cfg.grid.permute_by:
        return []
    sizes = [g for g in cfg.grid.resolved_matryoshka() if g < cfg.grid.num_latents]
    return [(f"{mode}: {series}", name, g) for series, name in (
        ("Matryoshka", main["Matryoshka"]), (permuted_label("TopK", "mean_sq"),
                                             f"{main['TopK']}+mean_sq")) for g in sizes]
