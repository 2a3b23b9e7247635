"""Frontiers: which granularities an SAE allows, points that survive JSON, plots written."""

import json

import torch

from progressive_sae import SAEConfig, build_sae
from progressive_sae.analysis.frontier import (
    FrontierPoint,
    plot_frontier,
    progressive_frontier,
    sparsity_frontier,
    usable_granularities,
)
from progressive_sae.data import TensorSource
from progressive_sae.evaluation import EvalSet


def test_granularities_beyond_the_sae_or_below_k_g_are_skipped():
    sae = build_sae(SAEConfig(d_in=8, num_latents=64, k=32))
    assert usable_granularities(sae, [1, 2, 4, 16, 64, 128]) == [2, 4, 16, 64]


def test_a_frontier_scores_every_sae_at_its_granularities_and_plots(tmp_path):
    x = TensorSource(torch.randn(400, 8))
    small = build_sae(SAEConfig(d_in=8, num_latents=16, k=2))
    large = build_sae(SAEConfig(d_in=8, num_latents=64, k=4))
    points = progressive_frontier({"small": small, "large": large}, EvalSet(x, rsa_rows=50),
                                  [8, 16, 64], progress=False)
    assert [(p.sae, p.fidelity.granularity) for p in points] == [
        ("small", 8), ("small", 16), ("large", 8), ("large", 16), ("large", 64)]
    again = FrontierPoint.from_dict(json.loads(json.dumps(points[0].to_dict())))
    assert again == points[0]
    assert plot_frontier(points, "fvu", tmp_path / "f.png").stat().st_size > 0
    sparse = sparsity_frontier({"large": large}, EvalSet(x, rsa_rows=50), [16], progress=False)
    assert [p.series for p in sparse] == ["large @16", "large @64"]
    assert plot_frontier(sparse, "rsa", tmp_path / "s.png", x="l0").stat().st_size > 0
