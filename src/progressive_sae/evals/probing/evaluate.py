"""Sparse probing (SAEBench): per binary task, the k latents whose mean-pooled activations
differ most between the classes on the training texts, a logistic regression on them, and
its test accuracy beside a probe on the full mean-pooled residual, the same top-k selection
on the residual (SAEBench's llm_top_k) and a probe on every latent — per granularity view.
Means are SAEBench's: over a dataset's tasks (its one-vs-rest classes), then over datasets
(a task 'package:asyncio' belongs to dataset 'package')."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from progressive_sae.errors import PSAEError
from progressive_sae.evals.common import (
    GATE_ACCURACY,
    Estimate,
    GranularityView,
    granularity_views,
)
from progressive_sae.evals.datasets.labelled import TextTask
from progressive_sae.evals.datasets.offline import offline_tasks
from progressive_sae.evals.probing.adamw import FULL_WIDTH, train_adamw_probe
from progressive_sae.evals.probing.config import ProbingConfig
from progressive_sae.evals.probing.pooling import (
    TextActivations,
    check_width,
    collect_activations,
    unique_texts,
    view_latents,
)
from progressive_sae.evals.probing.probes import LinearProbe, fit_probe, top_by_mean_difference
from progressive_sae.evals.probing.result import (
    ProbeScore,
    ProbeSummary,
    ProbingResult,
    TaskRecord,
)
from progressive_sae.evals.probing.stats import Resamples
from progressive_sae.lm.model import LanguageModel
from progressive_sae.sae.base import SparseAutoencoder


@dataclass
class PreparedTask:
    """A task's rows in the shared activations, its resamples and its residual probe."""

    task: TextTask
    train_rows: np.ndarray
    test_rows: np.ndarray
    resamples: Resamples
    record: TaskRecord
    residual_draws: np.ndarray
    llm_draws: dict[int, np.ndarray]


ALL_LATENTS = 0
"""The k of a probe on every latent of the view (SAEBench's sae_test_accuracy)."""


def dataset_of(task: str) -> str:
    """The dataset a task belongs to: its name up to the first ':'."""
    return task.split(":")[0]


def sparse_probe(x: np.ndarray, y: np.ndarray, config: ProbingConfig) -> LinearProbe:
    """A k-sparse probe: SAEBench's sklearn defaults (lbfgs, raw features) or ours."""
    return fit_probe(x, y, config.c, config.max_iter, standardize=config.probe != "saebench")


def full_probe(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
               config: ProbingConfig, seed: int) -> LinearProbe:
    """A probe on every residual dimension or latent: SAEBench's torch recipe (batch 250,
    lr 1e-2, 100 epochs, patience 10, epoch kept on test) or ours."""
    if config.probe == "saebench":
        return train_adamw_probe(x.astype(np.float32), y, x_test.astype(np.float32), y_test,
                                 FULL_WIDTH, seed).probe
    return fit_probe(x, y, config.c, config.max_iter)


def task_texts(tasks: Iterable[TextTask]) -> list[str]:
    return unique_texts(*(t.train_texts + t.test_texts for t in tasks))


def check_task(task: TextTask) -> None:
    for side, labels in (("train", task.train_labels), ("test", task.test_labels)):
        found = sorted(set(np.asarray(labels).tolist()))
        if len(labels) == 0:
            raise PSAEError(f"task {task.name!r}: the {side} label set is empty; expected "
                            "texts of both classes")
        if found != [0, 1]:
            raise PSAEError(f"task {task.name!r}: {side} labels {found}; expected both classes "
                            "0 and 1")


