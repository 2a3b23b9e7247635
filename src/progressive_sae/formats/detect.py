"""Which format a path holds, from the files present (nothing is loaded but headers)."""

from __future__ import annotations

from pathlib import Path

from progressive_sae.errors import PSAEError
from progressive_sae.formats import gemmascope, saelens, sparsify
from progressive_sae.formats._common import safetensors_header
from progressive_sae.hub_paths import require_existing
from progressive_sae.sae import io as native

EXPECTED = (
    f"expected {native.CONFIG_FILE} + {native.WEIGHTS_FILE} (native or sparsify), "
    f"{saelens.WEIGHTS_FILE} (saelens) or {gemmascope.PARAMS_FILE} (gemmascope)"
)


def detect_format(path: str | Path) -> str:
    """'native', 'saelens', 'sparsify' or 'gemmascope', judged from the files at `path`."""
    path = require_existing(path)
    if path.is_file():
        if path.suffix == ".npz":
            return "gemmascope"
        raise PSAEError(f"{path} is a file: {EXPECTED} in a folder, or a .npz file")
    if (path / gemmascope.PARAMS_FILE).is_file():
        return "gemmascope"
    if (path / saelens.WEIGHTS_FILE).is_file():
        return "saelens"
    if (path / native.WEIGHTS_FILE).is_file():
        return _native_or_sparsify(path / native.WEIGHTS_FILE)
    hooks = [p for p in sorted(path.iterdir()) if (p / sparsify.WEIGHTS_FILE).is_file()]
    if len(hooks) == 1 and _native_or_sparsify(hooks[0] / sparsify.WEIGHTS_FILE) == "sparsify":
        return "sparsify"
    if len(hooks) > 1:
        raise PSAEError(
            f"{path} holds {len(hooks)} SAE folders: expected one; name the one to import"
        )
    if (path / native.CONFIG_FILE).is_file():
        raise PSAEError(f"{path} holds {native.CONFIG_FILE} but its weights are missing: "
                        f"expected {native.WEIGHTS_FILE} (native or sparsify) or "
                        f"{saelens.WEIGHTS_FILE} (saelens) beside it")
    raise PSAEError(f"{path}: no SAE files found; {EXPECTED}")


def _native_or_sparsify(weights: Path) -> str:
    names, _ = safetensors_header(weights)
    if "encoder.weight" in names:
        return "sparsify"
    if "W_enc" in names:
        return "native"
    raise PSAEError(
        f"{weights} holds neither 'W_enc' (native) nor 'encoder.weight' (sparsify) tensors"
    )
