"""Settings of automated interpretability (SPEC §4.6): records, sampling, scoring, the LLM.

`InterpConfig` is what `psae interp --config YAML` and `psae run`'s `interp:` section read;
each section is a dataclass of its own so a stage takes only the settings it uses.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from progressive_sae.config_files import load_yaml
from progressive_sae.errors import PSAEError
from progressive_sae.sae.base import GRANULARITY_MODES
from progressive_sae.settings import from_mapping

METHODS = ("simulation", "fuzzing", "detection")
LLM_PROMPTS = ("auto", "completion", "chat")


def _positive(owner: str, **values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PSAEError(f"{owner}.{name}={value!r}: expected a positive integer")


@dataclass
class RecordsConfig:
    """What is kept per latent while streaming over the activations (SPEC §4.6 records)."""

    window: int = 32
    """Tokens per window: consecutive chunks of one sequence, never across sequences."""
    top_windows: int = 20
    """Windows kept per latent with the largest max activation (the browser's top list)."""
    reservoir: int = 60
    """Uniform sample kept per latent of ALL its activating windows (examples are drawn from
    its activation rank-quantiles); must hold train + test examples."""
    nonactivating_pool: int = 256
    """Uniform sample of all windows, from which a latent's non-activating windows come."""
    histogram_bins: int = 48
    """Bins of the activation histogram (log-spaced between the two bounds below)."""
    histogram_range: tuple[float, float] = (1e-4, 1e4)
    """Lowest and highest bin edge; values outside fall in the first or last bin."""
    granularity: int | None = None
    """Record the code of the first G latents (None = the full dictionary)."""
    mode: str = "relative"
    """At G < N: 'relative' re-encodes with k_G over the first G latents; 'prefix' drops
    latents ≥ G from the full code."""
    max_tokens: int | None = None
    """Stop after this many activation rows (None = the whole source)."""
    batch_rows: int = 4096
    """Rows encoded per step."""
    checkpoint_every: int = 262_144
    """Rows between checkpoints of the running state (resume after an interruption)."""
    seed: int = 0
    """Seeds the reservoir priorities (a hash of seed, latent and window)."""

    def __post_init__(self) -> None:
        _positive("records", window=self.window, top_windows=self.top_windows,
                  reservoir=self.reservoir, nonactivating_pool=self.nonactivating_pool,
                  histogram_bins=self.histogram_bins, batch_rows=self.batch_rows,
                  checkpoint_every=self.checkpoint_every)
        if self.max_tokens is not None:
            _positive("records", max_tokens=self.max_tokens)
        if self.granularity is not None:
            _positive("records", granularity=self.granularity)
        if self.mode not in GRANULARITY_MODES:
            raise PSAEError(f"records.mode={self.mode!r}: expected one of {GRANULARITY_MODES}")
        low, high = (float(v) for v in self.histogram_range)
        if not 0 < low < high:
            raise PSAEError(f"records.histogram_range={self.histogram_range!r}: expected "
                            "0 < low < high")
        self.histogram_range = (low, high)


@dataclass
class SamplingConfig:
    """Which latents are scored and on which windows (the paper's protocol)."""

    quantiles: int = 10
    """Frequency quantiles the live latents of a bucket are grouped into."""
    latents_per_quantile: int = 50
    """Latents drawn per frequency quantile (all of them when fewer)."""
    train_examples: int = 20
    """Activating windows shown to the explainer."""
    test_examples: int = 10
    """Activating windows scored (disjoint from the train windows); as many non-activating
    windows are scored beside them."""
    example_quantiles: int = 10
    """Activation rank-quantiles the train and test windows are drawn evenly from."""
    scorable_only: bool = False
    """Draw each quantile's latents only among those with enough windows to be scored
    (quantiles are still formed over all live latents); for small runs, where a random
    rare latent would often be skipped. The paper's protocol: False (skips reported)."""

    def __post_init__(self) -> None:
        _positive("sampling", quantiles=self.quantiles,
                  latents_per_quantile=self.latents_per_quantile,
                  train_examples=self.train_examples, test_examples=self.test_examples,
                  example_quantiles=self.example_quantiles)


@dataclass
class LLMConfig:
    """The explainer/simulator: a spec for `clients.make_client`, or the LLM-free baseline."""

    spec: str = "offline-default"
    """'offline-default', 'hf:PATH', 'openai' (with url and model) or 'baseline'."""
    url: str | None = None
    """Base URL of an OpenAI-compatible server (spec 'openai')."""
    model: str | None = None
    """Model name on that server."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the API key (may be unset for local servers)."""
    concurrency: int = 8
    """Requests in flight at once (HTTP clients)."""
    retries: int = 5
    """HTTP clients: extra attempts after a 429, a 5xx, a time-out or a dropped connection."""
    retry_delay: float = 1.0
    """HTTP clients: seconds before the first retry, doubled each time."""
    retry_max_delay: float = 60.0
    """HTTP clients: the longest wait between two attempts (Retry-After included)."""
    timeout: float = 120.0
    """HTTP clients: seconds to wait for one response."""
    device: str = "cpu"
    """Device of in-process models."""
    cache_dir: str | None = None
    """Response cache folder; None = `<out>/llm_cache`."""
    prompt: str = "auto"
    """Explanation prompt: 'completion' (tokens listed, a text to complete; for tiny models),
    'chat' (the paper's), or 'auto' = completion for in-process models under 1B parameters
    (the offline default), chat for HTTP servers and larger models."""

    def __post_init__(self) -> None:
        _positive("llm", concurrency=self.concurrency)
        if self.prompt not in LLM_PROMPTS:
            raise PSAEError(f"llm.prompt={self.prompt!r}: expected one of {LLM_PROMPTS}")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise PSAEError(f"llm.retries={self.retries!r}: expected an integer >= 0")
        for name in ("retry_delay", "retry_max_delay", "timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise PSAEError(f"llm.{name}={value!r}: expected a positive number of seconds")
        if self.url is not None and self.spec == "offline-default":
            self.spec = "openai"


@dataclass
class InterpConfig:
    """A whole interpretability run: per SAE × granularity bucket × frequency quantile."""

    records: RecordsConfig = field(default_factory=RecordsConfig)
    """Latent records."""
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    """Latents and examples."""
    llm: LLMConfig = field(default_factory=LLMConfig)
    """The explainer/simulator."""
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    """Scores computed: 'simulation', 'fuzzing', 'detection'."""
    granularities: list[int] | None = None
    """Bucket boundaries G (latents < G vs ≥ G); None = the SAEs' Matryoshka granularities."""
    baseline: bool = True
    """Also score every latent with the LLM-free look-up-table baseline."""
    baseline_sampling: SamplingConfig | None = None
    """Latents and examples of the baseline (a few ms per latent, so it can afford the
    paper's full sample while the LLM scores a few); None = the same as `sampling`."""
    control: bool = True
    """Add a randomly initialised SAE of the same shape as a control."""
    explanation_tokens: int = 32
    """Upper bound on an explanation's length in tokens."""
    seed: int = 0
    """Seeds latent and example sampling and the random control (local generators only)."""

    def __post_init__(self) -> None:
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise PSAEError(f"methods={self.methods!r}: expected a non-empty list of {METHODS}")
        if self.granularities is not None:
            _positive("interp", **{f"granularities[{i}]": g
                                   for i, g in enumerate(self.granularities)})
            self.granularities = sorted(set(self.granularities))
        _positive("interp", explanation_tokens=self.explanation_tokens)

    def sampling_of(self, interpreter: str) -> SamplingConfig:
        """The sampling an interpreter (its label) scores with."""
        if interpreter == "baseline" and self.baseline_sampling is not None:
            return self.baseline_sampling
        return self.sampling

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, where: str = "interp") -> InterpConfig:
        data = dict(data or {})
        sections = {"records": RecordsConfig, "sampling": SamplingConfig, "llm": LLMConfig,
                    "baseline_sampling": SamplingConfig}
        for key, section in sections.items():
            if key in data and isinstance(data[key], section):
                continue
            if key == "baseline_sampling" and data.get(key) is None:
                continue
            data[key] = from_mapping(section, data.get(key), f"{where}.{key}")
        return from_mapping(cls, data, where)


def load_interp_config(path: str | Path) -> InterpConfig:
    """An InterpConfig from a YAML file (its top level, or its `interp:` section)."""
    data = load_yaml(path)
    if "interp" in data and isinstance(data["interp"], dict):
        data = data["interp"]
    return InterpConfig.from_dict(data, where=f"{path}")
