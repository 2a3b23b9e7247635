"""`psae train`, `psae extract`, `psae lm train`: making activations and SAEs."""

from __future__ import annotations

import argparse
from pathlib import Path

from progressive_sae.cli.common import DATA_HELP, int_list, parse_override, section
from progressive_sae.errors import PSAEError
from progressive_sae.json_files import to_json

TRAIN_FLAGS = {
    "num_latents": int, "k": int, "activation": str, "batch_size": int, "total_tokens": int,
    "lr": float, "sampled_granularities": int, "seed": int, "checkpoint_every": int,
    "device": str, "wandb_project": str,
}


EXTRACT_KEYS = ("hook", "out", "max_tokens", "batch_size", "exclude_bos", "dtype",
                "rows_per_shard")
LM_KEYS = ("model", "device", "dtype")


LM_KEYS = ("model", "device", "dtype")


def cmd_train(args: argparse.Namespace) -> None:
    from progressive_sae.config_files import data_source, load_run_config
    from progressive_sae.lm.stream import is_stream_spec
    from progressive_sae.train import TrainConfig, Trainer

    config = load_run_config(args.config) if args.config else {}
    base = Path(args.config).parent if args.config else None
    train_fields = dict(config.get("train") or {})
    for name in TRAIN_FLAGS:
        value = getattr(args, name)
        if value is not None:
            train_fields[name] = value
    if args.granularities is not None:
        train_fields["granularities"] = int_list(args.granularities)
    for item in args.set or []:
        key, value = parse_override(item)
        train_fields[key] = value
    data_spec = args.data or config.get("data")
    if data_spec is None:
        raise PSAEError("no activations given: pass --data PATH.npy or set 'data' in the config")
    out = args.out or config.get("out")
    if out is None:
        raise PSAEError("no run directory given: pass --out DIR or set 'out' in the config")
    if is_stream_spec(data_spec) or "saes" in config or "grid" in config:
        _train_one_pass(config, train_fields, data_spec, base, out, args.resume)
        return
    cfg = TrainConfig.from_dict(train_fields, source="train settings")
    trainer = Trainer(cfg, data_source(data_spec, base), run_dir=out, resume=args.resume)
    result = trainer.fit()
    print(to_json(result.to_dict(), indent=2))


def _train_one_pass(config: dict, train_fields: dict, data_spec: object, base: Path | None,
                    out: str, resume: bool) -> None:
    from progressive_sae.config_files import open_feed
    from progressive_sae.train import TrainConfig
    from progressive_sae.train.distributed import Distributed
    from progressive_sae.train.multi import MultiTrainer, result_summary
    from progressive_sae.train.plan import plan_jobs

    shared = TrainConfig.from_dict(train_fields, source="train settings")  # checked once
    dist = Distributed.from_environment(shared.device)
    feed = open_feed(data_spec, base, shared.batch_size, dist.rank, dist.world)
    jobs = plan_jobs(train_fields, config.get("saes"), config.get("grid"), feed.hooks)
    results = MultiTrainer(jobs, feed, out, resume=resume, dist=dist).fit()
    if dist.is_main:
        print(to_json(result_summary(results), indent=2))


def cmd_extract(args: argparse.Namespace) -> None:
    from progressive_sae.config_files import load_run_config
    from progressive_sae.lm import load_lm
    from progressive_sae.lm.extract import extract
    from progressive_sae.lm.model import OFFLINE_DEFAULT
    from progressive_sae.lm.text import TextConfig, iter_documents

    config = load_run_config(args.config) if args.config else {}
    lm_cfg = section(config, "lm", LM_KEYS)
    ext = section(config, "extract", EXTRACT_KEYS)
    text_fields = dict(config.get("text") or {})
    for key, value in (("model", args.model), ("device", args.device)):
        if value is not None:
            lm_cfg[key] = value
    for key in ("hook", "out", "max_tokens", "batch_size", "dtype"):
        if getattr(args, key) is not None:
            ext[key] = getattr(args, key)
    if args.text is not None:
        text_fields["source"] = args.text
    if args.ctx is not None:
        text_fields["ctx"] = args.ctx
    for key, where in (("hook", "--hook"), ("out", "--out"), ("max_tokens", "--max-tokens")):
        if key not in ext:
            raise PSAEError(f"no {key} given: pass {where} or set extract.{key} in the config")
    text = TextConfig.from_dict(text_fields, where="text settings")
    if next(iter_documents(text), None) is None:  # fail before loading a large model
        raise PSAEError(f"text source {text.source!r} holds no documents (part={text.part!r})")
    lm = load_lm(lm_cfg.get("model", OFFLINE_DEFAULT), device=lm_cfg.get("device", "cpu"),
                 dtype=lm_cfg.get("dtype"))
    ext["out_dir"] = ext.pop("out")
    manifest = extract(lm, text, **ext)
    print(f"activation cache: {manifest}")


