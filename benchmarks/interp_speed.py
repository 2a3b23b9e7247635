"""Interpretability speed on this CPU: latent records, and latents explained and scored per
minute with the offline LLM (SmolLM2-135M) and with the look-up-table baseline.

    python benchmarks/interp_speed.py [--tokens 60000] [--latents-per-quantile 1]
                                      [--train 8] [--test 4]

Extracts activations of the shipped offline LM (block 2, CPython's docs), trains a small
Matryoshka SAE on them (N=2048, k=32, the demo's shape), then times: collecting latent
records (tokens/s); `interpret` with the offline LLM on a few latents of the inner (< 256)
and outer buckets, at the demo's example counts (latents per minute, LLM calls per
latent); the same run again into a fresh folder with the same response cache (its hit
rate must be 100%: no model call); and the baseline. Work files go to
benchmarks/.data/interp/. Prints a table and writes benchmarks/results/interp_speed.json.
Timings are noisy on a shared machine: run it on an otherwise idle one.

    python benchmarks/interp_speed.py --server [--server-test 1]

instead times the same model behind a real OpenAI-compatible server, `transformers serve`
(transformers[serving]) on 127.0.0.1, with a smaller example count (the HTTP paths cost far
more per latent): which probability fields the server honours (chat `logprobs`/`top_logprobs`,
completions `echo` + `logprobs`, /v1/systemone), then latents per minute through /v1/systemone
(the client's TokenScorer path), through JSON chat answers (the fallback), and in-process on
the same setup; it updates only the `server` entry of the results file.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import torch

from progressive_sae.data.cache import CachedActivations
from progressive_sae.interp.clients import make_client
from progressive_sae.interp.collect import collect_records
from progressive_sae.interp.config import InterpConfig
from progressive_sae.interp.pipeline import interpret
from progressive_sae.lm import load_lm
from progressive_sae.lm.extract import extract
from progressive_sae.lm.text import TextConfig
from progressive_sae.sae import load_sae, save_sae
from progressive_sae.train import train

HERE = Path(__file__).resolve().parent
WORK = HERE / ".data" / "interp"
N, K, D, GRANULARITIES = 2048, 32, 256, [256, 1024, 2048]


def cache_and_sae(tokens: int) -> tuple[Path, Path]:
    cache, sae_dir = WORK / f"cache_{tokens}", WORK / f"sae_{tokens}"
    if not (cache / "manifest.json").is_file():
        lm = load_lm("offline-default")
        extract(lm, TextConfig(source="cpython-docs", ctx=256), "layers.2", cache, tokens,
                dtype="float32", progress=False)
    if not (sae_dir / "cfg.json").is_file():
        source = CachedActivations(cache, shuffle_buffer=8192)
        sae, _ = train(source, num_latents=N, k=K, granularities=GRANULARITIES,
                       batch_size=1024, total_tokens=min(tokens, len(source)) * 3,
                       log_every=1000, progress=False)
        save_sae(sae, sae_dir, overwrite=True)
    return cache, sae_dir


def config(args: argparse.Namespace, test: int | None = None) -> InterpConfig:
    return InterpConfig.from_dict({
        "sampling": {"quantiles": 2, "latents_per_quantile": args.latents_per_quantile,
                     "train_examples": args.train, "test_examples": test or args.test},
        "granularities": [GRANULARITIES[0]], "baseline": False, "control": False})


def run_interp(sae, cache: Path, client, cfg: InterpConfig, out: Path) -> tuple[dict, float]:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    result = interpret({"matryoshka": sae}, cache, client, cfg, out=out)
    return result.to_dict(), time.perf_counter() - start


def scored_latents(out: Path) -> list[dict]:
    rows = []
    for file in sorted((out / "scores").glob("*.jsonl")):
        rows += [json.loads(line) for line in file.read_text().splitlines()]
    return [r for r in rows if r["skipped"] is None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=60_000)
    parser.add_argument("--latents-per-quantile", type=int, default=1)
    parser.add_argument("--train", type=int, default=8, help="train windows per latent")
    parser.add_argument("--test", type=int, default=4,
                        help="test (and as many non-activating) windows per latent")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's); on a machine shared with "
                             "other jobs 1 was 5x faster than 2 here")
    parser.add_argument("--server", action="store_true",
                        help="time the model behind transformers serve instead (see above)")
    parser.add_argument("--server-test", type=int, default=1,
                        help="test (and non-activating) windows per latent of the server runs")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)  # the benchmark's own process; the library never seeds globally
    cache, sae_dir = cache_and_sae(args.tokens)
    sae = load_sae(sae_dir)
    source = CachedActivations(cache, shuffle_buffer=0)
    if args.server:
        return server_main(args, sae, cache)

    start = time.perf_counter()
    cfg = config(args)
    collect_records(sae, source, cfg.records)
    records_s = time.perf_counter() - start

    start = time.perf_counter()
    llm_cache = WORK / "llm_cache"
    shutil.rmtree(llm_cache, ignore_errors=True)
    client = make_client("offline-default", cache_dir=llm_cache)
    load_s = time.perf_counter() - start
    first, first_s = run_interp(sae, cache, client, cfg, WORK / "run_llm")
    llm_rows = scored_latents(WORK / "run_llm")
    stats_first = dict(client.stats.to_dict())
    second, second_s = run_interp(sae, cache, client, cfg, WORK / "run_llm_again")
    stats_second = {k: v - stats_first[k] for k, v in client.stats.to_dict().items()}
    requests = stats_second["calls"] + stats_second["cache_hits"]

    base, base_s = run_interp(sae, cache, "baseline", cfg, WORK / "run_baseline")
    base_rows = scored_latents(WORK / "run_baseline")

    records_time = first["timing"]["records"]
    llm_score_s = first["timing"]["scoring " + first["interpreters"][0]]
    result = {
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "load_average_at_end": os.getloadavg()},
        "setup": {"tokens": len(source), "num_latents": N, "k": K, "d_in": D,
                  "granularities": GRANULARITIES, "window": cfg.records.window,
                  "train_examples": cfg.sampling.train_examples,
                  "test_examples": cfg.sampling.test_examples,
                  "methods": cfg.methods, "llm": first["interpreters"][0]},
        "records_tokens_per_s": len(source) / records_s,
        "llm_load_s": load_s,
        "llm_latents_scored": len(llm_rows),
        "llm_seconds_per_latent": llm_score_s / max(1, len(llm_rows)),
        "llm_latents_per_minute": 60 * len(llm_rows) / llm_score_s if llm_score_s else None,
        "llm_calls_per_latent": (sum(r["llm_calls"] for r in llm_rows) / len(llm_rows)
                                 if llm_rows else None),
        "llm_run_s": first_s, "llm_run_records_s": records_time,
        "client_stats_first_run": stats_first,
        "second_run": {"seconds": second_s, "client_stats": stats_second,
                       "cache_hit_rate": (stats_second["cache_hits"] / requests
                                          if requests else None)},
        "baseline_latents_scored": len(base_rows),
        "baseline_seconds_per_latent": (base["timing"]["scoring baseline"]
                                        / max(1, len(base_rows))),
        "baseline_run_s": base_s,
        "summary_llm": [s for s in first["summary"] if s["quantile"] is None],
        "summary_baseline": [s for s in base["summary"] if s["quantile"] is None],
    }
    out = HERE / "results" / "interp_speed.json"
    if out.is_file():  # `--server` writes its own entry; keep it
        server = json.loads(out.read_text()).get("server")
        if server is not None:
            result["server"] = server
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"records: {result['records_tokens_per_s']:,.0f} tokens/s over {len(source):,} tokens")
    print(f"offline LLM load: {load_s:.1f} s; {len(llm_rows)} latents scored in "
          f"{llm_score_s:.1f} s = {result['llm_seconds_per_latent']:.2f} s/latent, "
          f"{result['llm_latents_per_minute']:.1f} latents/min, "
          f"{result['llm_calls_per_latent']:.1f} LLM calls/latent")
    print(f"second run: {second_s:.1f} s, cache hit rate "
          f"{result['second_run']['cache_hit_rate']:.0%} ({stats_second})")
    print(f"baseline: {result['baseline_seconds_per_latent']:.3f} s/latent")
    for s in result["summary_llm"] + result["summary_baseline"]:
        mean = "—" if s["mean"] is None else f"{s['mean']:.3f}"
        print(f"  {s['interpreter']:<28} {s['bucket']:<14} {s['method']:<10} {mean} "
              f"(n={s['scored']}, undefined {s['undefined']}, skipped {s['skipped']})")
    print(f"wrote {out}")


class Served:
    """`transformers serve MODEL` on 127.0.0.1 in its own process group (killed whole)."""

    def __init__(self, model: Path, threads: int) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.model = str(model)
        script = Path(sys.executable).with_name("transformers")
        command = [str(script)] if script.is_file() else [
            sys.executable, "-m", "transformers.cli.transformers"]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(threads)}
        start = time.perf_counter()
        self.process = subprocess.Popen(
            [*command, "serve", self.model, "--host", "127.0.0.1", "--port", str(self.port),
             "--device", "cpu", "--log-level", "warning"], env=env, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2):
                    break
            except OSError:
                if self.process.poll() is not None or time.perf_counter() - start > 300:
                    self.close()
                    raise SystemExit("transformers serve did not start") from None
                time.sleep(0.25)
        self.start_s = time.perf_counter() - start

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def post(self, path: str, body: dict) -> tuple[int, dict]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        try:
            connection.request("POST", "/v1" + path, json.dumps(body),
                               {"Content-Type": "application/json"})
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, {"body": raw.decode(errors="replace")[:200]}

    def close(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()


def probe_fields(served: Served) -> dict:
    """What the server returns for each way of asking for probabilities."""
    chat = {"model": served.model, "max_tokens": 1, "temperature": 0, "logprobs": True,
            "top_logprobs": 5, "messages": [{"role": "user", "content": "Say 7."}]}
    status, data = served.post("/chat/completions", chat)
    choice = (data.get("choices") or [{}])[0]
    completion = {"model": served.model, "prompt": "1, 2, 3,", "max_tokens": 1,
                  "temperature": 0, "echo": True, "logprobs": 5}
    status2, data2 = served.post("/completions", completion)
    choice2 = (data2.get("choices") or [{}])[0]
    systemone = {"model": served.model, "state": "7",
                 "questions": {"q": {"type": "score", "criteria": ["0", "1"]}}}
    status3, data3 = served.post("/systemone", systemone)
    return {
        "chat_logprobs": {"status": status, "logprobs_returned": choice.get("logprobs")
                          is not None},
        "completions_echo_logprobs": {
            "status": status2, "logprobs_returned": choice2.get("logprobs") is not None,
            "prompt_echoed": str(choice2.get("text", "")).startswith("1, 2, 3,")},
        "systemone": {"status": status3, "probabilities_returned":
                      "probabilities" in (data3.get("answers") or {}).get("q", {})},
    }


def timed_run(name: str, sae, cache: Path, client, cfg: InterpConfig) -> dict:
    out = WORK / f"run_{name}"
    first, seconds = run_interp(sae, cache, client, cfg, out)
    rows = scored_latents(out)
    scoring = first["timing"]["scoring " + first["interpreters"][0]]
    failures = sum(1 for r in rows
                   if r["failures"] or any(m["failures"] for m in r["scores"].values()))
    return {"interpreter": first["interpreters"][0], "latents_scored": len(rows),
            "seconds_per_latent": scoring / max(1, len(rows)),
            "latents_per_minute": 60 * len(rows) / scoring if scoring else None,
            "llm_calls_per_latent": (sum(r["llm_calls"] for r in rows) / len(rows)
                                     if rows else None),
            "client_stats": dict(client.stats.to_dict()), "run_s": seconds,
            "latents_with_failed_answers": failures,
            "summary": [s for s in first["summary"] if s["quantile"] is None]}


def server_main(args: argparse.Namespace, sae, cache: Path) -> None:
    from progressive_sae.lm.smollm2 import model_folder

    threads = args.threads or 1
    torch.set_num_threads(threads)
    cfg = config(args, test=args.server_test)
    served = Served(model_folder(), threads)
    try:
        fields = probe_fields(served)
        runs = {}
        for name, probabilities in (("server_systemone", True), ("server_json", False)):
            llm_cache = WORK / f"llm_cache_{name}"
            shutil.rmtree(llm_cache, ignore_errors=True)
            client = make_client("openai", url=served.url, model=served.model,
                                 cache_dir=llm_cache, probabilities=probabilities)
            runs[name] = timed_run(name, sae, cache, client, cfg)
    finally:
        served.close()
    client = make_client("offline-default", cache_dir=None)
    runs["in_process"] = timed_run("in_process_small", sae, cache, client, cfg)
    path = HERE / "results" / "interp_speed.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    results["server"] = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "threads_server_and_in_process": threads,
                    "load_average_at_end": os.getloadavg()},
        "server": "transformers serve (transformers "
                  f"{importlib_version('transformers')}), SmolLM2-135M-Instruct, CPU",
        "server_start_s": served.start_s,
        "setup": {"window": cfg.records.window, "train_examples": cfg.sampling.train_examples,
                  "test_examples": cfg.sampling.test_examples, "methods": cfg.methods},
        "probability_fields": fields, **runs}
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"server: started in {served.start_s:.1f} s; probability fields: {fields}")
    for name, run in runs.items():
        print(f"{name:<18} {run['latents_scored']} latents, {run['seconds_per_latent']:.1f} "
              f"s/latent = {run['latents_per_minute']:.2f} latents/min, "
              f"{run['llm_calls_per_latent']:.1f} calls/latent, "
              f"{run['latents_with_failed_answers']} latents with failed answers")
        for s in run["summary"]:
            mean = "—" if s["mean"] is None else f"{s['mean']:.3f}"
            print(f"    {s['bucket']:<14} {s['method']:<10} {mean} (n={s['scored']})")
    print(f"wrote the server entry of {path}")


def importlib_version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    main()
