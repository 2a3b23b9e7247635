"""The analysis commands of `psae`: each writes its PNG plus data; bad input is one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from progressive_sae import SAEConfig, build_sae, save_sae
from progressive_sae.cli import main


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    np.save(tmp_path / "heldout.npy", np.random.default_rng(0).standard_normal(
        (600, 16)).astype(np.float32))
    for n, k in ((32, 4), (64, 4), (64, 8)):
        sae = build_sae(SAEConfig(d_in=16, num_latents=n, k=k))
        save_sae(sae, tmp_path / f"sae{n}k{k}")
    return tmp_path


def test_frontier_power_law_scaling_law_and_splitting_write_plots_and_data(ws):
    assert main(["frontier", "sae32k4", "sae64k4", "--data", "heldout.npy", "--out", "f",
                 "--rsa-rows", "100"]) == 0
    points = json.loads((ws / "f" / "frontier.json").read_text())["points"]
    assert {p["sae"] for p in points} == {"sae32k4", "sae64k4"}
    assert (ws / "f" / "frontier_fvu.png").stat().st_size > 0
    assert main(["frontier", "sae64k4", "sae64k8", "--data", "heldout.npy", "--out", "s",
                 "--prefixes", "32"]) == 0
    assert (ws / "s" / "sparsity_frontier_fvu.png").is_file()
    assert main(["power-law", "sae64k4", "--data", "heldout.npy", "--out", "p"]) == 0
    law = json.loads((ws / "p" / "power_law.json").read_text())["sae64k4"]
    assert set(law) >= {"decoder_eigenvalues", "mean_sq", "frequency"}
    assert main(["splitting", "sae32k4", "--large", "sae64k4", "--out", "sp"]) == 0
    assert (ws / "sp" / "decoder_similarity.png").is_file()
    assert "counts" in json.loads((ws / "sp" / "splitting.json").read_text())

    rows = ["N,k,G,fvu"]
    for n in (256, 512, 1024):
        for k in (8, 16, 32):
            for g in (n // 4, n // 2, n):
                fvu = np.exp(0.3 - 0.1 * np.log(n) - 0.5 * np.log(k) - 0.2 * np.log(g)) + np.exp(
                    -3 - 0.2 * np.log(k))
                rows.append(f"{n},{k},{g},{fvu}")
    (ws / "points.csv").write_text("\n".join(rows) + "\n")
    assert main(["scaling-law", "points.csv", "--out", "sl"]) == 0
    fit = json.loads((ws / "sl" / "scaling_law.json").read_text())
    assert fit["r2_log"] > 0.999 and (ws / "sl" / "scaling_law.png").is_file()


def test_export_then_import_gives_back_the_same_sae(ws):
    for fmt in ("saelens", "sparsify"):
        assert main(["export", "sae64k4", "--format", fmt, "--out", f"as_{fmt}"]) == 0
        assert main(["import", f"as_{fmt}", "--out", f"back_{fmt}"]) == 0
        from progressive_sae import load_sae

        a, b = load_sae(ws / "sae64k4"), load_sae(ws / f"back_{fmt}")
        for name, tensor in a.state_dict().items():
            assert torch.equal(tensor, b.state_dict()[name]), (fmt, name)


@pytest.mark.parametrize("argv, words", [
    (["frontier", "missing", "--data", "heldout.npy", "--out", "o"], ["missing"]),
    (["frontier", "sae32k4", "--data", "heldout.npy", "--out", "o", "--granularities", "a,b"],
     ["comma-separated"]),
    (["power-law", "sae32k4", "--data", "heldout.npy", "--out", "o", "--central", "x"],
     ["--central"]),
    (["scaling-law", "nothing.csv", "--out", "o"], ["nothing.csv"]),
    (["export", "sae32k4", "--format", "saelens", "--out", "sae64k4"], ["exists"]),
    (["report", "."], ["results.json"]),
    (["run", "nope.yaml"], ["nope.yaml"]),
])
def test_bad_analysis_input_is_one_line_and_exit_2(ws, capsys, argv, words):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("psae: error:")
    for word in words:
        assert word in err, err
