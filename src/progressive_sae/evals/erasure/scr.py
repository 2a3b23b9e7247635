"""SCR — spurious correlation removal (SAEBench).

A probe trained where two attributes always agree (the biased set: A = B) learns a mix of
both. Ablating the SAE latents of the spurious attribute should move it toward the other:
SCR = (A_ablated − A_base) / (A_oracle − A_base), where accuracies are on the balanced test
set labelled by the evaluated attribute, A_base is the biased probe's, A_oracle that of a
probe trained on the evaluated attribute itself. Direction 1 evaluates attribute A after
ablating B's latents, direction 2 the reverse; SAEBench's reported SCR is the direction in
which the biased probe was the worse at the evaluated attribute.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from progressive_sae.evals.common import GATE_ACCURACY, GranularityView
from progressive_sae.evals.datasets.offline import SpuriousTask
from progressive_sae.evals.erasure.ablation import ablate, attribution, top_latents
from progressive_sae.evals.erasure.config import ErasureConfig
from progressive_sae.evals.erasure.result import ErasureScore
from progressive_sae.evals.probing.pooling import TextActivations
from progressive_sae.evals.probing.probes import LinearProbe, fit_probe
from progressive_sae.evals.probing.stats import Resamples


@dataclass
class Direction:
    """Evaluate `evaluated` after ablating the latents of `ablated` (0 = A, 1 = B)."""

    number: int
    evaluated: int
    ablated: int
    base: float
    oracle: float
    base_draws: np.ndarray
    oracle_draws: np.ndarray
    gated: bool


@dataclass
class SCRSetup:
    """The SCR task's rows, probes and clean accuracies (shared by every SAE)."""

    task: SpuriousTask
    train_rows: np.ndarray
    test_rows: np.ndarray
    x_test: np.ndarray
    biased: LinearProbe
    attribute_probes: tuple[LinearProbe, LinearProbe]
    resamples: Resamples
    directions: list[Direction]
    metric_direction: int

    def attr_train(self, i: int) -> np.ndarray:
        return self.task.train_a if i == 0 else self.task.train_b

    def attr_test(self, i: int) -> np.ndarray:
        return self.task.test_a if i == 0 else self.task.test_b

    def summary(self) -> dict[str, Any]:
        names = self.task.attributes
        return {
            "task": self.task.summary(),
            "directions": [{
                "direction": d.number, "evaluated": names[d.evaluated],
                "ablated": names[d.ablated], "A_base": d.base, "A_oracle": d.oracle,
                "gated": d.gated} for d in self.directions],
            "metric_direction": self.metric_direction,
            "gate_accuracy": GATE_ACCURACY,
        }


def prepare_scr(task: SpuriousTask, acts: TextActivations, config: ErasureConfig) -> SCRSetup:
    pooled = acts.pooled.numpy().astype(np.float64)
    train, test = acts.rows(task.train_texts), acts.rows(task.test_texts)
    x_train, x_test = pooled[train], pooled[test]
    agree = task.train_a == task.train_b
    biased = fit_probe(x_train[agree], task.train_a[agree], config.c, config.max_iter)
    probes = tuple(fit_probe(x_train, y, config.c, config.max_iter)
                   for y in (task.train_a, task.train_b))
    resamples = Resamples.draw(len(test), config.resamples, config.level, config.seed + 101)
    labels = (task.test_a.astype(bool), task.test_b.astype(bool))
    oracle_ok = [probes[i].predict(x_test) == labels[i] for i in (0, 1)]
    biased_ok = [biased.predict(x_test) == labels[i] for i in (0, 1)]
    directions = []
    for number, (evaluated, ablated) in ((1, (0, 1)), (2, (1, 0))):
        oracle = float(oracle_ok[evaluated].mean())
        selector = float(oracle_ok[ablated].mean())
        directions.append(Direction(
            number, evaluated, ablated, float(biased_ok[evaluated].mean()), oracle,
            resamples.means(biased_ok[evaluated]), resamples.means(oracle_ok[evaluated]),
            oracle < GATE_ACCURACY or selector < GATE_ACCURACY))
    # SAEBench: report the direction whose evaluated attribute the biased probe knows less.
    metric = 1 if directions[0].base < directions[1].base else 2
    return SCRSetup(task, train, test, x_test, biased, probes, resamples, directions, metric)


def scr_view(setup: SCRSetup, z: np.ndarray, w_dec: np.ndarray, sae: str,
             view: GranularityView, n_values: list[int]) -> list[ErasureScore]:
    """SCR of one view's pooled latents z [texts, G] (W_dec of its G latents)."""
    z_train, z_test = z[setup.train_rows], z[setup.test_rows]
    scores = []
    for d in setup.directions:
        if d.gated:
            continue
        probe = setup.attribute_probes[d.ablated]
        effects = attribution(z_train, setup.attr_train(d.ablated), probe.weight, w_dec,
                              clamp=False, absolute=True)
        truth = setup.attr_test(d.evaluated).astype(bool)
        for n in n_values:
            chosen = top_latents(effects, n)
            ok = setup.biased.predict(ablate(setup.x_test, z_test, w_dec, chosen)) == truth
            abl = float(ok.mean())
            denom = d.oracle - d.base
            value = (abl - d.base) / denom if abs(denom) > 1e-12 else float("nan")
            with np.errstate(invalid="ignore", divide="ignore"):
                draws = ((setup.resamples.means(ok) - d.base_draws)
                         / (d.oracle_draws - d.base_draws))
            est = setup.resamples.estimate(value, draws)
            parts = {"A_ablated": abl, "ablated_latents": float(len(chosen))}
            scores.append(ErasureScore(f"scr_dir{d.number}", sae, view.granularity, view.mode,
                                       n, est, parts))
            if d.number == setup.metric_direction:
                scores.append(ErasureScore("scr", sae, view.granularity, view.mode, n, est,
                                           parts))
    return scores
