"""Create the isolated virtual environments the peer drivers run in.

Each peer library gets its own venv because their dependency trees (and the
torch they would pull in) must not leak into ours or into each other's. torch
is installed first, pinned, and then held fixed through a pip constraints
file: an unpinned resolve would replace the CPU build with a multi-GB CUDA
build.

Usable as a library (``ensure_peer_venv``) or as a script::

    python benchmarks/peers/setup_venv.py sparsify saelens --root /tmp/peers

For a machine without internet (e.g. a GPU box), fetch the wheels where there is
internet and install from them there, without any index::

    python benchmarks/peers/setup_venv.py --device cuda --download-only WHEELS
    python benchmarks/peers/setup_venv.py --device cuda --wheels WHEELS
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TORCH_PIN = "torch==2.13.0"
DEVICES = ("cpu", "cuda")
"""cpu: whichever torch 2.13.0 build the configured index serves (the CPU build here);
cuda: PyPI's default Linux build, which bundles CUDA and Triton (sparsify's kernels)."""

#: Peer name -> the pinned requirements installed on top of torch.
PEER_REQUIREMENTS: dict[str, list[str]] = {
    "sparsify": ["eai-sparsify==1.3.3", "numpy", "psutil"],
    "saelens": ["sae-lens==6.54.12", "numpy", "psutil"],
}

#: Written last, once every install succeeded; its content records what the
#: venv was built with, so a change of pins triggers a rebuild.
MARKER = ".peer_venv_complete.json"


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _spec(name: str, device: str = "cpu") -> dict[str, object]:
    spec: dict[str, object] = {
        "name": name, "torch": TORCH_PIN, "requirements": PEER_REQUIREMENTS[name]
    }
    if device != "cpu":  # CPU venvs built before devices existed stay valid
        spec["device"] = device
    return spec


def venv_name(name: str, device: str = "cpu") -> str:
    """Folder of a peer's venv: CPU and CUDA builds of torch live side by side."""
    return name if device == "cpu" else f"{name}-{device}"


def _torch_index(device: str) -> list[str]:
    # The CUDA build comes from PyPI itself; a local CPU mirror must not shadow it.
    return ["--index-url", "https://pypi.org/simple"] if device == "cuda" else []


def download_wheels(names: list[str], dest: Path, device: str = "cpu") -> Path:
    """`pip download` torch and each peer's requirements (and their dependencies) to dest."""
    dest = Path(dest).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    log_path = dest / "download.log"
    pip = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
           "--dest", str(dest)]
    _run([*pip, *_torch_index(device), TORCH_PIN], log_path, device)
    constraints = dest / "constraints.txt"
    constraints.write_text(TORCH_PIN + "\n")
    for name in names:
        _run([*pip, *_torch_index(device), "-c", str(constraints), TORCH_PIN,
              *PEER_REQUIREMENTS[name]], log_path, device)
    return dest


def _is_complete(venv: Path, name: str, device: str = "cpu") -> bool:
    marker = venv / MARKER
    if not (marker.is_file() and _venv_python(venv).exists()):
        return False
    try:
        return json.loads(marker.read_text()) == _spec(name, device)
    except (OSError, json.JSONDecodeError):
        return False


