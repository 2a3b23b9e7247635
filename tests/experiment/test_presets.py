"""Shipped configs by name, and --set overrides."""

from __future__ import annotations

import pytest

from progressive_sae.cli import main
from progressive_sae.config_files import apply_overrides
from progressive_sae.experiment import load_experiment
from progressive_sae.presets import FOLDER, config_path, names
from tests.helpers import one_line_error


def test_shipped_configs_by_name():
    assert {"demo", "offline-default", "smollm2"} <= set(names())
    assert config_path("demo") == FOLDER / "demo.yaml" == config_path("demo.yaml")
    cfg = load_experiment("demo", out="elsewhere")
    assert str(cfg.out) == "elsewhere" and cfg.grid.num_latents == 2048
    one_line_error(lambda: config_path("demoo"), "demoo",
                   "no shipped config", "demo")


def test_overrides_set_nested_values_from_yaml_text():
    config = {"train": {"total_tokens": 10}, "interp": {"x": 1}}
    out = apply_overrides(config, ["train.total_tokens=40960", "grid.k_grid=[16, 64]",
                                   "interp=null", "text.source=my docs"])
    assert out == {"train": {"total_tokens": 40960}, "grid": {"k_grid": [16, 64]},
                   "interp": None, "text": {"source": "my docs"}}
    assert config == {"train": {"total_tokens": 10}, "interp": {"x": 1}}  # not changed
    cfg = load_experiment("demo", overrides=["grid.num_latents=256", "evals=null"])
    assert cfg.grid.num_latents == 256 and cfg.evals is None


@pytest.mark.parametrize("bad, expected", [
    ("train.total_tokens", "expected KEY=VALUE"),
    ("=3", "expected KEY=VALUE"),
    ("train..k=3", "expected KEY=VALUE"),
    ("train.total_tokens.x=3", "train.total_tokens is 10"),
    ("train.k=[1,", "not valid YAML"),
])
def test_bad_overrides_are_one_line(bad, expected):
    one_line_error(lambda: apply_overrides({"train": {"total_tokens": 10}}, [bad]), expected)


def test_the_cli_takes_a_name_and_overrides(capsys):
    assert main(["run", "nope-config"]) == 2
    assert "one of" in capsys.readouterr().err
    assert main(["run", "demo", "--set", "train"]) == 2
    assert "--set 'train'" in capsys.readouterr().err
