"""Reading the JSON files the project writes (configs, manifests, checkpoint state)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
