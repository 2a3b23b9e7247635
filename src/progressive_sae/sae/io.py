"""The native file format: a folder holding cfg.json and sae.safetensors. Never unpickles."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from progressive_sae.atomic import write_folder
from progressive_sae.errors import PSAEError
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


def read_tensors(file: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file, turning any corruption into one readable line."""
    if not file.is_file():
        raise PSAEError(f"{file} is missing")
    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError) as err:
        raise PSAEError(f"{file} is not a valid safetensors file ({err})") from None


def load_sae(path: str | Path, device: str | torch.device = "cpu") -> SparseAutoencoder:
    """Load a native SAE folder (cfg.json + sae.safetensors)."""
    path = Path(path)
    if not path.exists():
        raise PSAEError(f"{path} does not exist")
    cfg = read_config(path)
    sae = build_sae(cfg)
    tensors = read_tensors(path / WEIGHTS_FILE)
    load_state_checked(sae, tensors, str(path / WEIGHTS_FILE))
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
