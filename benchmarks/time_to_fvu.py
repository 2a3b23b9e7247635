"""FVU against tokens and training time on real activations: ours against sparsify.

    python benchmarks/time_to_fvu.py [--steps 30,60,120,240] [--only ours,ours-lr5e-3,sparsify]

A step's speed says little if the other library's steps teach more. Each run (`RUNS`: our
defaults, ours at lr 5·10⁻³ without warm-up, sparsify's defaults) trains once per length in
--steps, its schedule fitted to that length as a user would run it, on SmolLM2-135M's
layers.9 activations (d=576; the 122,880 rows train_speed.py --smollm2 extracts), served as
shuffled passes over those rows (the drivers' --shuffle: every run reads the same rows in
the same order), and is scored on the same 16,384 held-out rows. Prints a table and writes
benchmarks/results/time_to_fvu.json and time_to_fvu.png: each run's FVU, tokens and
training seconds (the sum of its steps), and for a few FVU targets the fewest seconds a run
that reached the target trained (measured runs only, no interpolation). Time it on an
otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "peers"))
from setup_venv import ensure_peer_venv  # noqa: E402
from train_speed import B, K, N, run_driver, smollm2_data  # noqa: E402

RUNS = {
    "ours": ("ours", []),
    "ours-lr5e-3": ("ours", ["--lr", "5e-3", "--warmup", "0"]),
    "sparsify": ("sparsify", []),
}
"""What --only picks from: our defaults; ours at sparsify's Signum lr (5·10⁻³) without
warm-up (a recipe measured better on these rows, worse on the synthetic ones); sparsify's
defaults."""
TARGETS = (0.3, 0.2, 0.15, 0.13, 0.12)
BASE_STEPS = 30
"""The rows train_speed.py --smollm2 extracts: 30 batches of 4,096."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="30,60,120,240",
                        help="comma-separated run lengths in steps of 4,096 tokens")
    parser.add_argument("--eval-rows", type=int, default=16384)
    parser.add_argument("--only", default=",".join(RUNS),
                        help=f"comma-separated subset of {tuple(RUNS)}")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "time_to_fvu.json")
    args = parser.parse_args()
    text = args.steps
    try:
        args.steps = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        args.steps = []
    if not args.steps or min(args.steps) < 1:
        parser.error(f"--steps {text!r}: expected positive integers, comma-separated")
    text = args.only
    args.only = [t.strip() for t in text.split(",") if t.strip()]
    if not args.only or set(args.only) - set(RUNS):
        parser.error(f"--only {text!r}: expected a comma-separated subset of {tuple(RUNS)}")
    return args


def point(library: str, record: dict) -> dict:
    steps = record["steps"]
    return {"library": library, "steps": steps, "tokens": record["tokens"],
            "passes": record["tokens"] / (BASE_STEPS * B), "fvu": record["fvu"],
            "step_ms": record["step_ms"], "train_s": record["step_ms_mean"] * steps / 1000,
            "peak_rss_mb": record["peak_rss_mb"],
            "dead_fraction": record["config"].get("dead_fraction")}


def time_to(points: list[dict], target: float) -> dict[str, float | None]:
    """Per library, the fewest training seconds of a run whose FVU reached `target`."""
    out: dict[str, float | None] = {}
    for library in dict.fromkeys(p["library"] for p in points):
        reached = [p["train_s"] for p in points if p["library"] == library and p["fvu"] <= target]
        out[library] = min(reached) if reached else None
    return out


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    fig, (by_tokens, by_time) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, library in enumerate(dict.fromkeys(p["library"] for p in result["points"])):
        row = sorted((p for p in result["points"] if p["library"] == library),
                     key=lambda p: p["steps"])
        fvu = [p["fvu"] for p in row]
        by_tokens.plot([p["tokens"] for p in row], fvu, "o-", color=f"C{i}", label=library)
        by_time.plot([p["train_s"] for p in row], fvu, "o-", color=f"C{i}", label=library)
    for ax, what in ((by_tokens, "training tokens"), (by_time, "training seconds")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis, subs in ((ax.xaxis, (1.0, 2.0, 5.0)), (ax.yaxis, (1.0, 1.5, 2.0, 3.0))):
            axis.set_major_locator(LogLocator(subs=subs))
            axis.set_major_formatter(ScalarFormatter())
            axis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(what)
        ax.set_ylabel("held-out FVU")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    tokens = sorted({p["tokens"] for p in result["points"]})
    by_tokens.set_xticks(tokens, [f"{t / 1000:,.0f}k" for t in tokens])
    s = result["shape"]
    fig.suptitle(f"SmolLM2-135M layers.9 (d={s['d']}), TopK N={s['N']} k={s['k']} B={s['B']}, "
                 f"{result['threads']} CPU threads; one run per length", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    args = parse_args()
    lengths, only = args.steps, args.only
    train, held = smollm2_data(BASE_STEPS, args.eval_rows)
    scratch = HERE / ".data" / "results"
    scratch.mkdir(parents=True, exist_ok=True)
    drivers = {"ours": (Path(sys.executable), HERE / "ours_driver.py")}
    if "sparsify" in only:
        drivers["sparsify"] = (ensure_peer_venv("sparsify", HERE / ".venvs", "cpu", None),
                               HERE / "peers" / "sparsify_driver.py")
    points = []
    for steps in lengths:
        for library in only:
            python, script = drivers[RUNS[library][0]]
            record = run_driver(python, script, train, held, steps,
                                scratch / f"fvu_{library}_{steps}.json", "cpu",
                                ["--shuffle", *RUNS[library][1]])
            points.append(point(library, record))
            p = points[-1]
            print(f"{library:11s} {steps:4d} steps  FVU {p['fvu']:.4f}  "
                  f"{p['step_ms']:6.0f} ms/step  {p['train_s']:6.1f} s", flush=True)

    result = {
        "activations": "smollm2-135m layers.9, shuffled passes over 122,880 rows",
        "shape": {"d": int(np.load(train, mmap_mode="r").shape[1]), "N": N, "k": K, "B": B},
        "threads": 2,
        "points": points,
        "seconds_to_reach": {str(t): time_to(points, t) for t in TARGETS},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out.with_suffix(".png"))
    print("training seconds to reach a held-out FVU (fewest among the runs that did):")
    for target, seconds in result["seconds_to_reach"].items():
        print(f"  FVU ≤ {target}: " + ", ".join(
            f"{lib} {'-' if s is None else f'{s:.0f} s'}" for lib, s in seconds.items()))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
