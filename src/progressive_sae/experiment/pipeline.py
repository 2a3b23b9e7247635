"""The whole `psae run`, step by step: data → training → permutation → scoring → analyses →
report. This is the one place that chains training, evaluation and reporting."""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from progressive_sae.analysis.frontier import FrontierPoint
from progressive_sae.atomic import write_json_atomic
from progressive_sae.errors import PSAEError
from progressive_sae.evaluation import evaluate_fidelity
from progressive_sae.experiment.analyses import run_analyses
from progressive_sae.experiment.catalogue import Catalogue
from progressive_sae.experiment.config import ExperimentConfig
from progressive_sae.experiment.frontier_jobs import frontier_jobs, other_mode_jobs
from progressive_sae.experiment.runner import (
    EVALUATIONS_FILE,
    RANKING_LABELS,
    EvaluationLog,
    distilled,
    main_runs,
    permuted,
    prepare_data,
    train_or_reuse,
)
from progressive_sae.experiment.runs import planned_runs
from progressive_sae.progressive import latent_statistics
from progressive_sae.report import write_report
from progressive_sae.sae.base import SparseAutoencoder


@dataclass
class ExperimentResult:
    """Where a finished `psae run` wrote its outputs."""

    out: Path
    results: Path
    report_html: Path
    report_md: Path
    plots: list[Path]
    seconds: float


def run_experiment(cfg: ExperimentConfig, progress: bool = True) -> ExperimentResult:
    started = time.perf_counter()
    clock = Stopwatch()
    cfg.out.mkdir(parents=True, exist_ok=True)
    prepared = prepare_data(cfg, progress)
    clock.lap("data")
    log = EvaluationLog(cfg.out / EVALUATIONS_FILE, prepared.fingerprint)
    catalogue = _build_catalogue(cfg, prepared, log, progress)
    clock.lap("train, rank and permute")
    jobs = frontier_jobs(cfg, catalogue)
    points = _score(jobs, catalogue, prepared, log, cfg.eval.mode, progress)
    other = "prefix" if cfg.eval.mode == "relative" else "relative"
    points += _score(other_mode_jobs(cfg, catalogue, other), catalogue, prepared, log, other,
                     progress)
    clock.lap("score")
    analyses = run_analyses(cfg, catalogue, points, cfg.out / "plots")
    clock.lap("analyses")
    stages = _stages(cfg, catalogue, prepared, analyses.plots, progress, clock)
    results = {
        "config": {"grid": asdict(cfg.grid), "eval": asdict(cfg.eval),
                   "train": cfg.train.to_dict(), "text": cfg.text, "lm": cfg.lm,
                   "extract": cfg.extract},
        "saes": {name: {"num_latents": s.num_latents, "k": s.cfg.k,
                        "activation": s.cfg.activation, "granularities": s.cfg.granularities}
                 for name, s in catalogue.saes.items()},
        "baseline_ce": _baseline(prepared),
        "points": [p.to_dict() for p in points],
        **analyses.to_dict(),
        **stages,
        "seconds": clock.laps,
    }
    results_path = cfg.out / "results.json"
    write_json_atomic(results_path, results)
    html, md = write_report(cfg.out, results)
    return ExperimentResult(cfg.out, results_path, html, md, analyses.plots,
                            time.perf_counter() - started)


