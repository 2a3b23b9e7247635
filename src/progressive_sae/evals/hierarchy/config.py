"""Settings of the ground-truth hierarchy evaluation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from progressive_sae.config_files import load_yaml
from progressive_sae.data.synthetic import PRESETS, SyntheticActivations, SyntheticConfig
from progressive_sae.errors import PSAEError


@dataclass
class HierarchyConfig:
    """Which rows of a synthetic source are scored, and how intervals are drawn."""

    rows: int = 16384
    """Rows evaluated (encoded once per SAE and granularity view)."""
    first_row: int | None = None
    """First evaluated row; None = the last `rows` rows of the source (held out from
    training, which reads rows from the start)."""
    fire_threshold: float = 0.0
    """A latent fires on a row when its activation exceeds this."""
    resamples: int = 1000
    """Bootstrap resamples of the mean over edges."""
    seed: int = 0
    """Seed of the bootstrap generator."""

    def __post_init__(self) -> None:
        for name in ("rows", "resamples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PSAEError(f"hierarchy {name}={value!r}: expected a positive integer")
        if self.first_row is not None and (
            isinstance(self.first_row, bool) or not isinstance(self.first_row, int)
            or self.first_row < 0
        ):
            raise PSAEError(f"hierarchy first_row={self.first_row!r}: expected an integer ≥ 0")

    def row_range(self, num_rows: int) -> tuple[int, int]:
        """[start, stop) of the evaluated rows in a source of `num_rows` rows."""
        start = max(0, num_rows - self.rows) if self.first_row is None else self.first_row
        stop = min(num_rows, start + self.rows)
        if stop <= start:
            raise PSAEError(f"hierarchy first_row={start}: the source has only {num_rows} rows")
        return start, stop

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def synthetic_hierarchy(spec: str | Path) -> SyntheticActivations:
    """A synthetic source from a preset name (e.g. 'toy_tree') or a YAML file holding
    `synthetic: {fields}` (also under `data:`), where a `preset:` key starts from a preset."""
    if str(spec) in PRESETS:
        return SyntheticActivations(SyntheticConfig.preset(str(spec)))
    path = Path(spec)
    if path.suffix not in (".yaml", ".yml"):
        raise PSAEError(f"--synthetic {str(spec)!r}: expected a preset ({', '.join(PRESETS)}) "
                        "or a YAML file")
    data = load_yaml(path)
    data = data.get("data", data) if isinstance(data.get("data"), dict) else data
    fields = data.get("synthetic")
    if not isinstance(fields, dict):
        raise PSAEError(f"{path}: expected a 'synthetic' mapping of SyntheticConfig fields")
    fields = dict(fields)
    preset = fields.pop("preset", None)
    allowed = {f.name for f in dataclasses.fields(SyntheticConfig)}
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise PSAEError(f"{path}: unknown synthetic key {unknown[0]!r}; expected 'preset' or "
                        f"one of {sorted(allowed)}")
    cfg = SyntheticConfig.preset(preset, **fields) if preset else SyntheticConfig(**fields)
    return SyntheticActivations(cfg)
