import pytest
import torch


@pytest.fixture(scope="session")
def smollm2():
    """The offline default chat model, loaded once per test session (from the user cache's
    safetensors copy after the first run anywhere on this machine), in the dtype users get
    here (bf16 on a CPU with native bf16, fp32 elsewhere)."""
    from progressive_sae.interp.clients.offline import load_offline_default

    return load_offline_default("cpu")


@pytest.fixture(scope="session")
def smollm2_fp32():
    """The same model in fp32, for tests that compare two exact computations of one number
    (a bf16 model answers each prompt length with its own rounding)."""
    from progressive_sae.interp.clients.offline import load_offline_default

    return load_offline_default("cpu", dtype=torch.float32)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """SmolLM2's small matmuls gain little from a second thread, and when the cores are
    shared with other processes OpenMP's spinning threads made generation 2-10× slower
    (measured); restored after each module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
