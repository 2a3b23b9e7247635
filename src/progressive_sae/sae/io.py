"""The native file format: a folder holding cfg.json and sae.safetensors. Never unpickles.

Loading at a granularity G reads only the first G latents' rows of the safetensors file
(its slicing API over a memory map), so memory and load time scale with G, and one
permuted file serves every size: `load_sae(path, granularity=G)` equals
`load_sae(path).truncate(G)` exactly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from progressive_sae.atomic import write_folder
from progressive_sae.errors import PSAEError
from progressive_sae.hub_paths import require_existing
from progressive_sae.json_files import read_json_object, to_json
from progressive_sae.sae.base import SparseAutoencoder
from progressive_sae.sae.batchtopk import BatchTopKSAE
from progressive_sae.sae.config import SAEConfig
from progressive_sae.sae.jumprelu import JumpReLUSAE
from progressive_sae.sae.topk import TopKSAE

CONFIG_FILE = "cfg.json"
WEIGHTS_FILE = "sae.safetensors"

SAE_CLASSES: dict[str, type[SparseAutoencoder]] = {
    "topk": TopKSAE,
    "batchtopk": BatchTopKSAE,
    "jumprelu": JumpReLUSAE,
}


def build_sae(cfg: SAEConfig) -> SparseAutoencoder:
    """A freshly initialised SAE of the architecture `cfg.activation` names."""
    return SAE_CLASSES[cfg.activation](cfg)


def sae_state(sae: SparseAutoencoder) -> dict[str, torch.Tensor]:
    """Every tensor that defines the SAE, contiguous and on CPU, by name."""
    return {name: t.detach().cpu().contiguous() for name, t in sae.state_dict().items()}


def weights_digest(sae: SparseAutoencoder) -> hashlib._Hash:
    """A sha256 over the SAE's tensors (names and fp32 values): the same weights, the same
    digest. Returned unfinished, so a caller can add its own settings before hexdigest()."""
    digest = hashlib.sha256()
    for name, tensor in sorted(sae.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest


def write_sae_files(sae: SparseAutoencoder, folder: Path) -> None:
    """Write cfg.json and sae.safetensors into an existing folder.

    An SAE holding NaN or Inf is never written: such a file would replace good work (a
    diverged run's checkpoint rotating its last finite one away) and load as garbage.
    """
    state = sae_state(sae)
    for name, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise PSAEError(f"the SAE's {name} holds NaN or Inf values: refusing to write it "
                            f"to {folder}")
    (folder / CONFIG_FILE).write_text(to_json(sae.cfg.to_dict(), indent=2) + "\n")
    save_file(state, str(folder / WEIGHTS_FILE))


def save_sae(sae: SparseAutoencoder, path: str | Path, overwrite: bool = False) -> Path:
    """Save to a folder atomically; an existing folder is kept unless `overwrite`."""
    return write_folder(path, overwrite, lambda scratch: write_sae_files(sae, scratch))


def read_config(path: Path) -> SAEConfig:
    cfg_path = path / CONFIG_FILE
    data = read_json_object(cfg_path, f"{path}: expected an SAE folder holding {CONFIG_FILE}")
    return SAEConfig.from_dict(data, source=str(cfg_path))


def read_tensors(
    file: Path, granularity: int | None = None, latent_axes: Mapping[str, int] | None = None,
    num_latents: int | None = None,
) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, turning any corruption into one readable line.

    With `granularity` G, each tensor named in `latent_axes` (name → its latent axis) is
    cut to its first G entries along that axis, and only those bytes are read; its full
    extent there must be `num_latents`, so a file that disagrees with its config is
    refused exactly as a full load would refuse it.
    """
    if not file.is_file():
        raise PSAEError(f"{file} is missing")
    axes = dict(latent_axes or {}) if granularity is not None else {}
    try:
        with safe_open(str(file), framework="pt") as f:
            return {name: _read(f, name, axes.get(name), granularity, num_latents, file)
                    for name in f.keys()}
    except PSAEError:
        raise
    except (SafetensorError, OSError, ValueError) as err:
        raise PSAEError(f"{file} is not a valid safetensors file ({err})") from None


def _read(
    f: object, name: str, axis: int | None, granularity: int | None, num_latents: int | None,
    file: Path,
) -> torch.Tensor:
    if axis is None:
        return f.get_tensor(name)  # type: ignore[attr-defined]
    part = f.get_slice(name)  # type: ignore[attr-defined]
    shape = tuple(part.get_shape())
    if len(shape) <= axis or shape[axis] != num_latents:
        raise PSAEError(f"{file}: tensor {name!r} has shape {shape}, expected "
                        f"{num_latents} latents along axis {axis} from the config")
    index = (slice(None),) * axis + (slice(0, granularity),)
    # A slice of a memory-mapped file may be a strided view into it: own the bytes.
    return part[index].contiguous()


def check_truncation(granularity: int | None, k: int | None) -> None:
    """k names the truncated SAE's k, so it needs a granularity."""
    if granularity is None and k is not None:
        raise PSAEError(f"k={k} without a granularity: k is the truncated SAE's k; "
                        "expected a granularity as well")


def sized_sae(
    cfg: SAEConfig, granularity: int | None = None, k: int | None = None
) -> SparseAutoencoder:
    """An SAE of `cfg`'s architecture with UNINITIALISED weights, to be filled from a file:
    full size, or the shape and config `truncate(granularity, k)` would give.

    The truncation runs on weightless meta tensors, so its rules (k_G, Matryoshka
    granularities, which tensors are per latent) live in one place, and no full-size
    SAE is ever allocated or randomly initialised.
    """
    check_truncation(granularity, k)
    with torch.device("meta"):
        sae = build_sae(cfg)
        if granularity is not None:
            sae = sae.truncate(granularity, k)
    return sae.to_empty(device="cpu")


def load_sae(
    path: str | Path, device: str | torch.device = "cpu", granularity: int | None = None,
    k: int | None = None,
) -> SparseAutoencoder:
    """Load a native SAE folder (cfg.json + sae.safetensors); `path` may be hf://….

    With `granularity` G, only the first G latents are read: the result equals
    `load_sae(path).truncate(G, k)` (k defaults to k_G = round(k·G/N)).
    """
    path = require_existing(path)
    cfg = read_config(path)
    sae = sized_sae(cfg, granularity, k)
    weights = path / WEIGHTS_FILE
    axes = dict.fromkeys(sae.latent_tensors(), 0)
    tensors = read_tensors(weights, granularity, axes, cfg.num_latents)
    load_state_checked(sae, tensors, str(weights))
    return sae.to(device)


def load_state_checked(
    sae: SparseAutoencoder, tensors: dict[str, torch.Tensor], source: str
) -> None:
    """Copy tensors into the SAE after checking every name and shape."""
    expected = sae.state_dict()
    for name, ref in expected.items():
        if name not in tensors:
            raise PSAEError(f"{source} lacks the tensor {name!r}")
        if tuple(tensors[name].shape) != tuple(ref.shape):
            raise PSAEError(
                f"{source}: tensor {name!r} has shape {tuple(tensors[name].shape)}, "
                f"expected {tuple(ref.shape)} from cfg.json"
            )
    extra = sorted(set(tensors) - set(expected))
    if extra:
        raise PSAEError(f"{source} holds an unexpected tensor {extra[0]!r}")
    sae.load_state_dict({name: t.to(expected[name].dtype) for name, t in tensors.items()})
