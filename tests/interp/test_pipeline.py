"""interpret(): scores per SAE × bucket × quantile with a random control, resumable; the
paper's config parses."""

import json
from pathlib import Path

import pytest

from progressive_sae.interp.claims import paper_claims
from progressive_sae.interp.config import InterpConfig, load_interp_config
from progressive_sae.interp.pipeline import interpret
from progressive_sae.interp.results import InterpResult, read_scores
from tests.helpers import one_line_error
from tests.interp.fakes import Constant
from tests.interp.helpers import token_cache, token_sae

ROOT = Path(__file__).resolve().parents[2]


def small_config(**kw):
    return InterpConfig.from_dict({
        "records": {"window": 8, "reservoir": 12, "top_windows": 4, "nonactivating_pool": 40,
                    "batch_rows": 256},
        "sampling": {"quantiles": 2, "latents_per_quantile": 2, "train_examples": 6,
                     "test_examples": 3, "example_quantiles": 3},
        **kw})


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("c") / "cache"
    _, _, embed = token_cache(path, sequences=60)
    return path, embed


def test_interpret_scores_every_sae_bucket_and_the_random_control(cache, tmp_path):
    path, embed = cache
    saes = {"matryoshka": token_sae(embed=embed, granularities=[12, 24]),
            "topk": token_sae(embed=embed, seed=1)}
    client = Constant([])
    cfg = small_config(methods=["simulation", "fuzzing"])
    result = interpret(saes, path, client, cfg, out=tmp_path / "run")
    assert set(result.saes) == {"matryoshka", "topk", "random"}
    assert result.saes["random"]["control"] and result.saes["topk"]["buckets"] == [
        "[0, 12)", "[12, 24)"]
    assert result.interpreters == ["llm:constant", "baseline"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["summary"] and summary["config"]["sampling"]["test_examples"] == 3
    for name in ("matryoshka", "topk", "random"):
        llm = read_scores(tmp_path / "run" / "scores" / f"{name}.llm_constant.jsonl")
        base = read_scores(tmp_path / "run" / "scores" / f"{name}.baseline.jsonl")
        assert {r.bucket for r in llm} == {"[0, 12)", "[12, 24)"}
        assert [(r.bucket, r.latent) for r in llm] == [(r.bucket, r.latent) for r in base]
        assert all(r.llm_calls == 1 + 6 + 6 for r in llm if r.skipped is None)
        assert all(r.llm_calls == 0 for r in base)
        assert all(r.value("simulation") is None for r in llm if r.skipped is None)
    rows = {(s["sae"], s["interpreter"], s["bucket"], s["method"]): s
            for s in summary["summary"] if s["quantile"] is None}
    assert rows[("topk", "llm:constant", "all", "fuzzing")]["mean"] == 0.5
    assert rows[("topk", "llm:constant", "all", "simulation")]["mean"] is None
    base_sim = rows[("topk", "baseline", "all", "simulation")]
    assert base_sim["scored"] > 0 and base_sim["low"] <= base_sim["mean"] <= base_sim["high"]
    for plot in result.plots.values():
        assert Path(plot).stat().st_size > 1000
    assert len(result.plots) == 6 and result.timing["records"] > 0

    assert InterpResult.load(tmp_path / "run") == result
    claims = paper_claims(result, "topk", "matryoshka")
    assert len(claims) == 2 * 2 * 4  # interpreters × methods × (1 + 1 + 2 trained SAEs)
    for c in claims:
        json.dumps(c.to_dict(), allow_nan=False)
        if c.interpreter == "llm:constant" and c.method == "simulation":
            assert c.holds is None and "undefined" in c.found
        if c.interpreter == "baseline":
            assert isinstance(c.holds, bool)
    calls = client.calls
    again = interpret(saes, path, client, cfg, out=tmp_path / "run")
    assert client.calls == calls  # every latent was already scored: no LLM call
    assert again.summary == result.summary and again.plots == result.plots
    # Other sampling settings: the old lines are not reused.
    more = small_config(methods=["simulation", "fuzzing"], seed=3)
    interpret(saes, path, client, more, out=tmp_path / "run")
    assert client.calls > calls


def test_interpret_with_the_baseline_alone(cache, tmp_path):
    path, embed = cache
    result = interpret({"topk": token_sae(embed=embed)}, path, "baseline",
                       small_config(control=False, methods=["simulation"]),
                       out=tmp_path / "run")
    assert result.interpreters == ["baseline"] and set(result.saes) == {"topk"}
    assert result.mean("topk", "simulation") is not None
    assert sorted(result.plots) == ["simulation_by_bucket", "simulation_by_quantile",
                                    "simulation_by_sae"]


def test_the_baseline_scores_its_own_larger_sample(cache, tmp_path):
    """baseline_sampling: the cheap baseline scores many latents, the LLM a few."""
    path, embed = cache
    client = Constant([])
    cfg = small_config(methods=["simulation"], control=False,
                       baseline_sampling={"quantiles": 2, "latents_per_quantile": 6,
                                          "train_examples": 6, "test_examples": 3})
    assert cfg.sampling_of("baseline").latents_per_quantile == 6
    assert cfg.sampling_of("llm:constant").latents_per_quantile == 2
    interpret({"topk": token_sae(embed=embed)}, path, client, cfg, out=tmp_path / "run")
    llm = read_scores(tmp_path / "run" / "scores" / "topk.llm_constant.jsonl")
    base = read_scores(tmp_path / "run" / "scores" / "topk.baseline.jsonl")
    assert len(llm) == 4 and len(base) == 12  # 2 quantiles × 2 and × 6 latents
    assert client.calls == 4 * (1 + 6)  # the LLM explained and simulated only its 4


def test_interpret_bad_inputs(cache, tmp_path):
    path, _ = cache
    one_line_error(lambda: interpret({"x": token_sae(d=4)}, path, "baseline",
                                     out=tmp_path / "o"), "d_in=4", "d=6")
    one_line_error(lambda: interpret({}, path, "baseline", out=tmp_path / "o"), "no SAE")
    one_line_error(lambda: InterpConfig.from_dict({"methods": ["vibes"]}), "methods")
    one_line_error(lambda: InterpConfig.from_dict({"sampling": {"quantile": 3}}),
                   "unknown key 'quantile'")


def test_the_paper_config_parses():
    cfg = load_interp_config(ROOT / "configs" / "interp-paper.yaml")
    assert cfg.llm.spec == "openai" and "70B" in cfg.llm.model
    assert cfg.llm.url == "http://localhost:8000/v1"
    assert (cfg.sampling.quantiles, cfg.sampling.latents_per_quantile) == (10, 50)
    assert (cfg.sampling.train_examples, cfg.sampling.test_examples) == (20, 10)
    assert cfg.records.window == 32
