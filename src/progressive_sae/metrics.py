"""Fidelity and sparsity metrics, streamed over held-out activations (SPEC §3)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from progressive_sae.data.source import ActivationSource, IterableSource, as_source
from progressive_sae.errors import PSAEError
from progressive_sae.sae.base import SparseAutoencoder


@dataclass
class ReconstructionMetrics:
    """How well an SAE (at one granularity) reconstructs a set of activations."""

    granularity: int
    mode: str
    fvu: float
    """Σ||x - x̂||² / Σ||x - mean(x)||² over the evaluation set."""
    mse: float
    """Mean over rows of ||x - x̂||²."""
    l0: float
    """Mean number of active latents per row."""
    dead_fraction: float
    """Share of the evaluated latents that never fired on the set."""
    rows: int

    def to_dict(self) -> dict:
        return asdict(self)


def evaluation_batches(data: object, batch_size: int, max_rows: int | None = None):
    """The evaluation set in order, in chunks of at most `batch_size` rows, checked finite."""
    if max_rows is not None and max_rows <= 0:
        raise PSAEError(f"max_rows={max_rows}: expected a positive integer")
    seen = 0
    for chunk in _chunks(as_source(data), batch_size, max_rows):
        if not torch.isfinite(chunk).all():
            raise PSAEError(
                f"activation rows {seen}..{seen + chunk.shape[0] - 1} hold NaN or Inf values"
            )
        seen += chunk.shape[0]
        yield chunk


def _chunks(source: ActivationSource | IterableSource, batch_size: int, max_rows: int | None):
    if isinstance(source, IterableSource):
        seen = 0
        for chunk in source:
            if max_rows is not None and seen >= max_rows:
                return
            chunk = chunk if max_rows is None else chunk[: max_rows - seen]
            seen += chunk.shape[0]
            yield chunk
        return
    limit = len(source) if max_rows is None else min(max_rows, len(source))
    for start in range(0, limit, batch_size):
        yield source.rows(start, min(start + batch_size, limit))


@torch.no_grad()
def evaluate_reconstruction(
    sae: SparseAutoencoder, data: object, granularity: int | None = None,
    mode: str = "relative", batch_size: int = 4096, max_rows: int | None = None,
) -> ReconstructionMetrics:
    """FVU, MSE, L0 and dead fraction of `sae` at granularity G on `data`."""
    was_training = sae.training
    sae.eval()
    g = granularity or sae.num_latents
    device = sae.W_dec.device
    err = torch.zeros((), dtype=torch.float64)
    sum_x = torch.zeros(sae.d_in, dtype=torch.float64)
    sum_sq = torch.zeros((), dtype=torch.float64)
    l0 = torch.zeros((), dtype=torch.float64)
    fired = torch.zeros(sae.num_latents, dtype=torch.bool)
    rows = 0
    for x in evaluation_batches(data, batch_size, max_rows):
        x = x.to(device)
        code = sae.encode(x, granularity, mode)
        x_hat = sae.decode(code)
        err += (x - x_hat).double().pow(2).sum().cpu()
        sum_x += x.double().sum(0).cpu()
        sum_sq += x.double().pow(2).sum().cpu()
        active = code.values > 0
        l0 += active.sum().cpu()
        fired[code.indices[active].cpu()] = True
        rows += x.shape[0]
    sae.train(was_training)
    if rows == 0:
        raise PSAEError("no activations to evaluate on: expected at least one row")
    total_var = sum_sq - sum_x.dot(sum_x) / max(rows, 1)
    return ReconstructionMetrics(
        granularity=g, mode=mode, fvu=float(err / total_var), mse=float(err / max(rows, 1)),
        l0=float(l0 / max(rows, 1)), dead_fraction=float(1 - fired[:g].float().mean()),
        rows=rows,
    )


def mean_max_cosine_similarity(W: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean over reference directions of their best cosine similarity with any row of W."""
    W = torch.nn.functional.normalize(W.detach().float(), dim=1)
    ref = torch.nn.functional.normalize(reference.detach().float(), dim=1)
    return float((ref @ W.t()).max(dim=1).values.mean())


def activation_mass(mean_activation: torch.Tensor) -> torch.Tensor:
    """Cumulative share of Σ_j E[z_j] held by latents 0..j, in latent-index order (SPEC §3):
    a progressive code has most of its mass in its first latents."""
    mass = mean_activation.detach().double().clamp_min(0)
    total = mass.sum()
    if total <= 0:
        raise PSAEError("no latent ever fired: the activation mass is empty")
    return mass.cumsum(0) / total


