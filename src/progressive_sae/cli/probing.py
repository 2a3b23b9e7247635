"""`psae probing`, `psae erasure`: sparse probing and targeted concept erasure of SAEs on
labelled texts, per granularity (SPEC §4.7)."""

from __future__ import annotations

import argparse
from pathlib import Path

from progressive_sae.cli.common import int_list
from progressive_sae.errors import PSAEError


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [v.strip() for v in text.split(",") if v.strip()]
    if not names:
        raise PSAEError(f"{text!r}: expected comma-separated names")
    return names


def _modes(text: str) -> list[str]:
    return _names(text) or []


def _probing_tasks(args: argparse.Namespace, config):
    """Tasks named, from task files and from dataset configs (built before the LM loads)."""
    from progressive_sae.evals.datasets.hub import file_tasks, hub_tasks, load_hub_configs
    from progressive_sae.evals.probing.evaluate import resolve_tasks

    names = _names(args.tasks)
    tasks: list = []
    if names is not None or not (args.task_file or args.datasets):
        tasks += resolve_tasks(names, config)
    for path in args.task_file or []:
        tasks += file_tasks(path, config.train_per_class, config.test_per_class,
                            config.test_fraction, config.seed)
    if args.datasets:
        for hub in load_hub_configs(args.datasets):
            tasks += hub_tasks(hub)
    return tasks


def _lm_and_saes(args: argparse.Namespace):
    from progressive_sae.analysis.standalone import load_saes
    from progressive_sae.lm import load_lm

    saes = load_saes(args.sae)
    lm = load_lm(args.lm, device=args.device)
    return saes, lm


def cmd_probing(args: argparse.Namespace) -> None:
    from progressive_sae.atomic import write_json_atomic
    from progressive_sae.evals.probing import ProbingConfig, evaluate_probing
    from progressive_sae.evals.probing.plot import plot_probing

    config = ProbingConfig(ks=int_list(args.ks), modes=_modes(args.modes), ctx=args.ctx,
                           train_per_class=args.train_per_class,
                           test_per_class=args.test_per_class, resamples=args.resamples,
                           seed=args.seed, packages=_names(args.packages) or
                           ProbingConfig().packages)
    tasks = _probing_tasks(args, config)
    saes, lm = _lm_and_saes(args)
    gs = int_list(args.granularities) if args.granularities else None
    result = evaluate_probing(saes, lm, args.hook, tasks, gs, config, progress=True)
    out = Path(args.out)
    write_json_atomic(out / "probing.json", result.to_dict())
    plot_probing(result, out / "probing.png")
    for t in result.tasks:
        state = "GATED" if t.gated else "scored"
        print(f"{t.name}: residual probe {t.residual.value:.3f} ({state})")
    for s in result.summary:
        print(f"{s.sae} G={s.granularity} {s.mode} top-{s.k}: {s.accuracy.value:.3f} "
              f"[{s.accuracy.low:.3f}, {s.accuracy.high:.3f}] over {s.tasks} tasks")
    print(f"wrote {out / 'probing.json'}, {out / 'probing.png'} ({result.seconds:.1f} s)")


def cmd_erasure(args: argparse.Namespace) -> None:
    from progressive_sae.atomic import write_json_atomic
    from progressive_sae.evals.erasure import ErasureConfig, evaluate_erasure
    from progressive_sae.evals.erasure.plot import plot_erasure

    config = ErasureConfig(n_values=int_list(args.n_values), modes=_modes(args.modes),
                           ctx=args.ctx, train_per_class=args.train_per_class,
                           test_per_class=args.test_per_class, resamples=args.resamples,
                           seed=args.seed, scr=not args.no_scr, tpp=not args.no_tpp,
                           packages=_names(args.packages) or ErasureConfig().packages)
    if config.tpp and len(set(config.packages)) < 2:
        raise PSAEError(f"--packages {args.packages}: TPP needs at least 2 distinct classes")
    saes, lm = _lm_and_saes(args)
    gs = int_list(args.granularities) if args.granularities else None
    result = evaluate_erasure(saes, lm, args.hook, gs, config, progress=True)
    out = Path(args.out)
    write_json_atomic(out / "erasure.json", result.to_dict())
    plot_erasure(result, out / "erasure.png")
    for s in result.scores:
        if s.metric in ("scr", "tpp"):
            print(f"{s.metric.upper()} {s.sae} G={s.granularity} {s.mode} n={s.n}: "
                  f"{s.value.value:.3f} [{s.value.low:.3f}, {s.value.high:.3f}]")
    print(f"wrote {out / 'erasure.json'}, {out / 'erasure.png'} ({result.seconds:.1f} s)")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("sae", nargs="+", help="SAE folders or files (any supported format)")
    p.add_argument("--lm", required=True, help="model folder or name (e.g. offline-default)")
    p.add_argument("--hook", required=True, help="hook point the SAEs read, e.g. layers.2")
    p.add_argument("--out", required=True, help="folder for the JSON and the PNG")
    p.add_argument("--granularities", help="G values below N to score too, e.g. 512,1024")
    p.add_argument("--modes", default="relative,prefix", help="granularity modes")
    p.add_argument("--packages", help="stdlib packages as classes, e.g. asyncio,email,logging")
    p.add_argument("--ctx", type=int, default=64, help="tokens per text, BOS included")
    p.add_argument("--train-per-class", dest="train_per_class", type=int, default=80)
    p.add_argument("--test-per-class", dest="test_per_class", type=int, default=40)
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("probing", help="sparse probing of SAEs on labelled texts, per G")
    _common(p)
    p.add_argument("--tasks", help="offline tasks: package:<name>, kind, source (default all)")
    p.add_argument("--task-file", dest="task_file", action="append",
                   help="a .jsonl of {text, label[, group]} rows: one more task (repeatable)")
    p.add_argument("--datasets", help="YAML with a 'datasets:' list, e.g. "
                   "configs/evals-saebench.yaml (needs internet or local copies)")
    p.add_argument("--ks", default="1,2,5", help="latents per sparse probe")
    p.set_defaults(func=cmd_probing)

    p = sub.add_parser("erasure", help="targeted concept erasure (SCR, TPP) of SAEs, per G")
    _common(p)
    p.add_argument("--n-values", dest="n_values", default="2,5,10,20,50",
                   help="numbers of latents ablated")
    p.add_argument("--no-scr", dest="no_scr", action="store_true", help="skip SCR")
    p.add_argument("--no-tpp", dest="no_tpp", action="store_true", help="skip TPP")
    p.set_defaults(func=cmd_erasure)
