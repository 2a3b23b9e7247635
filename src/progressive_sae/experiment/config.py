"""The experiment YAML behind `psae run`: which SAEs to train, on what, and how to score them.

Top-level keys: `out`, then either `lm`/`text`/`extract` (activations of a language model,
cached by the runner) or `data`/`eval_data` (ready activation sources, no LM metrics),
then `train` (TrainConfig fields shared by every run), `grid`, `eval` and `external`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from progressive_sae.config_files import apply_overrides, load_yaml
from progressive_sae.errors import PSAEError
from progressive_sae.presets import config_path
from progressive_sae.progressive import RANKINGS
from progressive_sae.sae.base import GRANULARITY_MODES
from progressive_sae.settings import from_mapping
from progressive_sae.train.config import TrainConfig

EXPERIMENT_KEYS = ("out", "lm", "text", "extract", "data", "eval_data", "train", "grid", "eval",
                   "external", "interp", "evals")
MAIN_SERIES = ["TopK permuted by E[z²]", "Matryoshka"]
"""The SAEs the interpretability and seed-002 stages compare by default (series labels)."""


@dataclass
class GridConfig:
    """The SAEs the experiment trains: the paper's grid (SPEC §4.1–4.2)."""

    num_latents: int = 4096
    """The largest dictionary size N."""
    k: int = 32
    """k of the main runs."""
    activation: str = "topk"
    """Activation rule of every run: 'topk' or 'batchtopk'."""
    baseline_sizes: list[int] | None = None
    """Sizes G of the TopK baselines trained from scratch (with k_G = k·G/N); None = N/4, N/2,
    N."""
    matryoshka_granularities: list[int] | None = None
    """Granularities of the fixed Matryoshka run; None = N/4, N/2, N; [] = no such run."""
    sampled_granularities: int = 2
    """Inner sizes drawn per step for the sampled-granularity Matryoshka run; 0 = no run."""
    permute_by: list[str] = field(default_factory=lambda: list(RANKINGS))
    """Rankings each trained SAE is permuted by ('mean_sq' = E[z²], 'frequency')."""
    k_grid: list[int] = field(default_factory=list)
    """Further k values, trained at N (TopK and Matryoshka) for the sparsity frontier."""
    distill_sizes: list[int] | None = None
    """Sizes G the main TopK SAE is distilled to (reverse feature splitting, no fine-tune),
    scored beside its truncation; None = N/16, N/8, N/4; [] = none."""

    def resolved_distill(self) -> list[int]:
        sizes = self.distill_sizes
        if sizes is None:
            sizes = [self.num_latents // 16, self.num_latents // 8, self.num_latents // 4]
        return sorted({s for s in sizes if s >= 2})

    def resolved_baselines(self) -> list[int]:
        sizes = self.baseline_sizes
        if sizes is None:
            sizes = [self.num_latents // 4, self.num_latents // 2, self.num_latents]
        return sorted(set(sizes))

    def resolved_matryoshka(self) -> list[int]:
        sizes = self.matryoshka_granularities
        if sizes is None:
            return [self.num_latents // 4, self.num_latents // 2, self.num_latents]
        return list(sizes)

    def __post_init__(self) -> None:
        bad = [r for r in self.permute_by if r not in RANKINGS]
        if bad:
            raise PSAEError(f"grid.permute_by {bad[0]!r}: expected one of {list(RANKINGS)}")
        if self.activation not in ("topk", "batchtopk"):
            raise PSAEError(f"grid.activation={self.activation!r}: expected 'topk' or 'batchtopk'")
        for size in self.resolved_baselines():
            if not 2 <= size <= self.num_latents:
                raise PSAEError(f"grid.baseline_sizes entry {size}: expected 2 ≤ size ≤ "
                                f"num_latents={self.num_latents}")
        for size in self.distill_sizes or []:
            if not 2 <= size < self.num_latents:
                raise PSAEError(f"grid.distill_sizes entry {size}: expected 2 ≤ size < "
                                f"num_latents={self.num_latents}")
        for k in self.k_grid:
            if not 0 < k < self.num_latents:
                raise PSAEError(f"grid.k_grid entry {k}: expected 0 < k < N={self.num_latents}")


@dataclass
class EvalConfig:
    """What the SAEs are scored on, and how."""

    granularities: list[int] | None = None
    """Granularities G of the progressive frontier; None = N/64, N/32, …, N."""
    mode: str = "relative"
    """'relative' (k_G = round(k·G/N)) or 'prefix' (full-size code, latents ≥ G dropped)."""
    heldout_tokens: int = 32768
    """Held-out activation rows extracted for ranking and scoring."""
    rank_rows: int = 8192
    """The first held-out rows rank latents (permutation, power law); the rest are scored."""
    rsa_rows: int = 1000
    """Scored rows whose distance matrices RSA compares."""
    lm_windows: int = 32
    """Held-out LM windows for the recaptured loss; 0 skips it."""
    windows_per_pass: int = 8
    """LM windows per forward pass."""
    prefixes: list[int] | None = None
    """Prefix sizes of the sparsity frontier; None = N/4 and N/2."""
    similarity_latents: int = 1024
    """Leading latents shown in the decoder-similarity heatmaps."""
    split_threshold: float = 0.5
    """Cosine similarity a large-SAE latent needs to count as a split of a small-SAE one."""
    batch_size: int = 4096
    """Activation rows per encode."""

    def __post_init__(self) -> None:
        if self.mode not in GRANULARITY_MODES:
            raise PSAEError(f"eval.mode={self.mode!r}: expected one of {GRANULARITY_MODES}")
        for name in ("heldout_tokens", "rank_rows", "rsa_rows", "batch_size", "windows_per_pass",
                     "similarity_latents"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PSAEError(f"eval.{name}={value!r}: expected a positive integer")
        if self.rank_rows >= self.heldout_tokens:
            raise PSAEError(f"eval.rank_rows={self.rank_rows}: expected fewer than "
                            f"eval.heldout_tokens={self.heldout_tokens} (the rest are scored)")

    def resolved_granularities(self, grid: GridConfig) -> list[int]:
        if self.granularities is not None:
            return sorted(set(self.granularities))
        return sorted({max(2, grid.num_latents >> i) for i in range(7)})

    def resolved_prefixes(self, grid: GridConfig) -> list[int]:
        if self.prefixes is not None:
            return sorted(set(self.prefixes))
        return [grid.num_latents // 4, grid.num_latents // 2]


@dataclass
class ExternalSAE:
    """An SAE file from elsewhere that joins the frontier."""

    name: str
    """Label in plots and tables."""
    path: str
    """Its folder or file."""
    format: str | None = None
    """'native', 'saelens', 'sparsify' or 'gemmascope'; None = detect."""


@dataclass
class InterpSection:
    """`interp:` — automated interpretability of the run's SAEs (SPEC §4.6)."""

    saes: list[str] = field(default_factory=lambda: list(MAIN_SERIES))
    """Series labels of the SAEs interpreted (a random control of the same shape is added)."""
    settings: Any = None
    """The InterpConfig: every other key of the section (records, sampling, llm, …)."""
    browsers: bool = True
    """Write a feature browser of each interpreted SAE, with this run's explanations and
    scores, under `<out>/browsers/` (linked from the report)."""


@dataclass
class EvalsSection:
    """`evals:` — seed 002's evaluations of the run's SAEs, per granularity (SPEC §4.7)."""

    saes: list[str] = field(default_factory=lambda: list(MAIN_SERIES))
    """Series labels of the SAEs evaluated (with BatchTopK runs these are BatchTopK ones)."""
    granularities: list[int] | None = None
    """First-G views scored besides the full dictionary; None = the Matryoshka sizes < N."""
    absorption: dict[str, Any] | None = field(default_factory=dict)
    """Absorption on labelled LM tokens: `task` (word-start, capitalised, doctest or
    first-letter), `rows_per_class` (token tasks), `prompts` (PromptConfig fields of the
    first-letter task), AbsorptionConfig fields; null = skipped."""
    probing: dict[str, Any] | None = field(default_factory=dict)
    """ProbingConfig fields for sparse probing; null = skipped."""
    erasure: dict[str, Any] | None = field(default_factory=dict)
    """ErasureConfig fields for SCR/TPP; null = skipped (needs probing's ctx)."""
    hierarchy: dict[str, Any] | None = field(default_factory=dict)
    """Ground-truth absorption: TopK and Matryoshka trained on a synthetic tree; null =
    skipped."""


@dataclass
class ExperimentConfig:
    """A whole `psae run`, as read from its YAML."""

    out: Path
    """Folder of everything the run writes (reused and resumed when run again)."""
    train: TrainConfig
    """Settings shared by every training run (num_latents, k, granularities are the grid's)."""
    grid: GridConfig
    """Which SAEs to train."""
    eval: EvalConfig
    """How to score them."""
    lm: dict[str, Any] = field(default_factory=dict)
    """`model`, `device`, `dtype` of the language model (LM pipelines only)."""
    text: dict[str, Any] | None = None
    """TextConfig fields of the training text (its held-out part is scored)."""
    extract: dict[str, Any] = field(default_factory=dict)
    """`hook`, `max_tokens`, `dtype`, `batch_size`, `exclude_bos` of the activation caches;
    `stream: true` trains from a live LM instead of a training cache (`buffer_tokens`,
    `windows_per_pass`: see `stream_settings`)."""
    data: Any = None
    """A ready training source instead of an LM (.npy, {cache: …}, {synthetic: …})."""
    eval_data: Any = None
    """The held-out source that goes with `data`."""
    external: list[ExternalSAE] = field(default_factory=list)
    """External SAEs scored alongside."""
    base: Path = Path(".")
    """Folder of the YAML file (relative data paths are read from there)."""
    interp: InterpSection | None = None
    """Automated interpretability stage; None = not run."""
    evals: EvalsSection | None = None
    """Seed 002's evaluations; None = not run."""

    @property
    def uses_lm(self) -> bool:
        return self.text is not None

    @property
    def streams(self) -> bool:
        """Whether the grid trains from a live LM (no training cache)."""
        return self.uses_lm and self.extract.get("stream", False) is True


def load_experiment(path: str | Path, out: str | Path | None = None,
                    overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Read and check an experiment YAML (a path, or the name of a shipped config such as
    'demo'); `out` overrides its `out`, `overrides` ('grid.k=16', …) any other setting."""
    path = config_path(path)
    raw = apply_overrides(load_yaml(path), overrides)
    unknown = sorted(set(raw) - set(EXPERIMENT_KEYS))
    if unknown:
        raise PSAEError(f"unknown key {unknown[0]!r} in {path}; expected keys: "
                        f"{list(EXPERIMENT_KEYS)}")
    out = out or raw.get("out")
    if out is None:
        raise PSAEError(f"{path} sets no 'out' folder: add one or pass --out")
    grid = from_mapping(GridConfig, raw.get("grid"), "grid")
    train_fields = dict(raw.get("train") or {})
    clash = sorted(set(train_fields) & {"num_latents", "k", "granularities",
                                        "sampled_granularities", "activation"})
    if clash:
        raise PSAEError(f"train.{clash[0]} is set per run by the grid: set it under 'grid'")
    train = TrainConfig.from_dict({"num_latents": grid.num_latents, "k": grid.k,
                                   "checkpoint_every": 50, **train_fields}, source="'train'")
    has_lm, has_data = "text" in raw, "data" in raw
    if has_lm == has_data:
        raise PSAEError(f"{path}: give either 'text' (+ 'lm', 'extract': activations of a "
                        "language model) or 'data' + 'eval_data' (ready activations)")
    if has_data and "eval_data" not in raw:
        raise PSAEError(f"{path}: 'data' needs a held-out 'eval_data' source to score on")
    if has_lm and "hook" not in (raw.get("extract") or {}):
        raise PSAEError(f"{path}: set extract.hook (e.g. layers.2)")
    _check_stream(dict(raw.get("extract") or {}), train, has_lm)
    externals = raw.get("external") or []
    if not isinstance(externals, list):
        raise PSAEError(f"'external' must be a list of {{name, path, format}}, got {externals!r}")
    return ExperimentConfig(
        out=Path(out), train=train, grid=grid,
        eval=from_mapping(EvalConfig, raw.get("eval"), "eval"),
        lm=dict(raw.get("lm") or {}), text=raw.get("text"), extract=dict(raw.get("extract") or {}),
        data=raw.get("data"), eval_data=raw.get("eval_data"),
        external=[from_mapping(ExternalSAE, e, "external") for e in externals],
        base=path.parent, interp=_interp_section(raw), evals=_evals_section(raw),
    )


STREAM_KEYS = ("buffer_tokens", "windows_per_pass")
"""`extract.buffer_tokens`: rows the mixing buffer holds (memory buffer_tokens × d ×
bytes(dtype); half replaced at a time; 0 = text order). `extract.windows_per_pass`: LM
windows per forward pass of the stream. Both are read only with `extract.stream: true`."""


def stream_settings(extract: dict[str, Any]) -> dict[str, Any]:
    """buffer_tokens and windows_per_pass of a streamed run (StreamConfig's defaults)."""
    from progressive_sae.lm.stream import StreamConfig

    defaults = {f.name: f.default for f in fields(StreamConfig)}
    return {key: extract.get(key, defaults[key]) for key in STREAM_KEYS}


def _check_stream(extract: dict[str, Any], train: TrainConfig, has_lm: bool) -> None:
    stream = extract.get("stream", False)
    if not isinstance(stream, bool):
        raise PSAEError(f"extract.stream={stream!r}: expected true (train from a live LM) or "
                        "false (from a training cache)")
    if not stream:
        return  # buffer_tokens/windows_per_pass stay allowed: `--set extract.stream=false`
    if not has_lm:
        raise PSAEError("extract.stream: true trains from a live LM: give 'text' and 'lm', "
                        "not 'data'")
    settings = stream_settings(extract)
    for name, low in (("buffer_tokens", 0), ("windows_per_pass", 1)):
        value = settings[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise PSAEError(f"extract.{name}={value!r}: expected an integer ≥ {low}")
    buffer = settings["buffer_tokens"]
    if buffer and buffer < 2 * train.batch_size:
        raise PSAEError(f"extract.buffer_tokens={buffer:,}: expected at least two batches "
                        f"(2 × train.batch_size = {2 * train.batch_size:,}), or 0 for text order")


def _interp_section(raw: dict[str, Any]) -> InterpSection | None:
    if raw.get("interp") in (None, False):
        return None
    from progressive_sae.interp.config import InterpConfig

    data = dict(raw["interp"]) if isinstance(raw["interp"], dict) else raw["interp"]
    if not isinstance(data, dict):
        raise PSAEError(f"'interp' must be a mapping of settings, got {data!r}")
    saes = data.pop("saes", list(MAIN_SERIES))
    browsers = data.pop("browsers", True)
    if not isinstance(browsers, bool):
        raise PSAEError(f"interp.browsers={browsers!r}: expected true or false")
    return InterpSection(_labels(saes, "interp.saes"), InterpConfig.from_dict(data, "interp"),
                         browsers)


def _evals_section(raw: dict[str, Any]) -> EvalsSection | None:
    if raw.get("evals") in (None, False):
        return None
    section = from_mapping(EvalsSection, raw["evals"], "evals")
    section.saes = _labels(section.saes, "evals.saes")
    for name in ("absorption", "probing", "erasure", "hierarchy"):
        value = getattr(section, name)
        if value is False:
            setattr(section, name, None)
        elif value is not None and not isinstance(value, dict):
            raise PSAEError(f"evals.{name} must be a mapping of settings or null, got {value!r}")
    return section


def _labels(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise PSAEError(f"{where}={value!r}: expected a non-empty list of series labels such as "
                        f"{MAIN_SERIES}")
    return value
