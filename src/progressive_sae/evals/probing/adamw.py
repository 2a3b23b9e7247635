"""SAEBench's torch linear probe: AdamW on the BCE loss (+ an optional L1 penalty on the
weight), shuffled mini-batches, and the epoch with the best test accuracy kept.

SAEBench (`sparse_probing/probe_training.py`, `train_probe_gpu`) trains the SCR/TPP probes
this way (batch 16, lr 1e-3, 20 epochs, L1 1e-3, patience 20) and its full-width probes
(residual and all SAE latents: batch 250, lr 1e-2, 100 epochs, no L1, patience 10). Its
details are kept: `torch.optim.AdamW` with its default weight decay 0.01, the L1 term
`l1 · Σ|w|` added to the batch-mean loss, an nn.Linear-style uniform init, and the best
epoch chosen on the *test* accuracy with a strict improvement over 0.0 (so the first epoch
that reaches the best accuracy wins). Choosing the epoch on test data is SAEBench's, not
ours; the README's deviations table says so. Our only addition is a seeded generator, so a
probe does not depend on (or move) the global RNG.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from progressive_sae.errors import PSAEError
from progressive_sae.evals.probing.probes import LinearProbe


@dataclass(frozen=True)
class AdamWProbeSettings:
    """How SAEBench trains one torch probe."""

    epochs: int = 20
    """Passes over the training texts."""
    batch_size: int = 16
    """Texts per optimiser step (SAEBench: changing it changes the spurious signal learnt)."""
    lr: float = 1e-3
    """AdamW learning rate."""
    l1_penalty: float = 1e-3
    """Weight of Σ|w| added to the batch-mean BCE loss (0: none)."""
    patience: int = 20
    """Epochs without a strict test-accuracy improvement before stopping."""
    weight_decay: float = 0.01
    """AdamW's decoupled weight decay (torch's default, which SAEBench leaves as is)."""


SCR_TPP = AdamWProbeSettings()
"""SAEBench's SCR/TPP probe recipe."""
FULL_WIDTH = AdamWProbeSettings(epochs=100, batch_size=250, lr=1e-2, l1_penalty=0.0,
                                patience=10)
"""SAEBench's recipe for probes on every residual dimension or every SAE latent."""


@dataclass(frozen=True)
class TrainedProbe:
    """A probe trained by the recipe, with the epoch it was kept from."""

    probe: LinearProbe
    """The kept probe, in the raw input space."""
    test_accuracy: float
    """Its accuracy on the selection (test) texts."""
    epoch: int
    """1-based epoch it comes from."""


def _accuracy(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> float:
    return float(((x @ w + b > 0) == y.bool()).double().mean())


def _fit(xt: torch.Tensor, yt: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor,
         w0: torch.Tensor, b0: torch.Tensor, settings: AdamWProbeSettings,
         gen: torch.Generator) -> tuple[tuple[torch.Tensor, float] | None, float, int]:
    """The training loop: (kept (weight, bias) or None, its test accuracy, its epoch)."""
    w = w0.clone().requires_grad_(True)
    b = b0.clone().requires_grad_(True)
    opt = torch.optim.AdamW([w, b], lr=settings.lr, weight_decay=settings.weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    best, best_epoch, kept, stale = 0.0, 0, None, 0
    with torch.enable_grad():
        for epoch in range(1, settings.epochs + 1):
            order = torch.randperm(len(xt), generator=gen)
            for start in range(0, len(xt), settings.batch_size):
                idx = order[start:start + settings.batch_size]
                loss = loss_fn(xt[idx] @ w + b, yt[idx])
                if settings.l1_penalty:
                    loss = loss + settings.l1_penalty * w.abs().sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
            with torch.no_grad():
                acc = _accuracy(xs, ys, w, b)
            if acc > best:
                best, best_epoch, stale = acc, epoch, 0
                kept = (w.detach().clone(), float(b.detach()[0]))
            else:
                stale += 1
            if stale >= settings.patience:
                break
    return kept, best, best_epoch


def train_adamw_probe(
    x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
    settings: AdamWProbeSettings = SCR_TPP, seed: int = 0,
    init: tuple[np.ndarray, float] | None = None,
) -> TrainedProbe:
    """Train on (x, y) and keep the epoch with the best accuracy on (x_test, y_test).

    Computed in x's float precision (float32 or float64). `init` = (weight, bias) replaces
    the random init (tests derive trajectories by hand from it)."""
    dtype = torch.float64 if np.asarray(x).dtype == np.float64 else torch.float32
    xt = torch.as_tensor(np.asarray(x), dtype=dtype)
    yt = torch.as_tensor(np.asarray(y).astype(np.float64), dtype=dtype)
    xs = torch.as_tensor(np.asarray(x_test), dtype=dtype)
    ys = torch.as_tensor(np.asarray(y_test).astype(np.float64), dtype=dtype)
    if xt.ndim != 2 or len(xt) != len(yt) or len(xs) != len(ys) or len(xt) == 0 or len(xs) == 0:
        raise PSAEError(f"probe data: {tuple(xt.shape)} training rows for {len(yt)} labels and "
                        f"{len(xs)} test rows for {len(ys)} labels; expected matching, non-empty")
    gen = torch.Generator().manual_seed(seed)
    d = xt.shape[1]
    if init is None:
        bound = 1 / math.sqrt(d)  # nn.Linear's default init, drawn from our generator
        w0 = (torch.rand(d, generator=gen, dtype=dtype) * 2 - 1) * bound
        b0 = (torch.rand(1, generator=gen, dtype=dtype) * 2 - 1) * bound
    else:
        w0 = torch.as_tensor(np.asarray(init[0]), dtype=dtype).reshape(d)
        b0 = torch.tensor([float(init[1])], dtype=dtype)
    # One intra-op thread: the ops are tiny, and a second thread only adds synchronisation
    # (an SCR probe took 0.2 s with one thread, 7.6 s with two, on this shared 2-core machine).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        kept, best, best_epoch = _fit(xt, yt, xs, ys, w0, b0, settings, gen)
    finally:
        torch.set_num_threads(threads)
    if kept is None:  # SAEBench asserts here: no epoch scored above 0 on the test texts
        raise PSAEError("probe: every epoch scored 0 test accuracy; expected a learnable task")
    weight = kept[0].double().numpy()
    return TrainedProbe(LinearProbe(weight, kept[1]), best, best_epoch)
