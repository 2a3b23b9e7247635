"""`psae run` end to end on tiny synthetic activations: outputs, reuse, resume, bad configs."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from progressive_sae.experiment import load_experiment, run_experiment
from progressive_sae.experiment.config import EvalConfig, GridConfig
from progressive_sae.experiment.runs import planned_runs
from progressive_sae.sae import load_sae
from tests.helpers import one_line_error

CONFIG = """
out: {out}
data: {{synthetic: {{d_in: 32, num_features: 128, mean_active: 6, num_rows: 50000, seed: 1}}}}
eval_data: {{synthetic: {{d_in: 32, num_features: 128, mean_active: 6, num_rows: 3000, seed: 1}}}}
train: {{batch_size: 512, total_tokens: 6144, log_every: 4, checkpoint_every: 4}}
grid: {{num_latents: 128, k: 8, k_grid: [4]}}
eval: {{heldout_tokens: 3000, rank_rows: 1000, rsa_rows: 200, lm_windows: 0,
        similarity_latents: 128}}
"""


def write_config(tmp_path: Path, text: str = CONFIG) -> Path:
    path = tmp_path / "experiment.yaml"
    path.write_text(text.format(out=tmp_path / "out"))
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("experiment")
    cfg = load_experiment(write_config(tmp))
    return cfg, run_experiment(cfg, progress=False)


def test_a_run_writes_results_plots_and_a_report_with_the_claims(finished):
    cfg, result = finished
    names = {p.name for p in result.plots}
    for plot in ("frontier_fvu.png", "frontier_rsa.png", "sparsity_frontier_fvu.png",
                 "power_law.png", "scaling_law.png", "decoder_similarity_matryoshka.png",
                 "feature_splitting.png", "activation_mass.png"):
        assert plot in names and (cfg.out / "plots" / plot).stat().st_size > 0
    results = json.loads(result.results.read_text())
    series = {p["series"] for p in results["points"]}
    assert {"TopK permuted by E[z²]", "TopK permuted by frequency", "Matryoshka",
            "Sampled Matryoshka", "TopK baselines (trained at size G)",
            "TopK distilled to G (no fine-tune)"} <= series
    distilled = sorted(p["granularity"] for p in results["points"]
                       if p["series"] == "TopK distilled to G (no fine-tune)")
    assert distilled == [8, 16, 32]  # N/16, N/8, N/4: each a real SAE of that size
    assert load_sae(cfg.out / "saes" / "topk-N128-k8+distilled-16").num_latents == 16
    assert set(results["power_law"]) >= {"topk-N32-k2", "topk-N64-k4", "topk-N128-k8"}
    md = result.report_md.read_text()
    assert "| claim | paper | this run | verdict |" in md
    assert "Matryoshka has lower FVU than permuted TopK at every G < N" in md
    assert "Distilling a large SAE into G latents beats truncating it" in md
    assert "(plots/frontier_fvu.png)" in md
    assert "<table>" in result.report_html.read_text()


def test_a_second_run_reuses_every_sae_and_every_scored_point(finished, capsys):
    cfg, _ = finished
    weights = {p: p.stat().st_mtime_ns for p in (cfg.out / "runs").glob("*/sae/*.safetensors")}
    scored = (cfg.out / "evaluations.jsonl").read_text()
    run_experiment(cfg, progress=False)
    assert "training" not in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in weights} == weights
    assert (cfg.out / "evaluations.jsonl").read_text() == scored


def test_an_interrupted_run_resumes_from_its_checkpoint(finished, capsys):
    cfg, _ = finished
    run = cfg.out / "runs" / "topk-N64-k4"
    before = load_sae(run / "sae")
    shutil.rmtree(run / "sae")  # as if killed after its last checkpoint, before the end
    run_experiment(cfg, progress=False)
    assert "[topk-N64-k4] resuming" in capsys.readouterr().out
    after = load_sae(run / "sae")
    for name, tensor in before.state_dict().items():
        assert torch.equal(tensor, after.state_dict()[name])


def test_the_grid_holds_the_papers_runs():
    cfg = load_experiment_from_grid(GridConfig(num_latents=1024, k=16, k_grid=[8, 32]))
    names = [r.name for r in planned_runs(cfg)]
    assert names == ["topk-N256-k4", "topk-N512-k8", "topk-N1024-k16", "matryoshka-N1024-k16",
                     "sampled-N1024-k16", "topk-N1024-k8", "matryoshka-N1024-k8",
                     "topk-N1024-k32", "matryoshka-N1024-k32"]
    assert EvalConfig().resolved_granularities(cfg.grid) == [16, 32, 64, 128, 256, 512, 1024]


def load_experiment_from_grid(grid):
    from progressive_sae.experiment.config import ExperimentConfig
    from progressive_sae.train import TrainConfig

    return ExperimentConfig(out=Path("unused"), train=TrainConfig(), grid=grid, eval=EvalConfig())


@pytest.mark.parametrize("edit, words", [
    (lambda t: t + "colour: blue\n", ["unknown key 'colour'"]),
    (lambda t: t.replace("log_every: 4", "k: 4"), ["train.k", "grid"]),
    (lambda t: t.replace("grid: {", "grid: {permute_by: [size], "), ["permute_by", "'size'"]),
    (lambda t: t.replace("eval: {", "eval: {mode: sideways, "), ["eval.mode", "sideways"]),
    (lambda t: t.replace("grid: {", "grid: {distill_sizes: [128], "), ["distill_sizes", "128"]),
    (lambda t: t.replace("rank_rows: 1000", "rank_rows: 5000"), ["rank_rows=5000"]),
    (lambda t: "\n".join(line for line in t.splitlines() if not line.startswith("eval_data")),
     ["eval_data"]),
])
def test_bad_experiment_configs_get_one_clear_line(tmp_path, edit, words):
    path = tmp_path / "bad.yaml"
    path.write_text(edit(CONFIG.format(out=tmp_path / "out")))
    one_line_error(lambda: load_experiment(path), *words)
    assert not (tmp_path / "out").exists()
