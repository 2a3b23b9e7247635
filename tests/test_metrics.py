"""Metrics against direct computations."""

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist
from scipy.stats import pearsonr

from progressive_sae.metrics import evaluate_reconstruction, representational_similarity
from tests.helpers import one_line_error
from tests.sae.test_progressive import random_sae


def test_rsa_of_a_set_with_itself_is_one_and_matches_scipy():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 12, generator=g)
    noisy = x + 0.5 * torch.randn(200, 12, generator=g)
    assert representational_similarity(x, x) == pytest.approx(1.0, abs=1e-12)
    expected = pearsonr(pdist(x.double().numpy()), pdist(noisy.double().numpy())).statistic
    assert representational_similarity(x, noisy) == pytest.approx(expected, abs=1e-10)
    assert representational_similarity(x, noisy) < 1.0

def test_rsa_subsamples_and_checks_shapes():
    x = torch.randn(50, 4)
    value = representational_similarity(x, x * 2 + 1, samples=20)
    assert value == pytest.approx(1.0, abs=1e-12)  # distances scale uniformly
    one_line_error(lambda: representational_similarity(x, x[:10]), "(50, 4)", "(10, 4)")

def test_fvu_of_predicting_the_mean_is_one():
    x = torch.randn(300, 16) * 3 + 2

    sae = random_sae(d=16)
    with torch.no_grad():  # a decoder that outputs b_dec = mean(x) whatever the code
        sae.W_dec.zero_()
        sae.b_dec.copy_(x.mean(0))
    metrics = evaluate_reconstruction(sae, x)
    assert metrics.fvu == pytest.approx(1.0, abs=1e-6)  # fp32 mean; Σ||x||² would give ~0.7
    assert np.isfinite(metrics.mse)
