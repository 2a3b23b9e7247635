import torch

from progressive_sae import load_sae, save_sae
from tests.sae.test_progressive import random_sae


def test_native_round_trip_is_exact_for_every_architecture(tmp_path):
    for activation in ("topk", "batchtopk", "jumprelu"):
        sae = random_sae(activation)
        path = save_sae(sae, tmp_path / activation)
        loaded = load_sae(path)
        assert type(loaded) is type(sae) and loaded.cfg == sae.cfg
        for name, tensor in sae.state_dict().items():
            assert torch.equal(loaded.state_dict()[name], tensor), name
