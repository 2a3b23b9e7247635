"""`psae`: parses arguments and calls the library. Bad input → one line, exit code 2."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from progressive_sae.errors import PSAEError


def _parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise PSAEError(f"--set {text!r}: expected KEY=VALUE")
    key, value = text.split("=", 1)
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        raise PSAEError(f"--set {text!r}: the value is not valid YAML") from None


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise PSAEError(f"{text!r}: expected comma-separated integers such as 256,1024") from None


TRAIN_FLAGS = {
    "num_latents": int, "k": int, "activation": str, "batch_size": int, "total_tokens": int,
    "lr": float, "sampled_granularities": int, "seed": int, "checkpoint_every": int,
    "device": str, "wandb_project": str,
}


def cmd_train(args: argparse.Namespace) -> None:
    from progressive_sae.config_files import data_source, load_run_config
    from progressive_sae.train import TrainConfig, Trainer

    config = load_run_config(args.config) if args.config else {}
    base = Path(args.config).parent if args.config else None
    train_fields = dict(config.get("train") or {})
    for name in TRAIN_FLAGS:
        value = getattr(args, name)
        if value is not None:
            train_fields[name] = value
    if args.granularities is not None:
        train_fields["granularities"] = _int_list(args.granularities)
    for item in args.set or []:
        key, value = _parse_override(item)
        train_fields[key] = value
    cfg = TrainConfig.from_dict(train_fields, source="train settings")
    data_spec = args.data or config.get("data")
    if data_spec is None:
        raise PSAEError("no activations given: pass --data PATH.npy or set 'data' in the config")
    out = args.out or config.get("out")
    if out is None:
        raise PSAEError("no run directory given: pass --out DIR or set 'out' in the config")
    trainer = Trainer(cfg, data_source(data_spec, base), run_dir=out, resume=args.resume)
    result = trainer.fit()
    print(json.dumps(result.to_dict(), indent=2))


EXTRACT_KEYS = ("hook", "out", "max_tokens", "batch_size", "exclude_bos", "dtype",
                "rows_per_shard")
LM_KEYS = ("model", "device", "dtype")


def _section(config: dict[str, Any], name: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    section = config.get(name) or {}
    if not isinstance(section, dict):
        raise PSAEError(f"'{name}' must be a mapping of settings")
    unknown = sorted(set(section) - set(allowed))
    if unknown:
        raise PSAEError(f"unknown key {unknown[0]!r} in '{name}'; expected one of {list(allowed)}")
    return dict(section)


def cmd_extract(args: argparse.Namespace) -> None:
    from progressive_sae.config_files import load_run_config
    from progressive_sae.lm import load_lm
    from progressive_sae.lm.extract import extract
    from progressive_sae.lm.model import OFFLINE_DEFAULT
    from progressive_sae.lm.text import TextConfig, iter_documents

    config = load_run_config(args.config) if args.config else {}
    lm_cfg = _section(config, "lm", LM_KEYS)
    ext = _section(config, "extract", EXTRACT_KEYS)
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
        key, value = _parse_override(item)
        fields[key] = value
    known = set(LMTrainConfig.__dataclass_fields__)
    unknown = sorted(set(fields) - known)
    if unknown:
        raise PSAEError(f"unknown LM setting {unknown[0]!r}; expected one of {sorted(known)}")
    metrics = build_default_lm(LMTrainConfig(**fields), args.out, resume=not args.restart)
    print(json.dumps(metrics, indent=2))
    if args.install:
        shipped = [p for p in Path(args.out).iterdir() if p.is_file()]
        DEFAULT_LM_PATH.mkdir(parents=True, exist_ok=True)
        for file in shipped:
            shutil.copy2(file, DEFAULT_LM_PATH / file.name)
        print(f"installed into {DEFAULT_LM_PATH}")


def cmd_permute(args: argparse.Namespace) -> None:
    from progressive_sae.config_files import data_source
    from progressive_sae.progressive import make_progressive
    from progressive_sae.sae import load_sae, save_sae

    if Path(args.out).exists():
        raise PSAEError(f"{args.out} already exists; choose a new output path")
    sae = load_sae(args.sae)
    permuted = make_progressive(sae, data_source(args.data), by=args.by, max_rows=args.max_rows)
    save_sae(permuted, args.out)
    print(f"wrote {args.out} (latents ranked by {args.by})")


def cmd_truncate(args: argparse.Namespace) -> None:
    from progressive_sae.sae import load_sae, save_sae

    if Path(args.out).exists():
        raise PSAEError(f"{args.out} already exists; choose a new output path")
    sae = load_sae(args.sae)
    small = sae.truncate(args.granularity, k=args.k)
    save_sae(small, args.out)
    print(f"wrote {args.out}: {small.num_latents} latents, k={small.cfg.k}")


def cmd_info(args: argparse.Namespace) -> None:
    from progressive_sae.sae import load_sae

    sae = load_sae(args.sae)
    size = sum(f.stat().st_size for f in Path(args.sae).iterdir() if f.is_file())
    params = sum(p.numel() for p in sae.parameters())
    info = {"path": str(args.sae), "architecture": type(sae).__name__,
            "num_latents": sae.num_latents, "d_in": sae.d_in, "k": sae.cfg.k,
            "activation": sae.cfg.activation, "granularities": sae.cfg.granularities,
            "parameters": params, "bytes_on_disk": size,
            "dtype": str(sae.W_dec.dtype).removeprefix("torch."),
            "metadata": sae.cfg.metadata}
    print(json.dumps(info, indent=2))


def cmd_demo(args: argparse.Namespace) -> None:
    from progressive_sae.demo import run_demo

    run_demo(args.out)


def cmd_run(args: argparse.Namespace) -> None:
    from progressive_sae.experiment import load_experiment, run_experiment

    cfg = load_experiment(args.config, out=args.out)
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


def cmd_export(args: argparse.Namespace) -> None:
    from progressive_sae.formats import export_sae, import_sae

    sae = import_sae(args.sae)
    path = export_sae(sae, args.out, args.format)
    print(f"wrote {path} ({args.format} format)")


def cmd_import(args: argparse.Namespace) -> None:
    from progressive_sae.formats import detect_format, import_sae
    from progressive_sae.sae import save_sae

    fmt = args.format or detect_format(args.path)
    sae = import_sae(args.path, fmt)
    save_sae(sae, args.out)
    print(f"wrote {args.out}: {type(sae).__name__} with {sae.num_latents} latents (from {fmt})")


def _evalset(args: argparse.Namespace):
    from progressive_sae.config_files import data_source
    from progressive_sae.evaluation import EvalSet

    source = data_source(args.data)
    if not hasattr(source, "rows"):
        raise PSAEError(f"--data {args.data}: expected a random-access source (.npy or cache)")
    if args.lm is None:
        return EvalSet(source, rsa_rows=args.rsa_rows)
    import torch

    from progressive_sae.lm import load_lm
    from progressive_sae.lm.text import TextConfig, take_windows

    if args.hook is None or args.text is None:
        raise PSAEError("--lm needs --hook (e.g. layers.2) and --text (held-out text)")
    lm = load_lm(args.lm)
    text = TextConfig(source=args.text, ctx=args.ctx, part=args.part)
    ids = torch.as_tensor(take_windows(text, lm.tokenizer, args.windows), dtype=torch.long)
    return EvalSet(source, rsa_rows=args.rsa_rows, lm=lm, input_ids=ids, hook=args.hook)


def cmd_frontier(args: argparse.Namespace) -> None:
    from progressive_sae.analysis.standalone import (
        frontier_files,
        load_saes,
        sparsity_frontier_files,
    )

    saes = load_saes(args.sae)
    evalset = _evalset(args)
    if args.prefixes is not None:
        written = sparsity_frontier_files(saes, evalset, _int_list(args.prefixes), args.out)
    else:
        largest = max(s.num_latents for s in saes.values())
        gs = (_int_list(args.granularities) if args.granularities
              else sorted({max(2, largest >> i) for i in range(7)}))
        written = frontier_files(saes, evalset, gs, args.out, args.mode)
    print("wrote " + ", ".join(map(str, written)))


def cmd_power_law(args: argparse.Namespace) -> None:
    from progressive_sae.analysis.standalone import load_saes, power_law_files
    from progressive_sae.config_files import data_source

    central = None
    if args.central:
        try:
            lo, hi = (float(v) for v in args.central.split(","))
        except ValueError:
            raise PSAEError(f"--central {args.central!r}: expected two fractions such as "
                            "0.05,0.5") from None
        central = (lo, hi)
    written = power_law_files(load_saes(args.sae), data_source(args.data), args.out, central,
                              args.max_rows)
    print("wrote " + ", ".join(map(str, written)))


def cmd_scaling_law(args: argparse.Namespace) -> None:
    from progressive_sae.analysis.standalone import read_scaling_points, scaling_law_files

    written = scaling_law_files(read_scaling_points(args.points), args.out)
    print("wrote " + ", ".join(map(str, written)))


def cmd_splitting(args: argparse.Namespace) -> None:
    from progressive_sae.analysis.standalone import load_saes, splitting_files

    (sae,) = load_saes([args.sae]).values()
    large = next(iter(load_saes([args.large]).values())) if args.large else None
    written = splitting_files(sae, args.out, large, args.threshold, args.latents)
    print("wrote " + ", ".join(map(str, written)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="psae", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train an SAE (YAML config; flags override it)")
    p.add_argument("config", nargs="?", help="YAML run config with data/out/train entries")
    p.add_argument("--data", help="activations: a .npy file (overrides the config's data)")
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

    p = sub.add_parser("permute", help="reorder latents by importance on held-out activations")
    p.add_argument("sae", help="SAE folder")
    p.add_argument("--data", required=True, help="held-out activations (.npy or YAML config)")
    p.add_argument("--by", choices=["mean_sq", "frequency"], default="mean_sq")
    p.add_argument("--max-rows", type=int, default=None)
    p.add_argument("--out", required=True, help="new SAE folder (must not exist)")
    p.set_defaults(func=cmd_permute)

    p = sub.add_parser("truncate", help="keep the first G latents as a smaller SAE")
    p.add_argument("sae", help="SAE folder")
    p.add_argument("--granularity", "-g", type=int, required=True)
    p.add_argument("--k", type=int, default=None, help="k of the result (default round(k·G/N))")
    p.add_argument("--out", required=True, help="new SAE folder (must not exist)")
    p.set_defaults(func=cmd_truncate)

    p = sub.add_parser("info", help="print an SAE's config, size and latent count")
    p.add_argument("sae", help="SAE folder")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("demo", help="the offline demo (synthetic activations)")
    p.add_argument("--out", default="runs/demo")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("run", help="the paper's grid: train what is missing, score, report")
    p.add_argument("config", help="experiment YAML (see configs/demo.yaml)")
    p.add_argument("--out", help="output folder (overrides the config's out)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="rebuild report.html/.md of a `psae run` folder")
    p.add_argument("run", help="the run's output folder (holding results.json)")
    p.set_defaults(func=cmd_report)

    formats = ["native", "saelens", "sparsify", "gemmascope"]
    p = sub.add_parser("export", help="write an SAE in another library's format")
    p.add_argument("sae", help="SAE folder (any supported format)")
    p.add_argument("--format", required=True, choices=formats[:3])
    p.add_argument("--out", required=True, help="new folder (must not exist)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("import", help="convert a SAELens/sparsify/GemmaScope SAE to ours")
    p.add_argument("path", help="SAE folder or params.npz")
    p.add_argument("--format", choices=formats, help="default: detected from the files")
    p.add_argument("--out", required=True, help="new native SAE folder (must not exist)")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("frontier", help="fidelity vs granularity (or vs sparsity) of SAEs")
    p.add_argument("sae", nargs="+", help="SAE folders or files (any supported format)")
    p.add_argument("--data", required=True, help="held-out activations (.npy, cache YAML)")
    p.add_argument("--out", required=True, help="folder for the JSON and PNGs")
    p.add_argument("--granularities", help="G grid, e.g. 256,512,1024 (default N/64..N)")
    p.add_argument("--prefixes", help="sparsity frontier instead: prefix sizes, e.g. 512,1024")
    p.add_argument("--mode", choices=["relative", "prefix"], default="relative")
    p.add_argument("--rsa-rows", dest="rsa_rows", type=int, default=1000)
    p.add_argument("--lm", help="LM for the recaptured loss (e.g. offline-default)")
    p.add_argument("--text", help="held-out text for the LM windows")
    p.add_argument("--part", default="heldout", choices=["train", "heldout", "all"])
    p.add_argument("--hook", help="hook point the SAEs read, e.g. layers.2")
    p.add_argument("--ctx", type=int, default=256)
    p.add_argument("--windows", type=int, default=32, help="LM windows scored")
    p.set_defaults(func=cmd_frontier)

    p = sub.add_parser("power-law", help="power-law fits of decoder spectrum, E[z²], frequency")
    p.add_argument("sae", nargs="+", help="SAE folders or files")
    p.add_argument("--data", required=True, help="held-out activations (.npy, cache YAML)")
    p.add_argument("--out", required=True)
    p.add_argument("--central", help="central range as rank fractions, e.g. 0.05,0.5")
    p.add_argument("--max-rows", dest="max_rows", type=int)
    p.set_defaults(func=cmd_power_law)

    p = sub.add_parser("scaling-law", help="fit FVU(N,k,G) (SPEC §4.4) to scored points")
    p.add_argument("points", help="CSV with N,k,G,fvu, or a results.json / frontier.json")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_scaling_law)

    p = sub.add_parser("splitting", help="decoder-similarity heatmap; split counts vs a larger SAE")
    p.add_argument("sae", help="SAE folder or file")
    p.add_argument("--large", help="a larger SAE: count the latents each latent splits into")
    p.add_argument("--out", required=True)
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--latents", type=int, default=1024, help="leading latents in the heatmap")
    p.set_defaults(func=cmd_splitting)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except PSAEError as err:
        print(f"psae: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("psae: interrupted; finished checkpoints are kept (use --resume)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
