"""`psae distill`: a large SAE's split latents merged into a real G-latent SAE (issue 12)."""

from __future__ import annotations

import argparse
from pathlib import Path

from progressive_sae.cli.common import DATA_HELP
from progressive_sae.errors import PSAEError

REPORT_FILE = "distill_report.json"


def cmd_distill(args: argparse.Namespace) -> None:
    from progressive_sae.atomic import write_json_atomic
    from progressive_sae.config_files import data_source
    from progressive_sae.distill import DistillConfig, distill
    from progressive_sae.formats import import_sae
    from progressive_sae.sae import save_sae

    if Path(args.out).exists():
        raise PSAEError(f"{args.out} already exists; choose a new output path")
    cfg = DistillConfig(tune_tokens=args.tokens, sample_rows=args.sample_rows,
                        families=args.families, seed=args.seed)
    sae = import_sae(args.sae)
    data = data_source(args.data)
    small, report = distill(sae, data, args.granularity, cfg,
                            progress=not args.quiet)
    save_sae(small, args.out)
    write_json_atomic(Path(args.out) / REPORT_FILE, report.to_dict())
    print(f"wrote {args.out}: {small.num_latents} latents (from {sae.num_latents}), "
          f"k={small.cfg.k}; FVU on the {report.sample_rows} sample rows after merging "
          f"{report.sample_fvu:.4f}; fine-tuned on {report.tune_tokens} tokens")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("distill", help="distil an SAE of N latents into a G-latent one by "
                       "merging split families (beats truncation at small G/N)")
    p.add_argument("sae", help="the large SAE (native folder or any importable format)")
    p.add_argument("--granularity", type=int, required=True,
                   help="G, the latents of the distilled SAE (2 ≤ G < N); k_G = round(k·G/N)")
    p.add_argument("--data", required=True,
                   help=DATA_HELP)
    p.add_argument("--tokens", type=int, default=0,
                   help="fine-tune budget after merging, in tokens (default 0: none)")
    p.add_argument("--sample-rows", type=int, default=16384,
                   help="rows read for latent statistics and the closed-form fits")
    p.add_argument("--families", choices=("kmeans", "agglomerative"), default="kmeans",
                   help="how split families are found (default kmeans)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fine-tune")
    p.add_argument("--out", required=True, help="new folder for the distilled SAE")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_distill)
