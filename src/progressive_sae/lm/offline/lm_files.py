"""What an offline-LM run writes and reads: its resumable checkpoint and the shipped folder.

The checkpoint (fp32 model, AdamW moments, JSON state) is written atomically, so an
interrupted run resumes from the last complete one. The shipped folder is a plain Hugging
Face model folder in bfloat16 that `AutoModelForCausalLM.from_pretrained` loads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from progressive_sae.atomic import atomic_directory, write_json_atomic
from progressive_sae.lm.offline.tokenizer import load_tokenizer, save_tokenizer
from progressive_sae.lm.transformers_quiet import quiet_transformers


def save_checkpoint(folder: Path, model, opt, tokenizer, state: dict[str, Any]) -> None:
    """Model weights, AdamW moments (safetensors), tokenizer and `state` (JSON), replacing
    `folder` in one atomic swap, so a resumable checkpoint is always complete."""
    from safetensors.torch import save_file, save_model

    tensors = {}
    for gi, group in enumerate(opt.param_groups):
        for pi, p in enumerate(group["params"]):
            for key, value in opt.state.get(p, {}).items():
                t = value if torch.is_tensor(value) else torch.tensor(value)
                tensors[f"{gi}.{pi}.{key}"] = t.detach().cpu().contiguous()
    with atomic_directory(folder, overwrite=True) as scratch:
        save_model(model, str(scratch / "model.safetensors"))
        save_file(tensors, str(scratch / "optimizer.safetensors"))
        save_tokenizer(tokenizer, scratch)
        write_json_atomic(scratch / "state.json", state)


def load_checkpoint(folder: Path, model, opt) -> dict[str, Any]:
    """Restore what `save_checkpoint` wrote into `model` and `opt`; returns the state."""
    from safetensors.torch import load_file, load_model

    load_model(model, str(folder / "model.safetensors"))
    tensors = load_file(str(folder / "optimizer.safetensors"))
    for gi, group in enumerate(opt.param_groups):
        for pi, p in enumerate(group["params"]):
            st = {}
            for key in ("step", "exp_avg", "exp_avg_sq"):
                name = f"{gi}.{pi}.{key}"
                if name in tensors:
                    st[key] = tensors[name]
            if st:
                opt.state[p] = st
    return json.loads((folder / "state.json").read_text())


def export_bf16(model, tokenizer, folder: Path) -> None:
    """A plain HF folder: bf16 safetensors + config.json (dtype bfloat16) + tokenizer files."""
    import copy

    m = copy.deepcopy(model).to(torch.bfloat16)
    m.config.dtype = torch.bfloat16
    m.config.use_cache = True
    m.generation_config.use_cache = True
    with quiet_transformers():
        m.save_pretrained(str(folder), safe_serialization=True)
    save_tokenizer(tokenizer, folder)


def load_folder(folder: Path):
    """(model in fp32 eval mode, tokenizer) through the plain transformers path, offline."""
    from transformers import AutoModelForCausalLM

    with quiet_transformers():
        model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True)
    return model.float().eval(), load_tokenizer(folder)
