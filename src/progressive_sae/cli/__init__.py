"""`psae`: parses arguments and calls the library. Bad input → one line, exit code 2.

Each command group lives in its own module with a `register(sub)` that adds its
sub-commands; a command function only parses, calls the Python API and prints.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

from progressive_sae.errors import PSAEError

COMMAND_MODULES = ("training", "sae_files", "experiment", "analysis", "browse", "interp", "probing",
                   "absorption", "correlation", "distill")
"""Modules of `progressive_sae.cli`, in the order their commands appear in --help."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="psae", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        import_module(f"progressive_sae.cli.{name}").register(sub)
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
