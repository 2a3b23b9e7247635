"""`psae run`'s interpretability and seed-002 stages on the shipped LM, end to end (tiny)."""

import json

import pytest

from progressive_sae.experiment import load_experiment, run_experiment
from progressive_sae.interp.browser.page import read_embedded
from tests.helpers import one_line_error

CONFIG = """
out: {out}
lm: {{model: offline-default}}
text: {{source: cpython-docs, ctx: 64}}
extract: {{hook: layers.2, max_tokens: 6144}}
train: {{batch_size: 512, total_tokens: 4096, log_every: 4, checkpoint_every: 0}}
grid: {{num_latents: 64, k: 4, baseline_sizes: [64], sampled_granularities: 0,
        permute_by: [mean_sq]}}
eval: {{heldout_tokens: 6000, rank_rows: 2000, rsa_rows: 100, lm_windows: 0,
        similarity_latents: 64}}
interp:
  llm: {{spec: baseline}}
  sampling: {{quantiles: 2, latents_per_quantile: 2, train_examples: 4, test_examples: 2}}
  records: {{reservoir: 8, top_windows: 4}}
evals:
  absorption: {{task: word-start, rows_per_class: 64, resamples: 50}}
  probing: {{train_per_class: 12, test_per_class: 6, resamples: 50}}
  erasure: {{n_values: [2], train_per_class: 12, test_per_class: 6, resamples: 50,
            scr_train_per_cell: 12, scr_test_per_cell: 6}}
  hierarchy: {{steps: 20}}
"""


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stages")
    path = tmp / "run.yaml"
    path.write_text(CONFIG.format(out=tmp / "out"))
    cfg = load_experiment(path)
    return cfg, run_experiment(cfg, progress=False)


def test_stages_write_results_plots_and_claims(finished):
    cfg, result = finished
    results = json.loads(result.results.read_text(), parse_constant=float)
    interp = results["interp"]
    assert set(interp["saes"]) == {"TopK permuted by E[z²]", "Matryoshka", "random"}
    assert interp["interpreters"] == ["baseline"]
    assert {s["method"] for s in interp["summary"]} == {"simulation", "fuzzing", "detection"}
    evals = results["evals"]
    assert evals["granularities"] == [16, 32]  # the Matryoshka sizes below N
    for name in ("absorption", "probing", "erasure", "hierarchy"):
        assert name in evals
    views = {(v["sae"], v["label"]) for v in evals["absorption"]["views"]}
    assert ("Matryoshka", "G=16 (prefix)") in views
    names = {p.name for p in result.plots}
    assert {"interp_simulation_by_bucket.png", "absorption.png", "sparse_probing.png",
            "concept_erasure.png", "hierarchy_absorption.png"} <= names
    md = result.report_md.read_text()
    for claim in ("Permuted TopK latents score higher than Matryoshka's (simulation, baseline)",
                  "Every trained SAE scores above the random one (simulation, baseline)",
                  "Matryoshka absorbs less than TopK on a ground-truth hierarchy",
                  "Matryoshka reduces feature absorption on the LM",
                  "Matryoshka latents are better sparse probes",
                  "Matryoshka erases targeted concepts better (TPP"):
        assert claim in md, claim
    assert "(plots/interp_simulation_by_bucket.png)" in md
    # A feature browser per interpreted SAE, holding this run's explanations, linked.
    assert interp["browsers"] == {
        "TopK permuted by E[z²]": "browsers/topk-permuted-by-e-z2/index.html",
        "Matryoshka": "browsers/matryoshka/index.html"}
    for label, page in interp["browsers"].items():
        table = read_embedded((cfg.out / page).read_text())["latents"]
        shown = dict(zip(table["index"], table["explanation"]))
        lines = (cfg.out / "interp" / "scores" / f"{label}.baseline.jsonl").open()
        explained = {r["latent"]: r["explanation"] for r in map(json.loads, lines)
                     if r.get("explanation")}
        assert explained and all(shown.get(j) == e for j, e in explained.items()), label
        assert f"- [{label}](<{page}>)" in md


def test_a_second_run_reuses_the_stages_work(finished):
    cfg, first = finished
    before = json.loads(first.results.read_text())
    trained = sorted((cfg.out / "hierarchy").glob("*/sae/sae.safetensors"))
    stamps = [p.stat().st_mtime_ns for p in trained]
    evals_plots = [cfg.out / "plots" / name for name in
                   ("absorption.png", "sparse_probing.png", "concept_erasure.png")]
    plot_stamps = [p.stat().st_mtime_ns for p in evals_plots]
    again = run_experiment(cfg, progress=False)
    after = json.loads(again.results.read_text())
    assert after["interp"]["summary"] == before["interp"]["summary"]  # scores read back
    assert len(trained) == 2 and [p.stat().st_mtime_ns for p in trained] == stamps
    # absorption, probing and erasure of the same SAEs are read back, not recomputed
    assert [p.stat().st_mtime_ns for p in evals_plots] == plot_stamps
    for name in ("absorption", "probing", "erasure"):
        assert after["evals"][name] == before["evals"][name]


def test_unknown_series_label_is_one_line(tmp_path):
    path = tmp_path / "run.yaml"
    text = CONFIG.format(out=tmp_path / "out").replace("interp:\n", "interp:\n  saes: [Nope]\n")
    path.write_text(text)
    cfg = load_experiment(path)
    assert cfg.interp.saes == ["Nope"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("saes: [Nope]", "saes: Nope"))
    one_line_error(lambda: load_experiment(bad), "interp.saes", "list of series labels")
