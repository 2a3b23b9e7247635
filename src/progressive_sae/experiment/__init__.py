"""The grid runner behind `psae run`: the only place that chains training, scoring and
reporting."""

from progressive_sae.experiment.config import (
    EvalConfig,
    ExperimentConfig,
    ExternalSAE,
    GridConfig,
    load_experiment,
)
from progressive_sae.experiment.pipeline import ExperimentResult, run_experiment

__all__ = ["EvalConfig", "ExperimentConfig", "ExperimentResult", "ExternalSAE", "GridConfig",
           "load_experiment", "run_experiment"]
