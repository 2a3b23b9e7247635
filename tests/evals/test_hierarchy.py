"""Ground-truth absorption: hand-built SAEs with known answers, and TopK vs Matryoshka."""

import json

import pytest
import torch

from progressive_sae import train
from progressive_sae.data import SyntheticActivations, SyntheticConfig
from progressive_sae.evals.hierarchy import (
    HierarchyConfig,
    evaluate_hierarchy,
    match_latents,
    plot_hierarchy,
)
from progressive_sae.sae import SAEConfig, TopKSAE
from tests.helpers import one_line_error


def _orthogonal_tree():
    """toy_tree without noise, with orthonormal feature directions (exact answers)."""
    source = SyntheticActivations(SyntheticConfig.toy_tree(noise_std=0.0, seed=1))
    source.features = torch.eye(source.cfg.num_features, source.cfg.d_in)
    return source


def _ideal_sae(source):
    """One latent per true feature (latent j = feature j), so each fires iff its feature does."""
    n = source.cfg.num_features
    sae = TopKSAE(SAEConfig(d_in=source.d_in, num_latents=n, k=n - 1))
    with torch.no_grad():
        sae.W_dec.copy_(source.features)
        sae.W_enc.copy_(source.features)
        sae.b_dec.copy_(source.offset)
    return sae


def test_parent_latent_that_always_fires_with_its_parent_has_gap_zero():
    source = _orthogonal_tree()
    result = evaluate_hierarchy({"ideal": _ideal_sae(source)}, source,
                                config=HierarchyConfig(rows=8192))
    (view,) = result.views
    assert view.matched_mean_abs_cos == pytest.approx(1.0)
    for edge in view.edges:
        assert edge.parent_latent == edge.parent and edge.child_latent == edge.child
        assert edge.fire_with_child == 1.0 and edge.fire_without_child == 1.0
        assert edge.gap == 0.0 and edge.full_absorption_rate == 0.0
        assert edge.encoder_cos == pytest.approx(0.0, abs=1e-6)
        assert edge.rows_with_child > 100 and edge.rows_without_child > 100
    assert view.mean_gap.value == 0.0 and view.absorbing_edges == 0


def test_parent_latent_silent_whenever_a_child_fires_has_gap_one_and_full_absorption():
    source = _orthogonal_tree()
    sae = _ideal_sae(source)
    with torch.no_grad():  # parent 0's latent is switched off by child 4 (coefficients ≈ 1)
        sae.W_enc[0] = source.features[0] - 3 * source.features[4]
    (view,) = evaluate_hierarchy({"absorbing": sae}, source,
                                 config=HierarchyConfig(rows=8192)).views
    absorbed = next(e for e in view.edges if (e.parent, e.child) == (0, 4))
    assert absorbed.gap == 1.0 and absorbed.full_absorption_rate == 1.0
    assert absorbed.encoder_cos < 0  # absorption shows as a negative encoder cosine
    # Its siblings see the latent silent on some parent ∧ ¬sibling rows (those with child 4):
    # a negative gap. The other parents' edges are untouched.
    assert all(e.gap < 0 for e in view.edges if e.parent == 0 and e.child != 4)
    assert all(e.gap == 0.0 for e in view.edges if e.parent != 0)
    assert view.absorbing_edges == 1


def test_hungarian_matching_finds_a_permuted_dictionary_and_skips_unmatched_features():
    features = torch.nn.functional.normalize(torch.randn(6, 10, generator=torch.Generator()
                                                         .manual_seed(0)), dim=1)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    latent_of, cos = match_latents(features[perm], features)
    assert torch.equal(perm[torch.as_tensor(latent_of)], torch.arange(6))
    assert cos == pytest.approx([1.0] * 6)
    latent_of, _ = match_latents(features[:4], features)  # fewer latents than features
    assert sorted(latent_of.tolist()) == [-1, -1, 0, 1, 2, 3]


def test_matryoshka_absorbs_clearly_less_than_topk_on_the_toy_tree(tmp_path):
    # Measured while developing (seeds 0–4, this recipe): TopK mean gap 0.10–0.19, Matryoshka
    # 0.00–0.04, difference ≥ 0.086 for every seed; a margin of 0.05 leaves room for noise.
    source = SyntheticActivations(SyntheticConfig.toy_tree(seed=0))
    saes = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: extra threads only contend on a shared machine
    try:
        for name, extra in (("topk", {}), ("matryoshka", {"granularities": [3, 12]})):
            saes[name], _ = train(source, num_latents=32, k=4, batch_size=512,
                                  total_tokens=512 * 200, lr=3e-3, seed=0, progress=False,
                                  **extra)
    finally:
        torch.set_num_threads(threads)
    result = evaluate_hierarchy(saes, source, granularities=[12],
                                config=HierarchyConfig(rows=8192, resamples=200))
    full = {v.sae: v for v in result.views if v.view.granularity == 32}
    topk, mat = full["topk"].mean_gap, full["matryoshka"].mean_gap
    assert mat.value < topk.value - 0.05 and mat.value < 0.5 * topk.value
    assert full["topk"].mean_encoder_cos < full["matryoshka"].mean_encoder_cos
    assert len(result.views) == 2 * 3  # full + G=12 in both modes, per SAE
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["bootstrap_unit"] == "edge" and len(data["views"][0]["edges"]) == 9
    assert plot_hierarchy(result, tmp_path / "h.png").stat().st_size > 1000


def test_hierarchy_needs_ground_truth_and_a_matching_width(synthetic):
    source = _orthogonal_tree()
    one_line_error(lambda: evaluate_hierarchy({"s": _ideal_sae(source)}, synthetic),
                   "no hierarchy")
    wide = TopKSAE(SAEConfig(d_in=7, num_latents=16, k=2))
    one_line_error(lambda: evaluate_hierarchy({"w": wide}, source), "d_in=7", "64")
    one_line_error(lambda: evaluate_hierarchy({"s": _ideal_sae(source)}, torch.zeros(4, 64)),
                   "ground truth")
