"""Probes of the absorption evaluation: one-vs-rest logistic regression on the residual (the
ground truth) and batched k-sparse logistic regression over SAE latents (the main latents)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def f1_scores(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Binary F1 of each row of `predicted` vs `truth` (bool [C, n]); 0 where undefined."""
    tp = (predicted & truth).sum(-1)
    denom = predicted.sum(-1) + truth.sum(-1)
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


@dataclass(frozen=True)
class ResidualProbes:
    """One binary probe per class in activation space: score = x · weight + bias."""

    weight: np.ndarray
    """[C, d] weights in the raw activation space."""
    bias: np.ndarray
    """[C] biases."""

    def scores(self, x: np.ndarray) -> np.ndarray:
        return x @ self.weight.T + self.bias

    def directions(self) -> np.ndarray:
        """Unit probe directions [C, d]."""
        return self.weight / np.maximum(np.linalg.norm(self.weight, axis=1, keepdims=True), 1e-12)


def fit_residual_probes(x: np.ndarray, labels: np.ndarray, num_classes: int,
                        classes: list[int], c: float = 1.0) -> ResidualProbes:
    """One-vs-rest, class-balanced L2 logistic regression for each of `classes` on
    standardised activations (sklearn's objective: c·Σ weighted log-loss + ½‖w‖²), fit jointly
    with L-BFGS since the classes' losses are independent; mapped back to the raw space so
    directions compare with decoder rows. Other classes get a probe that never fires."""
    if not classes:  # every class too small to split: all gated, nothing to fit
        return ResidualProbes(np.zeros((num_classes, x.shape[1])), np.full(num_classes, -1.0))
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = torch.from_numpy((x - mean) / std)
    chosen = torch.tensor(classes, dtype=torch.long)
    y = (torch.from_numpy(labels)[:, None] == chosen[None, :]).double()  # [n, C']
    n_pos = y.sum(0).clamp_min(1)
    weights = torch.where(y > 0, y.shape[0] / (2 * n_pos), y.shape[0] / (2 * (y.shape[0] - n_pos)
                                                                           ).clamp_min(1))
    w = torch.zeros(z.shape[1], len(classes), dtype=torch.float64, requires_grad=True)
    b = torch.zeros(len(classes), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=200, tolerance_grad=1e-5,
                                  line_search_fn="strong_wolfe")

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        logits = z @ w + b
        loss = c * (weights * F.binary_cross_entropy_with_logits(logits, y, reduction="none")
                    ).sum() + 0.5 * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(objective)
    weight = np.zeros((num_classes, x.shape[1]))
    bias = np.full(num_classes, -1.0)
    coef, intercept = w.detach().numpy().T, b.detach().numpy()
    weight[classes] = coef / std
    bias[classes] = intercept - (coef * mean / std).sum(1)
    return ResidualProbes(weight, bias)


@dataclass(frozen=True)
class SparseProbes:
    """Logistic probes over k chosen latents per class (batched over classes)."""

    latents: torch.Tensor
    """[C, k] latent ids of each class."""
    mean: torch.Tensor
    """[C, k] standardisation of the train features."""
    std: torch.Tensor
    """[C, k]."""
    coef: torch.Tensor
    """[C, k + 1] weights then bias, on standardised features."""

    def predict(self, codes: torch.Tensor) -> torch.Tensor:
        """bool [C, n]: each class's probe says positive on each row of codes [n, G]."""
        feats = (codes.double().t()[self.latents] - self.mean[..., None]) / self.std[..., None]
        logits = torch.bmm(self.coef[:, None, :-1], feats)[:, 0] + self.coef[:, -1:]
        return logits > 0


def fit_sparse_probes(codes: torch.Tensor, labels: torch.Tensor, latents: torch.Tensor,
                      iterations: int = 25, ridge: float = 1e-3, tol: float = 1e-7
                      ) -> SparseProbes:
    """Class-balanced logistic regression of `labels == c` on latents[c] ([C, k]), all classes
    at once by Newton's method (k is small, so each Hessian is at most 11 × 11)."""
    num_classes, k = latents.shape
    x = codes.double().t()[latents]  # [C, k, n]
    mean, std = x.mean(-1), x.std(-1).clamp_min(1e-6)
    x = (x - mean[..., None]) / std[..., None]
    a = torch.cat([x, torch.ones_like(x[:, :1])], 1).transpose(1, 2)  # [C, n, k+1]
    y = (labels[None, :] == torch.arange(num_classes)[:, None]).double()  # [C, n]
    n_pos = y.sum(1, keepdim=True).clamp_min(1)
    n_neg = (y.shape[1] - n_pos).clamp_min(1)
    weights = torch.where(y > 0, y.shape[1] / (2 * n_pos), y.shape[1] / (2 * n_neg))
    penalty = torch.eye(k + 1, dtype=torch.float64) * ridge * y.shape[1]
    penalty[-1, -1] = 0.0
    beta = torch.zeros(num_classes, k + 1, dtype=torch.float64)
    for _ in range(iterations):
        p = torch.sigmoid(torch.bmm(a, beta[..., None])[..., 0])
        grad = torch.bmm(a.transpose(1, 2), (weights * (p - y))[..., None])[..., 0] + (
            beta @ penalty)
        curvature = weights * p * (1 - p)
        hessian = torch.bmm(a.transpose(1, 2), a * curvature[..., None]) + penalty
        hessian = hessian + 1e-9 * torch.eye(k + 1, dtype=torch.float64)
        step = torch.linalg.solve(hessian, grad[..., None])[..., 0]
        beta = beta - step
        if float(step.abs().max()) < tol:
            break
    return SparseProbes(latents, mean, std, beta)
