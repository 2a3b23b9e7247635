"""Create the isolated virtual environments the peer drivers run in.

Each peer library gets its own venv because their dependency trees (and the
torch they would pull in) must not leak into ours or into each other's. torch
is installed first, pinned, and then held fixed through a pip constraints
file: an unpinned resolve would replace the CPU build with a multi-GB CUDA
build.

Usable as a library (``ensure_peer_venv``) or as a script::

    python benchmarks/peers/setup_venv.py sparsify saelens --root /tmp/peers
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


def _spec(name: str) -> dict[str, object]:
    return {"name": name, "torch": TORCH_PIN, "requirements": PEER_REQUIREMENTS[name]}


def _is_complete(venv: Path, name: str) -> bool:
    marker = venv / MARKER
    if not (marker.is_file() and _venv_python(venv).exists()):
        return False
    try:
        return json.loads(marker.read_text()) == _spec(name)
    except (OSError, json.JSONDecodeError):
        return False


def _run(cmd: list[str], log_path: Path) -> None:
    """Run ``cmd`` with output appended to ``log_path`` (pip is very chatty)."""
    with log_path.open("a") as log:
        log.write(f"\n$ {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        tail = log_path.read_text().splitlines()[-30:]
        raise RuntimeError(
            f"command failed ({proc.returncode}): {' '.join(cmd)}\n"
            f"--- last lines of {log_path} ---\n" + "\n".join(tail)
        )


def ensure_peer_venv(name: str, root: Path) -> Path:
    """Make sure ``root/name`` is a complete venv for peer ``name``.

    Idempotent: returns immediately when the completion marker matches the
    current pins; otherwise (re)builds the venv. Concurrent callers are
    serialised with a lock file so two benchmark runs cannot install into the
    same venv at once.

    Returns the path of the venv's python interpreter.
    """
    if name not in PEER_REQUIREMENTS:
        raise ValueError(f"unknown peer {name!r}; expected one of {list(PEER_REQUIREMENTS)}")
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    venv = root / name

    with (root / f".{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_complete(venv, name):
            return _venv_python(venv)

        # A venv without the marker is the remains of an interrupted or
        # outdated build; starting clean is cheaper than diagnosing it.
        if venv.exists():
            shutil.rmtree(venv)
        log_path = root / f"{name}.log"
        log_path.write_text("")
        print(f"[setup_venv] building {venv} (log: {log_path})", file=sys.stderr)

        _run([sys.executable, "-m", "venv", str(venv)], log_path)
        python = str(_venv_python(venv))
        pip = [python, "-m", "pip", "install", "--disable-pip-version-check"]
        # torch on its own first, so that it is the pinned build that lands
        # and the second resolve only has to honour it.
        _run([*pip, TORCH_PIN], log_path)
        constraints = venv / "constraints.txt"
        constraints.write_text(TORCH_PIN + "\n")
        _run([*pip, "-c", str(constraints), *PEER_REQUIREMENTS[name]], log_path)

        # Fail here rather than in the middle of a benchmark if the resolve
        # moved torch after all.
        check = subprocess.run(
            [python, "-c", "import torch; print(torch.__version__)"],
            capture_output=True,
            text=True,
            check=True,
        )
        got = check.stdout.strip().split("+")[0]
        if got != TORCH_PIN.split("==")[1]:
            raise RuntimeError(f"{venv}: torch {check.stdout.strip()} != {TORCH_PIN}")

        # Atomic write: a half-written marker must never look complete.
        with tempfile.NamedTemporaryFile("w", dir=venv, delete=False) as tmp:
            json.dump(_spec(name), tmp)
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
    args = p.parse_args()
    unknown = set(args.peers) - set(PEER_REQUIREMENTS)
    if unknown:
        p.error(f"unknown peer(s): {sorted(unknown)}")
    for name in args.peers or list(PEER_REQUIREMENTS):
        print(f"{name}\t{ensure_peer_venv(name, args.root)}")


if __name__ == "__main__":
    main()
