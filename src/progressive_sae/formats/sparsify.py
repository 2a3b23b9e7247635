"""EleutherAI sparsify folders: cfg.json + sae.safetensors (checked against eai-sparsify 1.3.3).

What sparsify 1.3.3 reads and writes (sparsify/sparse_coder.py, config.py, fused_encoder.py):

* one folder per hook point (the trainer saves ``<save_dir>/<hookpoint>/``), holding
  ``cfg.json`` = SparseCoderConfig fields (activation, expansion_factor, normalize_decoder,
  num_latents, k, multi_topk, skip_connection, transcode) + ``d_in``; the loader drops
  unknown keys (with a printed notice) and uses d_in·expansion_factor when num_latents = 0;
* ``sae.safetensors`` = encoder.weight [N, d], encoder.bias [N], W_dec [N, d], b_dec [d]
  (+ W_skip [d, d] with a skip connection), loaded strictly: no other tensor may be there;
* encode: relu((x - b_dec) @ encoder.weightᵀ + encoder.bias), then the k largest
  (b_dec is not subtracted when transcoding); decode: Σ z_j W_dec[j] + b_dec.

That is our TopK SAE exactly (ReLU then top-k equals top-k then ReLU, up to which zero
entries are listed). Our SAEConfig rides along in the safetensors header metadata
(``progressive_sae``), which sparsify ignores, so granularities survive a round trip.
Skip connections, transcoders, 'groupmax' and non-TopK SAEs have no equivalent: refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from progressive_sae.atomic import write_folder
from progressive_sae.errors import PSAEError
from progressive_sae.formats._common import (
    PROVENANCE_KEY,
    check_shapes,
    cpu_tensor,
    provenance,
    read_provenance,
    reject_extra,
    safetensors_header,
)
from progressive_sae.hub_paths import require_existing
from progressive_sae.json_files import read_json_object
from progressive_sae.sae.base import SparseAutoencoder
from progressive_sae.sae.config import SAEConfig
from progressive_sae.sae.io import read_tensors, sized_sae

CONFIG_FILE = "cfg.json"
WEIGHTS_FILE = "sae.safetensors"
EXPORT_OPTIONS = ("hookpoint",)
LATENT_AXES = {"encoder.weight": 0, "encoder.bias": 0, "W_dec": 0}
"""The tensors with one entry per latent, by the axis that runs over latents."""


# --- export -----------------------------------------------------------------------------
def export_sparsify(
    sae: SparseAutoencoder, path: str | Path, overwrite: bool = False,
    hookpoint: str | None = None,
) -> Path:
    """Write a sparsify folder at `path`, or at `path/hookpoint` when a hook point is named."""
    if sae.cfg.activation != "topk":
        raise PSAEError(
            f"activation={sae.cfg.activation!r}: sparsify only has TopK SAEs; expected 'topk'"
        )
    if hookpoint is not None and (not hookpoint or Path(hookpoint).name != hookpoint
                                  or hookpoint in (".", "..")):
        raise PSAEError(f"hookpoint={hookpoint!r}: expected a single folder name")
    cfg, tensors, header = sparsify_files(sae)

    def fill(folder: Path) -> None:
        if hookpoint is not None:
            folder = folder / hookpoint
            folder.mkdir()
        (folder / CONFIG_FILE).write_text(json.dumps(cfg, indent=2) + "\n")
        save_file(tensors, str(folder / WEIGHTS_FILE), metadata=header)

    return write_folder(path, overwrite, fill)


def sparsify_files(
    sae: SparseAutoencoder,
) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, str]]:
    """cfg.json object, tensors and safetensors header metadata of a TopK SAE."""
    c = sae.cfg
    cfg = {
        "activation": "topk",
        "expansion_factor": max(1, c.num_latents // c.d_in),  # unused: num_latents is set
        "normalize_decoder": True,
        "num_latents": c.num_latents,
        "k": c.k,
        "multi_topk": False,
        "skip_connection": False,
        "transcode": False,
        "d_in": c.d_in,
    }
    tensors = {
        "encoder.weight": cpu_tensor(sae.W_enc),
        "encoder.bias": cpu_tensor(sae.b_enc),
        "W_dec": cpu_tensor(sae.W_dec),
        "b_dec": cpu_tensor(sae.b_dec),
    }
    return cfg, tensors, {PROVENANCE_KEY: json.dumps(provenance(sae))}


# --- import -----------------------------------------------------------------------------
def hook_folder(path: str | Path) -> Path:
    """The folder holding cfg.json + sae.safetensors: `path`, or its single hook subfolder."""
    path = require_existing(path)
    if (path / WEIGHTS_FILE).is_file():
        return path
    hooks = []
    if path.is_dir():
        hooks = sorted(p for p in path.iterdir() if (p / WEIGHTS_FILE).is_file())
    if len(hooks) == 1:
        return hooks[0]
    if not hooks:
        raise PSAEError(
            f"{path}: expected a sparsify folder holding {WEIGHTS_FILE} (or one hook folder)"
        )
    raise PSAEError(
        f"{path} holds {len(hooks)} hook folders ({', '.join(p.name for p in hooks[:3])}, …): "
        "expected one; name the hook folder itself"
    )


def load_sparsify(
    path: str | Path, granularity: int | None = None, k: int | None = None
) -> SparseAutoencoder:
    """Load a sparsify TopK SAE (a hook folder, or a folder holding exactly one).

    With `granularity` G only the first G latents' rows are read; the result equals
    `load_sparsify(path).truncate(G, k)`.
    """
    folder = hook_folder(path)
    cfg_path = folder / CONFIG_FILE
    raw = read_json_object(cfg_path, f"{folder}: expected a sparsify folder holding {CONFIG_FILE}")
    source = str(cfg_path)
    for flag in ("skip_connection", "transcode"):
        if raw.get(flag, False):
            raise PSAEError(
                f"sparsify {flag}=true in {source}: expected false (no equivalent here)"
            )
    activation = raw.get("activation", "topk")
    if activation != "topk":
        raise PSAEError(f"sparsify activation={activation!r} in {source}: expected 'topk'")
    d_in = _int(raw, "d_in", source)
    n = raw.get("num_latents", 0) or d_in * _int(raw, "expansion_factor", source, default=32)
    n = _int({"num_latents": n}, "num_latents", source)
    full_k = _int(raw, "k", source, default=32)

    weights = folder / WEIGHTS_FILE
    _, header = safetensors_header(weights)
    tensors = read_tensors(weights, granularity, LATENT_AXES, n)
    if "W_skip" in tensors:
        raise PSAEError(f"{weights} holds W_skip: expected no skip connection")
    g = n if granularity is None else granularity
    expected = {"encoder.weight": (g, d_in), "encoder.bias": (g,), "W_dec": (g, d_in),
                "b_dec": (d_in,)}
    check_shapes(tensors, expected, str(weights))
    reject_extra(tensors, set(expected), str(weights))

    block = read_provenance(header.get(PROVENANCE_KEY), str(weights))
    if block is not None and (block.get("d_in"), block.get("num_latents")) != (d_in, n):
        block = None
    if block is not None:
        granularities, metadata = block.get("granularities"), block.get("metadata", {})
    else:
        granularities, metadata = None, {"source_format": "sparsify", "hookpoint": folder.name}
    cfg = SAEConfig(d_in=d_in, num_latents=n, k=full_k, activation="topk",
                    granularities=granularities, metadata=metadata)
    sae = sized_sae(cfg, granularity, k)
    with torch.no_grad():
        sae.W_enc.copy_(tensors["encoder.weight"].float())
        sae.b_enc.copy_(tensors["encoder.bias"].float())
        sae.W_dec.copy_(tensors["W_dec"].float())
        sae.b_dec.copy_(tensors["b_dec"].float())
    return sae


def _int(raw: dict[str, Any], name: str, source: str, default: int | None = None) -> int:
    value = raw.get(name, default)
    if value is None:
        raise PSAEError(f"{source} lacks the required key {name!r}")
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise PSAEError(f"sparsify {name}={value!r} in {source}: expected a positive integer")
    return value
