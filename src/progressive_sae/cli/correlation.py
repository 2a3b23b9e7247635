"""`psae correlation`: how FVU, recaptured LM loss and RSA agree over a run's points."""

from __future__ import annotations

import argparse


def cmd_correlation(args: argparse.Namespace) -> None:
    from progressive_sae.analysis.correlation import correlation_files
    from progressive_sae.analysis.frontier import read_result_points

    result, written = correlation_files(read_result_points(args.results), args.out)
    for line in result.describe():
        print(line)
    print("wrote " + ", ".join(map(str, written)))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("correlation", help="Pearson/Spearman correlations between FVU, "
                       "CE_clean/CE_spliced and RSA over a run's scored points, with scatters")
    p.add_argument("results", help="results.json of psae run (its 'points'), or frontier.json")
    p.add_argument("--out", required=True, help="folder for correlation.json and the PNG")
    p.set_defaults(func=cmd_correlation)
