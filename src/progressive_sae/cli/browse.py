"""`psae browse`: the feature browser of one SAE, as one self-contained HTML page."""

from __future__ import annotations

import argparse

from progressive_sae.cli.common import DATA_HELP


def cmd_browse(args: argparse.Namespace) -> None:
    from progressive_sae.interp.browser import build_browser

    result = build_browser(
        args.sae, args.data, args.out, granularity=args.granularity, mode=args.mode,
        lm=args.lm, scores=args.scores, records=args.records, latents=args.latents,
        scores_name=args.scores_name,
        progress=not args.quiet,
    )
    for note in result.notes:
        print(f"note: {note}")
    print(f"wrote {result.page} ({result.latents} latents, {result.bytes / 2**20:.1f} MiB, "
          f"{result.seconds:.1f} s); open it in a browser (file:// works)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("browse", help="write a self-contained HTML feature browser of an SAE")
    p.add_argument("sae", help="SAE folder (any supported format)")
    p.add_argument("--data", required=True,
                   help=DATA_HELP + "; with token ids (from `psae extract`)")
    p.add_argument("--out", required=True, help="output folder (DIR/index.html is written)")
    p.add_argument("--granularity", "-g", type=int, default=None,
                   help="browse the first G latents (default: all)")
    p.add_argument("--mode", choices=["relative", "prefix"], default="relative",
                   help="at G: re-encode with k_G (relative) or drop latents ≥ G (prefix)")
    p.add_argument("--lm", default=None,
                   help="LM for token text and logit effects (default: the cache's model "
                        "when it is at hand, e.g. offline-default)")
    p.add_argument("--scores", default=None,
                   help="`psae interp` output folder (e.g. runs/demo/interp): explanations and "
                        "scores per latent, found for this SAE by its folder name or weights")
    p.add_argument("--scores-name", default=None,
                   help="the SAE's name in the --scores folder (e.g. 'TopK permuted by E[z²]') "
                        "when neither its folder name nor its weights identify it")
    p.add_argument("--records", default=None,
                   help="latent records folder: reused when finished, else written there")
    p.add_argument("--latents", type=int, default=None,
                   help="list only the first N latents")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_browse)
