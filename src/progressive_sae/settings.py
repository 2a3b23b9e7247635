"""`from_mapping`: a settings dataclass built from a YAML mapping, unknown keys one clear error.

It sits below every config module (experiment, interp, …) so that each can build its sections
with it without importing another's config.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from progressive_sae.errors import PSAEError

T = TypeVar("T")


def from_mapping(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass `cls` from a YAML mapping; unknown keys are one clear error."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PSAEError(f"'{where}' must be a mapping of settings, got {data!r}")
    known = [f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise PSAEError(f"unknown key {unknown[0]!r} in '{where}'; expected one of {known}")
    try:
        return cls(**data)
    except TypeError as err:
        raise PSAEError(f"'{where}': {err}") from None
