"""`psae permute | truncate | info | export | import`: one SAE file in, one out."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from progressive_sae.errors import PSAEError


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


def register(sub: argparse._SubParsersAction) -> None:
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
