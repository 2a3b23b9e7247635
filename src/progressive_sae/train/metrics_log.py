"""The run's metrics: one JSON line per logged step, optionally mirrored to wandb."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from progressive_sae.atomic import write_bytes_atomic
from progressive_sae.errors import PSAEError
from progressive_sae.json_files import to_json


class MetricsLog:
    def __init__(self, path: Path | None, wandb_project: str | None = None,
                 run_config: dict[str, Any] | None = None) -> None:
        self.path = path
        self._wandb = None
        if wandb_project:
            try:
                import wandb
            except ImportError:
                raise PSAEError(
                    f"wandb_project={wandb_project!r} needs the wandb package (pip install wandb)"
                ) from None
            self._wandb = wandb.init(project=wandb_project, config=run_config or {})

    def truncate_after(self, step: int) -> None:
        """On resume, drop lines a killed run logged after its last checkpoint."""
        if self.path is None or not self.path.is_file():
            return
        kept = [
            line for line in self.path.read_text().splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step
        ]
        write_bytes_atomic(self.path, ("\n".join(kept) + "\n" if kept else "").encode())

    def write(self, record: dict[str, Any]) -> None:
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(to_json(record) + "\n")
        if self._wandb is not None:
            self._wandb.log(record, step=record.get("step"))

    def close(self) -> None:
        if self._wandb is not None:
            self._wandb.finish()
