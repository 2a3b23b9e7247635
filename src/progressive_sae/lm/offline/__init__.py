"""The offline default: a corpus, tokenizer and small GPT-2 that need nothing but the package.

* :func:`build_corpus` — CPython's pydoc topics and stdlib docstrings, split by document;
* :func:`build_default_lm` — trains tokenizer + LM + bigram baseline into a HF folder
  (what ``psae lm train`` runs);
* :data:`DEFAULT_LM_PATH` — the shipped checkpoint built that way (a plain Hugging Face
  folder: ``AutoModelForCausalLM.from_pretrained(DEFAULT_LM_PATH)``), with its metrics.json.

Heavy modules (torch, transformers) load only when a function that needs them is called.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from progressive_sae.lm.offline.corpus import Corpus, Document, build_corpus

if TYPE_CHECKING:
    from progressive_sae.lm.offline.config import LMTrainConfig

DEFAULT_LM_PATH = Path(__file__).resolve().parent / "default"
"""The shipped offline LM folder (bf16 safetensors, config.json, tokenizer, metrics.json)."""


def default_lm_available() -> bool:
    """Whether the shipped checkpoint is present (it is package data)."""
    return (DEFAULT_LM_PATH / "config.json").is_file() and (
        DEFAULT_LM_PATH / "model.safetensors").is_file()


def build_default_lm(config: LMTrainConfig | None = None, out: str | Path = "runs/offline_lm",
                     *, resume: bool = True, progress: bool = True) -> dict[str, Any]:
    """Train the offline LM (defaults = the shipped recipe) into `out`; returns metrics.json.

    Resumes from ``out/checkpoint`` if a run there was interrupted (unless resume=False).
    """
    from progressive_sae.lm.offline.config import LMTrainConfig
    from progressive_sae.lm.offline.train_lm import train_offline_lm

    return train_offline_lm(config or LMTrainConfig(), Path(out), resume=resume,
                            progress=progress)


def load_offline_lm(path: str | Path | None = None):
    """(GPT2LMHeadModel in fp32 eval mode, tokenizer) from `path` (default: the shipped one)."""
    from progressive_sae.lm.offline.lm_files import load_folder

    return load_folder(Path(path) if path is not None else DEFAULT_LM_PATH)


def __getattr__(name: str):
    if name == "LMTrainConfig":
        from progressive_sae.lm.offline.config import LMTrainConfig

        return LMTrainConfig
    raise AttributeError(name)


__all__ = ["Corpus", "DEFAULT_LM_PATH", "Document", "LMTrainConfig", "build_corpus",
           "build_default_lm", "default_lm_available", "load_offline_lm"]
