"""Ground-truth absorption inside `psae run`: a TopK and a Matryoshka SAE trained on a
synthetic hierarchy (seed 002's toy setting), scored against the true features."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from progressive_sae.experiment.config import ExperimentConfig
from progressive_sae.settings import from_mapping


@dataclass
class HierarchySettings:
    """`evals.hierarchy:` — the synthetic tree and the two SAEs trained on it."""

    preset: str = "toy_tree"
    """SyntheticConfig preset (3 parents × 3 exclusive children + 20 independent features)."""
    num_latents: int = 32
    """Latents of both SAEs (= the toy tree's feature count)."""
    k: int = 4
    """k of both SAEs."""
    granularities: list[int] = field(default_factory=lambda: [3, 12])
    """Inner Matryoshka sizes (parents, then parents + children)."""
    batch_size: int = 512
    """Rows per step."""
    steps: int = 200
    """Training steps of each SAE."""
    lr: float = 3e-3
    """Peak learning rate."""
    rows: int = 8192
    """Rows scored: the source's last ones, never read by training."""
    seed: int = 0
    """Seeds the data and both SAEs."""


def run_hierarchy(settings: dict[str, Any], cfg: ExperimentConfig, plots_dir: Path,
                  progress: bool) -> tuple[dict[str, Any], Path]:
    from progressive_sae.data.synthetic import SyntheticActivations, SyntheticConfig
    from progressive_sae.evals.hierarchy import HierarchyConfig, evaluate_hierarchy
    from progressive_sae.evals.hierarchy.plot import plot_hierarchy
    from progressive_sae.sae import load_sae
    from progressive_sae.train import train

    s = from_mapping(HierarchySettings, settings, "evals.hierarchy")
    source = SyntheticActivations(SyntheticConfig.preset(s.preset, seed=s.seed))
    saes = {}
    for name, extra in (("TopK", {}), ("Matryoshka", {"granularities": s.granularities})):
        folder = cfg.out / "hierarchy" / name
        if (folder / "sae" / "cfg.json").is_file():  # reused like the grid's runs
            saes[name] = load_sae(folder / "sae")
            continue
        saes[name], _ = train(source, num_latents=s.num_latents, k=s.k, batch_size=s.batch_size,
                              total_tokens=s.batch_size * s.steps, lr=s.lr, seed=s.seed,
                              run_dir=folder, progress=progress, checkpoint_every=0, **extra)
    result = evaluate_hierarchy(saes, source, granularities=s.granularities,
                                config=HierarchyConfig(rows=s.rows, seed=s.seed))
    data = {"settings": settings | {"preset": s.preset}, **result.to_dict()}
    return data, plot_hierarchy(result, plots_dir / "hierarchy_absorption.png")
