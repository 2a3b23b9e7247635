"""The `psae run` configs shipped in configs/ load and every stage's settings validate, without
running them (a bad key in `evals:` would otherwise surface only after training)."""

import json
from pathlib import Path

import pytest

from progressive_sae.evals.erasure import ErasureConfig
from progressive_sae.evals.probing import ProbingConfig
from progressive_sae.experiment import load_experiment
from progressive_sae.experiment.evals_stage import absorption_settings
from progressive_sae.experiment.hierarchy_stage import HierarchySettings
from progressive_sae.experiment.runs import planned_runs
from progressive_sae.settings import from_mapping
from tests.helpers import one_line_error

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ["demo.yaml", "smollm2.yaml", "gemma-2-2b-paper-grid.yaml"]


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_shipped_experiment_configs_load_and_validate(name):
    cfg = load_experiment(ROOT / "configs" / name)
    assert [r.family for r in planned_runs(cfg)][:5] == [
        "TopK", "TopK", "TopK", "Matryoshka", "Sampled Matryoshka"]
    assert cfg.eval.rank_rows < cfg.eval.heldout_tokens
    section = cfg.evals
    if section is None:
        return
    if section.absorption is not None:
        absorption_settings(section.absorption)
    probing = from_mapping(ProbingConfig, section.probing or {}, "evals.probing")
    from_mapping(ErasureConfig, {"ctx": probing.ctx, **(section.erasure or {})}, "evals.erasure")
    if section.hierarchy is not None:
        from_mapping(HierarchySettings, section.hierarchy, "evals.hierarchy")


def test_smollm2_config_reads_a_layer_the_spelling_benchmark_found_spelling():
    cfg = load_experiment(ROOT / "configs" / "smollm2.yaml")
    assert cfg.lm["model"] == "smollm2-135m" and cfg.text["source"] == "cpython-docs"
    task, _, _, prompts = absorption_settings(cfg.evals.absorption)
    assert task == "first-letter" and prompts is not None
    spelling = json.loads((ROOT / "benchmarks" / "results" / "smollm2_spelling.json").read_text())
    layer = spelling["layers"][cfg.extract["hook"]]
    assert layer["letters_f1_ge_0.6"] >= 20


@pytest.mark.parametrize("settings, words", [
    ({"task": "first-letter", "prompts": {"words_per_leter": 3}}, ["words_per_leter"]),
    ({"task": "word-start", "prompts": {"icl_examples": 1}}, ["prompts", "first-letter"]),
    ({"task": "second-letter"}, ["second-letter", "first-letter"]),
    ({"task": "first-letter", "prompts": {"words_per_letter": 0}}, ["words_per_letter=0"]),
])
def test_bad_absorption_settings_are_one_clear_line(settings, words):
    one_line_error(lambda: absorption_settings(settings), *words)
