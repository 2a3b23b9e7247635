"""Targeted concept erasure of SAEs at a hook: SCR on the offline spurious pairs and TPP over
the package classes, for the full dictionary and each granularity view."""

from __future__ import annotations

import time
from collections.abc import Iterable

import numpy as np
import torch

from progressive_sae.evals.common import GATE_ACCURACY, GranularityView, granularity_views
from progressive_sae.evals.datasets.labelled import TextTask
from progressive_sae.evals.datasets.offline import SpuriousTask, package_task
from progressive_sae.evals.datasets.spurious import scr_tasks
from progressive_sae.evals.erasure.config import ErasureConfig
from progressive_sae.evals.erasure.result import ErasureResult, ErasureScore
from progressive_sae.evals.erasure.scr import GUARD, SCRSetup, prepare_scr, scr_view
from progressive_sae.evals.erasure.tpp import TPPSetup, prepare_tpp, tpp_view
from progressive_sae.evals.probing.pooling import (
    TextActivations,
    check_width,
    collect_activations,
    unique_texts,
    view_latents,
)
from progressive_sae.lm.model import LanguageModel
from progressive_sae.sae.base import SparseAutoencoder

Spurious = SpuriousTask | list[SpuriousTask] | None
"""One SCR pair, several, or none."""


def _pairs(spurious: Spurious) -> list[SpuriousTask]:
    if spurious is None:
        return []
    return [spurious] if isinstance(spurious, SpuriousTask) else list(spurious)


def erasure_tasks(config: ErasureConfig) -> tuple[list[SpuriousTask] | None, TextTask | None]:
    """The offline SCR pairs and TPP classes the config asks for."""
    spurious = scr_tasks(config.scr_pairs, config.scr_sizes) if config.scr else None
    classes = package_task(config.packages, config.sizes) if config.tpp else None
    return spurious, classes


def erasure_texts(spurious: Spurious, classes: TextTask | None) -> list[str]:
    groups: list = []
    for pair in _pairs(spurious):
        groups += [pair.train_texts, pair.test_texts, pair.biased()[0]]
    if classes is not None:
        groups += [classes.train_texts, classes.test_texts]
    return unique_texts(*groups)


class ErasureRun:
    """Probes and clean accuracies prepared once; `score` adds one SAE view at a time."""

    def __init__(self, acts: TextActivations, spurious: Spurious,
                 classes: TextTask | None, config: ErasureConfig) -> None:
        self.config = config
        self.scr: list[SCRSetup] = [prepare_scr(p, acts, config, i)
                                    for i, p in enumerate(_pairs(spurious))]
        self.tpp: TPPSetup | None = (prepare_tpp(classes, acts, config)
                                     if classes is not None else None)
        scr_summary = ({"pairs": [s.summary() for s in self.scr], "gate_accuracy": GATE_ACCURACY,
                        "guard": GUARD} if self.scr else None)
        self.result = ErasureResult(config.to_dict(), acts.hook, scr_summary,
                                    self.tpp.summary() if self.tpp else None)

    def score(self, sae: SparseAutoencoder, name: str, view: GranularityView,
              z: torch.Tensor) -> list[ErasureScore]:
        w_dec = sae.W_dec[:view.granularity].detach().float().cpu().numpy().astype(np.float64)
        zz = z.numpy().astype(np.float64)
        scores = []
        if self.scr:
            scores += scr_view(self.scr, zz, w_dec, name, view, self.config.n_values,
                               self.config.level)
        if self.tpp is not None:
            scores += tpp_view(self.tpp, zz, w_dec, name, view, self.config.n_values)
        self.result.scores += scores
        return scores


def erase_saes(saes: dict[str, SparseAutoencoder], acts: TextActivations,
               spurious: Spurious, classes: TextTask | None,
               granularities: Iterable[int] | None = None,
               config: ErasureConfig | None = None) -> ErasureResult:
    """SCR and TPP of every SAE and view on activations already collected."""
    config = config or ErasureConfig()
    start = time.perf_counter()
    check_width(saes, acts.d, acts.hook)
    run = ErasureRun(acts, spurious, classes, config)
    gs = list(granularities or [])
    with torch.no_grad():
        for name, sae in saes.items():
            views = granularity_views(sae, [g for g in gs if g <= sae.num_latents], config.modes)
            for view, z in view_latents(sae, acts, views, config.sae_batch_tokens):
                run.score(sae, name, view, z)
    run.result.seconds = time.perf_counter() - start
    return run.result


def evaluate_erasure(saes: dict[str, SparseAutoencoder], lm: LanguageModel, hook: str,
                     granularities: Iterable[int] | None = None,
                     config: ErasureConfig | None = None,
                     activations: TextActivations | None = None,
                     progress: bool = False) -> ErasureResult:
    """SCR and TPP of `saes` at `hook` of `lm` on the offline tasks, for the full dictionary
    and the first G latents of each G in `granularities`."""
    config = config or ErasureConfig()
    start = time.perf_counter()
    check_width(saes, lm.d_model, hook)
    spurious, classes = erasure_tasks(config)
    if activations is None:
        activations = collect_activations(lm, hook, erasure_texts(spurious, classes), config.ctx,
                                          config.lm_batch_size, progress)
    result = erase_saes(saes, activations, spurious, classes, granularities, config)
    result.seconds = time.perf_counter() - start
    return result
