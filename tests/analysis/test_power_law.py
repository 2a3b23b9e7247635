"""Power-law fits of rank curves and the dictionary power-law analysis (SPEC §4.3)."""

import json

import numpy as np
import pytest
import torch

from progressive_sae import SAEConfig, build_sae
from progressive_sae.analysis import (
    DEFAULT_CENTRAL,
    dictionary_power_law,
    fit_power_law,
    plot_power_law,
)
from progressive_sae.progressive import LatentStatistics
from tests.helpers import one_line_error


def test_noisy_power_law_exponent_is_recovered():
    rng = np.random.default_rng(0)
    ranks = np.arange(1, 2001)
    values = 3.0 * ranks**-1.3 * np.exp(0.05 * rng.standard_normal(ranks.size))
    fit = fit_power_law(rng.permutation(values))  # order must not matter
    assert fit.exponent == pytest.approx(1.3, abs=0.02)
    assert fit.n_points == 2000 and fit.rank_range == (1, 2000)


def test_exact_power_law_fits_perfectly():
    ranks = np.arange(1, 101, dtype=np.float64)
    fit = fit_power_law(torch.tensor(5.0 * ranks**-0.7))
    assert fit.r2 == pytest.approx(1.0, abs=1e-12)
    assert fit.exponent == pytest.approx(0.7, abs=1e-10)
    assert fit.log_intercept == pytest.approx(np.log(5.0), abs=1e-10)
    assert fit.predict(10.0) == pytest.approx(5.0 * 10**-0.7)


def test_central_range_selects_expected_ranks_and_ignores_tails():
    ranks = np.arange(1, 201, dtype=np.float64)
    values = ranks**-1.0
    values[:10] = values[10]  # a flat head
    values[100:] *= np.exp(-(ranks[100:] - 100) / 10)  # a collapsing tail
    fit = fit_power_law(values, central=(0.05, 0.5))
    assert fit.rank_range == (11, 100) and fit.n_points == 90
    assert fit.exponent == pytest.approx(1.0, abs=1e-10)
    assert fit_power_law(values).exponent > 1.5  # the full range is pulled by the tail


def test_non_positive_values_are_dropped():
    fit = fit_power_law([4.0, 0.0, 2.0, -1.0, 1.0, 0.0])
    assert fit.n_points == 3 and fit.rank_range == (1, 3)


def test_too_few_positive_values_is_a_one_line_error():
    one_line_error(lambda: fit_power_law([1.0, 0.5, 0.0, -2.0]), "2 positive", "at least 3")
    one_line_error(lambda: fit_power_law(np.ones(20), central=(0.0, 0.1)), "at least 3")
    one_line_error(lambda: fit_power_law([1.0, float("nan"), 0.5]), "NaN")
    one_line_error(lambda: fit_power_law(np.ones(20), central=(0.5, 0.2)), "lo < hi")


def small_sae_and_stats(n=256, d=32):
    sae = build_sae(SAEConfig(d_in=d, num_latents=n, k=4))
    g = torch.Generator().manual_seed(1)
    ranks = torch.arange(1, n + 1, dtype=torch.float64)
    frequency = ranks**-0.8 * 0.5
    frequency[n - n // 25:] = 0.0  # dead latents are dropped from the fits
    stats = LatentStatistics(
        mean_sq=ranks**-1.2 * torch.rand(n, generator=g, dtype=torch.float64).add(0.5),
        frequency=frequency, mean=torch.zeros(n, dtype=torch.float64), rows=1000,
    )
    return sae, stats


def test_dictionary_power_law_is_finite_and_serialisable():
    sae, stats = small_sae_and_stats()
    result = dictionary_power_law(sae, stats)
    assert result.central == DEFAULT_CENTRAL
    assert result.decoder_eigenvalues.n_values == 32
    assert result.frequency.n_values == 256 - 10
    assert result.frequency.full.exponent == pytest.approx(0.8, abs=1e-9)
    for stat in (result.decoder_eigenvalues, result.mean_sq, result.frequency):
        for fit in (stat.full, stat.central):
            assert np.isfinite([fit.exponent, fit.log_intercept, fit.r2]).all()
        assert stat.ranks[0] == 1 and stat.ranks[-1] == stat.n_values
    data = json.loads(json.dumps(result.to_dict()))
    assert set(data) == {"decoder_eigenvalues", "mean_sq", "frequency", "central"}


def test_long_curves_are_stored_downsampled():
    sae, stats = small_sae_and_stats(n=4096, d=16)
    result = dictionary_power_law(sae, stats)
    curve = result.mean_sq
    assert curve.n_values == 4096 and len(curve.ranks) <= 512
    assert curve.ranks == sorted(set(curve.ranks)) and curve.ranks[-1] == 4096
    assert curve.ranks[:5] == [1, 2, 3, 4, 5]


def test_stats_of_another_sae_are_refused():
    sae, stats = small_sae_and_stats()
    _, other = small_sae_and_stats(n=128)
    one_line_error(lambda: dictionary_power_law(sae, other), "128", "num_latents=256")


def test_plot_writes_png(tmp_path):
    sae, stats = small_sae_and_stats()
    results = {"topk": dictionary_power_law(sae, stats),
               "other": dictionary_power_law(sae, stats, central=(0.1, 0.9))}
    path = plot_power_law(results, tmp_path / "plots" / "power_law.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000


def test_rank_deficient_decoder_drops_rounding_noise_eigenvalues():
    sae, stats = small_sae_and_stats(n=8, d=32)  # 8 centred rows span 7 dimensions
    assert dictionary_power_law(sae, stats, central=(0.0, 1.0)).decoder_eigenvalues.n_values == 7