def _run(cmd: list[str], log_path: Path, device: str = "cpu") -> None:
    """Run ``cmd`` with output appended to ``log_path`` (pip is very chatty)."""
    env = None
    if device == "cuda":
        # A configured local mirror or find-links folder may hold torch 2.13.0+cpu, which
        # pip prefers over the plain 2.13.0 (CUDA) wheel: read no pip configuration at all.
        env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}
    with log_path.open("a") as log:
        log.write(f"\n$ {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False, env=env)
    if proc.returncode != 0:
        tail = log_path.read_text().splitlines()[-30:]
        raise RuntimeError(
            f"command failed ({proc.returncode}): {' '.join(cmd)}\n"
            f"--- last lines of {log_path} ---\n" + "\n".join(tail)
        )


def ensure_peer_venv(name: str, root: Path, device: str = "cpu",
                     wheels: Path | None = None) -> Path:
    """Make sure ``root/name`` (``root/name-cuda`` for cuda) is a complete venv for peer ``name``.

    With ``wheels`` (a folder from :func:`download_wheels`) pip installs from it alone,
    with no index: for machines without internet.

    Idempotent: returns immediately when the completion marker matches the
    current pins; otherwise (re)builds the venv. Concurrent callers are
    serialised with a lock file so two benchmark runs cannot install into the
    same venv at once.

    Returns the path of the venv's python interpreter.
    """
    if name not in PEER_REQUIREMENTS:
        raise ValueError(f"unknown peer {name!r}; expected one of {list(PEER_REQUIREMENTS)}")
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; expected one of {list(DEVICES)}")
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    venv = root / venv_name(name, device)

    with (root / f".{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_complete(venv, name, device):
            return _venv_python(venv)

        # A venv without the marker is the remains of an interrupted or
        # outdated build; starting clean is cheaper than diagnosing it.
        if venv.exists():
            shutil.rmtree(venv)
        log_path = root / f"{venv.name}.log"
        log_path.write_text("")
        print(f"[setup_venv] building {venv} (log: {log_path})", file=sys.stderr)

        _run([sys.executable, "-m", "venv", str(venv)], log_path)
        python = str(_venv_python(venv))
        pip = [python, "-m", "pip", "install", "--disable-pip-version-check"]
        if wheels is not None:
            pip += ["--no-index", "--find-links", str(Path(wheels).resolve())]
        else:
            pip += _torch_index(device)
        # torch on its own first, so that it is the pinned build that lands
        # and the second resolve only has to honour it.
        _run([*pip, TORCH_PIN], log_path, device)
        constraints = venv / "constraints.txt"
        constraints.write_text(TORCH_PIN + "\n")
        _run([*pip, "-c", str(constraints), *PEER_REQUIREMENTS[name]], log_path, device)

        # Fail here rather than in the middle of a benchmark if the resolve
        # moved torch after all.
        check = subprocess.run(
            [python, "-c", "import torch; print(torch.__version__, torch.version.cuda)"],
            capture_output=True,
            text=True,
            check=True,
        )
        version, cuda = check.stdout.split()
        if version.split("+")[0] != TORCH_PIN.split("==")[1]:
            raise RuntimeError(f"{venv}: torch {version} != {TORCH_PIN}")
        if device == "cuda" and cuda == "None":
            raise RuntimeError(f"{venv}: torch {version} was built without CUDA")

        # Atomic write: a half-written marker must never look complete.
        with tempfile.NamedTemporaryFile("w", dir=venv, delete=False) as tmp:
            json.dump(_spec(name, device), tmp)
        os.replace(tmp.name, venv / MARKER)
        return _venv_python(venv)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # No argparse default/choices here: with nargs="*" argparse validates a
    # list default against the choices as a whole and rejects it.
    p.add_argument("peers", nargs="*", help=f"any of {list(PEER_REQUIREMENTS)} (default: all)")
    p.add_argument(
        "--root", type=Path, default=Path(tempfile.gettempdir()) / "progressive_sae_peers"
    )
    p.add_argument("--device", choices=DEVICES, default="cpu", help="which torch build")
    p.add_argument("--download-only", type=Path, metavar="DIR",
                   help="only download the wheels into DIR (needs an index)")
    p.add_argument("--wheels", type=Path, metavar="DIR",
                   help="install from the wheels in DIR only (no index, no internet)")
    args = p.parse_args()
    unknown = set(args.peers) - set(PEER_REQUIREMENTS)
    if unknown:
        p.error(f"unknown peer(s): {sorted(unknown)}")
    names = args.peers or list(PEER_REQUIREMENTS)
    if args.download_only is not None:
        print(download_wheels(names, args.download_only, args.device))
        return
    for name in names:
        print(f"{name}\t{ensure_peer_venv(name, args.root, args.device, args.wheels)}")


if __name__ == "__main__":
    main()
