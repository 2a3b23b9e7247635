"""Helpers the format converters share: atomic folders, tensor checks and exact folds."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from progressive_sae.errors import PSAEError
from progressive_sae.sae.base import SparseAutoencoder

PROVENANCE_KEY = "progressive_sae"
"""Name of the block that carries our SAEConfig through a foreign format's metadata."""


def one_line(err: BaseException) -> str:
    """An exception's message squeezed onto one line."""
    return " ".join(str(err).split())


def safetensors_header(file: Path) -> tuple[list[str], dict[str, str]]:
    """Tensor names and string metadata of a safetensors file, without reading tensors."""
    if not file.is_file():
        raise PSAEError(f"{file} is missing")
    try:
        with safe_open(str(file), framework="pt") as f:
            return list(f.keys()), dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as err:
        raise PSAEError(f"{file} is not a valid safetensors file ({one_line(err)})") from None


def cpu_tensor(t: torch.Tensor) -> torch.Tensor:
    return t.detach().cpu().contiguous()


def check_shapes(
    tensors: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]], source: str
) -> None:
    """Every expected tensor is present with its shape and a floating dtype."""
    for name, shape in expected.items():
        if name not in tensors:
            raise PSAEError(f"{source} lacks the tensor {name!r}")
        got = tuple(tensors[name].shape)
        if got != shape:
            raise PSAEError(f"{source}: tensor {name!r} has shape {got}, expected {shape}")
        if not tensors[name].is_floating_point():
            raise PSAEError(
                f"{source}: tensor {name!r} has dtype {tensors[name].dtype}, expected floats"
            )


def reject_extra(tensors: Mapping[str, Any], allowed: set[str], source: str) -> None:
    extra = sorted(set(tensors) - allowed)
    if extra:
        raise PSAEError(
            f"{source} holds an unexpected tensor {extra[0]!r}; expected only {sorted(allowed)}"
        )


def fold_input_bias(W_enc: torch.Tensor, b_enc: torch.Tensor, b_dec: torch.Tensor) -> torch.Tensor:
    """b_enc' with x·W_encᵀ + b_enc = (x - b_dec)·W_encᵀ + b_enc' (W_enc is [N, d]).

    Computed in float64, then cast back, so the result is the correctly rounded fold.
    """
    folded = b_enc.double() + W_enc.double() @ b_dec.double()
    return folded.to(b_enc.dtype)


def unfold_input_bias(
    W_enc: torch.Tensor, b_enc: torch.Tensor, b_dec: torch.Tensor
) -> torch.Tensor:
    """Inverse of `fold_input_bias`: the bias for an encoder that does not subtract b_dec."""
    unfolded = b_enc.double() - W_enc.double() @ b_dec.double()
    return unfolded.to(b_enc.dtype)


def jump_threshold(threshold: torch.Tensor) -> torch.Tensor:
    """Our θ for a peer rule relu(pre)·1[pre > θ]: that rule equals pre·1[pre > max(θ, 0)]."""
    return threshold.clamp_min(0.0)


def check_exportable_threshold(sae: SparseAutoencoder, fmt: str) -> torch.Tensor:
    """θ of a JumpReLU or inference BatchTopK SAE, per latent, for peers that ReLU first."""
    activation = sae.cfg.activation
    if activation not in ("jumprelu", "batchtopk"):
        raise PSAEError(
            f"activation={activation!r}: {fmt} export expects 'jumprelu' or 'batchtopk'"
        )
    theta = cpu_tensor(sae.threshold)
    if activation == "batchtopk":
        if float(theta) < 0:
            raise PSAEError(
                f"BatchTopK threshold={float(theta)}: expected θ ≥ 0 for {fmt} export "
                "(θ < 0 means no training batch has estimated it yet)"
            )
        return theta.expand(sae.num_latents).clone()
    if bool((theta < 0).any()):
        raise PSAEError(
            f"JumpReLU threshold min={float(theta.min())}: expected every θ ≥ 0 for {fmt} "
            "export (its rule is relu(pre)·1[pre > θ])"
        )
    return theta


def provenance(sae: SparseAutoencoder) -> dict[str, Any]:
    """Our SAEConfig as a JSON-ready block, so a round trip restores it exactly."""
    cfg = sae.cfg.to_dict()
    try:
        json.dumps(cfg)
    except (TypeError, ValueError) as err:
        raise PSAEError(f"SAE metadata is not JSON-serialisable ({err})") from None
    return cfg


def read_provenance(block: object, source: str) -> dict[str, Any] | None:
    """The SAEConfig block written by `provenance`, or None when absent or unusable."""
    if block is None:
        return None
    if isinstance(block, str):
        try:
            block = json.loads(block)
        except json.JSONDecodeError:
            raise PSAEError(f"{source}: {PROVENANCE_KEY} metadata is not valid JSON") from None
    if not isinstance(block, dict):
        raise PSAEError(f"{source}: {PROVENANCE_KEY} metadata must be a JSON object")
    return block


def check_options(fmt: str, options: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise PSAEError(
            f"option {unknown[0]!r} for format {fmt!r}: expected one of {list(allowed) or 'none'}"
        )
