"""`psae run | report | demo`: the paper's grid end to end."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_demo(args: argparse.Namespace) -> None:
    from progressive_sae.demo import run_demo

    run_demo(args.out)


def cmd_run(args: argparse.Namespace) -> None:
    from progressive_sae.experiment import load_experiment, run_experiment

    cfg = load_experiment(args.config, out=args.out, overrides=args.set or ())
    result = run_experiment(cfg, progress=not args.quiet)
    print(f"finished in {result.seconds:.0f} s: {len(result.plots)} plots in "
          f"{result.out / 'plots'}")
    print(f"results: {result.results}")
    print(f"report:  {result.report_html}  (Markdown copy: {result.report_md})")


def cmd_report(args: argparse.Namespace) -> None:
    from progressive_sae.json_files import read_json_object
    from progressive_sae.report import write_report

    run = Path(args.run)
    results = read_json_object(run / "results.json",
                               f"{run}: expected a `psae run` folder holding results.json")
    html, md = write_report(run, results)
    print(f"report: {html} (Markdown copy: {md})")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the offline demo (synthetic activations)")
    p.add_argument("--out", default="runs/demo")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("run", help="the paper's grid: train what is missing, score, report")
    p.add_argument("config", help="experiment YAML, or the name of a shipped config: "
                                  "demo, offline-default, smollm2, … (configs/ in the repository)")
    p.add_argument("--out", help="output folder (overrides the config's out)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override one setting, e.g. --set train.total_tokens=40960 "
                        "--set grid.k_grid=[16,64] --set interp=null (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="rebuild report.html/.md of a `psae run` folder")
    p.add_argument("run", help="the run's output folder (holding results.json)")
    p.set_defaults(func=cmd_report)
