"""Absorption on a language model: the first-letter task or a token label set, then the
label-agnostic measure (`measure.evaluate_absorption`)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from progressive_sae.errors import PSAEError
from progressive_sae.evals.absorption.config import TASKS, AbsorptionConfig
from progressive_sae.evals.absorption.first_letter import PromptConfig, first_letter_dataset
from progressive_sae.evals.absorption.measure import evaluate_absorption
from progressive_sae.evals.absorption.result import AbsorptionResult
from progressive_sae.evals.absorption.token_tasks import (
    cache_token_dataset,
    corpus_token_dataset,
)
from progressive_sae.lm.hooks import resolve_hook
from progressive_sae.lm.model import LanguageModel
from progressive_sae.sae.base import GRANULARITY_MODES, SparseAutoencoder


def evaluate_lm_absorption(
    saes: Mapping[str, SparseAutoencoder], lm: LanguageModel, hook: str,
    task: str = "first-letter", granularities: Iterable[int] | None = None,
    modes: Sequence[str] = GRANULARITY_MODES, config: AbsorptionConfig | None = None,
    prompts: PromptConfig | None = None, cache: str | Path | None = None,
    rows_per_class: int = 256,
) -> AbsorptionResult:
    """Absorption of `task`'s classes by each SAE at the LM's `hook`, per granularity view.

    first-letter: the in-context prompts (`prompts`); word-start / capitalised / doctest:
    tokens of the shipped corpus run through the LM, or of an activation `cache` (its rows
    and token ids; the LM only decodes them), `rows_per_class` tokens per class.
    """
    if task not in TASKS:
        raise PSAEError(f"task {task!r}: expected one of {TASKS}")
    config = config or AbsorptionConfig()
    start = time.perf_counter()
    point = resolve_hook(lm, hook)
    for name, sae in saes.items():
        if sae.d_in != lm.d_model and cache is None:
            raise PSAEError(f"SAE {name!r} reads d_in={sae.d_in}: {point.name} of "
                            f"{lm.name} has width {lm.d_model}")
    if task == "first-letter":
        if cache is not None:
            raise PSAEError("the first-letter task builds its own prompts: drop the cache "
                            "(--data) or choose a token task")
        x, labels, details = first_letter_dataset(lm, point.name, prompts, config.seed)
    elif cache is not None:
        x, labels, details = cache_token_dataset(cache, lm.tokenizer, task, rows_per_class,
                                                 seed=config.seed)
        if details.get("hook") not in (None, point.name):
            raise PSAEError(f"the activation cache holds {details['hook']}, not {point.name}: "
                            "give the hook the cache was extracted at")
    else:
        x, labels, details = corpus_token_dataset(lm, point.name, task, rows_per_class,
                                                  seed=config.seed)
    details = {"model": lm.name, "hook": point.name,
               "activation_seconds": time.perf_counter() - start} | details
    result = evaluate_absorption(saes, x, labels, granularities, modes, config, task, details)
    return AbsorptionResult(result.task, result.probes, result.views, result.splits,
                            result.config, time.perf_counter() - start, result.details)
