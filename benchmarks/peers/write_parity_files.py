"""Write the peer-parity fixtures of the test suite: SAE files saved by the real packages,
with the codes those packages compute from them.

    .venv/bin/python benchmarks/peers/write_parity_files.py [--out tests/formats/peer_files]

SAELens 6.54.12 and sparsify 1.3.3, each in its own virtual environment (setup_venv.py),
build small random SAEs (d=64, N=256, k=8: TopK, JumpReLU, standard ReLU, BatchTopK saved
for inference; a sparsify TopK in the trainer's one-folder-per-hook layout), save them
with their own save functions, and encode the same 512 fixed inputs with their own
`encode` on the CPU (fp32). The test `tests/formats/test_peer_files.py` imports each file
and requires our default encoder to pick the same latents with the same values.

Writes into --out: x.npy, one folder per SAE as the package wrote it, and beside each
`<name>.codes.safetensors` (`values`, `indices`: each row's non-zero entries, zero-padded).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from check_formats import SAELENS_DRIVER, SPARSIFY_DRIVER, run_driver  # noqa: E402
from setup_venv import ensure_peer_venv  # noqa: E402

D, N, K, ROWS = 64, 256, 8, 512
KINDS = {"saelens": ["topk", "jumprelu", "standard", "batchtopk"], "sparsify": ["topk"]}


def inputs() -> torch.Tensor:
    """LM-like rows: a few dimensions much larger than the rest."""
    x = torch.randn(ROWS, D, generator=torch.Generator().manual_seed(3))
    x[:, :2] *= 8.0
    return x


def compact(z: np.ndarray) -> dict[str, torch.Tensor]:
    """A dense code [rows, N] as each row's non-zero entries, zero-padded, latent order."""
    dense = torch.from_numpy(z)
    width = max(1, int((dense != 0).sum(1).max()))
    values, indices = dense.abs().topk(width, dim=1)
    order = indices.argsort(dim=1)
    indices = indices.gather(1, order)
    values = dense.gather(1, indices) * (values.gather(1, order) != 0)
    return {"values": values.contiguous(), "indices": indices.to(torch.int16).contiguous()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=HERE.parents[1] / "tests" / "formats" / "peer_files")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="parity_"))
    x = inputs()
    np.save(work / "x.npy", x.numpy())
    pythons = {peer: ensure_peer_venv(peer, HERE.parent / ".venvs") for peer in KINDS}
    for peer, kinds in KINDS.items():
        spec = {"x": str(work / "x.npy"), "d": D, "n": N, "k": K, "load": [],
                "gemmascope": [], "create": [
                    {"kind": kind, "path": str(work / f"{peer}_{kind}"),
                     "out": str(work / f"codes_{peer}_{kind}")} for kind in kinds]}
        run_driver(pythons[peer], SAELENS_DRIVER if peer == "saelens" else SPARSIFY_DRIVER,
                   spec, work, peer)
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    shutil.copy(work / "x.npy", args.out / "x.npy")
    written = {}
    for peer, kinds in KINDS.items():
        for kind in kinds:
            name = f"{peer}_{kind}"
            shutil.copytree(work / name, args.out / name)
            codes = compact(np.load(work / f"codes_{name}_z.npy"))
            save_file(codes, str(args.out / f"{name}.codes.safetensors"))
            written[name] = {"rows": ROWS, "mean_l0": float((codes["values"] != 0).sum(1)
                                                            .float().mean())}
    (args.out / "README.json").write_text(json.dumps({
        "written_by": "benchmarks/peers/write_parity_files.py",
        "peers": {"saelens": "sae-lens 6.54.12", "sparsify": "eai-sparsify 1.3.3"},
        "torch": torch.__version__, "d_in": D, "num_latents": N, "k": K, "saes": written,
    }, indent=2) + "\n")
    print(f"wrote {args.out}: " + ", ".join(f"{n} (L0 {w['mean_l0']:.1f})"
                                           for n, w in written.items()))


if __name__ == "__main__":
    main()