@torch.no_grad()
def representational_similarity(
    x: torch.Tensor, x_hat: torch.Tensor, samples: int = 1000, seed: int = 0
) -> float:
    """RSA: Pearson correlation of the upper-triangular Euclidean distances among `samples`
    rows of the originals and among the same rows of their reconstructions (SPEC §3)."""
    if x.shape != x_hat.shape or x.ndim != 2:
        raise PSAEError(
            f"RSA needs two [n, d] sets of the same shape, got {tuple(x.shape)} and "
            f"{tuple(x_hat.shape)}"
        )
    n = x.shape[0]
    if n < 3:
        raise PSAEError(f"RSA needs at least 3 rows, got {n}")
    if n > samples:
        pick = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:samples]
        x, x_hat = x[pick], x_hat[pick]
    rows, cols = torch.triu_indices(x.shape[0], x.shape[0], offset=1)
    a = torch.cdist(x.double(), x.double())[rows, cols]
    b = torch.cdist(x_hat.double(), x_hat.double())[rows, cols]
    a, b = a - a.mean(), b - b.mean()
    return float((a @ b) / (a.norm() * b.norm()).clamp_min(1e-300))


@dataclass(frozen=True)
class SpliceBaseline:
    """Cross-entropy of the clean LM and of the zero-ablated one on one set of windows."""

    ce_clean: float
    ce_zero: float
    tokens: int


@dataclass
class RecapturedLoss:
    """Next-token cross-entropy with the hook point's output replaced (SPEC §3)."""

    ce_clean: float
    ce_spliced: float
    ce_zero: float
    ratio: float
    """CE_clean / CE_spliced (the paper's measure; 1 = perfect)."""
    difference: float
    """CE_spliced - CE_clean."""
    fraction_recovered: float
    """(CE_zero - CE_spliced) / (CE_zero - CE_clean), against zero-ablation."""
    tokens: int

    def to_dict(self) -> dict:
        return asdict(self)


def _cross_entropy(lm, input_ids: torch.Tensor, hook: str, replace, exclude_bos: bool,
                   windows_per_pass: int):
    """Spliced CE summed over the windows, a few windows per forward pass (bounded logits)."""
    from progressive_sae.lm.hooks import spliced_cross_entropy

    total = None
    for start in range(0, input_ids.shape[0], windows_per_pass):
        part = spliced_cross_entropy(
            lm, input_ids[start:start + windows_per_pass], hook, replace, exclude_bos
        )
        total = part if total is None else total + part
    if total is None:
        raise PSAEError("no LM windows to evaluate on: expected at least one")
    return total


@torch.no_grad()
def splice_baseline(
    lm, input_ids: torch.Tensor, hook: str, exclude_bos: bool = True, windows_per_pass: int = 8
) -> SpliceBaseline:
    """CE_clean and CE_zero, computed once and shared by every SAE scored on these windows."""
    from progressive_sae.lm.hooks import zero_ablation

    clean = _cross_entropy(lm, input_ids, hook, None, exclude_bos, windows_per_pass)
    zero = _cross_entropy(lm, input_ids, hook, zero_ablation, exclude_bos, windows_per_pass)
    return SpliceBaseline(clean.mean, zero.mean, clean.count)


@torch.no_grad()
def recaptured_loss(
    lm, sae: SparseAutoencoder, input_ids: torch.Tensor, hook: str,
    granularity: int | None = None, mode: str = "relative", exclude_bos: bool = True,
    baseline: SpliceBaseline | None = None, windows_per_pass: int = 8,
) -> RecapturedLoss:
    """Splice the SAE's reconstruction (at granularity G) into the LM at `hook`."""
    from progressive_sae.lm.hooks import sae_splice

    if baseline is None:
        baseline = splice_baseline(lm, input_ids, hook, exclude_bos, windows_per_pass)
    was_training = sae.training
    sae.eval()
    spliced = _cross_entropy(
        lm, input_ids, hook, sae_splice(sae, granularity, mode), exclude_bos, windows_per_pass
    )
    sae.train(was_training)
    c, s, z = baseline.ce_clean, spliced.mean, baseline.ce_zero
    return RecapturedLoss(
        ce_clean=c, ce_spliced=s, ce_zero=z, ratio=c / s, difference=s - c,
        fraction_recovered=(z - s) / (z - c) if z != c else float("nan"), tokens=spliced.count,
    )
