"""The synthetic hierarchy extension: old configs unchanged, exclusive children, presets."""

import hashlib

import pytest
import torch

from progressive_sae.data import SyntheticActivations, SyntheticConfig
from progressive_sae.errors import PSAEError
from tests.helpers import one_line_error


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha256((t * 1e4).round().to(torch.int64).numpy().tobytes()).hexdigest()


@pytest.mark.parametrize("cfg, rows, coeffs", [
    (SyntheticConfig(d_in=16, num_features=40, mean_active=3, num_parents=4,
                     children_per_parent=3, seed=1),
     "eb18c995a4f342cb442c1a7b921507279ed279cc799789fd3f0ec006d1a17c10",
     "bf437b909f1f95377c0d098fca55a988353377074d7d1b43d0225d6af185cde2"),
    (SyntheticConfig(d_in=32, num_features=64, mean_active=4, num_rows=100_000, seed=3),
     "18e1d8593fc62557cb9fa7587a4bae4f9b20541ef0daa598bd01182b56a81324",
     "9e457c68887e0c66d570bf2a772d845569264d9f0050afc9a47983d3b1fe9984"),
])
def test_existing_configs_generate_the_rows_they_did_before_the_extension(cfg, rows, coeffs):
    # Digests recorded from the generator before child_none_prob/child_zipf_exponent existed.
    source = SyntheticActivations(cfg)
    assert _digest(source.rows(4000, 4200)) == rows
    assert _digest(source.coefficients(1).to_dense()) == coeffs


def test_toy_tree_children_are_exclusive_never_orphaned_and_sometimes_absent():
    source = SyntheticActivations(SyntheticConfig.toy_tree(seed=2))
    cfg = source.cfg
    assert (cfg.num_parents, cfg.children_per_parent) == (3, 3) and cfg.num_features > 12
    fired = source.fired(4000, 12000)  # crosses a block boundary
    assert fired.shape == (8000, cfg.num_features)
    parents = fired[:, :3]
    children = fired[:, source.children.flatten()].view(-1, 3, 3)
    assert torch.all(children.sum(-1) <= 1)  # mutually exclusive siblings
    assert not torch.any(children.any(-1) & ~parents)  # a child never fires alone
    alone = (parents & ~children.any(-1)).sum() / parents.sum()
    assert abs(float(alone) - cfg.child_none_prob) < 0.03
    assert source.edges()[:3] == [(0, 3), (0, 4), (0, 5)] and len(source.edges()) == 9
    # fired() agrees with the rows: each row is its firing features' sum plus offset and noise
    coeffs = source.coefficients(1).to_dense()[:100]
    assert torch.equal(coeffs > 0, source.fired(4096, 4196))
    rebuilt = coeffs @ source.features + source.offset
    assert (rebuilt - source.rows(4096, 4196)).abs().max() < 0.1


def test_child_power_law_favours_the_first_child():
    source = SyntheticActivations(SyntheticConfig(
        d_in=8, num_features=12, num_parents=2, children_per_parent=3, child_zipf_exponent=2.0,
        mean_active=2, seed=0))
    counts = source.fired(0, 8192)[:, source.children[0]].sum(0).float()
    share = counts / counts.sum()
    expected = torch.tensor([1, 1 / 4, 1 / 9]) / (1 + 1 / 4 + 1 / 9)
    torch.testing.assert_close(share, expected, atol=0.03, rtol=0)


def test_bad_hierarchy_settings_are_one_line_errors():
    one_line_error(lambda: SyntheticConfig(child_none_prob=1.5), "child_none_prob", "[0, 1]")
    one_line_error(lambda: SyntheticConfig(child_zipf_exponent=-1.0), "child_zipf_exponent")
    one_line_error(lambda: SyntheticConfig.preset("nope"), "nope", "toy_tree")
    with pytest.raises(PSAEError):
        SyntheticConfig.toy_tree(num_features=10)  # 3 × (1 + 3) = 12 > 10
