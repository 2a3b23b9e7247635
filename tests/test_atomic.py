"""Streamed safetensors writes read back exactly with the safetensors library."""

import torch
from safetensors.torch import load_file

from progressive_sae.atomic import write_safetensors_atomic


def test_streamed_safetensors_round_trip(tmp_path):
    tensors = {"pool": torch.randn(6, 5).bfloat16(), "half": torch.randn(4).half(),
               "order": torch.randperm(7), "generator": torch.Generator().get_state(),
               "empty": torch.zeros(0, 3), "scalar": torch.tensor(2.5),
               "strided": torch.randn(4, 6)[:, ::2]}
    write_safetensors_atomic(tmp_path / "s.safetensors", tensors)
    back = load_file(tmp_path / "s.safetensors")
    assert back.keys() == tensors.keys()
    for name, tensor in tensors.items():
        assert back[name].dtype == tensor.dtype and back[name].shape == tensor.shape, name
        assert torch.equal(back[name], tensor), name
    assert not list(tmp_path.glob(".*tmp"))
