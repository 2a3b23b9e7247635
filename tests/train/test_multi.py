"""One pass, many SAEs: each ends as it would alone; a kill -9 resumes bit for bit; two
gloo processes stream their own windows and match one process fed both ranks' batches."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from progressive_sae import TrainConfig, Trainer, load_sae
from progressive_sae.data.feed import SourceFeed
from progressive_sae.train.multi import MultiTrainer, SAEJob
from progressive_sae.train.plan import plan_jobs
from tests.helpers import one_line_error

BATCH = 256


def settings(**extra) -> TrainConfig:
    return TrainConfig(**{"num_latents": 64, "k": 4, "batch_size": BATCH,
                          "total_tokens": BATCH * 8, "init_rows": 500, "lr_warmup_steps": 2,
                          "dead_tokens": 512, "checkpoint_every": 3, **extra})


def test_one_pass_equals_each_sae_alone(synthetic, tmp_path):
    jobs = [SAEJob("topk", settings(), "data"),
            SAEJob("matryoshka", settings(granularities=[16, 32]), "data"),
            SAEJob("sampled", settings(sampled_granularities=2, seed=4), "data"),
            SAEJob("short", settings(total_tokens=BATCH * 5, k=6), "data")]
    multi = MultiTrainer(jobs, SourceFeed(synthetic, BATCH), tmp_path / "one", progress=False)
    results = multi.fit()
    assert {n: r.steps for n, r in results.items()} == {
        "topk": 8, "matryoshka": 8, "sampled": 8, "short": 5}
    for job in jobs:
        alone = Trainer(job.cfg, synthetic, run_dir=tmp_path / job.name, progress=False)
        alone.fit()
        saved = load_sae(tmp_path / "one" / job.name / "sae")
        for name, tensor in alone.sae.state_dict().items():
            assert torch.equal(saved.state_dict()[name], tensor), (job.name, name)


def test_resume_after_a_clean_stop_continues_every_sae(synthetic, tmp_path):
    jobs = [SAEJob("a", settings(), "data"), SAEJob("b", settings(k=8), "data")]
    whole = MultiTrainer(jobs, SourceFeed(synthetic, BATCH), tmp_path / "whole", progress=False)
    whole.fit()
    cut = MultiTrainer([SAEJob(j.name, TrainConfig.from_dict(
        {**j.cfg.to_dict(), "total_tokens": BATCH * 8}), "data") for j in jobs],
        SourceFeed(synthetic, BATCH), tmp_path / "cut", progress=False)
    # stop after step 4: a step with every checkpoint and the feed state
    for t in cut.trainers.values():
        t.begin()
    for _ in range(4):
        batch = cut.feed.next()
        for t in cut.trainers.values():
            t.train_step(batch["data"])
        cut.step += 1
    for t in cut.trainers.values():
        t.save_checkpoint()
    cut._save_feed_state()
    resumed = MultiTrainer(jobs, SourceFeed(synthetic, BATCH), tmp_path / "cut", resume=True,
                           progress=False)
    assert resumed.step == 4
    resumed.fit()
    for job in jobs:
        a, b = load_sae(tmp_path / "whole" / job.name / "sae"), load_sae(
            tmp_path / "cut" / job.name / "sae")
        for name, tensor in a.state_dict().items():
            assert torch.equal(b.state_dict()[name], tensor), (job.name, name)


def stream_yaml(path: Path, out: Path, steps: int) -> Path:
    config = {
        "out": str(out),
        "data": {"text": {"source": "cpython-docs", "ctx": 64}, "hook": "layers.2",
                 "buffer_tokens": 2048, "windows_per_pass": 4, "dtype": "float16"},
        "train": {"batch_size": BATCH, "total_tokens": BATCH * steps, "checkpoint_every": 2,
                  "init_rows": 300, "lr_warmup_steps": 2, "dead_tokens": 512,
                  "matmul_dtype": "float32"},
        "saes": [{"num_latents": 128, "k": 8},
                 {"num_latents": 128, "k": 8, "granularities": [32, 64]}],
    }
    path.write_text(yaml.safe_dump(config))
    return path


def psae(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "progressive_sae.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_kill_9_mid_run_then_resume_ends_bitwise_equal(tmp_path):
    steps = 40
    whole = psae("train", str(stream_yaml(tmp_path / "a.yaml", tmp_path / "whole", steps)))
    killed = psae("train", str(stream_yaml(tmp_path / "b.yaml", tmp_path / "killed", steps)),
                  start_new_session=True)
    latest = tmp_path / "killed" / "stream" / "LATEST"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and killed.poll() is None:
        if latest.is_file() and latest.read_text().strip() and int(latest.read_text()) >= 10:
            break
        time.sleep(0.05)
    assert killed.poll() is None, "the run ended before it could be killed: make it longer"
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    stopped = int(latest.read_text())
    assert 10 <= stopped < steps
    assert not (tmp_path / "killed" / "topk-N128-k8" / "sae").exists()
    resumed = psae("train", str(tmp_path / "b.yaml"), "--resume")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    assert set(json.loads(out)) == {"topk-N128-k8", "topk-N128-k8-matryoshka"}
    _, err = whole.communicate(timeout=300)
    assert whole.returncode == 0, err[-2000:]
    for name in ("topk-N128-k8", "topk-N128-k8-matryoshka"):
        a = load_sae(tmp_path / "whole" / name / "sae")
        b = load_sae(tmp_path / "killed" / name / "sae")
        for key, tensor in a.state_dict().items():
            assert torch.equal(b.state_dict()[key], tensor), (name, key)
        lines = (tmp_path / "killed" / name / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(line)["step"] for line in lines] == list(range(10, steps + 1, 10))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_stream_their_own_windows(tmp_path):
    """Each rank mixes its own windows; the gradients are summed: the result equals one
    process fed, at every step, rank 0's batch then rank 1's."""
    from progressive_sae.lm.stream import StreamConfig, load_stream_lm, open_stream

    steps = 6
    path = stream_yaml(tmp_path / "c.yaml", tmp_path / "two", steps)
    config = yaml.safe_load(path.read_text())
    config["train"]["b_dec_init"] = "zero"  # each rank's first rows differ; see the trainer
    config["saes"] = config["saes"][:1]
    path.write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           "-m", "progressive_sae.cli", "train", str(path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    states = [json.loads((tmp_path / "two" / "stream" / f"step_{steps:08d}" /
                          f"rank_{r}.json").read_text()) for r in (0, 1)]
    assert [s["facts"]["rank"] for s in states] == [0, 1]

    stream = StreamConfig.from_dict(config["data"])
    lm = load_stream_lm(stream)
    ranks = [open_stream(stream, BATCH // 2, lm=lm, rank=r, world=2) for r in (0, 1)]
    cfg = TrainConfig.from_dict({**config["train"], **config["saes"][0]})
    single = Trainer(cfg, torch.zeros(1, lm.d_model), progress=False)
    single.begin()
    for _ in range(steps):
        halves = [feed.next()["layers.2"] for feed in ranks]
        assert not torch.equal(halves[0], halves[1])
        single.train_step(torch.cat(halves))
    two = load_sae(tmp_path / "two" / "topk-N128-k8" / "sae")
    # The ranks' summed gradients differ from one process's in their last bits, and AdamW's
    # first steps (tiny second moments) magnify that in a few weights: 1.2e-5 at one of
    # 32,768 here, in a weight of ~0.01.
    for name, tensor in single.sae.state_dict().items():
        torch.testing.assert_close(two.state_dict()[name], tensor, rtol=1e-4, atol=3e-5)


def test_plans_lists_grids_and_hooks():
    shared = {"batch_size": BATCH, "total_tokens": BATCH * 4}
    grid = plan_jobs(shared, None, {"num_latents": [64, 128], "k": [4, 8]}, ["layers.2"])
    assert [j.name for j in grid] == ["topk-N64-k4", "topk-N64-k8", "topk-N128-k4",
                                      "topk-N128-k8"]
    listed = plan_jobs(shared, [{"num_latents": 64, "k": 4, "granularities": [16, 32]},
                                {"num_latents": 64, "k": 4, "hook": "layers.1", "name": "x"}],
                       None, ["layers.1", "layers.2"])
    assert [(j.name, j.hook) for j in listed] == [
        ("layers.1/topk-N64-k4-matryoshka", "layers.1"),
        ("layers.2/topk-N64-k4-matryoshka", "layers.2"), ("layers.1/x", "layers.1")]
    assert listed[0].cfg.granularities == [16, 32, 64]
    single = plan_jobs({**shared, "num_latents": 64, "k": 4}, None, None, ["layers.2"])
    assert [j.name for j in single] == [""]


def test_bad_plans_and_mismatched_jobs_are_one_line(synthetic, tmp_path):
    shared = {"batch_size": BATCH, "total_tokens": BATCH * 4}
    one_line_error(lambda: plan_jobs(shared, [{}], {"k": [4]}, ["h"]), "either")
    one_line_error(lambda: plan_jobs(shared, [{"num_latents": 64, "k": 4, "hook": "layers.7"}],
                                     None, ["layers.2"]), "layers.7", "layers.2")
    one_line_error(lambda: plan_jobs(shared, [{"num_latents": 64, "k": 99}], None, ["h"]),
                   "k=99")
    feed = SourceFeed(synthetic, BATCH)
    one_line_error(lambda: MultiTrainer([SAEJob("a", settings(), "data"),
                                         SAEJob("a", settings(), "data")], feed, tmp_path),
                   "'a'", "twice")
    one_line_error(lambda: MultiTrainer([SAEJob("a", settings(), "data"),
                                         SAEJob("b", settings(batch_size=128), "data")],
                                        feed, tmp_path), "batch_size=128")
    one_line_error(lambda: MultiTrainer([SAEJob("a", settings(keep_checkpoints=1), "data")],
                                        feed, tmp_path), "keep_checkpoints=1")
    one_line_error(lambda: MultiTrainer([SAEJob("a", settings(), "data")], feed,
                                        tmp_path / "none", resume=True), "no saved stream")


@pytest.mark.parametrize("exit_code", [2])
def test_cli_dry_text_exits_2_in_one_line(tmp_path, exit_code):
    text = tmp_path / "small.txt"
    text.write_text("\n\n".join(f"x = {i}" for i in range(30)))
    path = stream_yaml(tmp_path / "d.yaml", tmp_path / "dry", 50)
    config = yaml.safe_load(path.read_text())
    config["data"]["text"] = {"source": str(text), "ctx": 64}
    config["data"]["buffer_tokens"] = 512
    path.write_text(yaml.safe_dump(config))
    done = psae("train", str(path))
    _, err = done.communicate(timeout=300)
    assert done.returncode == exit_code
    lines = [line for line in err.splitlines() if line.strip() and "train" not in line[:12]]
    assert any("ran dry after" in line and "tokens" in line for line in lines), err[-2000:]
    assert "Traceback" not in err
