"""Sparse probing and concept erasure together: one LM pass over all their texts, and each
SAE view encoded once for both (the way `psae run` calls them)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from progressive_sae.errors import PSAEError
from progressive_sae.evals.common import granularity_views
from progressive_sae.evals.datasets.labelled import TextTask
from progressive_sae.evals.erasure.config import ErasureConfig
from progressive_sae.evals.erasure.evaluate import ErasureRun, erasure_tasks, erasure_texts
from progressive_sae.evals.erasure.result import ErasureResult
from progressive_sae.evals.probing.config import ProbingConfig
from progressive_sae.evals.probing.evaluate import (
    llm_top_k_mean,
    prepare_tasks,
    probe_view,
    residual_mean,
    resolve_tasks,
    summarize,
    task_texts,
)
from progressive_sae.evals.probing.pooling import (
    TextActivations,
    check_width,
    collect_activations,
    unique_texts,
    view_latents,
)
from progressive_sae.evals.probing.result import ProbingResult
from progressive_sae.lm.model import LanguageModel
from progressive_sae.sae.base import SparseAutoencoder


def evaluate_probing_and_erasure(
    saes: dict[str, SparseAutoencoder], lm: LanguageModel, hook: str,
    granularities: Iterable[int] | None = None, probing: ProbingConfig | None = None,
    erasure: ErasureConfig | None = None, tasks: Sequence[str | TextTask] | None = None,
    activations: TextActivations | None = None, progress: bool = False,
) -> tuple[ProbingResult, ErasureResult]:
    """`evaluate_probing` and `evaluate_erasure` in one pass (same results, less time).

    Texts are read at the probing config's ctx; the erasure config must agree."""
    probing = probing or ProbingConfig()
    erasure = erasure or ErasureConfig()
    if probing.ctx != erasure.ctx:
        raise PSAEError(f"ctx {probing.ctx} (probing) and {erasure.ctx} (erasure): expected the "
                        "same context for the shared activations")
    start = time.perf_counter()
    check_width(saes, lm.d_model, hook)
    built = resolve_tasks(tasks, probing)
    spurious, classes = erasure_tasks(erasure)
    if activations is None:
        texts = unique_texts(task_texts(built), erasure_texts(spurious, classes))
        activations = collect_activations(lm, hook, texts, probing.ctx, probing.lm_batch_size,
                                          progress)
    lm_seconds = time.perf_counter() - start
    prepared = prepare_tasks(built, activations, probing)
    probe_result = ProbingResult(probing.to_dict(), activations.hook,
                                 [p.record for p in prepared])
    run = ErasureRun(activations, spurious, classes, erasure)
    draws: dict[tuple, list[np.ndarray]] = defaultdict(list)
    gs = list(granularities or [])
    modes = list(dict.fromkeys(probing.modes + erasure.modes))
    with torch.no_grad():
        for name, sae in saes.items():
            views = granularity_views(sae, [g for g in gs if g <= sae.num_latents], modes)
            for view, z in view_latents(sae, activations, views, probing.sae_batch_tokens):
                if view.granularity == sae.num_latents or view.mode in probing.modes:
                    probe_result.scores += probe_view(prepared, z.numpy(), name, view, probing,
                                                      draws)
                if view.granularity == sae.num_latents or view.mode in erasure.modes:
                    run.score(sae, name, view, z)
    probe_result.summary = summarize(probe_result.scores, draws, probing.level)
    probe_result.residual_mean = residual_mean(prepared, probing.level)
    probe_result.llm_top_k = llm_top_k_mean(prepared, probing.level)
    total = time.perf_counter() - start
    # Each result reports the shared LM pass plus half of the per-SAE work.
    probe_result.seconds = run.result.seconds = lm_seconds + (total - lm_seconds) / 2
    return probe_result, run.result
