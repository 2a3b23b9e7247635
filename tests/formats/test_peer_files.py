"""Files written by the real SAELens and sparsify, and the codes those packages computed
from them: our default encoder (on this machine's default product) picks the same latents
with the same values. The files are made by benchmarks/peers/write_parity_files.py."""

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from progressive_sae.formats import import_sae
from progressive_sae.kernels import fast_matmul_dtype

FILES = Path(__file__).parent / "peer_files"
SAES = ["saelens_topk", "saelens_jumprelu", "saelens_standard", "saelens_batchtopk",
        "sparsify_topk"]


def peer_code(name: str, num_latents: int) -> torch.Tensor:
    codes = load_file(str(FILES / f"{name}.codes.safetensors"))
    rows = codes["values"].shape[0]
    return torch.zeros(rows, num_latents).scatter_(1, codes["indices"].long(), codes["values"])


@pytest.mark.parametrize("name", SAES)
def test_our_default_encoder_gives_the_packages_own_codes(name):
    x = torch.from_numpy(np.load(FILES / "x.npy"))
    sae = import_sae(FILES / name).eval()
    assert sae.selection_dtype is None  # the machine's default product
    with torch.no_grad():
        ours = sae.encode(x).to_dense(sae.num_latents)
    theirs = peer_code(name, sae.num_latents)
    assert torch.equal(ours > 0, theirs > 0), int(((ours > 0) != (theirs > 0)).sum())
    # Values: one fp32 dot product per entry here, the package's fp32 GEMM there.
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("name", ["saelens_topk", "sparsify_topk"])
def test_the_files_are_hard_for_a_plain_bf16_choice(name):
    """A bf16 product's own top-k picks other latents in some rows of these files: the
    parity above is not luck."""
    x = torch.from_numpy(np.load(FILES / "x.npy"))
    sae = import_sae(FILES / name)
    x_c = (x - sae.b_dec).bfloat16()
    plain = torch.addmm(sae.b_enc.bfloat16(), x_c, sae.W_enc.bfloat16().t()).float()
    picked = torch.zeros(x.shape[0], sae.num_latents).scatter_(
        1, plain.topk(sae.cfg.k, dim=1).indices, 1.0) > 0
    differ = int((picked != (peer_code(name, sae.num_latents) > 0)).any(1).sum())
    assert differ > 0
    print(f"{name}: a plain bf16 top-k differs in {differ} of {x.shape[0]} rows; the default "
          f"product here is {fast_matmul_dtype('cpu')}")
