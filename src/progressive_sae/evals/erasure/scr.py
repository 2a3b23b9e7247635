"""SCR — spurious correlation removal (SAEBench).

A probe trained where two attributes always agree (the biased set: A = B) learns a mix of
both. Ablating the SAE latents of the spurious attribute should move it toward the other:
SCR = (A_ablated − A_base) / (A_oracle − A_base), where accuracies are on the balanced test
set labelled by the evaluated attribute, A_base is the biased probe's, A_oracle that of a
probe trained on the evaluated attribute itself. Direction 1 evaluates attribute A after
ablating B's latents, direction 2 the reverse; SAEBench's reported SCR is, per pair, the
direction in which the biased probe was the worse at the evaluated attribute, averaged over
the pairs.

SAEBench's guard: a score is 0 when A_oracle − A_base < 0.001 (the biased probe already
knows the evaluated attribute as well as its oracle). Intervals are for a ratio: per pair,
Fieller's interval from the per-text paired correctness (unbounded, reported as NaN, when
the denominator is not clearly positive); for the mean over pairs, a bootstrap that
resamples each pair's test texts and recomputes A_base, A_oracle and A_ablated in each
resample (same guard), reported only when every averaged pair's denominator is resolved.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from progressive_sae.evals.common import (
    GATE_ACCURACY,
    Estimate,
    GranularityView,
    fieller_interval,
)
from progressive_sae.evals.datasets.offline import SpuriousTask
from progressive_sae.evals.erasure.ablation import ablate, attribution, top_latents
from progressive_sae.evals.erasure.config import ErasureConfig
from progressive_sae.evals.erasure.probe_fit import erasure_probe
from progressive_sae.evals.erasure.result import ErasureScore
from progressive_sae.evals.probing.pooling import TextActivations
from progressive_sae.evals.probing.probes import LinearProbe
from progressive_sae.evals.probing.stats import Resamples

GUARD = 0.001
"""SAEBench scores SCR 0 when A_oracle − A_base is below this."""


@dataclass
class Direction:
    """Evaluate `evaluated` after ablating the latents of `ablated` (0 = A, 1 = B)."""

    number: int
    evaluated: int
    ablated: int
    base_ok: np.ndarray
    oracle_ok: np.ndarray
    gated: bool

    @property
    def base(self) -> float:
        return float(self.base_ok.mean())

    @property
    def oracle(self) -> float:
        return float(self.oracle_ok.mean())

    @property
    def guarded(self) -> bool:
        return self.oracle - self.base < GUARD


@dataclass
class SCRSetup:
    """One SCR pair's rows, probes and clean accuracies (shared by every SAE)."""

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
        out = []
        for d in self.directions:
            denominator = d.oracle_ok.astype(float) - d.base_ok
            lo_hi = _mean_interval(denominator, self.resamples)
            out.append({"direction": d.number, "evaluated": names[d.evaluated],
                        "ablated": names[d.ablated], "A_base": d.base, "A_oracle": d.oracle,
                        "denominator": d.oracle - d.base, "denominator_low": lo_hi[0],
                        "denominator_high": lo_hi[1], "gated": d.gated,
                        "guarded": d.guarded})
        return {"task": self.task.summary(), "directions": out,
                "metric_direction": self.metric_direction}


def _mean_interval(values: np.ndarray, resamples: Resamples) -> tuple[float, float]:
    est = resamples.estimate(float(np.mean(values)), resamples.means(values))
    return est.low, est.high


def prepare_scr(task: SpuriousTask, acts: TextActivations, config: ErasureConfig,
                index: int = 0) -> SCRSetup:
    pooled = acts.pooled.numpy().astype(np.float64)
    train, test = acts.rows(task.train_texts), acts.rows(task.test_texts)
    biased_texts, biased_a = task.biased()
    x_train, x_test, x_biased = pooled[train], pooled[test], pooled[acts.rows(biased_texts)]
    agree_test = task.test_a == task.test_b
    seed = config.seed + 1000 * index
    biased = erasure_probe(x_biased, biased_a, x_test[agree_test], task.test_a[agree_test],
                           config, seed)
    probes = (erasure_probe(x_train, task.train_a, x_test, task.test_a, config, seed + 1),
              erasure_probe(x_train, task.train_b, x_test, task.test_b, config, seed + 2))
    resamples = Resamples.draw(len(test), config.resamples, config.level,
                               config.seed + 101 + index)
    labels = (task.test_a.astype(bool), task.test_b.astype(bool))
    oracle_ok = [probes[i].predict(x_test) == labels[i] for i in (0, 1)]
    biased_ok = [biased.predict(x_test) == labels[i] for i in (0, 1)]
    directions = []
    for number, (evaluated, ablated) in ((1, (0, 1)), (2, (1, 0))):
        gated = bool(oracle_ok[evaluated].mean() < GATE_ACCURACY
                     or oracle_ok[ablated].mean() < GATE_ACCURACY)
        directions.append(Direction(number, evaluated, ablated, biased_ok[evaluated],
                                    oracle_ok[evaluated], gated))
    # SAEBench: report the direction whose evaluated attribute the biased probe knows less.
    metric = 1 if directions[0].base < directions[1].base else 2
    return SCRSetup(task, train, test, x_test, biased, probes, resamples, directions, metric)


