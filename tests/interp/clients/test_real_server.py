"""`psae interp --llm-url` against a real server: `transformers serve` with SmolLM2-135M, killed
(SIGKILL) mid-run and started again. The run finishes, every cached response survives, nothing
is asked twice, a second run redoes no latent, and the scores equal an uninterrupted run's."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from progressive_sae.cli import main
from progressive_sae.sae import save_sae
from tests.interp.clients.transformers_serve import TransformersServe, missing_packages
from tests.interp.helpers import token_cache, token_sae

# Tiny sampling: two latents, one test and one non-activating window of 2 tokens each. The
# retry policy spans a restart (tens of seconds) in waits of at most a second.
CONFIG = """
records: {window: 2, reservoir: 12, top_windows: 4, nonactivating_pool: 40, batch_rows: 256}
sampling: {quantiles: 1, latents_per_quantile: 1, train_examples: 2, test_examples: 1,
           scorable_only: true}
granularities: [12]
methods: [simulation]
baseline: false
control: false
explanation_tokens: 12
llm: {retries: 120, retry_delay: 0.25, retry_max_delay: 1.0}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    missing = missing_packages()  # make test installs them (the dev extra)
    assert not missing, (f"transformers serve needs transformers[serving] "
                         f"({', '.join(missing)} missing): pip install -e '.[dev]'")
    from progressive_sae.lm.smollm2 import model_folder

    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with TransformersServe(model_folder(), log) as served:
        yield served


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("ws")
    _, _, embed = token_cache(root / "cache", sequences=40)
    save_sae(token_sae(embed=embed), root / "topk")
    (root / "tiny.yaml").write_text(CONFIG)
    return root


def interp(ws: Path, server: TransformersServe, out: str, capsys) -> dict:
    code = main(["interp", str(ws / "topk"), "--data", str(ws / "cache"), "--config",
                 str(ws / "tiny.yaml"), "--llm-url", server.url, "--llm-model", server.model,
                 "--quiet", "--out", str(ws / out)])
    _, err = capsys.readouterr()
    assert code == 0, err
    return json.loads((ws / out / "summary.json").read_text())


def entries(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.glob("*/*.json"))}


def scores(ws: Path, out: str) -> list[dict]:
    (path,) = (ws / out / "scores").glob("*.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_interp_through_transformers_serve_survives_a_server_kill(server, ws, capsys):
    reference = interp(ws, server, "reference", capsys)
    expected = scores(ws, "reference")
    assert reference["llm"]["failures"] == 0
    assert len(expected) == 2 and all(r["skipped"] is None for r in expected)
    # transformers serve answers /v1/systemone: simulation reads level probabilities, one
    # request per window.
    assert reference["interpreters"] == [f"llm:openai:{server.model}@{server.url}"]

    cache = ws / "run" / "llm_cache"
    seen: dict[str, str] = {}
    events: dict[str, object] = {}

    def kill_mid_run() -> None:
        # After the explanations and the first simulated window: the next request is the
        # one in flight (or about to be) when the server dies.
        while len(entries(cache)) < 3:
            if time.perf_counter() - began > 120:
                return
            time.sleep(0.05)
        seen.update(entries(cache))
        events["finished_before_kill"] = (ws / "run" / "summary.json").is_file()
        server.kill()
        events["killed"] = time.perf_counter()
        try:
            server.start()
        except RuntimeError as err:  # seen by the assertions below, not lost in the thread
            events["restart_error"] = str(err)

    began = time.perf_counter()
    killer = threading.Thread(target=kill_mid_run)
    killer.start()
    run = interp(ws, server, "run", capsys)
    killer.join()
    assert "restart_error" not in events, events["restart_error"]
    assert "killed" in events and not events["finished_before_kill"]
    assert run["llm"]["retries"] > 0 and run["llm"]["failures"] == 0
    after = entries(cache)
    assert {k: after.get(k) for k in seen} == seen  # no cached response lost or rewritten
    assert run["llm"]["calls"] == len(after) == len(entries(ws / "reference" / "llm_cache"))
    assert scores(ws, "run") == expected

    again = interp(ws, server, "run", capsys)  # resumed: every latent is finished
    assert again["llm"] == {"calls": 0, "cache_hits": 0, "failures": 0, "retries": 0}
    assert scores(ws, "run") == expected
