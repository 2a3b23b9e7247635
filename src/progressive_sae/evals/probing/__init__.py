"""Sparse probing (SAEBench) per granularity view, on texts' mean-pooled activations."""

from progressive_sae.evals.probing.config import ProbingConfig
from progressive_sae.evals.probing.evaluate import evaluate_probing, probe_saes
from progressive_sae.evals.probing.pooling import TextActivations, collect_activations
from progressive_sae.evals.probing.result import ProbeScore, ProbeSummary, ProbingResult

__all__ = [
    "ProbeScore",
    "ProbeSummary",
    "ProbingConfig",
    "ProbingResult",
    "TextActivations",
    "collect_activations",
    "evaluate_probing",
    "probe_saes",
]
