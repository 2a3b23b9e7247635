"""Synthetic activations with known ground-truth features (SPEC §5).

Each row is a sparse non-negative combination of unit-norm features plus an offset and
noise. Feature i fires with probability ∝ (i + 1)^(-zipf_exponent) (a power law, like LM
features), scaled so that `mean_active` features fire per row on average. An optional
hierarchy makes the first features parents whose children only fire with them. Rows are
generated block by block from (seed, block) so any row range is reproducible on demand.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from progressive_sae.errors import PSAEError

BLOCK_ROWS = 4096


@dataclass
class SyntheticConfig:
    """Shape and statistics of a synthetic activation distribution."""

    d_in: int = 256
    """Width of each activation vector."""
    num_features: int = 512
    """Number of ground-truth features."""
    mean_active: float = 8.0
    """Expected number of features firing per row."""
    zipf_exponent: float = 1.0
    """Power-law exponent of the firing frequencies over the feature index."""
    magnitude_std: float = 0.25
    """Std of a firing feature's coefficient around 1 (coefficients are clipped at 0.05)."""
    noise_std: float = 0.01
    """Std of isotropic Gaussian noise per dimension."""
    offset_norm: float = 1.0
    """Norm of a constant offset added to every row (what b_dec should learn)."""
    num_parents: int = 0
    """Hierarchy: the first `num_parents` features are parents of children that follow."""
    children_per_parent: int = 4
    """Children of each parent; when a parent fires, one child fires with it."""
    child_none_prob: float = 0.0
    """When a parent fires, the probability that none of its children fires with it."""
    child_zipf_exponent: float = 0.0
    """A parent's j-th child is the one that fires with probability ∝ (j + 1)^(-exponent)
    (0 = uniform)."""
    num_rows: int = 1_000_000
    """Rows the source reports (generation is lazy, so this costs nothing)."""
    seed: int = 0
    """Seed for the features, probabilities and every row block."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value, real = getattr(self, f.name), isinstance(f.default, float)
            if isinstance(value, bool) or not isinstance(value, (int, float) if real else int):
                what = "a number" if real else "an integer"
                raise PSAEError(f"synthetic {f.name}={value!r}: expected {what}")
        if self.d_in <= 0 or self.num_features <= 0 or self.num_rows <= 0:
            raise PSAEError("synthetic d_in, num_features and num_rows must be positive")
        if self.num_parents * (1 + self.children_per_parent) > self.num_features:
            raise PSAEError(
                f"num_parents={self.num_parents} with {self.children_per_parent} children each "
                f"needs more than num_features={self.num_features} features"
            )
        if not 0.0 <= self.child_none_prob <= 1.0:
            raise PSAEError(f"synthetic child_none_prob={self.child_none_prob}: expected a "
                            "probability in [0, 1]")
        if self.child_zipf_exponent < 0:
            raise PSAEError(f"synthetic child_zipf_exponent={self.child_zipf_exponent}: "
                            "expected a number ≥ 0")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> SyntheticConfig:
        """A named preset (see PRESETS), with any field overridden."""
        if name not in PRESETS:
            raise PSAEError(f"synthetic preset {name!r}: expected one of {sorted(PRESETS)}")
        return cls(**(PRESETS[name] | overrides))

    @classmethod
    def toy_tree(cls, **overrides: Any) -> SyntheticConfig:
        """3 parents × 3 mutually exclusive children + 20 independent features (PRESETS)."""
        return cls.preset("toy_tree", **overrides)


PRESETS: dict[str, dict[str, Any]] = {
    "toy_tree": dict(
        d_in=64, num_features=32, num_parents=3, children_per_parent=3, child_none_prob=0.4,
        mean_active=3.0, zipf_exponent=0.5, magnitude_std=0.1, noise_std=0.01,
    ),
}
"""Named hierarchies. toy_tree: parents 0–2, children 3–11 (3 per parent), 20 independent
features 12–31 with power-law frequencies; a parent fires alone with probability 0.4."""


class SyntheticActivations:
    """An `ActivationSource` of synthetic rows, plus the ground truth that generated them."""

    def __init__(self, cfg: SyntheticConfig) -> None:
        self.cfg = cfg
        self.d_in = cfg.d_in
        g = torch.Generator().manual_seed(cfg.seed)
        self.features = F.normalize(torch.randn(cfg.num_features, cfg.d_in, generator=g), dim=1)
        """Ground-truth unit feature directions [num_features, d_in]."""
        self.offset = F.normalize(torch.randn(cfg.d_in, generator=g), dim=0) * cfg.offset_norm
        ranks = torch.arange(1, cfg.num_features + 1, dtype=torch.float64)
        weights = ranks.pow(-cfg.zipf_exponent)
        self.firing_prob = (weights * cfg.mean_active / weights.sum()).clamp(max=1.0).float()
        """Marginal firing probability of each root feature (children: see hierarchy)."""
        n_children = cfg.num_parents * cfg.children_per_parent
        self.children = torch.arange(cfg.num_parents, cfg.num_parents + n_children).view(
            cfg.num_parents, cfg.children_per_parent
        )
        """Feature ids of each parent's children [num_parents, children_per_parent]."""
        if n_children:
            self.firing_prob[cfg.num_parents : cfg.num_parents + n_children] = 0.0
        child_weights = torch.arange(1, cfg.children_per_parent + 1, dtype=torch.float64).pow(
            -cfg.child_zipf_exponent)
        self._child_cdf = (child_weights.cumsum(0) / child_weights.sum()).float()

    def edges(self) -> list[tuple[int, int]]:
        """Every (parent, child) pair of the hierarchy, parents in order."""
        return [(p, int(c)) for p in range(self.cfg.num_parents) for c in self.children[p]]

    def fired(self, start: int, stop: int) -> torch.Tensor:
        """Which ground-truth features fired in rows [start, stop): bool [rows, num_features]."""
        first, last = start // BLOCK_ROWS, (stop - 1) // BLOCK_ROWS
        blocks = [self.coefficients(b).to_dense() > 0 for b in range(first, last + 1)]
        joined = blocks[0] if len(blocks) == 1 else torch.cat(blocks)
        offset = first * BLOCK_ROWS
        return joined[start - offset : stop - offset]

    def __len__(self) -> int:
        return self.cfg.num_rows

    def rows(self, start: int, stop: int) -> torch.Tensor:
        first, last = start // BLOCK_ROWS, (stop - 1) // BLOCK_ROWS
        blocks = [self._block(b) for b in range(first, last + 1)]
        joined = blocks[0] if len(blocks) == 1 else torch.cat(blocks)
        offset = first * BLOCK_ROWS
        return joined[start - offset : stop - offset]

    def coefficients(self, block: int) -> torch.Tensor:
        """The ground-truth coefficients of a block: sparse COO [BLOCK_ROWS, num_features]."""
        cfg = self.cfg
        g = torch.Generator().manual_seed(int(np.uint32(cfg.seed * 1_000_003 + block)))
        fires = torch.rand(BLOCK_ROWS, cfg.num_features, generator=g) < self.firing_prob
        if cfg.num_parents:
            parents_on = fires[:, : cfg.num_parents]
            # The extra draws happen only when asked for, so older configs keep their rows.
            if cfg.child_zipf_exponent:
                u = torch.rand(BLOCK_ROWS, cfg.num_parents, generator=g)
                pick = torch.searchsorted(self._child_cdf, u.contiguous(), right=True).clamp_max(
                    cfg.children_per_parent - 1)
            else:
                pick = torch.randint(0, cfg.children_per_parent, (BLOCK_ROWS, cfg.num_parents),
                                     generator=g)
            if cfg.child_none_prob:
                parents_on = parents_on & (
                    torch.rand(BLOCK_ROWS, cfg.num_parents, generator=g) >= cfg.child_none_prob)
            child = self.children[torch.arange(cfg.num_parents), pick]
            fires.scatter_(1, child, parents_on)
        rows, cols = fires.nonzero(as_tuple=True)
        magnitude = (1 + cfg.magnitude_std * torch.randn(rows.numel(), generator=g)).clamp_min(0.05)
        return torch.sparse_coo_tensor(
            torch.stack([rows, cols]), magnitude, (BLOCK_ROWS, cfg.num_features),
            is_coalesced=True, check_invariants=False,
        )

    def _block(self, block: int) -> torch.Tensor:
        coeffs = self.coefficients(block)
        g = torch.Generator().manual_seed(int(np.uint32(self.cfg.seed * 7_000_003 + block + 1)))
        noise = torch.randn(BLOCK_ROWS, self.cfg.d_in, generator=g) * self.cfg.noise_std
        return coeffs @ self.features + self.offset + noise
