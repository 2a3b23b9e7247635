"""Decoder similarity and feature splitting between a small and a large SAE (SPEC §4.5)."""

import json

import pytest
import torch

from progressive_sae import SAEConfig, build_sae
from progressive_sae.analysis import (
    decoder_similarity,
    plot_decoder_similarity,
    plot_split_counts,
    split_counts,
)
from tests.helpers import one_line_error


def sae_with_decoder(w, granularities=None):
    n, d = w.shape
    sae = build_sae(SAEConfig(d_in=d, num_latents=n, k=2, granularities=granularities))
    with torch.no_grad():
        sae.W_dec.copy_(w)
    return sae


def split_pair(n_small=40, d=64, seed=0):
    """A small SAE and a large one whose rows are 0–3 noisy copies of each small row."""
    g = torch.Generator().manual_seed(seed)
    small = torch.randn(n_small, d, generator=g)
    small /= small.norm(dim=1, keepdim=True)
    copies = torch.arange(n_small) % 4  # 0, 1, 2, 3 copies in turn
    rows = []
    for j in range(n_small):
        for _ in range(int(copies[j])):
            noisy = small[j] + 0.1 * torch.randn(d, generator=g) / d**0.5
            rows.append(noisy / noisy.norm())
    large = torch.stack(rows)
    large = large[torch.randperm(large.shape[0], generator=g)]
    return sae_with_decoder(small), sae_with_decoder(large), copies


@pytest.mark.parametrize("chunk_elements", [1 << 25, 100])  # one chunk; many ragged chunks
def test_split_counts_are_recovered(chunk_elements):
    small, large, copies = split_pair()
    result = split_counts(small, large, threshold=0.5, chunk_elements=chunk_elements)
    assert result.counts == copies.tolist()
    assert result.histogram == {0: 10, 1: 10, 2: 10, 3: 10}
    assert result.mean_splits == pytest.approx(2.0)
    assert result.unmatched_small_share == pytest.approx(0.25)
    assert result.unassigned_large_share == 0.0
    assert result.mean_max_cosine_large > 0.99
    assert result.num_small == 40 and result.num_large == 60
    data = json.loads(json.dumps(result.to_dict()))
    assert data["histogram"] == {"0": 10, "1": 10, "2": 10, "3": 10}


def test_unrelated_latents_stay_unassigned():
    small, large, _ = split_pair()
    g = torch.Generator().manual_seed(9)
    stranger = sae_with_decoder(torch.randn(30, 64, generator=g))
    result = split_counts(small, stranger, threshold=0.9)
    assert result.unassigned_large_share == 1.0 and result.mean_splits is None
    assert result.histogram == {0: 40}
    assert 0 < result.mean_max_cosine_small < 0.9


def test_mismatched_d_in_is_a_one_line_error():
    small = sae_with_decoder(torch.randn(8, 16))
    large = sae_with_decoder(torch.randn(32, 24))
    one_line_error(lambda: split_counts(small, large), "d_in=24", "d_in=16")
    one_line_error(lambda: split_counts(small, small, threshold=2.0), "threshold=2.0")


def test_decoder_similarity_is_a_cosine_matrix():
    sae = sae_with_decoder(torch.randn(100, 16) * 3)
    sim = decoder_similarity(sae, max_latents=50)
    assert sim.shape == (50, 50)
    torch.testing.assert_close(sim.diagonal(), torch.ones(50))
    torch.testing.assert_close(sim, sim.t())
    assert decoder_similarity(sae).shape == (100, 100)


def test_plots_write_pngs(tmp_path):
    sae = sae_with_decoder(torch.randn(128, 16), granularities=[16, 32, 64, 128])
    heatmap = plot_decoder_similarity(sae, tmp_path / "a" / "similarity.png", max_latents=96)
    small, large, _ = split_pair()
    bars = plot_split_counts(split_counts(small, large), tmp_path / "splits.png")
    for path in (heatmap, bars):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 5_000
