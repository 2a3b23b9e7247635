"""Errors meant for people: one line naming the value and what was expected."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class PSAEError(ValueError):
    """Bad input from a user: the CLI prints the message alone and exits with code 2."""


def first_line(err: BaseException) -> str:
    """'ErrorType: first line of its message', to quote a library's error in one line."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def check_settings(data: Any, known: Sequence[str], where: str,
                   required: Sequence[str] = ()) -> None:
    """One line for a settings mapping that is not a mapping, holds a key outside `known`,
    or lacks one of `required`."""
    if not isinstance(data, dict):
        raise PSAEError(f"{where} {data!r}: expected a mapping of settings")
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise PSAEError(f"unknown key {unknown[0]!r} in {where}; expected keys: {list(known)}")
    missing = [k for k in required if k not in data]
    if missing:
        raise PSAEError(f"{where} lacks the required key {missing[0]!r}")
