"""psae permute records how it ranked (and the FVU table); psae info reports it; psae
truncate and psae info read only the first G latents of any format."""

import json

import numpy as np
import pytest

from progressive_sae import evaluate_reconstruction
from progressive_sae.cli import main
from progressive_sae.formats import export_sae, import_sae
from tests.formats.test_formats import D, assert_same_sae, make_sae


def run(capsys, *argv):
    assert main(list(argv)) == 0, capsys.readouterr().err
    return capsys.readouterr().out


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.save("rank.npy", rng.standard_normal((300, D)).astype(np.float32))
    np.save("heldout.npy", rng.standard_normal((200, D)).astype(np.float32))
    export_sae(make_sae("topk", granularities=[8, 32]), tmp_path / "sae", "saelens")
    return tmp_path


def test_permute_records_the_ranking_and_the_fvu_table_that_info_prints(ws, capsys):
    run(capsys, "permute", "sae", "--data", "rank.npy", "--eval-data", "heldout.npy",
        "--out", "perm")
    perm = import_sae("perm")
    meta = perm.cfg.metadata
    assert meta["permuted_by"] == "mean_sq" and meta["permuted_rows"] == 300
    table = meta["fvu_by_granularity"]
    assert table["rows"] == 200 and table["num_latents"] == 64 and table["mode"] == "relative"
    assert [p["granularity"] for p in table["points"]] == [2, 4, 8, 16, 32, 64]  # G=1: k_G ≥ G
    for p in table["points"]:
        measured = evaluate_reconstruction(perm, np.load("heldout.npy"), p["granularity"])
        assert p["fvu"] == pytest.approx(measured.fvu) and p["k"] == perm.relative_k(
            p["granularity"])

    info = json.loads(run(capsys, "info", "perm"))["progressive"]
    assert info["permuted"] and info["ranked_by"] == "mean_sq" and info["ranked_on_rows"] == 300
    assert info["matryoshka_granularities"] == [8, 32, 64]
    assert info["fvu_by_granularity"]["points"] == table["points"]
    text = run(capsys, "info", "perm", "--text")
    assert "latents ranked by mean_sq on 300 rows" in text
    assert "Matryoshka granularities: [8, 32, 64]" in text
    fvu_16 = next(p["fvu"] for p in table["points"] if p["granularity"] == 16)
    assert any(line.split() == ["16", "2", f"{fvu_16:.4f}"] for line in text.splitlines())

    # at G = 16 only the table's rows G ≤ 16 describe the truncated SAE
    small = json.loads(run(capsys, "info", "perm", "-g", "16"))
    assert small["num_latents"] == 16 and small["granularities"] == [8, 16]
    assert [p["granularity"] for p in small["progressive"]["fvu_by_granularity"]["points"]] \
        == [2, 4, 8, 16]


def test_info_of_an_unranked_sae_says_so(ws, capsys):
    text = run(capsys, "info", "sae", "--text")
    assert "saelens format" in text and "no record of a ranking" in text
    assert "no latents-vs-FVU table" in text
    assert json.loads(run(capsys, "info", "sae"))["progressive"]["permuted"] is False


def test_truncate_reads_any_format_at_g(ws, capsys):
    assert "16 latents, k=2" in run(capsys, "truncate", "sae", "-g", "16", "--out", "small")
    assert_same_sae(import_sae("small"), import_sae("sae").truncate(16))
    run(capsys, "truncate", "sae", "-g", "40", "--k", "5", "--out", "k5")
    assert_same_sae(import_sae("k5"), import_sae("sae").truncate(40, k=5))
