"""`psae probing` and `psae erasure` on the shipped LM with a tiny SAE: JSON + plot, and
bad input as one line with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from progressive_sae.cli import main
from progressive_sae.lm.offline import default_lm_available
from progressive_sae.sae import SAEConfig, TopKSAE, save_sae

pytestmark = pytest.mark.skipif(not default_lm_available(), reason="shipped LM missing")
SMALL = ["--train-per-class", "16", "--test-per-class", "8", "--resamples", "50",
         "--granularities", "32", "--lm", "offline-default", "--hook", "layers.2"]


@pytest.fixture(scope="module")
def saes(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("saes")
    out = {}
    for name, d in (("good", 256), ("narrow", 8)):
        sae = TopKSAE(SAEConfig(d_in=d, num_latents=64, k=4))
        sae.reset_parameters(torch.Generator().manual_seed(0))
        out[name] = save_sae(sae, root / name)
    return out


def code_vs_prose(path: Path) -> str:
    rows = [{"text": f"for i in range({i}):\n    total += values[i] * {i}", "label": "code",
             "group": f"c{i // 2}"} for i in range(40)]
    rows += [{"text": f"Return the number of items found in the list, at most {i}.",
              "label": "prose", "group": f"p{i // 2}"} for i in range(40)]
    return _task_file(path, rows)


def test_probing_writes_json_and_plot(saes, tmp_path, capsys):
    code = main(["probing", str(saes["good"]), "--task-file",
                 code_vs_prose(tmp_path / "code.jsonl"), *SMALL, "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    result = json.loads((tmp_path / "probing.json").read_text())
    assert [t["name"] for t in result["tasks"]] == ["code"]
    views = {(s["granularity"], s["mode"]) for s in result["scores"]}
    scored = [t for t in result["tasks"] if not t["gated"]]
    assert views == ({(64, "relative"), (32, "relative"), (32, "prefix")} if scored else set())
    assert (tmp_path / "probing.png").stat().st_size > 0


def test_erasure_writes_json_and_plot(saes, tmp_path, capsys):
    # SCR itself is tested on constructed SAEs (test_erasure.py); here TPP alone keeps it quick.
    code = main(["erasure", str(saes["good"]), "--packages", "logging,email", "--no-scr",
                 "--n-values", "2,5", *SMALL, "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    result = json.loads((tmp_path / "erasure.json").read_text())
    assert result["scr_setup"] is None
    assert result["tpp_setup"]["task"]["classes"] == ["logging", "email"]
    assert {s["n"] for s in result["scores"]} <= {2, 5}
    assert (tmp_path / "erasure.png").stat().st_size > 0


def _task_file(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize("case", ["empty", "single", "width", "unknown"])
def test_bad_input_is_one_line_and_exit_2(case, saes, tmp_path, capsys):
    sae, extra, words = str(saes["good"]), [], []
    if case == "empty":
        extra = ["--task-file", _task_file(tmp_path / "none.jsonl", [])]
        words = ["none.jsonl", "empty"]
    elif case == "single":
        rows = [{"text": f"t{i}", "label": "yes", "group": f"d{i}"} for i in range(6)]
        extra = ["--task-file", _task_file(tmp_path / "one.jsonl", rows)]
        words = ["'yes'", "2 classes"]
    elif case == "width":
        sae, extra, words = str(saes["narrow"]), ["--tasks", "kind"], ["d_in=8", "256"]
    else:
        extra, words = ["--tasks", "package:asyncio,colour"], ["'colour'"]
    out_dir = tmp_path / "out"
    capsys.readouterr()
    code = main(["probing", sae, *extra, *SMALL, "--out", str(out_dir)])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("psae: error: ")
    for word in words:
        assert word in lines[0], lines[0]
    assert not out_dir.exists()


def test_erasure_sae_width_mismatch_is_one_line(saes, tmp_path, capsys):
    capsys.readouterr()
    code = main(["erasure", str(saes["narrow"]), *SMALL, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1 and "d_in=8" in err
