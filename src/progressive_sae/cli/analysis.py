"""`psae frontier | power-law | scaling-law | splitting`: analyses of saved SAEs."""

from __future__ import annotations

import argparse

from progressive_sae.cli.common import DATA_HELP, int_list
from progressive_sae.errors import PSAEError


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
        written = sparsity_frontier_files(saes, evalset, int_list(args.prefixes), args.out)
    else:
        largest = max(s.num_latents for s in saes.values())
        gs = (int_list(args.granularities) if args.granularities
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


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("frontier", help="fidelity vs granularity (or vs sparsity) of SAEs")
    p.add_argument("sae", nargs="+", help="SAE folders or files (any supported format)")
    p.add_argument("--data", required=True, help=DATA_HELP)
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
    p.add_argument("--data", required=True, help=DATA_HELP)
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
