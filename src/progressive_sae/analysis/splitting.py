"""Feature splitting (SPEC §4.5): decoder cosine similarities within and across SAEs.

Within one SAE, the cosine-similarity matrix of the first decoder rows shows a stepped
pattern at Matryoshka boundaries. Across a small and a large SAE, each large-SAE latent is
assigned to the small-SAE latent it most resembles; the number of large latents assigned
to a small one is how many features that small latent split into.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from progressive_sae.analysis.plotting import new_figure, save_figure
from progressive_sae.errors import PSAEError
from progressive_sae.sae.base import SparseAutoencoder

DEFAULT_THRESHOLD = 0.5
"""Minimum cosine similarity for a large latent to count as a split of a small one."""
CHUNK_ELEMENTS = 1 << 25
"""Similarity entries per chunk (128 MiB in float32): bounds memory for 65k × 16k."""


@dataclass
class FeatureSplitting:
    """How the latents of a large SAE map onto those of a small one."""

    threshold: float
    """Minimum cosine similarity for an assignment."""
    num_small: int
    """Latents in the small SAE."""
    num_large: int
    """Latents in the large SAE."""
    counts: list[int]
    """Per small latent: the number of large latents assigned to it."""
    histogram: dict[int, int]
    """Number of assigned large latents → number of small latents with that count."""
    mean_splits: float | None
    """Mean count over small latents with at least one match (None when none matched)."""
    unmatched_small_share: float
    """Share of small latents with no large latent assigned."""
    unassigned_large_share: float
    """Share of large latents whose best cosine is below the threshold."""
    mean_max_cosine_large: float
    """Mean over large latents of their highest cosine with any small latent."""
    mean_max_cosine_small: float
    """Mean over small latents of their highest cosine with any large latent."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold, "num_small": self.num_small,
            "num_large": self.num_large, "counts": list(self.counts),
            # JSON object keys are strings; sorted by count for reading.
            "histogram": {str(c): n for c, n in sorted(self.histogram.items())},
            "mean_splits": self.mean_splits,
            "unmatched_small_share": self.unmatched_small_share,
            "unassigned_large_share": self.unassigned_large_share,
            "mean_max_cosine_large": self.mean_max_cosine_large,
            "mean_max_cosine_small": self.mean_max_cosine_small,
        }


def _unit_rows(w: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit norm in float32; all-zero (dead) rows stay zero."""
    w = w.detach().float()
    return w / torch.linalg.vector_norm(w, dim=1, keepdim=True).clamp_min(1e-12)


def decoder_similarity(sae: SparseAutoencoder, max_latents: int = 1024) -> torch.Tensor:
    """Cosine similarity [m, m] (float32, CPU) of the first m = min(max_latents, N) rows."""
    if max_latents < 1:
        raise PSAEError(f"max_latents={max_latents}: expected a positive integer")
    unit = _unit_rows(sae.W_dec[:max_latents])
    return (unit @ unit.t()).cpu()


def plot_decoder_similarity(
    sae: SparseAutoencoder, path: str | Path, max_latents: int = 1024
) -> Path:
    """Heatmap of `decoder_similarity` with Matryoshka boundaries drawn as lines."""
    sim = decoder_similarity(sae, max_latents).numpy()
    m = sim.shape[0]
    fig, (ax,) = new_figure(1)
    image = ax.imshow(sim, cmap="RdBu_r", vmin=-1.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, label="cosine similarity")
    boundaries = [b for b in (sae.cfg.granularities or []) if b < m]
    for b in boundaries:  # the boundary lies between latent b-1 and latent b
        ax.axhline(b - 0.5, color="black", lw=0.8)
        ax.axvline(b - 0.5, color="black", lw=0.8)
    handles = [Line2D([], [], color="black", lw=0.8,
                      label=f"Matryoshka boundaries ({len(boundaries)})")] if boundaries else []
    handles.append(Line2D([], [], ls="", marker="s", color="gray",
                          label=f"first {m} of {sae.num_latents} latents"))
    ax.legend(handles=handles, loc="upper right", fontsize="small")
    ax.set_xlabel("latent index")
    ax.set_ylabel("latent index")
    ax.set_title("Decoder cosine similarity")
    return save_figure(fig, path)


@torch.no_grad()
def split_counts(
    small: SparseAutoencoder, large: SparseAutoencoder, threshold: float = DEFAULT_THRESHOLD,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> FeatureSplitting:
    """Assign each large-SAE latent to its most similar small-SAE latent (if ≥ threshold).

    Runs on the small SAE's device in float32, a chunk of large rows at a time, so only
    about `chunk_elements` similarities (plus both dictionaries) are held at once.
    """
    if small.d_in != large.d_in:
        raise PSAEError(
            f"large SAE has d_in={large.d_in}: expected the small SAE's d_in={small.d_in}"
        )
    if not -1.0 <= threshold <= 1.0:
        raise PSAEError(f"threshold={threshold}: expected a cosine similarity in [-1, 1]")
    small_unit = _unit_rows(small.W_dec)
    device = small_unit.device
    n_small, n_large = small.num_latents, large.num_latents
    rows = max(1, chunk_elements // n_small)
    best_small = torch.full((n_small,), -2.0, device=device)
    best_large, assigned = [], []
    for start in range(0, n_large, rows):
        # Normalise per chunk: a full float32 copy of a 65k × d decoder would be large.
        chunk = _unit_rows(large.W_dec[start:start + rows].to(device))
        sim = chunk @ small_unit.t()  # [rows, n_small]
        value, index = sim.max(1)
        best_small = torch.maximum(best_small, sim.max(0).values)
        best_large.append(value)
        assigned.append(torch.where(value >= threshold, index, torch.full_like(index, -1)))
        del sim
    best = torch.cat(best_large).double().cpu()
    target = torch.cat(assigned).cpu()
    matched = target[target >= 0]
    counts = torch.bincount(matched, minlength=n_small)
    hit = counts[counts > 0]
    return FeatureSplitting(
        threshold=float(threshold), num_small=n_small, num_large=n_large,
        counts=[int(c) for c in counts],
        histogram=dict(sorted(Counter(int(c) for c in counts).items())),
        mean_splits=float(hit.double().mean()) if hit.numel() else None,
        unmatched_small_share=float((counts == 0).double().mean()),
        unassigned_large_share=float((target < 0).double().mean()),
        mean_max_cosine_large=float(best.mean()),
        mean_max_cosine_small=float(best_small.double().mean()),
    )


def plot_split_counts(result: FeatureSplitting, path: str | Path) -> Path:
    """Bar chart: how many small latents split into 0, 1, 2, … large latents."""
    counts = np.array(sorted(result.histogram))
    small_latents = np.array([result.histogram[c] for c in counts])
    fig, (ax,) = new_figure(1)
    mean = "n/a" if result.mean_splits is None else f"{result.mean_splits:.2f}"
    ax.bar(counts, small_latents, width=0.8, color="C0",
           label=f"mean splits (matched) = {mean}; "
                 f"unassigned large = {result.unassigned_large_share:.1%}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.margins(y=0.15)  # headroom for the legend above the tallest bar
    ax.set_xlabel("large-SAE latents assigned to a small-SAE latent")
    ax.set_ylabel("small-SAE latents")
    ax.set_title(f"Feature splitting {result.num_small} → {result.num_large} latents "
                 f"(cos ≥ {result.threshold:g})")
    ax.legend(fontsize="small")
    return save_figure(fig, path)
