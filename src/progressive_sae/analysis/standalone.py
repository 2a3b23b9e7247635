"""Each analysis on its own, from files on disk to a PNG plus its data as JSON — what the
`psae frontier | power-law | scaling-law | splitting` commands call."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from progressive_sae.analysis.frontier import (
    FrontierPoint,
    plot_frontier,
    progressive_frontier,
    read_result_points,
    scaling_points,
    sparsity_frontier,
)
from progressive_sae.analysis.power_law import dictionary_power_law, plot_power_law
from progressive_sae.analysis.scaling_law import ScalingPoint, fit_scaling_law, plot_scaling_law
from progressive_sae.analysis.splitting import (
    plot_decoder_similarity,
    plot_split_counts,
    split_counts,
)
from progressive_sae.atomic import write_json_atomic
from progressive_sae.errors import PSAEError
from progressive_sae.evaluation import EvalSet
from progressive_sae.progressive import latent_statistics
from progressive_sae.sae.base import SparseAutoencoder


def load_saes(paths: Sequence[str | Path]) -> dict[str, SparseAutoencoder]:
    """SAE files of any supported format, named by their folder (or file) name."""
    from progressive_sae.formats import import_sae

    saes: dict[str, SparseAutoencoder] = {}
    for path in map(Path, paths):
        name = path.stem if path.is_file() else path.name
        while name in saes:
            name += "'"
        saes[name] = import_sae(path)
    if not saes:
        raise PSAEError("no SAE given: expected at least one SAE folder or file")
    return saes


def _check_width(saes: dict[str, SparseAutoencoder], d_in: int) -> None:
    for name, sae in saes.items():
        if sae.d_in != d_in:
            raise PSAEError(f"SAE {name!r} reads width {sae.d_in}: the activations have width "
                            f"{d_in}")


def frontier_files(
    saes: dict[str, SparseAutoencoder], evalset: EvalSet, granularities: Sequence[int],
    out: str | Path, mode: str = "relative", progress: bool = True,
) -> list[Path]:
    """The progressive-coding frontier of each SAE: frontier.json + one PNG per metric."""
    out = Path(out)
    _check_width(saes, evalset.activations.d_in)
    points = progressive_frontier(saes, evalset, granularities, mode, progress)
    return _write_points(points, out, "frontier", "granularity")


def sparsity_frontier_files(
    saes: dict[str, SparseAutoencoder], evalset: EvalSet, prefixes: Sequence[int],
    out: str | Path, progress: bool = True,
) -> list[Path]:
    """SAEs of different k, at full size and at prefixes: sparsity_frontier.json + PNGs."""
    _check_width(saes, evalset.activations.d_in)
    points = sparsity_frontier(saes, evalset, prefixes, progress=progress)
    return _write_points(points, Path(out), "sparsity_frontier", "l0")


def _write_points(points: list[FrontierPoint], out: Path, stem: str, x: str) -> list[Path]:
    data = out / f"{stem}.json"
    write_json_atomic(data, {"points": [p.to_dict() for p in points]})
    written = [data]
    for metric in ("fvu", "ce_ratio", "rsa"):
        if any(p.value(metric) is not None for p in points):
            written.append(plot_frontier(points, metric, out / f"{stem}_{metric}.png", x=x))
    return written


def power_law_files(
    saes: dict[str, SparseAutoencoder], data: Any, out: str | Path,
    central: tuple[float, float] | None = None, max_rows: int | None = None,
) -> list[Path]:
    """Power-law fits of each SAE's three statistics: power_law.json + power_law.png."""
    from progressive_sae.analysis.power_law import DEFAULT_CENTRAL

    out = Path(out)
    results = {}
    for name, sae in saes.items():
        stats = latent_statistics(sae, data, max_rows=max_rows)
        results[name] = dictionary_power_law(sae, stats, central or DEFAULT_CENTRAL)
    data_path = out / "power_law.json"
    write_json_atomic(data_path, {name: r.to_dict() for name, r in results.items()})
    return [data_path, plot_power_law(results, out / "power_law.png")]


def read_scaling_points(path: str | Path) -> list[ScalingPoint]:
    """(N, k, G, fvu) rows from a CSV with those columns, or from the `points` of a
    results.json / frontier.json (num_latents, trained_k, granularity, fvu)."""
    path = Path(path)
    if not path.is_file():
        raise PSAEError(f"{path} does not exist")
    if path.suffix == ".csv":
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        missing = sorted({"N", "k", "G", "fvu"} - set(rows[0] if rows else {}))
        if missing:
            raise PSAEError(f"{path}: expected CSV columns N, k, G, fvu; lacks {missing[0]!r}")
        try:
            return [ScalingPoint(float(r["N"]), float(r["k"]), float(r["G"]), float(r["fvu"]))
                    for r in rows]
        except ValueError as err:
            raise PSAEError(f"{path}: a value is not a number ({err})") from None
    return scaling_points(read_result_points(path))


def scaling_law_files(points: Sequence[ScalingPoint], out: str | Path) -> list[Path]:
    """Fit eq. 9: scaling_law.json (parameters, fit quality) + scaling_law.png."""
    out = Path(out)
    fit = fit_scaling_law(points)
    data_path = out / "scaling_law.json"
    write_json_atomic(data_path, {**fit.to_dict(), "points": [p._asdict() for p in points]})
    return [data_path, plot_scaling_law(fit, points, out / "scaling_law.png")]


def splitting_files(
    sae: SparseAutoencoder, out: str | Path, large: SparseAutoencoder | None = None,
    threshold: float = 0.5, max_latents: int = 1024,
) -> list[Path]:
    """Decoder-similarity heatmap; with `large`, also split counts (splitting.json + PNG)."""
    out = Path(out)
    written = [plot_decoder_similarity(sae, out / "decoder_similarity.png", max_latents)]
    if large is not None:
        result = split_counts(sae, large, threshold)
        data_path = out / "splitting.json"
        write_json_atomic(data_path, result.to_dict())
        written += [data_path, plot_split_counts(result, out / "feature_splitting.png")]
    return written
