"""`Catalogue`: every SAE of a `psae run` by name, handed from the pipeline to its stages.

Its own module so that the analyses and the optional stages can name it without importing
the pipeline that calls them.
"""

from __future__ import annotations

from dataclasses import dataclass

from progressive_sae.experiment.runs import PlannedRun
from progressive_sae.progressive import LatentStatistics
from progressive_sae.sae.base import SparseAutoencoder


@dataclass
class Catalogue:
    """Every SAE of the experiment, by name, with what the analyses need to know of it."""

    saes: dict[str, SparseAutoencoder]
    runs: dict[str, PlannedRun]
    """The trained ones."""
    external: list[str]
    """Names of the imported ones."""
    stats: dict[str, LatentStatistics]
    """Latent statistics of each unpermuted SAE on the ranking rows."""
