"""Which dtype makes the dense encode matmul fastest on this device."""

from __future__ import annotations

import functools

import torch


@functools.cache
def _cpu_has_fast_bf16() -> bool:
    # bf16 GEMMs are ~4x faster than fp32 only with native bf16 dot products (AVX512-BF16 or
    # AMX); without them oneDNN falls back to a path ~7x *slower* than fp32.
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    return "avx512_bf16" in flags.split() or "amx_bf16" in flags.split()


def fast_matmul_dtype(device: torch.device | str) -> torch.dtype:
    """bfloat16 where the hardware multiplies it natively, float32 elsewhere."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16
    if device.type == "cpu" and _cpu_has_fast_bf16():
        return torch.bfloat16
    return torch.float32
