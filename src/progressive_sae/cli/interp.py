"""`psae interp`: explain and score latents per granularity bucket (SPEC §4.6)."""

from __future__ import annotations

import argparse
from pathlib import Path

from progressive_sae.cli.common import DATA_HELP, int_list


def build_config(args: argparse.Namespace):
    from progressive_sae.interp.config import InterpConfig, load_interp_config

    cfg = load_interp_config(args.config) if args.config else InterpConfig()
    if args.granularities is not None:
        cfg.granularities = sorted(set(int_list(args.granularities)))
    for name in ("quantiles", "latents_per_quantile", "train_examples", "test_examples"):
        value = getattr(args, name)
        if value is not None:
            setattr(cfg.sampling, name, value)
    if args.max_tokens is not None:
        cfg.records.max_tokens = args.max_tokens
    if args.methods is not None:
        cfg.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.no_baseline:
        cfg.baseline = False
    if args.no_control:
        cfg.control = False
    if args.llm_url or args.llm_model:
        cfg.llm.spec, cfg.llm.url, cfg.llm.model = "openai", args.llm_url, args.llm_model
    elif args.llm is not None:
        cfg.llm.spec = args.llm
    return type(cfg).from_dict(cfg.to_dict())  # validated again after the overrides


def sae_names(paths: list[str]) -> list[str]:
    names: list[str] = []
    for path in paths:
        name = Path(path).resolve().name or "sae"
        while name in names:
            name = f"{name}_{len(names)}"
        names.append(name)
    return names


def cmd_interp(args: argparse.Namespace) -> None:
    from progressive_sae.config_files import data_source
    from progressive_sae.data.cache import check_sae_fits
    from progressive_sae.formats import import_sae
    from progressive_sae.interp.collect import require_token_ids
    from progressive_sae.interp.pipeline import interpret

    cfg = build_config(args)
    source = data_source(args.data, text_order=True)
    saes = {}
    for name, path in zip(sae_names(args.sae), args.sae):
        sae = import_sae(path, device=args.device)
        check_sae_fits(sae, source)
        saes[name] = sae
    require_token_ids(source)
    out = Path(args.out)
    if cfg.llm.spec == "baseline":
        client = "baseline"
    else:
        from progressive_sae.interp.clients import make_client, retry_policy

        cache = Path(cfg.llm.cache_dir) if cfg.llm.cache_dir else out / "llm_cache"
        client = make_client(cfg.llm.spec, url=cfg.llm.url, model=cfg.llm.model,
                             api_key_env=cfg.llm.api_key_env, cache_dir=cache,
                             device=cfg.llm.device if args.device == "cpu" else args.device,
                             concurrency=cfg.llm.concurrency, retry=retry_policy(cfg.llm))
    result = interpret(saes, source, client, cfg, out=out, progress=not args.quiet)
    print(f"{'sae':<16} {'interpreter':<28} {'bucket':<16} " +
          " ".join(f"{m:>22}" for m in result.methods))
    for sae in result.saes:
        for interpreter in result.interpreters:
            for bucket in ["all", *result.saes[sae]["buckets"]]:
                cells = []
                for method in result.methods:
                    row = next((s for s in result.summary if (s.sae, s.interpreter, s.bucket,
                                s.quantile, s.method) == (sae, interpreter, bucket, None,
                                                          method)), None)
                    cells.append("—" if row is None or row.mean is None else
                                 f"{row.mean:.3f} [{row.low:.2f},{row.high:.2f}] n={row.scored}")
                print(f"{sae:<16} {interpreter:<28} {bucket:<16} " +
                      " ".join(f"{c:>22}" for c in cells))
    if result.llm:
        print("LLM:", ", ".join(f"{k} {v}" for k, v in result.llm.items()))
    print(f"wrote {out / 'summary.json'}, {out / 'scores'}/*.jsonl and "
          f"{len(result.plots)} plots in {out / 'plots'}")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("interp", help="explain and score SAE latents per granularity bucket "
                                      "(simulation, fuzzing, detection) with an LLM")
    p.add_argument("sae", nargs="+", help="SAE folders or files (any supported format)")
    p.add_argument("--data", required=True,
                   help=DATA_HELP + "; with token ids (from `psae extract`)")
    p.add_argument("--out", required=True, help="output folder (resumed when run again)")
    p.add_argument("--config", default=None,
                   help="InterpConfig YAML (e.g. configs/interp-paper.yaml); flags override it")
    p.add_argument("--llm", default=None,
                   help="offline-default (SmolLM2-135M, default), hf:PATH, or baseline "
                        "(the LLM-free look-up table only)")
    p.add_argument("--llm-url", default=None, help="OpenAI-compatible endpoint base URL")
    p.add_argument("--llm-model", default=None, help="model name at --llm-url")
    p.add_argument("--granularities", default=None,
                   help="bucket boundaries G, e.g. 256,1024 (default: the SAEs' Matryoshka "
                        "granularities)")
    p.add_argument("--quantiles", type=int, default=None, help="frequency quantiles (10)")
    p.add_argument("--latents-per-quantile", type=int, default=None,
                   help="latents drawn per quantile and bucket (50)")
    p.add_argument("--train-examples", type=int, default=None, help="train windows (20)")
    p.add_argument("--test-examples", type=int, default=None, help="test windows (10)")
    p.add_argument("--max-tokens", type=int, default=None,
                   help="read at most this many tokens of the cache for the records")
    p.add_argument("--methods", default=None,
                   help="comma-separated: simulation,fuzzing,detection (all)")
    p.add_argument("--no-baseline", action="store_true",
                   help="do not also score with the look-up-table baseline")
    p.add_argument("--no-control", action="store_true",
                   help="no randomly initialised control SAE")
    p.add_argument("--device", default="cpu", help="device of the SAEs and in-process LLM")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_interp)

