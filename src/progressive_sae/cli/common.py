"""Argument parsing shared by the command modules."""

from __future__ import annotations

from typing import Any

import yaml

from progressive_sae.errors import PSAEError

DATA_HELP = "activations: an activation-cache folder, a .npy file or a YAML config with 'data'"
"""What every --data takes (`config_files.data_source`)."""


def parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise PSAEError(f"--set {text!r}: expected KEY=VALUE")
    key, value = text.split("=", 1)
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        raise PSAEError(f"--set {text!r}: the value is not valid YAML") from None


def int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise PSAEError(f"{text!r}: expected comma-separated integers such as 256,1024") from None


def section(config: dict[str, Any], name: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    section = config.get(name) or {}
    if not isinstance(section, dict):
        raise PSAEError(f"'{name}' must be a mapping of settings")
    unknown = sorted(set(section) - set(allowed))
    if unknown:
        raise PSAEError(f"unknown key {unknown[0]!r} in '{name}'; expected one of {list(allowed)}")
    return dict(section)
