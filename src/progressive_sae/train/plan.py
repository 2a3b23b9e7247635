"""Which SAEs one training pass trains: a list (`saes:`) or a grid (`grid:`) of settings on
top of the shared `train:` ones, at each hook point of the data.

    train: {batch_size: 4096, total_tokens: 2000000}
    saes:                                  # each entry: TrainConfig fields, + name, hook
      - {num_latents: 4096, k: 32}
      - {num_latents: 4096, k: 32, granularities: [1024, 2048], name: matryoshka}
    grid: {num_latents: [2048, 4096], k: [16, 32]}   # or every combination of these

An SAE without `hook` is trained at every hook of the data. Names default to
`<activation>-N<num_latents>-k<k>` (+ `-matryoshka` / `-sampled<s>`), under a folder per
hook when the data has several.
"""

from __future__ import annotations

import itertools
from typing import Any

from progressive_sae.errors import PSAEError
from progressive_sae.train.config import TrainConfig
from progressive_sae.train.multi import SAEJob

JOB_KEYS = ("name", "hook")


def plan_jobs(shared: dict[str, Any], saes: Any, grid: Any, hooks: list[str]) -> list[SAEJob]:
    """The jobs of a run: `saes` (a list of mappings), `grid` (a mapping of lists) or, with
    neither, one SAE of the shared settings (its folder the run folder itself)."""
    if saes is not None and grid is not None:
        raise PSAEError("give either 'saes' (a list of SAE settings) or 'grid' (lists of "
                        "values to combine), not both")
    if saes is None and grid is None:
        if len(hooks) == 1:
            return [SAEJob("", TrainConfig.from_dict(shared, "train settings"), hooks[0])]
        saes = [{}]
    entries = _grid_entries(grid) if grid is not None else _list_entries(saes)
    jobs = []
    for index, entry in enumerate(entries):
        where = f"saes[{index}]" if grid is None else f"grid combination {entry}"
        fields = {k: v for k, v in entry.items() if k not in JOB_KEYS}
        cfg = TrainConfig.from_dict({**shared, **fields}, where)
        at = [entry["hook"]] if "hook" in entry else hooks
        for hook in at:
            if hook not in hooks:
                raise PSAEError(f"{where} reads hook {hook!r}: the data gives {hooks}")
            name = str(entry.get("name") or default_name(cfg))
            jobs.append(SAEJob(f"{hook}/{name}" if len(hooks) > 1 else name, cfg, hook))
    return jobs


def default_name(cfg: TrainConfig) -> str:
    name = f"{cfg.activation}-N{cfg.num_latents}-k{cfg.k}"
    if cfg.granularities:
        name += "-matryoshka"
    if cfg.sampled_granularities:
        name += f"-sampled{cfg.sampled_granularities}"
    return name


def _list_entries(saes: Any) -> list[dict[str, Any]]:
    if not isinstance(saes, list) or not saes or not all(isinstance(s, dict) for s in saes):
        raise PSAEError(f"saes={saes!r}: expected a non-empty list of mappings of SAE settings")
    return saes


def _grid_entries(grid: Any) -> list[dict[str, Any]]:
    if not isinstance(grid, dict) or not grid:
        raise PSAEError(f"grid={grid!r}: expected a mapping of setting → list of values")
    keys = list(grid)
    values = []
    for key in keys:
        value = grid[key]
        # a list-valued setting (granularities) is one value unless given as a list of lists
        if not isinstance(value, list) or (key == "granularities" and value
                                           and not isinstance(value[0], list)):
            value = [value]
        if not value:
            raise PSAEError(f"grid.{key} is an empty list: expected at least one value")
        values.append(value)
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]
