"""Fitting the eq. 9 scaling law of FVU in N, k and G (SPEC §4.4)."""

import itertools
import json

import numpy as np
import pytest

from progressive_sae.analysis import ScalingLawFit, ScalingPoint, fit_scaling_law, plot_scaling_law
from progressive_sae.analysis.scaling_law import PARAMS
from tests.helpers import one_line_error

# Chosen so that both terms matter: the floor is 26–60% of the FVU over the grid.
TRUE = {"alpha": 0.5, "beta_N": -0.1, "beta_k": -0.6, "beta_G": -0.2, "gamma": 0.02,
        "zeta": -2.5, "eta": -0.3}
FIRST_TERM = ("alpha", "beta_N", "beta_k", "beta_G", "gamma")


def grid(noise=0.0, seed=0):
    law = ScalingLawFit(params=TRUE, r2_log=1.0, rmse_log=0.0, n_points=0)
    rng = np.random.default_rng(seed)
    points = []
    for n, k, share in itertools.product(
        [1024, 2048, 4096, 8192, 16384], [8, 16, 32, 64, 128], [1 / 32, 1 / 8, 1 / 4, 1 / 2, 1]
    ):
        fvu = law.predict(n, k, n * share) * np.exp(noise * rng.standard_normal())
        points.append(ScalingPoint(n, k, n * share, fvu))
    return points


def test_exact_parameters_are_recovered():
    fit = fit_scaling_law(grid())
    for name in FIRST_TERM:
        assert fit.params[name] == pytest.approx(TRUE[name], abs=0.02), name
    for name in ("zeta", "eta"):
        assert fit.params[name] == pytest.approx(TRUE[name], abs=0.05), name
    assert fit.r2_log > 0.999 and fit.rmse_log < 1e-6 and fit.n_points == 125


def test_noisy_fit_stays_close():
    points = grid(noise=0.01, seed=0)
    fit = fit_scaling_law(points)
    # The slopes are well determined; α and ζ trade off against each other a little.
    for name in ("beta_N", "beta_k", "beta_G", "gamma", "eta"):
        assert fit.params[name] == pytest.approx(TRUE[name], abs=0.02), name
    for name in ("alpha", "zeta"):
        assert fit.params[name] == pytest.approx(TRUE[name], abs=0.1), name
    assert fit.r2_log > 0.999
    assert fit.rmse_log == pytest.approx(0.01, rel=0.2)
    truth = np.array([p.fvu for p in grid()])
    n, k, g = (np.array([getattr(p, f) for p in points]) for f in ("N", "k", "G"))
    assert np.abs(fit.predict(n, k, g) / truth - 1).max() < 0.01


def test_predict_and_to_dict():
    fit = fit_scaling_law(grid())
    assert isinstance(fit.predict(4096, 32, 1024), float)
    data = json.loads(json.dumps(fit.to_dict()))
    assert list(data["params"]) == list(PARAMS)


def test_bad_points_are_refused_in_one_line():
    points = grid()
    one_line_error(lambda: fit_scaling_law(points[:7]), "7 scaling-law points", "at least 8")
    bad = [*points[:9], ScalingPoint(1024, 8, 512, 0.0)]
    one_line_error(lambda: fit_scaling_law(bad), "point 9", "positive")
    same_k = [p for p in points if p.k == 8]
    one_line_error(lambda: fit_scaling_law(same_k), "k=8", "2 distinct")


def test_plot_writes_png(tmp_path):
    points = grid(noise=0.01)
    path = plot_scaling_law(fit_scaling_law(points), points, tmp_path / "scaling.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
