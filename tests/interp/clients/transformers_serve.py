"""`transformers serve` (transformers[serving]) as a real OpenAI-compatible server on 127.0.0.1.

One process group per start (the server runs its model in a child process): `kill` SIGKILLs the
whole group, as a crash or an OOM kill would, and `start` brings it back on the same port.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

SERVER_PACKAGES = ("fastapi", "uvicorn", "openai")


def missing_packages() -> list[str]:
    return [name for name in SERVER_PACKAGES if importlib.util.find_spec(name) is None]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TransformersServe:
    """`transformers serve MODEL` pinned to one model folder; `url` is the base URL (…/v1)."""

    def __init__(self, model: Path, log: Path, port: int | None = None) -> None:
        self.model = str(model)
        self.port = port or free_port()
        self.log = log
        self.process: subprocess.Popen | None = None
        self.starts: list[float] = []
        """Seconds each start took until /health answered."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 180.0) -> None:
        script = Path(sys.executable).with_name("transformers")
        command = ([str(script)] if script.is_file()
                   else [sys.executable, "-m", "transformers.cli.transformers"])
        # One torch thread: on shared cores OpenMP's spinning threads were slower (conftest).
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
        began = time.perf_counter()
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [*command, "serve", self.model, "--host", "127.0.0.1", "--port", str(self.port),
                 "--device", "cpu", "--log-level", "warning"],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        while time.perf_counter() - began < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {self.process.returncode}: "
                                   f"{self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2):
                    self.starts.append(time.perf_counter() - began)
                    return
            except OSError:
                time.sleep(0.25)
        self.kill()
        raise RuntimeError(f"transformers serve did not answer /health within {timeout:.0f} s")

    def kill(self) -> None:
        """SIGKILL the server and its model process; returns once they are gone."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        self.process = None

    def __enter__(self) -> TransformersServe:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
