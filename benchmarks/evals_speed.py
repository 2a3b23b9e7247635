"""Seconds per SAE of the seed-002 evaluations at the demo's size, and their memory.

    python benchmarks/evals_speed.py [--saes 9] [--granularities 512,1024]

Demo size: the shipped 4-layer LM, hook layers.2 (d=256), SAEs with N=2048, k=32 (random
TopK weights: a trained TopK or Matryoshka SAE encodes at the same cost), views at the full
size and at each G in both modes. Measured:

* sparse probing and concept erasure (SCR + TPP): the shared part (building the offline
  tasks, one LM pass over their texts, the residual probes) and the cost per SAE, each alone
  and together (`evaluate_probing_and_erasure`, what `psae run` calls), with 1 and with
  `--saes` SAEs (per SAE = the difference / the extra SAEs);
* the absorption evaluations: LM first-letter and word-start tasks at the same size, and
  the ground-truth hierarchy (toy_tree preset, d=64) with N=128, k=4 SAEs;
* pooling cost and peak RSS at three (tokens, latents) sizes in fresh processes: time grows
  with tokens and with latents, while memory stays far below a tokens × latents matrix.

Prints a table and writes benchmarks/results/evals_speed.json. Timings on a shared machine
are noisy: the load average at the start and end is recorded with them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
N, D, K = 2048, 256, 32


def random_saes(count: int, n: int = N, seed: int = 0, d: int = D, k: int = K) -> dict:
    from progressive_sae.sae import SAEConfig, TopKSAE

    saes = {}
    for i in range(count):
        sae = TopKSAE(SAEConfig(d_in=d, num_latents=n, k=k))
        sae.reset_parameters(torch.Generator().manual_seed(seed + i))
        saes[f"sae{i}"] = sae
    return saes


CPU: dict[str, float] = {}
"""CPU seconds (all threads of this process) of each timed phase, by label."""


def timed(fn, *args, label: str = "", **kwargs) -> tuple[object, float]:
    """(result, wall seconds); the CPU seconds go to CPU[label]. On a busy shared machine the
    wall time overstates an idle run; the CPU time does not (an idle 2-core run takes
    between CPU/2 and CPU seconds of wall time)."""
    cpu, start = time.process_time(), time.perf_counter()
    out = fn(*args, **kwargs)
    if label:
        CPU[label] = time.process_time() - cpu
    return out, time.perf_counter() - start


def probing_and_erasure(lm, count: int, gs: list[int]) -> dict:
    from progressive_sae.evals.erasure import ErasureConfig, erase_saes
    from progressive_sae.evals.erasure.evaluate import erasure_tasks, erasure_texts
    from progressive_sae.evals.erasure.suite import evaluate_probing_and_erasure
    from progressive_sae.evals.probing import ProbingConfig, probe_saes
    from progressive_sae.evals.probing.evaluate import resolve_tasks, task_texts
    from progressive_sae.evals.probing.pooling import collect_activations, unique_texts

    probing, erasure = ProbingConfig(), ErasureConfig()
    (tasks, (spurious, classes)), tasks_s = timed(
        lambda: (resolve_tasks(None, probing), erasure_tasks(erasure)), label="tasks")
    texts = unique_texts(task_texts(tasks), erasure_texts(spurious, classes))
    acts, lm_s = timed(collect_activations, lm, "layers.2", texts, probing.ctx,
                       probing.lm_batch_size, label="lm")
    one, many = random_saes(1), random_saes(count)
    _, probe_1 = timed(probe_saes, one, acts, tasks, gs, probing, label="probe_1")
    _, probe_n = timed(probe_saes, many, acts, tasks, gs, probing, label="probe_n")
    _, erase_1 = timed(erase_saes, one, acts, spurious, classes, gs, erasure, label="erase_1")
    _, erase_n = timed(erase_saes, many, acts, spurious, classes, gs, erasure, label="erase_n")
    _, both_1 = timed(evaluate_probing_and_erasure, one, lm, "layers.2", gs, probing, erasure,
                      None, acts, label="both_1")
    (p_result, _), both_n = timed(evaluate_probing_and_erasure, many, lm, "layers.2", gs,
                                  probing, erasure, None, acts, label="both_n")
    extra = max(1, count - 1)
    per = {"probing": (probe_n - probe_1) / extra, "erasure": (erase_n - erase_1) / extra,
           "probing_and_erasure": (both_n - both_1) / extra}
    cpu_per = {"probing": (CPU["probe_n"] - CPU["probe_1"]) / extra,
               "erasure": (CPU["erase_n"] - CPU["erase_1"]) / extra,
               "probing_and_erasure": (CPU["both_n"] - CPU["both_1"]) / extra}
    cpu_fixed = CPU["tasks"] + CPU["lm"] + CPU["both_1"] - cpu_per["probing_and_erasure"]
    return {
        "texts": len(texts), "tokens": int(acts.tokens.shape[0]), "ctx": probing.ctx,
        "tasks": [t.name for t in tasks],
        "gated_tasks": [t.name for t in p_result.tasks if t.gated],
        "views_per_sae": 1 + 2 * len([g for g in gs if g < N]),
        "build_tasks_seconds": tasks_s, "lm_pass_seconds": lm_s,
        "seconds_per_sae": per,
        "fixed_seconds": {"probing": probe_1 - per["probing"],
                          "erasure": erase_1 - per["erasure"],
                          "probing_and_erasure": both_1 - per["probing_and_erasure"]},
        f"probing_and_erasure_{count}_saes_total_seconds": tasks_s + lm_s + both_n,
        "saes_measured": count,
        "cpu_seconds": {"build_tasks": CPU["tasks"], "lm_pass": CPU["lm"], "per_sae": cpu_per,
                        "shared_probing_and_erasure": cpu_fixed,
                        "projected_9_saes": cpu_fixed + 9 * cpu_per["probing_and_erasure"]},
    }


def absorption(lm, count: int, gs: list[int]) -> dict:
    """The absorption evaluations (evals/absorption, evals/hierarchy), timed the same way."""
    out: dict = {}
    try:
        from progressive_sae.evals.absorption.lm_tasks import evaluate_lm_absorption
        from progressive_sae.evals.hierarchy.config import synthetic_hierarchy
        from progressive_sae.evals.hierarchy.evaluate import evaluate_hierarchy
    except ImportError as e:
        return {"skipped": f"absorption evaluations not importable ({e})"}
    runs = {f"lm_{task}": (lambda saes, task=task: evaluate_lm_absorption(
        saes, lm, "layers.2", task, gs)) for task in ("first-letter", "word-start")}
    source = synthetic_hierarchy("toy_tree")
    small = {"N": 128, "k": 4, "d": source.d_in, "granularities": [32, 64]}
    runs["hierarchy_toy_tree"] = lambda saes: evaluate_hierarchy(saes, source, [32, 64])
    for name, run in runs.items():
        hier = name.startswith("hierarchy")
        make = (lambda c: random_saes(c, 128, d=source.d_in, k=4)) if hier else (
            lambda c: random_saes(c))
        try:
            _, t1 = timed(run, make(1), label=f"{name}_1")
            _, tn = timed(run, make(count), label=f"{name}_n")
        except Exception as e:  # report, do not fail the benchmark
            out[name] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
            continue
        per = (tn - t1) / max(1, count - 1)
        cpu = (CPU[f"{name}_n"] - CPU[f"{name}_1"]) / max(1, count - 1)
        out[name] = {"seconds_per_sae": per, "fixed_seconds": t1 - per,
                     "cpu_seconds_per_sae": cpu, "cpu_fixed_seconds": CPU[f"{name}_1"] - cpu}
        if hier:
            out[name]["setting"] = small
    return out


def pooling_child(tokens: int, latents: int) -> None:
    """Run in a fresh process: pool `tokens` random rows through an N=`latents` SAE."""
    from progressive_sae.evals.common import GranularityView
    from progressive_sae.evals.probing.pooling import TextActivations, pooled_latents

    torch.set_num_threads(2)
    per_text = 40
    texts = tokens // per_text
    gen = torch.Generator().manual_seed(0)
    acts = TextActivations(tuple(f"t{i}" for i in range(texts)),
                           torch.randn(texts * per_text, D, generator=gen),
                           torch.arange(texts).repeat_interleave(per_text),
                           torch.full((texts,), float(per_text)))
    sae = random_saes(1, latents)["sae0"]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start, cpu = time.perf_counter(), time.process_time()
    pooled_latents(sae, acts)
    pooled_latents(sae, acts, GranularityView(latents // 2, "relative"))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"tokens": texts * per_text, "latents": latents, "seconds": seconds,
                      "cpu_seconds": cpu,
                      "peak_rss_mb": peak / 1024, "rss_growth_mb": (peak - base) / 1024,
                      "dense_tokens_x_latents_mb": texts * per_text * latents * 4 / 2**20}))


def scaling() -> list[dict]:
    rows = []
    for tokens, latents in ((20_000, 2048), (40_000, 2048), (40_000, 4096)):
        done = subprocess.run([sys.executable, __file__, "--pooling-child", str(tokens),
                               str(latents)], capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--saes", type=int, default=3,
                        help="SAEs timed together (per SAE = the extra cost over one)")
    parser.add_argument("--granularities", default="512,1024")
    parser.add_argument("--pooling-child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pooling_child:
        pooling_child(*args.pooling_child)
        return
    torch.set_num_threads(2)
    from progressive_sae.lm import load_lm

    gs = [int(g) for g in args.granularities.split(",") if g]
    load_start = os.getloadavg()[0]
    lm = load_lm("offline-default")
    result = {
        "setting": {"N": N, "d": D, "k": K, "hook": "layers.2", "lm": "offline-default",
                    "granularities": gs, "modes": ["relative", "prefix"], "threads": 2},
        "probing_erasure": probing_and_erasure(lm, args.saes, gs),
        "absorption": absorption(lm, min(args.saes, 3), gs),
        "pooling_scaling": scaling(),
    }
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["load_average"] = {"start": load_start, "end": os.getloadavg()[0]}
    out = HERE / "results" / "evals_speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    pe = result["probing_erasure"]
    print(f"texts {pe['texts']}, tokens {pe['tokens']} (ctx {pe['ctx']}), "
          f"{pe['views_per_sae']} views per SAE; gated: {pe['gated_tasks'] or 'none'}")
    print(f"shared: build tasks {pe['build_tasks_seconds']:.1f} s, LM pass "
          f"{pe['lm_pass_seconds']:.1f} s")
    for name, sec in pe["seconds_per_sae"].items():
        print(f"{name:>22}: {sec:6.2f} s per SAE, {pe['fixed_seconds'][name]:6.2f} s fixed")
    key = f"probing_and_erasure_{args.saes}_saes_total_seconds"
    print(f"probing + erasure of {args.saes} SAEs, end to end: {pe[key]:.1f} s wall")
    cpu = pe["cpu_seconds"]
    print(f"CPU seconds: tasks {cpu['build_tasks']:.1f}, LM pass {cpu['lm_pass']:.1f}, per SAE "
          + ", ".join(f"{k} {v:.2f}" for k, v in cpu["per_sae"].items())
          + f"; 9 SAEs (the demo) projected {cpu['projected_9_saes']:.1f} CPU s")
    for task, row in result["absorption"].items():
        if "seconds_per_sae" in row:
            print(f"absorption {task}: {row['seconds_per_sae']:.2f} s per SAE "
                  f"({row['cpu_seconds_per_sae']:.2f} CPU s), {row['fixed_seconds']:.2f} s fixed "
                  f"({row['cpu_fixed_seconds']:.2f} CPU s)")
        else:
            print(f"absorption {task}: {row}")
    for row in result["pooling_scaling"]:
        print(f"pooling {row['tokens']} tokens × N={row['latents']}: {row['seconds']:.2f} s "
              f"({row['cpu_seconds']:.2f} CPU s), "
              f"RSS growth {row['rss_growth_mb']:.0f} MB (dense would be "
              f"{row['dense_tokens_x_latents_mb']:.0f} MB)")
    print(f"peak RSS {result['peak_rss_mb']:.0f} MB; load average {result['load_average']}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
