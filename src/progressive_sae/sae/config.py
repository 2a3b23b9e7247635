"""The SAE's configuration, as stored in cfg.json next to the weights."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from progressive_sae.errors import PSAEError

ACTIVATIONS = ("topk", "batchtopk", "jumprelu")


@dataclass
class SAEConfig:
    """Shape and activation rule of a sparse autoencoder."""

    d_in: int
    """Width of the activations the SAE reads and reconstructs."""
    num_latents: int
    """Dictionary size N."""
    k: int
    """Active latents per input (TopK), or on average per input (BatchTopK)."""
    activation: str = "topk"
    """Activation rule: 'topk', 'batchtopk' or 'jumprelu'."""
    granularities: list[int] | None = None
    """Nested dictionary sizes it was trained with (Matryoshka); None for a plain SAE."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Free-form provenance (model, hook point, training run, permutation, …)."""

    def __post_init__(self) -> None:
        for name in ("d_in", "num_latents", "k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise PSAEError(f"{name}={value!r}: expected an integer")
        if self.d_in <= 0:
            raise PSAEError(f"d_in={self.d_in}: expected a positive integer")
        if self.num_latents <= 0:
            raise PSAEError(f"num_latents={self.num_latents}: expected a positive integer")
        if self.activation not in ACTIVATIONS:
            raise PSAEError(f"activation={self.activation!r}: expected one of {ACTIVATIONS}")
        if self.activation != "jumprelu" and not 0 < self.k < self.num_latents:
            raise PSAEError(
                f"k={self.k}: expected 0 < k < num_latents={self.num_latents}"
            )
        if self.granularities is not None:
            self.granularities = validate_granularities(self.granularities, self.num_latents)
        if not isinstance(self.metadata, dict):
            raise PSAEError(f"metadata={self.metadata!r}: expected a mapping")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> SAEConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PSAEError(
                f"unknown key {unknown[0]!r} in {source}; expected keys: {sorted(known)}"
            )
        missing = sorted(f for f in ("d_in", "num_latents", "k") if f not in data)
        if missing:
            raise PSAEError(f"{source} lacks the required key {missing[0]!r}")
        return cls(**data)


def validate_granularities(granularities: list[int], num_latents: int) -> list[int]:
    """Strictly increasing sizes in 1..N, ending at N (appended when missing)."""
    if not isinstance(granularities, (list, tuple)):
        raise PSAEError(f"granularities={granularities!r}: expected a list of integers")
    sizes = list(granularities)
    if not sizes or any(isinstance(m, bool) or not isinstance(m, int) for m in sizes):
        raise PSAEError(f"granularities={granularities!r}: expected a list of integers")
    if any(b <= a for a, b in zip(sizes, sizes[1:])):
        raise PSAEError(
            f"granularities={granularities!r}: expected strictly increasing sizes "
            "(sorted, no duplicates)"
        )
    if sizes[0] < 1 or sizes[-1] > num_latents:
        raise PSAEError(
            f"granularities={granularities!r}: expected sizes in 1..num_latents={num_latents}"
        )
    if sizes[-1] != num_latents:
        sizes.append(num_latents)
    return sizes