def cmd_lm_train(args: argparse.Namespace) -> None:
    import shutil

    from progressive_sae.lm.offline import DEFAULT_LM_PATH, build_default_lm
    from progressive_sae.lm.offline.config import LMTrainConfig

    fields = {}
    for key in ("max_steps", "max_seconds", "batch_size", "lr", "seed"):
        if getattr(args, key) is not None:
            fields[key] = getattr(args, key)
    for item in args.set or []:
        key, value = parse_override(item)
        fields[key] = value
    known = set(LMTrainConfig.__dataclass_fields__)
    unknown = sorted(set(fields) - known)
    if unknown:
        raise PSAEError(f"unknown LM setting {unknown[0]!r}; expected one of {sorted(known)}")
    metrics = build_default_lm(LMTrainConfig(**fields), args.out, resume=not args.restart)
    print(to_json(metrics, indent=2))
    if args.install:
        shipped = [p for p in Path(args.out).iterdir() if p.is_file()]
        DEFAULT_LM_PATH.mkdir(parents=True, exist_ok=True)
        for file in shipped:
            shutil.copy2(file, DEFAULT_LM_PATH / file.name)
        print(f"installed into {DEFAULT_LM_PATH}")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train an SAE (YAML config; flags override it)")
    p.add_argument("config", nargs="?", help="YAML run config with data/out/train entries (and "
                   "saes/grid: several SAEs from one pass; data {text, hook(s), lm}: streamed "
                   "from a live LM)")
    p.add_argument("--data", help=DATA_HELP + " (overrides the config's data)")
    p.add_argument("--out", help="run directory (checkpoints, metrics.jsonl, sae/)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    for name, kind in TRAIN_FLAGS.items():
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=kind)
    p.add_argument("--granularities", help="Matryoshka sizes, e.g. 1024,4096,16384")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override any TrainConfig field")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("extract", help="write LM activations to a sharded cache")
    p.add_argument("config", nargs="?", help="YAML with lm/text/extract entries")
    p.add_argument("--model", help="HF model name or folder (default: the shipped offline-default)")
    p.add_argument("--hook", help="hook point, e.g. layers.2 (residual stream after block 2)")
    p.add_argument("--text", help="text: HF dataset name, .txt/.jsonl/.parquet, or folder")
    p.add_argument("--ctx", type=int, help="tokens per window")
    p.add_argument("--out", help="cache folder (an interrupted extraction resumes here)")
    p.add_argument("--max-tokens", dest="max_tokens", type=int)
    p.add_argument("--batch-size", dest="batch_size", type=int, help="windows per forward")
    p.add_argument("--dtype", choices=["float16", "float32", "bfloat16"], help="stored dtype")
    p.add_argument("--device", help="cpu or cuda")
    p.set_defaults(func=cmd_extract)

    lm = sub.add_parser("lm", help="the offline default language model")
    lm_sub = lm.add_subparsers(dest="lm_command", required=True)
    p = lm_sub.add_parser("train", help="train the offline default LM on CPython's docs")
    p.add_argument("--out", default="runs/offline_lm", help="run folder (resumes if present)")
    p.add_argument("--max-steps", dest="max_steps", type=int)
    p.add_argument("--max-seconds", dest="max_seconds", type=float, help="wall-clock budget")
    p.add_argument("--batch-size", dest="batch_size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override any LMTrainConfig field")
    p.add_argument("--restart", action="store_true", help="ignore an interrupted run in --out")
    p.add_argument("--install", action="store_true",
                   help="copy the result into the package (the shipped offline-default)")
    p.set_defaults(func=cmd_lm_train)