class Stopwatch:
    """Wall seconds of each stage of a run (this run's work only: reused work is free)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps[stage] = round(now - self._last, 2)
        self._last = now


def _stages(cfg: ExperimentConfig, cat: Catalogue, prepared, plots: list[Path],
            progress: bool, clock: Stopwatch) -> dict:
    """The optional interpretability and seed-002 stages; their plots join `plots`."""
    found = {}
    if cfg.interp is not None:
        from progressive_sae.experiment.interp_stage import run_interp

        found["interp"], written = run_interp(cfg, cat, prepared, cfg.out / "plots", progress)
        plots += written
        clock.lap("interp")
    if cfg.evals is not None:
        from progressive_sae.experiment.evals_stage import run_evals

        found["evals"], written = run_evals(cfg, cat, prepared, cfg.out / "plots", progress)
        plots += written
        clock.lap("evals")
    return found


def _baseline(prepared) -> dict | None:
    if not prepared.evalset.has_lm:
        return None
    b = prepared.evalset.baseline()
    return {"ce_clean": b.ce_clean, "ce_zero": b.ce_zero, "tokens": b.tokens}


def _build_catalogue(cfg: ExperimentConfig, prepared, log: EvaluationLog,
                     progress: bool) -> Catalogue:
    saes: dict[str, SparseAutoencoder] = {}
    runs = {run.name: run for run in planned_runs(cfg)}
    streamed = {}
    if prepared.stream is not None:  # one live pass for the whole grid, no training cache
        from progressive_sae.experiment.streamed import train_streamed

        streamed = train_streamed(list(runs.values()), cfg, prepared.lm, prepared.stream,
                                  progress)
    for run in runs.values():
        sae, fresh = (streamed[run.name] if prepared.stream is not None
                      else train_or_reuse(run, cfg, prepared.train, progress))
        if fresh:  # anything derived from an earlier SAE of this name is stale
            derived = [f"{run.name}+{by}" for by in RANKING_LABELS] + [
                f.name for f in (cfg.out / "saes").glob(f"{run.name}+distilled-*")]
            for name in derived:
                shutil.rmtree(cfg.out / "saes" / name, ignore_errors=True)
                log.forget(name)
            log.forget(run.name)
        saes[run.name] = sae.to(cfg.train.device)
    external = []
    for ext in cfg.external:
        from progressive_sae.formats import import_sae
        from progressive_sae.hub_paths import is_hub_path

        if ext.name in saes:
            raise PSAEError(f"external SAE name {ext.name!r} is already a run name: rename it")
        path: str | Path = ext.path
        if not is_hub_path(ext.path) and not Path(path).is_absolute() and not Path(path).exists():
            path = cfg.base / path
        sae = import_sae(path, ext.format, device=cfg.train.device)
        if sae.d_in != prepared.evalset.activations.d_in:
            raise PSAEError(f"external SAE {ext.name!r} reads width {sae.d_in}: the experiment's "
                            f"activations have width {prepared.evalset.activations.d_in}")
        saes[ext.name] = sae
        external.append(ext.name)
    stats = {}
    for name, sae in tqdm(list(saes.items()), desc="rank", unit="sae", disable=not progress):
        stats[name] = latent_statistics(sae, prepared.rank, batch_size=cfg.eval.batch_size)
        for by in cfg.grid.permute_by:
            saes[f"{name}+{by}"] = permuted(name, sae, stats[name], by, cfg.out)
    main_topk = main_runs(cfg, runs).get("TopK")
    for g in tqdm(cfg.grid.resolved_distill() if main_topk else [], desc="distill",
                  unit="sae", disable=not progress):
        name = f"{main_topk}+distilled-{g}"
        saes[name], fresh = distilled(main_topk, saes[main_topk], g, prepared.train, cfg.out)
        if fresh:  # points scored for an earlier distillation are stale
            log.forget(name)
    return Catalogue(saes, runs, external, stats)


def _score(jobs, cat: Catalogue, prepared, log: EvaluationLog, mode: str,
           progress: bool) -> list[FrontierPoint]:
    todo = sorted({(name, g) for _, name, g in jobs if log.get(name, g, mode) is None})
    for name, g in tqdm(todo, desc="evaluate", unit="point", disable=not progress):
        sae = cat.saes[name]
        fidelity = evaluate_fidelity(sae, prepared.evalset, g, mode)
        log.add({"sae": name, "num_latents": sae.num_latents, "trained_k": sae.cfg.k,
                 **fidelity.to_dict()})
    return [FrontierPoint.from_dict({**log.get(name, g, mode), "series": series})
            for series, name, g in jobs]
