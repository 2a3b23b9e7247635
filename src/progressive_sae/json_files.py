"""Reading and writing the JSON files the project writes (configs, manifests, checkpoint state)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from progressive_sae.errors import PSAEError


def read_json_object(file: Path, missing: str) -> dict[str, Any]:
    """The JSON object in `file`; one PSAEError line (`missing` if absent) otherwise."""
    if not file.is_file():
        raise PSAEError(missing)
    try:
        data = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PSAEError(f"{file} is not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise PSAEError(f"{file}: expected a JSON object")
    return data


def finite_or_none(value: Any) -> Any:
    """`value` with every non-finite float (NaN, ±Infinity) replaced by None, recursively.

    Python's json writes NaN/Infinity literals that no other JSON reader accepts; what we
    write must load anywhere, so an undefined number is written as null.
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def to_json(value: Any, **options: Any) -> str:
    """Strict JSON text of `value` (non-finite floats become null; see finite_or_none)."""
    return json.dumps(finite_or_none(value), allow_nan=False, **options)
