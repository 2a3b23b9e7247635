import pytest
import torch

from progressive_sae.data import SyntheticActivations, SyntheticConfig


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _fp32_selection_on_every_cpu(monkeypatch):
    """The suite behaves alike on AVX2 and on AVX512-BF16/AMX machines: CPU selection is fp32.

    On a CPU with native bf16, `fast_matmul_dtype` picks bf16 to SELECT latents, which may pick
    a different last latent than the fp32 references these tests compare against. bf16
    selection has its own tests (tests/kernels/test_kernels.py) that ask for it explicitly.
    """
    from progressive_sae.kernels import precision

    monkeypatch.setattr(precision, "_cpu_has_fast_bf16", lambda: False)


@pytest.fixture
def synthetic():
    """Small synthetic activations with 64 ground-truth features in 32 dimensions."""
    return SyntheticActivations(SyntheticConfig(
        d_in=32, num_features=64, mean_active=4, num_rows=100_000, seed=3,
    ))
