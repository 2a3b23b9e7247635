"""Reading YAML run configs and turning their `data:` entry into an activation source."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from progressive_sae.data.source import NpySource
from progressive_sae.data.synthetic import SyntheticActivations, SyntheticConfig
from progressive_sae.errors import PSAEError

RUN_KEYS = ("lm", "text", "extract", "data", "out", "train", "eval_data", "saes", "grid")
"""One YAML file can describe a whole pipeline: `psae extract` reads lm/text/extract,
`psae train` reads data/out/train (and saes/grid: several SAEs in one pass)."""


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise PSAEError(f"{path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise PSAEError(f"{path} is not valid YAML ({str(err).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PSAEError(f"{path}: expected a mapping of settings at the top level")
    return data


def load_run_config(path: str | Path) -> dict[str, Any]:
    """A run config: `data`, `out`, `train` (TrainConfig fields) and optional `eval_data`."""
    config = load_yaml(path)
    unknown = sorted(set(config) - set(RUN_KEYS))
    if unknown:
        raise PSAEError(f"unknown key {unknown[0]!r} in {path}; expected keys: {list(RUN_KEYS)}")
    if "train" in config and not isinstance(config["train"], dict):
        raise PSAEError(f"{path}: 'train' must be a mapping of TrainConfig fields")
    return config


def data_source(spec: Any, base: Path | None = None, text_order: bool = False):
    """Activations from `spec`, the same way for every command: a `.npy` file, the folder of
    an activation cache, a YAML config (its `data:` entry), {cache: FOLDER, shuffle_buffer?,
    seed?, block?} or {synthetic: {SyntheticConfig fields}}. `text_order`: a cache is read
    in the order of its text (no shuffle), as records of token windows need."""
    if isinstance(spec, (str, Path)):
        path = Path(spec)
        if base is not None and not path.is_absolute() and not path.exists():
            path = base / path
        if path.suffix == ".npy":
            return NpySource(path)
        if path.suffix in (".yaml", ".yml"):
            config = load_yaml(path)
            if "data" not in config:
                raise PSAEError(f"{path} has no 'data' entry")
            return data_source(config["data"], path.parent, text_order)
        if path.is_dir():
            return _cache_source({"cache": str(path)}, None, text_order)
        raise PSAEError(f"data {str(spec)!r}: expected a .npy file, the folder of an activation "
                        "cache or a YAML config with 'data'")
    if isinstance(spec, dict) and "cache" in spec:
        return _cache_source(spec, base, text_order)
    if isinstance(spec, dict) and set(spec) == {"synthetic"}:
        fields = spec["synthetic"] or {}
        if not isinstance(fields, dict):
            raise PSAEError(f"synthetic data {fields!r}: expected a mapping of settings")
        allowed = set(SyntheticConfig.__dataclass_fields__)
        unknown = sorted(set(fields) - allowed)
        if unknown:
            raise PSAEError(
                f"unknown synthetic data key {unknown[0]!r}; expected one of {sorted(allowed)}"
            )
        return SyntheticActivations(SyntheticConfig(**fields))
    raise PSAEError(
        f"data {spec!r}: expected a .npy path, {{cache: FOLDER}} or {{synthetic: {{...}}}}"
    )


def open_feed(spec: Any, base: Path | None, global_batch: int, rank: int = 0, world: int = 1):
    """The `BatchFeed` of a one-pass run: a live LM stream when `spec` names text to read
    (`lm/stream.py`), else any other data spec read as a single run reads it."""
    from progressive_sae.data.feed import SourceFeed
    from progressive_sae.data.source import ActivationSource

    if global_batch % world:
        raise PSAEError(f"batch_size={global_batch}: expected a multiple of the {world} "
                        "processes")
    from progressive_sae.lm.stream import is_stream_spec

    if is_stream_spec(spec):
        from progressive_sae.lm.stream import StreamConfig, open_stream

        return open_stream(StreamConfig.from_dict(spec), global_batch // world, rank=rank,
                           world=world)
    source = data_source(spec, base)
    if not isinstance(source, ActivationSource):
        raise PSAEError(f"data {spec!r}: one-pass training reads a cache, a .npy file or a "
                        "live stream ({text: …, hook: …})")
    return SourceFeed(source, global_batch, rank=rank, world=world)


CACHE_KEYS = ("cache", "shuffle_buffer", "seed", "block")


def _cache_source(spec: dict[str, Any], base: Path | None, text_order: bool = False):
    from progressive_sae.data.cache import CachedActivations

    unknown = sorted(set(spec) - set(CACHE_KEYS))
    if unknown:
        raise PSAEError(
            f"unknown cache data key {unknown[0]!r}; expected one of {list(CACHE_KEYS)}"
        )
    if not isinstance(spec["cache"], (str, Path)):
        raise PSAEError(f"cache {spec['cache']!r}: expected the folder of an activation cache")
    path = Path(spec["cache"])
    if base is not None and not path.is_absolute() and not path.exists():
        path = base / path
    options = {k: spec[k] for k in CACHE_KEYS[1:] if k in spec}
    if text_order:
        options["shuffle_buffer"] = 0
    return CachedActivations(path, **options)


def apply_overrides(config: dict[str, Any], assignments: Sequence[str]) -> dict[str, Any]:
    """`config` with each 'dotted.key=VALUE' set (VALUE read as YAML: 64, [16, 64], null);
    missing levels are created. A copy: `config` is left as it was."""
    out = copy.deepcopy(config)
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise PSAEError(f"--set {assignment!r}: expected KEY=VALUE, e.g. "
                            "train.total_tokens=40960 or grid.k_grid=[16,64]")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise PSAEError(f"--set {assignment!r}: the value is not valid YAML") from None
        level = out
        for depth, part in enumerate(parts[:-1]):
            if level.get(part) is None:
                level[part] = {}
            if not isinstance(level[part], dict):
                raise PSAEError(f"--set {assignment!r}: {'.'.join(parts[:depth + 1])} is "
                                f"{level[part]!r}, not a mapping of settings")
            level = level[part]
        level[parts[-1]] = value
    return out
