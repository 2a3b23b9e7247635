"""Metric correlations on constructed points whose correlations are known."""

import json
import math

import numpy as np
import pytest
from scipy import stats

from progressive_sae.analysis.correlation import (
    metric_correlations,
    plot_metric_correlations,
    series_family,
)
from progressive_sae.analysis.frontier import FrontierPoint
from progressive_sae.cli import main
from progressive_sae.evaluation import Fidelity


def point(series, sae, g, fvu, ce_ratio, rsa, mode="relative"):
    ce = None if ce_ratio is None else {"ce_clean": 3.0, "ce_spliced": 3.0 / ce_ratio,
                                         "ce_ratio": ce_ratio}
    fidelity = Fidelity(granularity=g, mode=mode, k=4, fvu=fvu, mse=fvu, l0=4.0,
                        dead_fraction=0.0, rsa=rsa, **(ce or {}))
    return FrontierPoint(series, sae, 1024, 32, fidelity)


def monotone_points():
    """FVU falls with G; CE ratio = 1 - FVU³ (monotone, not linear); RSA = 1 - FVU/2."""
    fvus = np.geomspace(0.8, 0.01, 12)
    return [point("TopK permuted by E[z²]" if i % 2 else "Matryoshka", f"sae{i % 2}", 2 ** i,
                  f, 1 - f ** 3, 1 - f / 2) for i, f in enumerate(fvus)]


def test_monotone_metrics_have_spearman_one_and_linear_ones_pearson_one():
    result = metric_correlations(monotone_points())
    fvu_ce = result.pair("fvu", "ce_ratio")
    assert fvu_ce.n == 12 and fvu_ce.spearman == pytest.approx(-1.0)
    assert -1.0 < fvu_ce.pearson < -0.5  # monotone but curved: |r| < 1
    assert result.pair("fvu", "rsa").pearson == pytest.approx(-1.0)
    assert result.pair("rsa", "ce_ratio").spearman == pytest.approx(1.0)
    assert result.pair("fvu", "rsa").spearman_p < 1e-6
    assert result.missing == {"fvu": 0, "ce_ratio": 0, "rsa": 0} and result.duplicates == 0


def test_values_are_scipy_s_on_the_points_that_have_both_metrics():
    rng = np.random.default_rng(0)
    fvu, ce, rsa = rng.random(30), rng.random(30), rng.random(30)
    pts = [point("a", f"s{i}", 64, fvu[i], None if i < 5 else ce[i],
                 math.nan if i == 29 else rsa[i]) for i in range(30)]
    result = metric_correlations(pts)
    assert result.missing == {"fvu": 0, "ce_ratio": 5, "rsa": 1}
    pair = result.pair("ce_ratio", "rsa")
    assert pair.n == 24
    assert pair.pearson == pytest.approx(stats.pearsonr(ce[5:29], rsa[5:29]).statistic)
    assert pair.spearman_p == pytest.approx(stats.spearmanr(ce[5:29], rsa[5:29]).pvalue)
    assert result.pair("fvu", "ce_ratio").n == 25 and result.pair("rsa", "fvu").n == 29


def test_a_point_listed_by_several_series_counts_once():
    pts = monotone_points()
    again = point("sparsity: Matryoshka @1", "sae0", 1, pts[0].fidelity.fvu, 0.5, 0.5)
    result = metric_correlations([*pts, again])
    assert len(result.points) == 12 and result.duplicates == 1
    prefix = point("Matryoshka", "sae0", 1, 0.3, 0.5, 0.5, mode="prefix")  # another mode
    assert len(metric_correlations([*pts, prefix]).points) == 13


def test_undefined_correlations_are_null_in_strict_json():
    few = metric_correlations(monotone_points()[:2])
    assert few.pair("fvu", "rsa").pearson is None and few.pair("fvu", "rsa").n == 2
    flat = metric_correlations([point("a", f"s{i}", 8, 0.1 * (i + 1), 0.9, 0.5 + 0.01 * i)
                                for i in range(5)])
    assert flat.pair("fvu", "ce_ratio").spearman is None  # CE ratio is constant
    assert flat.pair("fvu", "rsa").spearman == pytest.approx(1.0)
    no_lm = metric_correlations([point("a", f"s{i}", 8, 0.1 * i, None, 0.1 * i)
                                 for i in range(4)])
    assert no_lm.pair("fvu", "ce_ratio").n == 0 and no_lm.missing["ce_ratio"] == 4
    for result in (few, flat, no_lm):
        text = json.dumps(result.to_dict(), allow_nan=False)
        assert json.loads(text)["pairs"][0]["x"] == "fvu"
    assert "undefined" in few.describe()[0]


def test_series_map_to_their_family():
    assert series_family("sparsity: TopK permuted by E[z²] @256") == "TopK permuted by E[z²]"
    assert series_family("scaling: TopK-k8 permuted by E[z²]") == "TopK-k8 permuted by E[z²]"
    assert series_family("Matryoshka") == "Matryoshka"


def test_plot_from_points_or_result_writes_a_png(tmp_path):
    pts = monotone_points()
    for target, source in (("a.png", pts), ("b.png", metric_correlations(pts))):
        path = plot_metric_correlations(source, tmp_path / target)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    no_lm = [point("a", f"s{i}", 8, 0.1 * (i + 1), None, 0.1 * i) for i in range(4)]
    assert plot_metric_correlations(no_lm, tmp_path / "c.png").is_file()


def test_psae_correlation_reads_a_run_s_results(tmp_path, capsys):
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"config": {}, "points": [p.to_dict()
                                                             for p in monotone_points()]}))
    assert main(["correlation", str(results), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "FVU vs CE_clean/CE_spliced: Spearman ρ = -1.000" in out
    saved = json.loads((tmp_path / "out" / "correlation.json").read_text())
    assert saved["n_points"] == 12 and len(saved["pairs"]) == 3
    assert (tmp_path / "out" / "metric_correlation.png").is_file()
    (tmp_path / "bad.json").write_text(json.dumps({"points": 5}))
    for bad in ("bad.json", "missing.json"):
        assert main(["correlation", str(tmp_path / bad), "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and bad in err
