"""Export SAEs to, and import them from, the formats of other libraries.

* ``native``: this library's folder (cfg.json + sae.safetensors), see ``sae/io.py``;
* ``saelens``: SAELens 6.x folders (cfg.json + sae_weights.safetensors), see ``saelens.py``;
* ``sparsify``: EleutherAI sparsify hook folders (cfg.json + sae.safetensors with
  ``encoder.weight``), see ``sparsify.py``;
* ``gemmascope``: GemmaScope ``params.npz`` (import; export of JumpReLU SAEs too).

Every reader accepts ``hf://ORG/REPO[@REVISION][/FOLDER]`` paths as well (see
``progressive_sae/hub_paths.py``) and can load just the first G latents
(``import_sae(path, granularity=G)``).

Every write is atomic and refuses to replace an existing path unless ``overwrite``. Every
read is safetensors, JSON or ``np.load(allow_pickle=False)``: nothing is ever unpickled.
Round trips through native, saelens and sparsify give bit-identical tensors and configs,
except that SAELens stores BatchTopK as JumpReLU (see ``saelens.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from progressive_sae.errors import PSAEError
from progressive_sae.formats import sparsify
from progressive_sae.formats._common import check_options
from progressive_sae.formats.detect import detect_format
from progressive_sae.formats.gemmascope import export_gemmascope, load_gemmascope
from progressive_sae.formats.saelens import export_saelens, load_saelens
from progressive_sae.formats.sparsify import export_sparsify, load_sparsify
from progressive_sae.hub_paths import require_existing
from progressive_sae.sae.base import SparseAutoencoder
from progressive_sae.sae.io import check_truncation, load_sae, save_sae

FORMATS = ("native", "saelens", "sparsify", "gemmascope")

__all__ = ["FORMATS", "detect_format", "export_sae", "import_sae"]


def _check_format(format: str) -> None:
    if format not in FORMATS:
        raise PSAEError(f"format={format!r}: expected one of {list(FORMATS)}")


def export_sae(
    sae: SparseAutoencoder, path: str | Path, format: str, overwrite: bool = False,
    **format_options: Any,
) -> Path:
    """Write `sae` to the folder `path` in `format`; returns `path`.

    Options: saelens — model_name, hook_name, context_size, prepend_bos (metadata, taken
    from ``sae.cfg.metadata`` when not given); sparsify — hookpoint (write the SAE into
    ``path/hookpoint``, as sparsify's trainer lays out its runs). native and gemmascope
    take none.
    """
    _check_format(format)
    if format == "saelens":
        return export_saelens(sae, path, overwrite, **format_options)
    if format == "sparsify":
        check_options(format, format_options, sparsify.EXPORT_OPTIONS)
        return export_sparsify(sae, path, overwrite, **format_options)
    check_options(format, format_options, ())
    if format == "gemmascope":
        return export_gemmascope(sae, path, overwrite)
    return save_sae(sae, path, overwrite=overwrite)


def import_sae(
    path: str | Path, format: str | None = None, device: str | torch.device = "cpu",
    granularity: int | None = None, k: int | None = None,
) -> SparseAutoencoder:
    """Load the SAE at `path` (a local path or hf://ORG/REPO[@REV][/FOLDER]), in `format`
    or in the format its files show.

    With `granularity` G the result equals ``import_sae(path).truncate(G, k)`` (k defaults
    to k_G = round(k·G/N)); native, SAELens and sparsify files read only the first G
    latents' rows, so memory and time scale with G. A GemmaScope params.npz cannot be read
    in part (npz members are whole, usually compressed arrays): it is loaded fully, then
    truncated.
    """
    path = require_existing(path)  # resolve hf:// once, not in every reader
    if format is None:
        format = detect_format(path)
    _check_format(format)
    if format == "native":
        return load_sae(path, device=device, granularity=granularity, k=k)
    if format == "gemmascope":
        check_truncation(granularity, k)
        sae = load_gemmascope(path)
        if granularity is not None:
            sae = sae.truncate(granularity, k)
        return sae.to(device)
    loaders = {"saelens": load_saelens, "sparsify": load_sparsify}
    return loaders[format](path, granularity, k).to(device)
