"""`psae run` with extract.stream: true — the grid trained in one pass over the live offline
LM (no training cache), bit for bit as a stream of one SAE, and resumed after kill -9."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from progressive_sae.experiment import load_experiment, run_experiment
from progressive_sae.experiment.runs import planned_runs
from progressive_sae.experiment.streamed import stream_config, train_streamed
from progressive_sae.lm.stream import StreamConfig, load_stream_lm, open_stream
from progressive_sae.sae import load_sae
from progressive_sae.train.config import TrainConfig
from progressive_sae.train.multi import MultiTrainer, SAEJob
from tests.helpers import one_line_error

CONFIG = """
lm: {model: offline-default}
text: {source: cpython-docs, ctx: 64}
extract: {hook: layers.2, buffer_tokens: 2048, windows_per_pass: 8}
train: {batch_size: 512, total_tokens: 8192, log_every: 4, checkpoint_every: 2}
grid: {num_latents: 256, k: 8, k_grid: [], baseline_sizes: [256], sampled_granularities: 0,
       permute_by: [mean_sq], distill_sizes: [32]}
eval: {heldout_tokens: 2000, rank_rows: 1000, rsa_rows: 100, lm_windows: 0,
       granularities: [64, 256], similarity_latents: 64}
"""
STREAM = ["extract.stream=true"]
RUNS = ["topk-N256-k8", "matryoshka-N256-k8"]


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("stream") / "run.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture(scope="module")
def streamed(config):
    cfg = load_experiment(config, out=config.parent / "out", overrides=STREAM)
    return cfg, run_experiment(cfg, progress=False)


@pytest.fixture(scope="module")
def lm(streamed):
    return load_stream_lm(stream_config(streamed[0]))


def assert_same(a, b):
    state = b.state_dict()
    for name, tensor in a.state_dict().items():
        assert torch.equal(tensor, state[name]), name


def test_a_streamed_run_writes_no_training_cache_and_matches_a_stream_of_one_sae(streamed, lm,
                                                                                  tmp_path):
    cfg, result = streamed
    assert result.report_md.is_file() and "| claim |" in result.report_md.read_text()
    assert not (cfg.out / "acts" / "train").exists()
    assert (cfg.out / "acts" / "heldout").is_dir()
    assert (cfg.out / "runs" / "stream" / "LATEST").read_text() == "16"  # 8192 / 512 steps
    # distillation read the live LM's rows (no cache to read them from)
    assert load_sae(cfg.out / "saes" / "topk-N256-k8+distilled-32").num_latents == 32
    # the TopK SAE alone, from a stream built here from the YAML's values: one pass for the
    # whole grid changes nothing
    stream = StreamConfig(text={"source": "cpython-docs", "ctx": 64}, hook="layers.2",
                          buffer_tokens=2048, windows_per_pass=8, dtype="float16", seed=0)
    feed = open_stream(stream, 512, lm=lm)
    job = SAEJob("topk", TrainConfig(num_latents=256, k=8, batch_size=512, total_tokens=8192,
                                     log_every=4, checkpoint_every=2), feed.hooks[0])
    MultiTrainer([job], feed, tmp_path / "alone", progress=False).fit()
    assert_same(load_sae(tmp_path / "alone" / "topk" / "sae"),
                load_sae(cfg.out / "runs" / "topk-N256-k8" / "sae"))


def test_a_streamed_run_killed_mid_pass_resumes_to_the_same_saes(streamed, config, capsys):
    cfg, _ = streamed
    out = config.parent / "killed"
    overrides = [*STREAM, "grid.distill_sizes=[]"]  # distilling does not touch training
    args = [sys.executable, "-m", "progressive_sae.cli", "run", str(config), "--out", str(out),
            "--quiet", *[a for o in overrides for a in ("--set", o)]]
    latest = out / "runs" / "stream" / "LATEST"
    # the finished held-out cache is reused as a rerun would: only training is under test
    shutil.copytree(cfg.out / "acts" / "heldout", out / "acts" / "heldout")
    proc = subprocess.Popen(args, cwd=config.parent, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 120
    while not latest.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert latest.is_file(), err.decode()[-2000:]
    assert not all((out / "runs" / name / "sae").is_dir() for name in RUNS), \
        "the pass ended before the kill: nothing was resumed"
    resumed = load_experiment(config, out=out, overrides=overrides)
    run_experiment(resumed, progress=False)
    assert f"[stream] resuming {len(RUNS)} SAEs" in capsys.readouterr().out
    for name in RUNS:
        assert_same(load_sae(out / "runs" / name / "sae"),
                    load_sae(cfg.out / "runs" / name / "sae"))


def test_a_grown_grid_trains_only_its_new_saes_in_a_fresh_pass(streamed, config, lm):
    cfg, _ = streamed
    out = config.parent / "grown"
    shutil.copytree(cfg.out / "runs", out / "runs")
    partial = out / "runs" / "topk-N256-k4"  # killed before its first checkpoint
    partial.mkdir()
    (partial / "metrics.jsonl").write_text('{"step": 1}\n')
    grown = load_experiment(config, out=out, overrides=[*STREAM, "grid.k_grid=[4]"])
    finished = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/sae/*.safetensors")}
    saes = train_streamed(planned_runs(grown), grown, lm, stream_config(grown), progress=False)
    assert {name: fresh for name, (_, fresh) in saes.items()} == {
        "topk-N256-k8": False, "matryoshka-N256-k8": False,
        "topk-N256-k4": True, "matryoshka-N256-k4": True}
    assert {p: p.stat().st_mtime_ns for p in finished} == finished
    assert saes["topk-N256-k4"][0].cfg.k == 4
    assert (out / "runs" / "stream" / "LATEST").read_text() == "16"


@pytest.mark.parametrize("extract, words", [
    ("{hook: layers.2, stream: yes please}", ["extract.stream='yes please'", "true"]),
    ("{hook: layers.2, stream: true, buffer_tokens: 1000}",
     ["extract.buffer_tokens=1,000", "1,024"]),
    ("{hook: layers.2, stream: true, windows_per_pass: 0}", ["extract.windows_per_pass=0"]),
])
def test_bad_stream_settings_get_one_clear_line(tmp_path, extract, words):
    path = tmp_path / "bad.yaml"
    path.write_text(CONFIG.replace(
        "{hook: layers.2, buffer_tokens: 2048, windows_per_pass: 8}", extract))
    one_line_error(lambda: load_experiment(path, out=tmp_path / "out"), *words)


def test_streaming_needs_a_live_lm(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("out: o\ndata: a.npy\neval_data: b.npy\nextract: {stream: true}\n")
    one_line_error(lambda: load_experiment(path), "extract.stream", "'text'")


def test_the_papers_gpu_grid_streams_and_the_small_configs_keep_their_cache():
    configs = Path(__file__).resolve().parents[2] / "configs"
    gemma = load_experiment(configs / "gemma-2-2b-paper-grid.yaml")
    stream = stream_config(gemma)
    assert gemma.streams and stream.buffer_tokens == 2**19 and stream.dtype == "bfloat16"
    assert stream.text_config.part == "train" and stream.seed == gemma.train.seed
    for name in ("demo.yaml", "smollm2.yaml"):
        assert not load_experiment(configs / name).streams
