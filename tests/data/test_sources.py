import numpy as np
import torch

from progressive_sae.data import (
    IterableSource,
    NpySource,
    SyntheticActivations,
    SyntheticConfig,
    TensorSource,
    iterate_batches,
)


def test_npy_source_reads_exact_rows_and_wraps_epochs(tmp_path):
    data = np.arange(50 * 4, dtype=np.float32).reshape(50, 4)
    np.save(tmp_path / "a.npy", data)
    source = NpySource(tmp_path / "a.npy")
    assert len(source) == 50 and source.d_in == 4
    batches = iterate_batches(source, 20, start_batch=2)
    first = next(batches)  # rows 40..49 then 0..9 (second epoch)
    assert torch.equal(first, torch.from_numpy(np.concatenate([data[40:], data[:10]])))


def test_ranks_take_disjoint_halves_of_each_global_batch():
    data = torch.arange(64.0).view(32, 2)
    source = TensorSource(data)
    full = next(iterate_batches(source, 8))
    halves = [next(iterate_batches(source, 8, rank=r, world=2)) for r in (0, 1)]
    assert torch.equal(torch.cat(halves), full)


def test_iterable_source_rechunks_and_skips_to_the_resume_point():
    chunks = [torch.full((n, 3), float(i)) for i, n in enumerate([5, 7, 4, 9])]
    source = IterableSource(chunks)
    batches = list(iterate_batches(source, 6))
    assert len(batches) == 4 and all(b.shape == (6, 3) for b in batches)
    resumed = list(iterate_batches(source, 6, start_batch=2))
    assert all(torch.equal(a, b) for a, b in zip(resumed, batches[2:]))


def test_synthetic_rows_are_reproducible_and_hierarchical():
    cfg = SyntheticConfig(d_in=16, num_features=40, mean_active=3, num_parents=4,
                          children_per_parent=3, seed=1)
    a, b = SyntheticActivations(cfg), SyntheticActivations(cfg)
    assert torch.equal(a.rows(5000, 5100), b.rows(5000, 5100))
    assert torch.equal(a.rows(4090, 4100)[6:], b.rows(4096, 4100))
    coeffs = a.coefficients(0).to_dense()
    parents, children = coeffs[:, :4] > 0, coeffs[:, 4:16].view(-1, 4, 3) > 0
    assert torch.equal(children.any(-1), parents)  # a child fires exactly when its parent does
    assert torch.all(children.sum(-1) <= 1)
    torch.testing.assert_close(a.features.norm(dim=1), torch.ones(40))
