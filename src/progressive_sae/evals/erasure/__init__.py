"""Targeted concept erasure (SAEBench's SCR and TPP) per granularity view."""

from progressive_sae.evals.erasure.config import ErasureConfig
from progressive_sae.evals.erasure.evaluate import erase_saes, evaluate_erasure
from progressive_sae.evals.erasure.result import ErasureResult, ErasureScore
from progressive_sae.evals.erasure.suite import evaluate_probing_and_erasure

__all__ = [
    "ErasureConfig",
    "ErasureResult",
    "ErasureScore",
    "erase_saes",
    "evaluate_erasure",
    "evaluate_probing_and_erasure",
]