@dataclass
class _PairScore:
    value: float
    draws: np.ndarray
    resolved: bool
    test: int


def _pair_score(d: Direction, ok: np.ndarray, resamples: Resamples, level: float
                ) -> tuple[Estimate, _PairScore]:
    """The guarded ratio with its Fieller interval, and its bootstrap draws for the mean."""
    base, oracle, abl = d.base_ok.astype(float), d.oracle_ok.astype(float), ok.astype(float)
    value = 0.0 if d.guarded else (abl.mean() - base.mean()) / (oracle.mean() - base.mean())
    ci = None if d.guarded else fieller_interval(abl - base, oracle - base, level)
    b_r, o_r, a_r = (resamples.means(v) for v in (base, oracle, abl))
    denom = o_r - b_r
    with np.errstate(invalid="ignore", divide="ignore"):
        draws = np.where(denom < GUARD, 0.0, (a_r - b_r) / np.where(denom == 0, 1.0, denom))
    est = Estimate(float(value), *(ci if ci else (float("nan"), float("nan"))), len(ok))
    return est, _PairScore(float(value), draws, ci is not None, len(ok))


def scr_view(setups: list[SCRSetup], z: np.ndarray, w_dec: np.ndarray, sae: str,
             view: GranularityView, n_values: list[int], level: float) -> list[ErasureScore]:
    """SCR of one view's pooled latents z [texts, G] (W_dec of its G latents): per pair and
    direction, and the mean over pairs SAEBench reports."""
    scores = []
    per_metric: dict[tuple[str, int], list[_PairScore]] = defaultdict(list)
    parts_of: dict[tuple[str, int], list[dict[str, float]]] = defaultdict(list)
    for setup in setups:
        z_train, z_test = z[setup.train_rows], z[setup.test_rows]
        for d in setup.directions:
            if d.gated:
                continue
            probe = setup.attribute_probes[d.ablated]
            effects = attribution(z_train, setup.attr_train(d.ablated), probe.weight, w_dec,
                                  clamp=False, absolute=True)
            truth = setup.attr_test(d.evaluated).astype(bool)
            for n in n_values:
                if n > view.granularity:
                    continue  # SAEBench asserts n ≤ latents
                chosen = top_latents(effects, n)
                ok = setup.biased.predict(ablate(setup.x_test, z_test, w_dec, chosen)) == truth
                est, pair = _pair_score(d, ok, setup.resamples, level)
                parts = {"A_ablated": float(ok.mean()), "ablated_latents": float(len(chosen)),
                         "guarded": float(d.guarded)}
                metrics = [f"scr_dir{d.number}"]
                if d.number == setup.metric_direction:
                    metrics.append("scr")
                for metric in metrics:
                    scores.append(ErasureScore(metric, sae, view.granularity, view.mode, n, est,
                                               parts, task=setup.task.name))
                    per_metric[(metric, n)].append(pair)
                    parts_of[(metric, n)].append(parts)
    for (metric, n), pairs in per_metric.items():
        value = float(np.mean([p.value for p in pairs]))
        total = sum(p.test for p in pairs)
        if all(p.resolved for p in pairs):
            draws = np.mean(np.stack([p.draws for p in pairs]), axis=0)
            est = Resamples(np.zeros((1, total)), level).estimate(value, draws)
        else:  # some pair's denominator is not clearly positive: the mean is unbounded
            est = Estimate(value, float("nan"), float("nan"), total)
        parts = {"pairs": float(len(pairs)),
                 "A_ablated": float(np.mean([p["A_ablated"] for p in parts_of[(metric, n)]])),
                 "guarded_pairs": float(sum(p["guarded"] for p in parts_of[(metric, n)]))}
        scores.append(ErasureScore(metric, sae, view.granularity, view.mode, n, est, parts))
    return scores