def prepare_tasks(tasks: Sequence[TextTask], acts: TextActivations,
                  config: ProbingConfig) -> list[PreparedTask]:
    """Rows, resamples and the full-residual probe (the gate) of each task."""
    prepared = []
    pooled = acts.pooled.numpy()
    for i, task in enumerate(tasks):
        check_task(task)
        train, test = acts.rows(task.train_texts), acts.rows(task.test_texts)
        resamples = Resamples.draw(len(test), config.resamples, config.level, config.seed + i)
        truth = task.test_labels.astype(bool)
        probe = full_probe(pooled[train], task.train_labels, pooled[test], task.test_labels,
                           config, config.seed + i)
        correct = probe.predict(pooled[test]) == truth
        residual = resamples.estimate(float(correct.mean()), resamples.means(correct))
        order = top_by_mean_difference(pooled[train], task.train_labels, max(config.ks))
        llm_top_k, llm_draws = {}, {}
        for k in config.ks:
            cols = order[:k]
            ok = sparse_probe(pooled[train][:, cols], task.train_labels,
                              config).predict(pooled[test][:, cols]) == truth
            llm_draws[k] = resamples.means(ok)
            llm_top_k[k] = resamples.estimate(float(ok.mean()), llm_draws[k])
        record = TaskRecord(task.name, task.description, list(task.classes), len(train),
                            len(test), residual, residual.value < GATE_ACCURACY, llm_top_k)
        prepared.append(PreparedTask(task, train, test, resamples, record,
                                     resamples.means(correct), llm_draws))
    return prepared


def probe_view(prepared: Sequence[PreparedTask], z: np.ndarray, sae: str,
               view: GranularityView, config: ProbingConfig,
               draws: dict[tuple, list[np.ndarray]]) -> list[ProbeScore]:
    """Top-k probes (and the all-latents probe, k = ALL_LATENTS) of one view's pooled latents
    `z` [texts, G] on every ungated task. `draws` collects each score's resampled accuracies
    per (sae, G, mode, k), keyed further by task, for the summaries."""
    scores = []
    for i, p in enumerate(prepared):
        if p.record.gated:
            continue
        y = p.task.train_labels
        truth = p.task.test_labels.astype(bool)
        z_train, z_test = z[p.train_rows], z[p.test_rows]
        order = top_by_mean_difference(z_train, y, max(config.ks))
        probes: list[tuple[int, np.ndarray, LinearProbe]] = []
        for k in config.ks:
            cols = order[:k]
            probes.append((k, cols, sparse_probe(z_train[:, cols], y, config)))
        if config.all_latents:
            cols = np.arange(z.shape[1])
            probes.append((ALL_LATENTS, cols, full_probe(z_train, y, z_test, p.task.test_labels,
                                                         config, config.seed + i)))
        for k, cols, probe in probes:
            correct = probe.predict(z_test[:, cols]) == truth
            resampled = p.resamples.means(correct)
            draws[(sae, view.granularity, view.mode, k)].append(resampled)
            scores.append(ProbeScore(sae, view.granularity, view.mode, p.task.name, k,
                                     p.resamples.estimate(float(correct.mean()), resampled),
                                     [int(c) for c in cols] if k != ALL_LATENTS else []))
    return scores


def dataset_mean(tasks: Sequence[str], values: Sequence[float], draws: Sequence[np.ndarray]
                 ) -> tuple[float, np.ndarray, int]:
    """SAEBench's mean: over each dataset's tasks, then over datasets (value, resampled
    draws [R], datasets)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(tasks):
        groups[dataset_of(t)].append(i)
    value = float(np.mean([np.mean([values[i] for i in g]) for g in groups.values()]))
    mean_draws = np.mean([np.mean(np.stack([draws[i] for i in g]), axis=0)
                          for g in groups.values()], axis=0)
    return value, mean_draws, len(groups)


def summarize(scores: Sequence[ProbeScore], draws: dict[tuple, list[np.ndarray]],
              level: float) -> list[ProbeSummary]:
    """Per (SAE, view, k) the mean over each dataset's tasks, then over datasets; resample r
    averages every task's resample r the same way."""
    rows: dict[tuple, list[ProbeScore]] = defaultdict(list)
    for s in scores:
        rows[(s.sae, s.granularity, s.mode, s.k)].append(s)
    out = []
    for key, mine in rows.items():
        value, mean_draws, datasets = dataset_mean([s.task for s in mine],
                                                   [s.accuracy.value for s in mine], draws[key])
        est = Resamples(np.zeros((1, len(mine))), level).estimate(value, mean_draws)
        out.append(ProbeSummary(*key, accuracy=est, tasks=len(mine), datasets=datasets))
    return out


