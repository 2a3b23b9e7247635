"""Any Hugging Face causal LM with its tokenizer, and where its decoder blocks live.

`load_lm` loads a local folder or a hub name; `LanguageModel` wraps an already built model
too (e.g. one trained in memory), finding its list of decoder blocks on construction.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from progressive_sae.errors import PSAEError, first_line
from progressive_sae.lm.replay import BlockOutputCache
from progressive_sae.lm.smollm2 import NAME as SMOLLM2
from progressive_sae.lm.transformers_quiet import quiet_transformers

KNOWN_BLOCK_PATHS = (
    "transformer.h",  # GPT-2, GPT-J, Bloom, Falcon
    "gpt_neox.layers",  # GPT-NeoX, Pythia
    "model.layers",  # Llama, Mistral, Qwen, Gemma, Gemma-2
    "model.decoder.layers",  # OPT
    "model.language_model.layers",  # multimodal wrappers (Gemma-3, …)
)
"""Where the usual architectures keep their decoder blocks, tried before a general search."""

DTYPE_NAMES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
}


@dataclass
class LanguageModel:
    """A causal LM, its tokenizer and its decoder blocks (found on construction)."""

    model: nn.Module
    tokenizer: object | None
    name: str
    blocks_path: str = field(init=False)
    """Dotted module path of the block list, e.g. 'transformer.h' or 'model.layers'."""
    blocks: nn.ModuleList = field(init=False, repr=False)
    block_cache: BlockOutputCache = field(init=False, repr=False, default_factory=BlockOutputCache)
    """Clean block outputs replayed by `spliced_cross_entropy` (see lm/replay.py)."""

    def __post_init__(self) -> None:
        self.blocks_path, self.blocks = find_blocks(self.model)

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    @property
    def d_model(self) -> int:
        return int(self.model.get_input_embeddings().embedding_dim)

    @property
    def vocab_size(self) -> int:
        """Rows of the input embedding (may exceed the tokenizer's vocabulary)."""
        return int(self.model.get_input_embeddings().num_embeddings)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype


def find_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The ModuleList of decoder blocks: a known path, else the only list of identical modules
    whose length is the config's number of layers (the shallowest if several)."""
    n_layers = _num_layers(model)
    for path in KNOWN_BLOCK_PATHS:
        try:
            blocks = model.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(blocks, nn.ModuleList) and (n_layers is None or len(blocks) == n_layers):
            return path, blocks
    candidates = [
        (name, module) for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList) and len(module) > 0
        and (n_layers is None or len(module) == n_layers)
        and len({type(m) for m in module}) == 1
    ]
    if not candidates:
        raise PSAEError(
            f"model {type(model).__name__}: found no list of decoder blocks"
            + (f" with {n_layers} entries" if n_layers is not None else "")
        )
    depth = min(name.count(".") for name, _ in candidates)
    shallowest = [(n, m) for n, m in candidates if n.count(".") == depth]
    if len(shallowest) > 1:
        names = ", ".join(n for n, _ in shallowest)
        raise PSAEError(
            f"model {type(model).__name__}: several lists could be the decoder blocks ({names})"
        )
    return shallowest[0]


def _num_layers(model: nn.Module) -> int | None:
    config = getattr(model, "config", None)
    if config is None:
        return None
    if hasattr(config, "get_text_config"):
        config = config.get_text_config()
    n = getattr(config, "num_hidden_layers", None)
    return int(n) if isinstance(n, int) else None


def resolve_dtype(dtype: torch.dtype | str | None, device: torch.device) -> torch.dtype:
    """None → bf16 on CUDA, fp32 elsewhere; names such as 'bf16' or 'float32' are accepted."""
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and dtype.lower().removeprefix("torch.") in DTYPE_NAMES:
        return DTYPE_NAMES[dtype.lower().removeprefix("torch.")]
    raise PSAEError(f"dtype={dtype!r}: expected one of {sorted(DTYPE_NAMES)} or a torch.dtype")


OFFLINE_DEFAULT = "offline-default"
"""Model name of the small GPT-2 that ships inside the package (trained on CPython's docs)."""
LOCAL_NAMES = (OFFLINE_DEFAULT, SMOLLM2)
"""Names that load with no hub and no folder."""


def recorded_name(name: str) -> str:
    """An LM name read from a manifest or record. Records name an LM as the user named it;
    runs made before that named the shipped model by its install path, which moves with the
    checkout: that path reads as 'offline-default'."""
    if Path(name).parts[-4:] == ("progressive_sae", "lm", "offline", "default"):
        return OFFLINE_DEFAULT
    return name


def local_folder(name: str) -> str:
    """Where a name of `LOCAL_NAMES` lives on this machine (the shipped GPT-2's package
    folder; SmolLM2's de-quantised copy, made on first use); any other name as it is."""
    if name == OFFLINE_DEFAULT:
        from progressive_sae.lm.offline import DEFAULT_LM_PATH

        return str(DEFAULT_LM_PATH)
    if name == SMOLLM2:
        from progressive_sae.lm.smollm2 import model_folder

        return str(model_folder())
    return name


def load_tokenizer(name: str) -> Any | None:
    """The tokenizer of the LM a record names (the offline default, a model folder, or a
    hub name in the local cache); None when none of those is at hand."""
    from transformers import AutoTokenizer

    name = local_folder(recorded_name(name))
    try:
        with quiet_transformers():
            return AutoTokenizer.from_pretrained(name, local_files_only=True)
    except (OSError, ValueError) as err:
        if Path(name).is_dir():
            raise PSAEError(f"tokenizer {name!r}: cannot load it ({first_line(err)})") from None
        return None


def load_lm(
    name_or_path: str | os.PathLike, device: str | torch.device = "cpu",
    dtype: torch.dtype | str | None = None,
) -> LanguageModel:
    """Load `AutoModelForCausalLM` + `AutoTokenizer` from a local folder or a hub name,
    in eval mode on `device` (dtype: bf16 on CUDA, fp32 on CPU unless given). Its `name` is
    `name_or_path` as given: what manifests and records write, so that a run stays readable
    after the package or the run folder moves."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    given = recorded_name(os.fspath(name_or_path))
    if given == OFFLINE_DEFAULT:
        from progressive_sae.lm.offline import DEFAULT_LM_PATH, default_lm_available

        if not default_lm_available():
            raise PSAEError(
                f"model {given!r}: the shipped checkpoint is missing from {DEFAULT_LM_PATH}; "
                "build it with `psae lm train`"
            )
    name = local_folder(given)
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise PSAEError(f"device={device!r}: expected 'cpu', 'cuda', 'cuda:0', …") from e
    torch_dtype = resolve_dtype(dtype, device)
    _check_local(name)
    try:
        with quiet_transformers():
            model = AutoModelForCausalLM.from_pretrained(name, dtype=torch_dtype)
            tokenizer = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError, KeyError) as e:
        raise PSAEError(f"model {name!r}: cannot load it ({first_line(e)})") from e
    model.to(device)
    model.eval()
    return LanguageModel(model=model, tokenizer=tokenizer, name=given)


def _check_local(name: str) -> None:
    """A name that looks like a path must be an existing model folder."""
    path = Path(name).expanduser()
    looks_local = (
        path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1
        or os.sep != "/" and os.sep in name
    )
    if not looks_local:
        return
    if not path.exists():
        raise PSAEError(f"model path {name!r} does not exist")
    if not (path / "config.json").is_file():
        raise PSAEError(
            f"model path {name!r}: no config.json there; expected a folder written by "
            "save_pretrained"
        )
