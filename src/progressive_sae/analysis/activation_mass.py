"""Activation-mass curves: the share of Σz held by the first j latents, for each SAE.

A progressive coder keeps most of its mass early; the paper's sampled Matryoshka SAE
concentrates it at the front, the fixed one shows plateaus at its granularities, and a
(unpermuted) TopK SAE spreads it uniformly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from progressive_sae.analysis.plotting import log_uniform_indices, new_figure, save_figure
from progressive_sae.metrics import activation_mass

MAX_POINTS = 256
"""Points kept per curve in the JSON record."""


@dataclass
class ActivationMassCurve:
    """Cumulative activation mass over latent index, sampled at `latents`."""

    num_latents: int
    """N of the SAE."""
    latents: list[int]
    """Latent counts j (1-based) at which the curve is sampled."""
    share: list[float]
    """Share of Σz held by the first j latents."""
    half_mass_latents: int
    """Fewest leading latents holding half of the mass."""

    def to_dict(self) -> dict:
        return {"num_latents": self.num_latents, "latents": self.latents, "share": self.share,
                "half_mass_latents": self.half_mass_latents}


def activation_mass_curve(mean_activation: torch.Tensor) -> ActivationMassCurve:
    """The curve of one SAE from its per-latent E[z_j] (in latent order)."""
    cumulative = activation_mass(mean_activation)
    n = cumulative.shape[0]
    keep = sorted(set(log_uniform_indices(n, MAX_POINTS).tolist()) |
                  set(range(0, n, max(1, n // 64))) | {n - 1})
    half = int(torch.searchsorted(cumulative, torch.tensor(0.5, dtype=cumulative.dtype))) + 1
    return ActivationMassCurve(n, [i + 1 for i in keep], [float(cumulative[i]) for i in keep],
                               min(half, n))


def plot_activation_mass(curves: Mapping[str, ActivationMassCurve], path: str | Path) -> Path:
    """Cumulative mass against the fraction of latents used, one line per SAE."""
    fig, (ax,) = new_figure()
    for name, c in curves.items():
        ax.plot([j / c.num_latents for j in c.latents], c.share, label=name)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="uniform")
    ax.set_xlabel("fraction of latents (in latent order)")
    ax.set_ylabel("cumulative share of Σ z")
    ax.set_title("Activation mass over latent index")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, path)