def _prepared_mean(scored: Sequence[PreparedTask], values: Sequence[float],
                   draws: Sequence[np.ndarray], level: float) -> Estimate:
    value, mean_draws, _ = dataset_mean([p.task.name for p in scored], values, draws)
    est = Resamples(np.zeros((1, 1)), level).estimate(value, mean_draws)
    return Estimate(est.value, est.low, est.high, sum(p.record.test for p in scored))


def residual_mean(prepared: Sequence[PreparedTask], level: float) -> Estimate | None:
    """Residual-probe accuracy (SAEBench's llm_test_accuracy) over ungated tasks, averaged and
    resampled like the summaries."""
    scored = [p for p in prepared if not p.record.gated]
    if not scored:
        return None
    return _prepared_mean(scored, [p.record.residual.value for p in scored],
                          [p.residual_draws for p in scored], level)


def llm_top_k_mean(prepared: Sequence[PreparedTask], level: float) -> dict[int, Estimate]:
    """Per k, the top-k probe on the residual (SAEBench's llm_top_k_test_accuracy) over
    ungated tasks, averaged like the summaries."""
    scored = [p for p in prepared if not p.record.gated]
    if not scored:
        return {}
    return {k: _prepared_mean(scored, [p.record.llm_top_k[k].value for p in scored],
                              [p.llm_draws[k] for p in scored], level)
            for k in scored[0].llm_draws}


def resolve_tasks(tasks: Sequence[str | TextTask] | None, config: ProbingConfig) -> list[TextTask]:
    """TextTasks as given, offline ones built from their names."""
    if tasks is None:
        tasks = config.tasks
    if tasks is None:
        return offline_tasks(None, config.packages, config.sizes)
    names = [t for t in tasks if isinstance(t, str)]
    built = iter(offline_tasks(names, config.packages, config.sizes) if names else [])
    out = [next(built) if isinstance(t, str) else t for t in tasks]
    if not out:
        raise PSAEError("no task given: expected at least one task")
    return out


def probe_saes(saes: dict[str, SparseAutoencoder], acts: TextActivations,
               tasks: Sequence[TextTask], granularities: Iterable[int] | None = None,
               config: ProbingConfig | None = None) -> ProbingResult:
    """Sparse probing of every SAE and view on activations already collected."""
    config = config or ProbingConfig()
    start = time.perf_counter()
    check_width(saes, acts.d, acts.hook)
    prepared = prepare_tasks(tasks, acts, config)
    result = ProbingResult(config.to_dict(), acts.hook, [p.record for p in prepared])
    draws: dict[tuple, list[np.ndarray]] = defaultdict(list)
    gs = list(granularities or [])
    for name, sae in saes.items():
        views = granularity_views(sae, [g for g in gs if g <= sae.num_latents], config.modes)
        for view, z in view_latents(sae, acts, views, config.sae_batch_tokens):
            result.scores += probe_view(prepared, z.numpy(), name, view, config, draws)
    result.summary = summarize(result.scores, draws, config.level)
    result.residual_mean = residual_mean(prepared, config.level)
    result.llm_top_k = llm_top_k_mean(prepared, config.level)
    result.seconds = time.perf_counter() - start
    return result


def evaluate_probing(saes: dict[str, SparseAutoencoder], lm: LanguageModel, hook: str,
                     tasks: Sequence[str | TextTask] | None = None,
                     granularities: Iterable[int] | None = None,
                     config: ProbingConfig | None = None,
                     activations: TextActivations | None = None,
                     progress: bool = False) -> ProbingResult:
    """Sparse probing of `saes` at `hook` of `lm` on `tasks` (default: the offline ones), for
    the full dictionary and the first G latents of each G in `granularities`."""
    config = config or ProbingConfig()
    start = time.perf_counter()
    check_width(saes, lm.d_model, hook)
    built = resolve_tasks(tasks, config)
    if activations is None:
        activations = collect_activations(lm, hook, task_texts(built), config.ctx,
                                          config.lm_batch_size, progress)
    with torch.no_grad():
        result = probe_saes(saes, activations, built, granularities, config)
    result.seconds = time.perf_counter() - start
    return result
