"""SAELens folders: cfg.json + sae_weights.safetensors (checked against sae-lens 6.54.12).

What SAELens 6.54 reads and writes (sae_lens/saes/*.py, loading/pretrained_sae_loaders.py):

* ``sae_weights.safetensors``: W_enc [d_in, d_sae] (transposed w.r.t. ours), b_enc [d_sae],
  W_dec [d_sae, d_in], b_dec [d_in], plus threshold [d_sae] for 'jumprelu'. Training
  checkpoints of BatchTopK SAEs hold a float64 scalar ``topk_threshold`` instead.
* encode: pre = (x - b_dec·apply_b_dec_to_input) @ W_enc + b_enc; 'topk' keeps the k largest
  and ReLUs them; 'jumprelu' is relu(pre)·1[pre > θ]; 'standard' is relu(pre).
  'topk' with rescale_acts_by_decoder_norm multiplies pre by ‖W_dec[j]‖ and divides the code
  by it again before decoding.
* ``cfg.json``: unknown top-level keys are dropped by the loader, while every key of
  ``metadata`` is kept (and written back by SAELens' own save), so our SAEConfig travels in
  ``metadata.progressive_sae``. A cfg whose metadata lacks ``sae_lens_version`` is treated
  as a pre-6.0 config and rewritten, so exports set it.
* BatchTopK and Matryoshka BatchTopK SAEs are saved for inference as 'jumprelu' with their
  single θ broadcast to every latent and ``metadata.training_architecture`` /
  ``training_architecture_details`` (k, matryoshka_widths) describing the training.

Conversions made here, all exact unless noted:

* TopK ↔ 'topk'; JumpReLU ↔ 'jumprelu'; BatchTopK → 'jumprelu' with θ broadcast, which
  imports back as a JumpReLU SAE whose per-latent θ are all equal (same encodings; k and
  the granularities are kept in the config).
* 'standard' (ReLU) imports as JumpReLU with θ = 0, since pre·1[pre > 0] = relu(pre).
* Peer JumpReLU θ < 0 become 0 (relu(pre)·1[pre > θ] = pre·1[pre > max(θ, 0)]).
* apply_b_dec_to_input = false folds b_dec into b_enc, and rescale_acts_by_decoder_norm
  folds the decoder norms into the encoder (both in float64: equal up to one rounding).
* Tensors load as float32, like native SAEs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from progressive_sae.atomic import write_folder
from progressive_sae.errors import PSAEError
from progressive_sae.formats._common import (
    PROVENANCE_KEY,
    check_exportable_threshold,
    check_options,
    check_shapes,
    cpu_tensor,
    jump_threshold,
    provenance,
    read_provenance,
    reject_extra,
)
from progressive_sae.hub_paths import require_existing
from progressive_sae.json_files import read_json_object
from progressive_sae.sae.base import SparseAutoencoder
from progressive_sae.sae.config import SAEConfig
from progressive_sae.sae.io import read_tensors, sized_sae

CONFIG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
SAELENS_VERSION = "6.54.12"
"""The cfg.json schema version exports declare (the SAELens release they were checked with)."""

EXPORT_OPTIONS = ("model_name", "hook_name", "context_size", "prepend_bos")
PLACEHOLDERS: dict[str, Any] = {
    "model_name": None, "hook_name": None, "context_size": None, "prepend_bos": True,
}
"""Metadata written when neither an option nor our cfg.metadata gives a value
(None = unknown; prepend_bos defaults to SAELens' own default)."""

DTYPE_NAMES = {
    torch.float32: "float32", torch.float64: "float64",
    torch.float16: "float16", torch.bfloat16: "bfloat16",
}
ARCHITECTURES = ("topk", "jumprelu", "standard", "batchtopk", "matryoshka_batchtopk")
BATCHTOPK_ARCHITECTURES = ("batchtopk", "matryoshka_batchtopk")
LATENT_AXES = {"W_enc": 1, "b_enc": 0, "W_dec": 0, "threshold": 0, "log_threshold": 0}
"""The tensors with one entry per latent, by the axis that runs over latents."""


# --- export -----------------------------------------------------------------------------
def export_saelens(
    sae: SparseAutoencoder, path: str | Path, overwrite: bool = False, **options: Any
) -> Path:
    """Write a SAELens folder; options: model_name, hook_name, context_size, prepend_bos."""
    check_options("saelens", options, EXPORT_OPTIONS)
    cfg, tensors = saelens_files(sae, options)

    def fill(folder: Path) -> None:
        (folder / CONFIG_FILE).write_text(json.dumps(cfg, indent=2) + "\n")
        save_file(tensors, str(folder / WEIGHTS_FILE))

    return write_folder(path, overwrite, fill)


def saelens_files(
    sae: SparseAutoencoder, options: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The cfg.json object and the tensors of the SAELens equivalent of `sae`."""
    c = sae.cfg
    dtype = sae.W_enc.dtype
    if dtype not in DTYPE_NAMES:
        raise PSAEError(f"SAE dtype {dtype}: expected one of {list(DTYPE_NAMES.values())}")
    tensors = {
        "W_enc": cpu_tensor(sae.W_enc).t().contiguous(),
        "b_enc": cpu_tensor(sae.b_enc),
        "W_dec": cpu_tensor(sae.W_dec),
        "b_dec": cpu_tensor(sae.b_dec),
    }
    metadata: dict[str, Any] = {"sae_lens_version": SAELENS_VERSION,
                                "sae_lens_training_version": None}
    for key, default in PLACEHOLDERS.items():
        metadata[key] = options.get(key, c.metadata.get(key, default))
    cfg: dict[str, Any] = {
        "d_in": c.d_in, "d_sae": c.num_latents, "dtype": DTYPE_NAMES[dtype], "device": "cpu",
        "apply_b_dec_to_input": True, "normalize_activations": "none",
        "reshape_activations": "none", "metadata": metadata,
    }
    if c.activation == "topk":
        cfg.update(k=c.k, rescale_acts_by_decoder_norm=False, architecture="topk")
    else:
        tensors["threshold"] = check_exportable_threshold(sae, "SAELens").to(dtype)
        cfg["architecture"] = "jumprelu"
        if c.activation == "batchtopk":  # as SAELens saves its own BatchTopK SAEs
            details: dict[str, Any] = {"k": c.k, "rescale_acts_by_decoder_norm": False}
            if c.granularities is not None:
                details["matryoshka_widths"] = list(c.granularities)
            metadata["training_architecture"] = (
                "matryoshka_batchtopk" if c.granularities is not None else "batchtopk"
            )
            metadata["training_architecture_details"] = details
    metadata[PROVENANCE_KEY] = provenance(sae)
    return cfg, tensors


# --- import -----------------------------------------------------------------------------
def load_saelens(
    path: str | Path, granularity: int | None = None, k: int | None = None
) -> SparseAutoencoder:
    """Load a SAELens folder (safetensors + JSON only) as a TopK, JumpReLU or BatchTopK SAE.

    With `granularity` G only the first G latents are read (the first G columns of
    SAELens' [d_in, d_sae] W_enc); the result equals `load_saelens(path).truncate(G, k)`.
    """
    path = require_existing(path)
    cfg_path = path / CONFIG_FILE
    raw = read_json_object(cfg_path, f"{path}: expected a SAELens folder holding {CONFIG_FILE}")
    source = str(cfg_path)
    arch = _architecture(raw, source)
    d_in, d_sae = _int(raw, "d_in", source), _int(raw, "d_sae", source)
    _check_preprocessing(raw, source)
    metadata = raw.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise PSAEError(f"{source}: metadata={metadata!r}: expected a JSON object")
    cfg = _our_config(raw, arch, d_in, d_sae, metadata, source)

    weights = path / WEIGHTS_FILE
    raw_tensors = read_tensors(weights, granularity, LATENT_AXES, d_sae)
    tensors = _normalise_tensor_names(raw_tensors, str(weights))
    g = d_sae if granularity is None else granularity
    expected = {"W_enc": (d_in, g), "b_enc": (g,), "W_dec": (g, d_in), "b_dec": (d_in,)}
    if arch == "jumprelu":
        expected["threshold"] = (g,)
    elif arch in BATCHTOPK_ARCHITECTURES:
        expected["topk_threshold"] = ()
    check_shapes(tensors, expected, str(weights))
    reject_extra(tensors, set(expected), str(weights))

    W_enc, b_enc, W_dec, b_dec = _folded_weights(tensors, raw, arch)
    sae = sized_sae(cfg, granularity, k)
    with torch.no_grad():
        sae.W_enc.copy_(W_enc)
        sae.b_enc.copy_(b_enc)
        sae.W_dec.copy_(W_dec)
        sae.b_dec.copy_(b_dec)
        if arch == "jumprelu":
            sae.threshold.copy_(jump_threshold(tensors["threshold"].float()))
        elif arch in BATCHTOPK_ARCHITECTURES:
            sae.threshold.copy_(tensors["topk_threshold"].float())
        elif arch == "standard":
            sae.threshold.zero_()
    return sae


def _architecture(raw: dict[str, Any], source: str) -> str:
    arch = raw.get("architecture", "standard")
    activation_fn = raw.get("activation_fn", raw.get("activation_fn_str"))
    if arch == "standard" and activation_fn == "topk":  # SAELens < 6 wrote TopK this way
        arch = "topk"
    if arch not in ARCHITECTURES:
        raise PSAEError(
            f"SAELens architecture={arch!r} in {source}: expected one of {list(ARCHITECTURES)}"
        )
    if arch == "standard" and activation_fn not in (None, "relu"):
        raise PSAEError(f"SAELens activation_fn={activation_fn!r} in {source}: expected 'relu'")
    return arch


def _check_preprocessing(raw: dict[str, Any], source: str) -> None:
    norm = raw.get("normalize_activations", "none")
    if norm not in ("none", None, False):
        raise PSAEError(
            f"SAELens normalize_activations={norm!r} in {source}: expected 'none' "
            "(fold the normalisation into the weights first)"
        )
    reshape = raw.get("reshape_activations", "none")
    if reshape not in ("none", "hook_z"):
        raise PSAEError(
            f"SAELens reshape_activations={reshape!r} in {source}: expected 'none' or 'hook_z'"
        )
    if raw.get("finetuning_scaling_factor"):
        raise PSAEError(f"SAELens finetuning_scaling_factor in {source}: expected none")


def _normalise_tensor_names(tensors: dict[str, torch.Tensor], source: str) -> dict[str, Any]:
    """Drop an all-ones scaling_factor and turn an old log_threshold into threshold."""
    if "scaling_factor" in tensors:
        factor = tensors.pop("scaling_factor")
        if not torch.all(factor == 1):
            raise PSAEError(f"{source}: scaling_factor is not all ones; expected no scaling")
    if "log_threshold" in tensors and "threshold" not in tensors:
        tensors["threshold"] = tensors.pop("log_threshold").double().exp().float()
    return tensors


def _folded_weights(
    tensors: dict[str, torch.Tensor], raw: dict[str, Any], arch: str
) -> tuple[torch.Tensor, ...]:
    """W_enc [N, d], b_enc, W_dec, b_dec in our layout, with SAELens' options folded in."""
    W_enc, b_enc, W_dec, b_dec = (tensors[n] for n in ("W_enc", "b_enc", "W_dec", "b_dec"))
    W_enc = W_enc.t()
    apply_b_dec = raw.get("apply_b_dec_to_input", True)
    rescale = arch != "jumprelu" and bool(raw.get("rescale_acts_by_decoder_norm", False))
    if apply_b_dec and not rescale:
        return W_enc.float(), b_enc.float(), W_dec.float(), b_dec.float()
    W_enc, b_enc, W_dec, b_dec = (t.double() for t in (W_enc, b_enc, W_dec, b_dec))
    if not apply_b_dec:  # x·W + b = (x - b_dec)·W + (b + b_dec·W)
        b_enc = b_enc + W_enc @ b_dec
    if rescale:  # ‖W_dec[j]‖·pre_j and z_j/‖W_dec[j]‖, as SAELens' own fold does
        norms = W_dec.norm(dim=1).clamp_min(1e-8)
        W_enc, b_enc, W_dec = W_enc * norms[:, None], b_enc * norms, W_dec / norms[:, None]
    return W_enc.float(), b_enc.float(), W_dec.float(), b_dec.float()


def _our_config(
    raw: dict[str, Any], arch: str, d_in: int, d_sae: int, metadata: dict[str, Any],
    source: str,
) -> SAEConfig:
    block = read_provenance(metadata.get(PROVENANCE_KEY), source)
    if block is not None and (block.get("d_in"), block.get("num_latents")) != (d_in, d_sae):
        block = None  # describes another shape: the file was changed after our export
    details = metadata.get("training_architecture_details")
    details = details if isinstance(details, dict) else {}
    if arch == "topk":
        kwargs = raw.get("activation_fn_kwargs")
        old_k = kwargs.get("k") if isinstance(kwargs, dict) else None
        activation, k = "topk", _whole(raw.get("k", old_k), "k", source)
    elif arch in BATCHTOPK_ARCHITECTURES:
        activation, k = "batchtopk", max(1, round(_number(raw.get("k"), "k", source)))
    else:
        activation = "jumprelu"
        k = 0  # unknown: a JumpReLU SAE's sparsity is set by θ, and it never reads k
        if block is not None and isinstance(block.get("k"), int):
            k = block["k"]
        elif isinstance(details.get("k"), (int, float)) and math.isfinite(details["k"]):
            k = max(0, round(details["k"]))
    if block is not None:
        granularities = block.get("granularities")
        ours = block.get("metadata", {})
    else:
        granularities = details.get("matryoshka_widths", raw.get("matryoshka_widths"))
        ours = {"source_format": "saelens", "saelens_architecture": arch,
                "saelens_metadata": metadata}
        if raw.get("reshape_activations") == "hook_z":
            ours["saelens_reshape_activations"] = "hook_z"
    return SAEConfig(d_in=d_in, num_latents=d_sae, k=k, activation=activation,
                     granularities=list(granularities) if granularities else None,
                     metadata=ours)


def _number(value: object, name: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PSAEError(f"SAELens {name}={value!r} in {source}: expected a number")
    return float(value)


def _whole(value: object, name: str, source: str) -> int:
    number = _number(value, name, source)
    if not number.is_integer():
        raise PSAEError(f"SAELens {name}={value!r} in {source}: expected an integer")
    return int(number)


def _int(raw: dict[str, Any], name: str, source: str) -> int:
    if name not in raw:
        raise PSAEError(f"{source} lacks the required key {name!r}")
    value = _whole(raw[name], name, source)
    if value <= 0:
        raise PSAEError(f"SAELens {name}={value} in {source}: expected a positive integer")
    return value
