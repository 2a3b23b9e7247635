"""The SAEs of a `psae run` grid (`PlannedRun`) and the training settings of each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from progressive_sae.experiment.config import ExperimentConfig
from progressive_sae.train.config import TrainConfig


@dataclass
class PlannedRun:
    """One SAE of the grid to train."""

    name: str
    """Run folder name, e.g. 'matryoshka-N2048-k32'."""
    family: str
    """'TopK', 'Matryoshka' or 'Sampled Matryoshka'."""
    settings: dict[str, Any]
    """TrainConfig fields that differ per run."""
    baseline: bool = False
    """A TopK baseline of the progressive frontier (trained at size G with k_G = k·G/N)."""

    @property
    def num_latents(self) -> int:
        return self.settings["num_latents"]

    @property
    def k(self) -> int:
        return self.settings["k"]


def planned_runs(cfg: ExperimentConfig) -> list[PlannedRun]:
    """The grid, main runs first: TopK baselines, Matryoshka (fixed, sampled), then the k grid.

    A baseline of size G is trained with k_G = round(k·G/N): the sparsity at which the
    progressive coders are scored at G (fixed relative sparsity, as in the paper)."""
    grid, n = cfg.grid, cfg.grid.num_latents
    act = grid.activation

    def topk(size: int, k: int, baseline: bool = False) -> PlannedRun:
        return PlannedRun(f"{act}-N{size}-k{k}", "TopK",
                          {"num_latents": size, "k": k, "activation": act}, baseline)

    def matryoshka(k: int) -> PlannedRun:
        return PlannedRun(f"matryoshka-N{n}-k{k}", "Matryoshka",
                          {"num_latents": n, "k": k, "activation": act,
                           "granularities": grid.resolved_matryoshka()})

    runs = [topk(size, max(1, round(grid.k * size / n)), baseline=True)
            for size in grid.resolved_baselines()]
    if grid.resolved_matryoshka():
        runs.append(matryoshka(grid.k))
    if grid.sampled_granularities:
        runs.append(PlannedRun(f"sampled-N{n}-k{grid.k}", "Sampled Matryoshka",
                               {"num_latents": n, "k": grid.k, "activation": act,
                                "sampled_granularities": grid.sampled_granularities}))
    for k in sorted(set(grid.k_grid) - {grid.k}):
        runs.append(topk(n, k))
        if grid.resolved_matryoshka():
            runs.append(matryoshka(k))
    return runs


def run_train_config(run: PlannedRun, cfg: ExperimentConfig) -> TrainConfig:
    """The run's TrainConfig: the shared `train` settings with the run's own on top."""
    fields = {**cfg.train.to_dict(), "granularities": None, "sampled_granularities": 0,
              **run.settings}
    return TrainConfig.from_dict(fields, "train")
