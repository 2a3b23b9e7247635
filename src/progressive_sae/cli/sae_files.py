"""`psae permute | truncate | info | export | import`: one SAE file in, one out."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from progressive_sae.cli.common import DATA_HELP
from progressive_sae.errors import PSAEError


def cmd_permute(args: argparse.Namespace) -> None:
    from progressive_sae.config_files import data_source
    from progressive_sae.formats import import_sae
    from progressive_sae.progressive import make_progressive
    from progressive_sae.sae import save_sae

    if Path(args.out).exists():
        raise PSAEError(f"{args.out} already exists; choose a new output path")
    sae = import_sae(args.sae)
    eval_data = data_source(args.eval_data) if args.eval_data else None
    permuted = make_progressive(sae, data_source(args.data), by=args.by, max_rows=args.max_rows,
                                eval_data=eval_data)
    save_sae(permuted, args.out)
    table = " and its FVU table" if eval_data is not None else ""
    print(f"wrote {args.out} (latents ranked by {args.by}{table})")


def cmd_truncate(args: argparse.Namespace) -> None:
    from progressive_sae.formats import import_sae
    from progressive_sae.sae import save_sae

    if Path(args.out).exists():
        raise PSAEError(f"{args.out} already exists; choose a new output path")
    small = import_sae(args.sae, granularity=args.granularity, k=args.k)
    save_sae(small, args.out)
    print(f"wrote {args.out}: {small.num_latents} latents, k={small.cfg.k}")


def cmd_info(args: argparse.Namespace) -> None:
    from progressive_sae.formats import detect_format, import_sae
    from progressive_sae.hub_paths import require_existing
    from progressive_sae.progressive import progressive_summary

    local = require_existing(args.sae)
    fmt = detect_format(local)
    sae = import_sae(local, fmt, granularity=args.granularity, k=args.k)
    files = [local] if local.is_file() else [f for f in local.rglob("*") if f.is_file()]
    info = {"path": str(args.sae), "format": fmt, "architecture": type(sae).__name__,
            "num_latents": sae.num_latents, "d_in": sae.d_in, "k": sae.cfg.k,
            "activation": sae.cfg.activation, "granularities": sae.cfg.granularities,
            "parameters": sum(p.numel() for p in sae.parameters()),
            "bytes_on_disk": sum(f.stat().st_size for f in files),
            "dtype": str(sae.W_dec.dtype).removeprefix("torch."),
            "progressive": progressive_summary(sae.cfg), "metadata": sae.cfg.metadata}
    if str(local) != str(args.sae):
        info["local_path"] = str(local)
    print(info_text(info) if args.text else json.dumps(info, indent=2))


def info_text(info: dict) -> str:
    """`psae info --text`: the summary a person reads, with the latents-vs-FVU table."""
    prog = info["progressive"]
    lines = [f"{info['path']}: {info['architecture']} ({info['format']} format), "
             f"N={info['num_latents']}, d_in={info['d_in']}, k={info['k']}, {info['dtype']}"]
    if prog["permuted"]:
        rows = prog["ranked_on_rows"]
        lines.append(f"progressive: latents ranked by {prog['ranked_by']}"
                     + (f" on {rows} rows" if rows is not None else ""))
    else:
        lines.append("progressive: no record of a ranking (not permuted by psae permute)")
    if prog["matryoshka_granularities"]:
        lines.append(f"Matryoshka granularities: {prog['matryoshka_granularities']}")
    table = prog["fvu_by_granularity"]
    if table is None:
        lines.append("no latents-vs-FVU table (psae permute --eval-data writes one)")
    else:
        lines.append(f"FVU by granularity ({table['mode']} sparsity, {table['rows']} held-out "
                     f"rows, measured on the {table['num_latents']}-latent SAE):")
        lines.append(f"{'G':>10} {'k_G':>6} {'FVU':>10}")
        lines += [f"{p['granularity']:>10} {p['k']:>6} {p['fvu']:>10.4f}"
                  for p in table["points"]]
    return "\n".join(lines)


def cmd_export(args: argparse.Namespace) -> None:
    from progressive_sae.formats import export_sae, import_sae

    sae = import_sae(args.sae)
    path = export_sae(sae, args.out, args.format)
    print(f"wrote {path} ({args.format} format)")


def cmd_import(args: argparse.Namespace) -> None:
    from progressive_sae.formats import detect_format, import_sae
    from progressive_sae.hub_paths import require_existing
    from progressive_sae.sae import save_sae

    local = require_existing(args.path)  # an hf:// path is resolved once
    fmt = args.format or detect_format(local)
    sae = import_sae(local, fmt)
    save_sae(sae, args.out)
    print(f"wrote {args.out}: {type(sae).__name__} with {sae.num_latents} latents (from {fmt})")


def register(sub: argparse._SubParsersAction) -> None:
    sae_help = "SAE folder or file of any supported format, or hf://ORG/REPO[@REV][/FOLDER]"
    p = sub.add_parser("permute", help="reorder latents by importance on held-out activations")
    p.add_argument("sae", help=sae_help)
    p.add_argument("--data", required=True, help=DATA_HELP)
    p.add_argument("--by", choices=["mean_sq", "frequency"], default="mean_sq")
    p.add_argument("--max-rows", type=int, default=None)
    p.add_argument("--eval-data", default=None,
                   help="other held-out activations: store FVU at G = N/64 … N in the file")
    p.add_argument("--out", required=True, help="new SAE folder (must not exist)")
    p.set_defaults(func=cmd_permute)

    p = sub.add_parser("truncate", help="keep the first G latents as a smaller SAE "
                       "(reads only those rows)")
    p.add_argument("sae", help=sae_help)
    p.add_argument("--granularity", "-g", type=int, required=True)
    p.add_argument("--k", type=int, default=None, help="k of the result (default round(k·G/N))")
    p.add_argument("--out", required=True, help="new SAE folder (must not exist)")
    p.set_defaults(func=cmd_truncate)

    p = sub.add_parser("info", help="print an SAE's config, size, progressive coding and "
                       "FVU table")
    p.add_argument("sae", help=sae_help)
    p.add_argument("--granularity", "-g", type=int, default=None,
                   help="describe the SAE truncated to its first G latents (reads only those)")
    p.add_argument("--k", type=int, default=None, help="k at that granularity "
                   "(default round(k·G/N))")
    p.add_argument("--text", action="store_true", help="a readable summary instead of JSON")
    p.set_defaults(func=cmd_info)

    formats = ["native", "saelens", "sparsify", "gemmascope"]
    p = sub.add_parser("export", help="write an SAE in another library's format")
    p.add_argument("sae", help=sae_help)
    p.add_argument("--format", required=True, choices=formats[:3])
    p.add_argument("--out", required=True, help="new folder (must not exist)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("import", help="convert a SAELens/sparsify/GemmaScope SAE to ours")
    p.add_argument("path", help="SAE folder or params.npz, or hf://ORG/REPO[@REV][/FOLDER]")
    p.add_argument("--format", choices=formats, help="default: detected from the files")
    p.add_argument("--out", required=True, help="new native SAE folder (must not exist)")
    p.set_defaults(func=cmd_import)
