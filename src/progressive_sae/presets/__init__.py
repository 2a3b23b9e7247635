"""The experiment configs that ship inside the package, so `psae run demo` works from any
folder after a wheel install. In the repository `presets/configs` is a link to `configs/`;
a wheel holds copies of the files."""

from __future__ import annotations

from pathlib import Path

from progressive_sae.errors import PSAEError

FOLDER = Path(__file__).resolve().parent / "configs"


def names() -> list[str]:
    """The shipped configs, by name (file name without .yaml)."""
    return sorted(p.stem for p in FOLDER.glob("*.yaml"))


def config_path(name_or_path: str | Path) -> Path:
    """A config file: the path when it exists, else the shipped config of that name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    text = str(name_or_path)
    if "/" not in text and (FOLDER / f"{text.removesuffix('.yaml')}.yaml").is_file():
        return FOLDER / f"{text.removesuffix('.yaml')}.yaml"
    raise PSAEError(f"{text}: no such config file, and no shipped config of that name; "
                    f"expected a YAML path or one of {names()}")
