"""Sparse probing (SAEBench): per binary task, the k latents whose mean-pooled activations
differ most between the classes on the training texts, a logistic regression on them, and
its test accuracy beside a probe on the full mean-pooled residual — per granularity view."""

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
from progressive_sae.evals.probing.config import ProbingConfig
from progressive_sae.evals.probing.pooling import (
    TextActivations,
    check_width,
    collect_activations,
    unique_texts,
    view_latents,
)
from progressive_sae.evals.probing.probes import fit_probe, top_by_mean_difference
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
        probe = fit_probe(pooled[train], task.train_labels, config.c, config.max_iter)
        correct = probe.predict(pooled[test]) == task.test_labels.astype(bool)
        residual = resamples.estimate(float(correct.mean()), resamples.means(correct))
        record = TaskRecord(task.name, task.description, list(task.classes), len(train),
                            len(test), residual, residual.value < GATE_ACCURACY)
        prepared.append(PreparedTask(task, train, test, resamples, record,
                                     resamples.means(correct)))
    return prepared


def probe_view(prepared: Sequence[PreparedTask], z: np.ndarray, sae: str,
               view: GranularityView, config: ProbingConfig,
               draws: dict[tuple, list[np.ndarray]]) -> list[ProbeScore]:
    """Top-k probes of one view's pooled latents `z` [texts, G] on every ungated task."""
    scores = []
    for p in prepared:
        if p.record.gated:
            continue
        y = p.task.train_labels
        z_train, z_test = z[p.train_rows], z[p.test_rows]
        order = top_by_mean_difference(z_train, y, max(config.ks))
        for k in config.ks:
            cols = order[:k]
            probe = fit_probe(z_train[:, cols], y, config.c, config.max_iter)
            correct = probe.predict(z_test[:, cols]) == p.task.test_labels.astype(bool)
            resampled = p.resamples.means(correct)
            draws[(sae, view.granularity, view.mode, k)].append(resampled)
            scores.append(ProbeScore(sae, view.granularity, view.mode, p.task.name, k,
                                     p.resamples.estimate(float(correct.mean()), resampled),
                                     [int(c) for c in cols]))
    return scores


def summarize(scores: Sequence[ProbeScore], draws: dict[tuple, list[np.ndarray]],
              level: float) -> list[ProbeSummary]:
    """Mean over tasks per (SAE, view, k); resample r averages every task's resample r."""
    values: dict[tuple, list[float]] = defaultdict(list)
    for s in scores:
        values[(s.sae, s.granularity, s.mode, s.k)].append(s.accuracy.value)
    out = []
    for key, vals in values.items():
        mean_draws = np.mean(np.stack(draws[key]), axis=0)
        est = Resamples(np.zeros((1, len(vals))), level).estimate(float(np.mean(vals)),
                                                                  mean_draws)
        out.append(ProbeSummary(*key, accuracy=est, tasks=len(vals)))
    return out


def residual_mean(prepared: Sequence[PreparedTask], level: float) -> Estimate | None:
    """Mean residual-probe accuracy over ungated tasks, resampled like the summaries."""
    scored = [p for p in prepared if not p.record.gated]
    if not scored:
        return None
    draws = np.mean(np.stack([p.residual_draws for p in scored]), axis=0)
    value = float(np.mean([p.record.residual.value for p in scored]))
    est = Resamples(np.zeros((1, 1)), level).estimate(value, draws)
    return Estimate(est.value, est.low, est.high, sum(p.record.test for p in scored))


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
