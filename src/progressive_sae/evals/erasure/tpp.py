"""TPP — targeted probe perturbation (SAEBench).

One one-vs-rest probe per class on the full residual. For each class, ablate the SAE latents
attributed to it; TPP = the drop of that class's probe accuracy minus the mean drop of the
other classes' probes (accuracy here is balanced accuracy over one shared test pool, which
equals SAEBench's accuracy on a balanced test set in expectation). Higher = the SAE isolates
each class in its own latents. Classes whose probe scores below the gate are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from progressive_sae.evals.common import GATE_ACCURACY, GranularityView
from progressive_sae.evals.datasets.labelled import TextTask
from progressive_sae.evals.erasure.ablation import ablate, attribution, top_latents
from progressive_sae.evals.erasure.config import ErasureConfig
from progressive_sae.evals.erasure.probe_fit import erasure_probe, one_vs_rest_rows
from progressive_sae.evals.erasure.result import ErasureScore
from progressive_sae.evals.probing.pooling import TextActivations
from progressive_sae.evals.probing.probes import LinearProbe, fit_probe
from progressive_sae.evals.probing.stats import Resamples, balanced_accuracy


@dataclass
class TPPSetup:
    """The class probes and their clean accuracies (shared by every SAE)."""

    task: TextTask
    train_rows: np.ndarray
    test_rows: np.ndarray
    x_test: np.ndarray
    probes: list[LinearProbe]
    clean: np.ndarray
    clean_draws: np.ndarray
    scored: list[int]
    resamples: Resamples

    @property
    def gated(self) -> bool:
        return len(self.scored) < 2

    def summary(self) -> dict[str, Any]:
        return {"task": self.task.summary(),
                "clean_balanced_accuracy": {c: float(a) for c, a in
                                            zip(self.task.classes, self.clean)},
                "scored_classes": [self.task.classes[i] for i in self.scored],
                "gated": self.gated, "gate_accuracy": GATE_ACCURACY}


def prepare_tpp(task: TextTask, acts: TextActivations, config: ErasureConfig) -> TPPSetup:
    pooled = acts.pooled.numpy().astype(np.float64)
    train, test = acts.rows(task.train_texts), acts.rows(task.test_texts)
    x_train, x_test = pooled[train], pooled[test]
    probes = [_class_probe(task, x_train, x_test, c, config)
              for c in range(len(task.classes))]
    resamples = Resamples.draw(len(test), config.resamples, config.level, config.seed + 202)
    truth = np.stack([task.test_labels == c for c in range(len(task.classes))], 1)
    ok = np.stack([p.predict(x_test) for p in probes], 1) == truth
    clean = np.array([balanced_accuracy(ok[:, c], truth[:, c]) for c in range(len(probes))])
    clean_draws = np.stack([resamples.balanced_accuracy(ok[:, c], truth[:, c])
                            for c in range(len(probes))], 1)
    scored = [c for c in range(len(probes)) if clean[c] >= GATE_ACCURACY]
    return TPPSetup(task, train, test, x_test, probes, clean, clean_draws, scored, resamples)


def _class_probe(task: TextTask, x_train: np.ndarray, x_test: np.ndarray, c: int,
                 config: ErasureConfig) -> LinearProbe:
    """Class c against the rest: SAEBench's probe on c's texts plus as many others (drawn
    evenly from each other class; the epoch kept on the same kind of test set), or our
    class-weighted logistic regression on all texts."""
    if config.probe != "saebench":
        return fit_probe(x_train, task.train_labels == c, config.c, config.max_iter,
                         balanced=True)
    rng = np.random.default_rng([config.seed, c])
    rows = one_vs_rest_rows(task.train_labels, c, rng)
    held = one_vs_rest_rows(task.test_labels, c, rng)
    return erasure_probe(x_train[rows], task.train_labels[rows] == c, x_test[held],
                         task.test_labels[held] == c, config, config.seed + 500 + c)


def tpp_view(setup: TPPSetup, z: np.ndarray, w_dec: np.ndarray, sae: str,
             view: GranularityView, n_values: list[int]) -> list[ErasureScore]:
    """TPP of one view's pooled latents z [texts, G] (W_dec of its G latents)."""
    if setup.gated:
        return []
    z_train, z_test = z[setup.train_rows], z[setup.test_rows]
    cls = setup.scored
    truth = np.stack([setup.task.test_labels == c for c in cls], 1)
    effects = {c: attribution(z_train, setup.task.train_labels == c, setup.probes[c].weight,
                              w_dec, clamp=True, absolute=False) for c in cls}
    scores = []
    for n in n_values:
        if n > view.granularity:
            continue  # SAEBench asserts n ≤ latents
        values, intended, unintended, draws = [], [], [], []
        for i, c in enumerate(cls):
            x = ablate(setup.x_test, z_test, w_dec, top_latents(effects[c], n))
            ok = np.stack([setup.probes[o].predict(x) for o in cls], 1) == truth
            acc = np.array([balanced_accuracy(ok[:, j], truth[:, j]) for j in range(len(cls))])
            drop = setup.clean[cls] - acc
            others = np.delete(np.arange(len(cls)), i)
            intended.append(drop[i])
            unintended.append(drop[others].mean())
            values.append(drop[i] - drop[others].mean())
            drop_draws = setup.clean_draws[:, cls] - setup.resamples.balanced_accuracy(ok, truth)
            draws.append(drop_draws[:, i] - drop_draws[:, others].mean(1))
        est = setup.resamples.estimate(float(np.mean(values)), np.mean(np.stack(draws), 0))
        scores.append(ErasureScore("tpp", sae, view.granularity, view.mode, n, est,
                                   {"intended_drop": float(np.mean(intended)),
                                    "unintended_drop": float(np.mean(unintended))}))
    return scores
