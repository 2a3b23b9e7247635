"""GemmaScope ``params.npz`` (JumpReLU SAEs released by Google DeepMind).

Layout: W_enc [d, N], W_dec [N, d], b_enc [N], b_dec [d], threshold [N] (SAELens' GemmaScope
loader also accepts lower-case ``w_enc``/``w_dec``; so does this one). Encoding is
``relu(pre)·1[pre > threshold]`` with ``pre = x @ W_enc + b_enc`` — b_dec is NOT subtracted
from the input (SAELens loads these with apply_b_dec_to_input = false).

Import to our layout folds b_dec into the encoder bias in float64, then casts to float32:
``b_enc = b_enc_gs + b_dec @ W_enc_gs`` and ``W_enc = W_enc_gsᵀ``, so that
``(x - b_dec) @ W_encᵀ + b_enc`` equals GemmaScope's pre-activation up to rounding.
Thresholds θ < 0 become 0 (exact: relu(pre)·1[pre > θ] = pre·1[pre > max(θ, 0)]).

k of the imported JumpReLU SAE (which its rule never reads): the ``average_l0_<n>`` that
names GemmaScope's folders (…/width_16k/average_l0_71/params.npz) when the path has one,
else 0 for "unknown". Files are read with ``allow_pickle=False``: nothing is unpickled.

An npz member is one whole (usually compressed) array, so unlike the safetensors formats a
params.npz cannot be read in part: loading at a granularity G loads it fully, then
truncates (``import_sae(path, granularity=G)``).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import torch

from progressive_sae.atomic import write_folder
from progressive_sae.errors import PSAEError
from progressive_sae.formats._common import (
    check_exportable_threshold,
    cpu_tensor,
    fold_input_bias,
    jump_threshold,
    one_line,
    unfold_input_bias,
)
from progressive_sae.hub_paths import require_existing
from progressive_sae.sae.base import SparseAutoencoder
from progressive_sae.sae.config import SAEConfig
from progressive_sae.sae.jumprelu import JumpReLUSAE

PARAMS_FILE = "params.npz"
KEYS = ("W_enc", "W_dec", "b_enc", "b_dec", "threshold")
AVERAGE_L0 = re.compile(r"average_l0_(\d+)")


def params_file(path: str | Path) -> Path:
    """`path` itself when it is a file, else the params.npz inside the folder."""
    path = require_existing(path)
    if path.is_file():
        return path
    file = path / PARAMS_FILE
    if not file.is_file():
        raise PSAEError(f"{path}: expected a GemmaScope {PARAMS_FILE} or a folder holding one")
    return file


def read_params(file: Path) -> dict[str, np.ndarray]:
    """The five GemmaScope arrays, checked for names and floating dtypes (never unpickled)."""
    try:
        archive = np.load(file, allow_pickle=False)
    except ValueError as err:  # a pickle refuses to load without allow_pickle
        raise PSAEError(f"{file}: {one_line(err)} (pickled data is never loaded)") from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise PSAEError(f"{file} is not a valid .npz file ({one_line(err)})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise PSAEError(f"{file}: expected an .npz archive of arrays, found a single array")
    with archive:
        names = {n[:1].upper() + n[1:] if n.startswith("w_") else n: n for n in archive.files}
        missing = [k for k in KEYS if k not in names]
        if missing:
            raise PSAEError(f"{file} lacks the array {missing[0]!r}; expected {list(KEYS)}")
        try:
            arrays = {k: archive[names[k]] for k in KEYS}
        except ValueError as err:  # object arrays refuse to load without allow_pickle
            raise PSAEError(f"{file}: {one_line(err)} (pickled data is never loaded)") from None
        except (OSError, EOFError, zipfile.BadZipFile) as err:
            raise PSAEError(f"{file} is not a valid .npz file ({one_line(err)})") from None
    for name, array in arrays.items():
        if not np.issubdtype(array.dtype, np.floating):
            raise PSAEError(f"{file}: array {name!r} has dtype {array.dtype}, expected floats")
    return arrays


def load_gemmascope(path: str | Path, k: int | None = None) -> JumpReLUSAE:
    """A GemmaScope params.npz (or a folder holding one) as an exact JumpReLU SAE."""
    file = params_file(path)
    arrays = read_params(file)
    W_enc = arrays["W_enc"]
    if W_enc.ndim != 2:
        raise PSAEError(f"{file}: W_enc has shape {W_enc.shape}, expected [d_in, num_latents]")
    d_in, n = W_enc.shape
    expected = {"W_dec": (n, d_in), "b_enc": (n,), "b_dec": (d_in,), "threshold": (n,)}
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise PSAEError(
                f"{file}: {name} has shape {arrays[name].shape}, expected {shape} "
                f"from W_enc {W_enc.shape}"
            )
    if k is None:
        # The unresolved path first: in the Hugging Face cache the file is a symlink to a
        # blob whose name says nothing.
        found = (AVERAGE_L0.findall(str(file.absolute()))
                 or AVERAGE_L0.findall(str(file.resolve())))
        k = int(found[-1]) if found else 0
    cfg = SAEConfig(d_in=d_in, num_latents=n, k=k, activation="jumprelu",
                    metadata={"source_format": "gemmascope"})
    sae = JumpReLUSAE(cfg)
    t = {name: torch.from_numpy(np.ascontiguousarray(a)) for name, a in arrays.items()}
    W_enc_ours = t["W_enc"].double().t()
    with torch.no_grad():
        sae.W_enc.copy_(W_enc_ours.float())
        sae.b_enc.copy_(fold_input_bias(W_enc_ours, t["b_enc"].double(), t["b_dec"].double()))
        sae.W_dec.copy_(t["W_dec"].float())
        sae.b_dec.copy_(t["b_dec"].float())
        sae.threshold.copy_(jump_threshold(t["threshold"].float()))
    return sae


def export_gemmascope(sae: SparseAutoencoder, path: str | Path, overwrite: bool = False) -> Path:
    """Write `path`/params.npz for a JumpReLU (or inference BatchTopK) SAE; b_dec is unfolded."""
    threshold = check_exportable_threshold(sae, "GemmaScope")
    W_enc = cpu_tensor(sae.W_enc)
    arrays = {
        "W_enc": W_enc.t().contiguous().numpy(),
        "W_dec": cpu_tensor(sae.W_dec).numpy(),
        "b_enc": unfold_input_bias(W_enc, cpu_tensor(sae.b_enc), cpu_tensor(sae.b_dec)).numpy(),
        "b_dec": cpu_tensor(sae.b_dec).numpy(),
        "threshold": threshold.numpy(),
    }

    def fill(folder: Path) -> None:
        np.savez(folder / PARAMS_FILE, **arrays)

    return write_folder(path, overwrite, fill)
