import pytest
import torch

from progressive_sae.data import SyntheticActivations, SyntheticConfig


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture
def synthetic():
    """Small synthetic activations with 64 ground-truth features in 32 dimensions."""
    return SyntheticActivations(SyntheticConfig(
        d_in=32, num_features=64, mean_active=4, num_rows=100_000, seed=3,
    ))
