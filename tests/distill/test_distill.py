"""Distillation: recovering split features, round-trips, metadata, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from progressive_sae import SAEConfig, build_sae, load_sae, save_sae
from progressive_sae.cli import main
from progressive_sae.distill import METADATA_KEY, DistillConfig, distill
from progressive_sae.errors import PSAEError
from progressive_sae.formats import export_sae, import_sae
from progressive_sae.metrics import evaluate_reconstruction, mean_max_cosine_similarity

D, G, K, ROWS = 48, 16, 3, 4096


def _features() -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(D, D, generator=torch.Generator().manual_seed(1)))
    return q[:G].contiguous()  # orthonormal: the unsplit SAE is exact on ≤ K active features


def _data(features: torch.Tensor) -> torch.Tensor:
    g = torch.Generator().manual_seed(2)
    fires = torch.rand(ROWS, G, generator=g) < 0.12
    keep = torch.rand(ROWS, G, generator=g).masked_fill(~fires, -1).topk(K, 1).indices
    mask = torch.zeros(ROWS, G, dtype=torch.bool).scatter_(1, keep, True) & fires
    coeffs = (0.5 + torch.rand(ROWS, G, generator=g)) * mask
    return coeffs @ features + 0.3 + 0.01 * torch.randn(ROWS, D, generator=g)


def _unsplit(features: torch.Tensor) -> torch.nn.Module:
    sae = build_sae(SAEConfig(d_in=D, num_latents=G, k=K))
    with torch.no_grad():
        sae.W_dec.copy_(features)
        sae.W_enc.copy_(features)
        sae.b_enc.zero_()
        sae.b_dec.fill_(0.3)
    return sae


def _split(features: torch.Tensor) -> torch.nn.Module:
    """Each true feature's decoder row twice, its encoder halved, so that the two halves'
    activations sum to the feature's; shuffled so that siblings are not neighbours."""
    sae = build_sae(SAEConfig(d_in=D, num_latents=2 * G, k=2 * K, metadata={"model": "toy"}))
    order = torch.randperm(2 * G, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        sae.W_dec.copy_(torch.cat([features, features])[order])
        sae.W_enc.copy_(0.5 * torch.cat([features, features])[order])
        sae.b_enc.zero_()
        sae.b_dec.fill_(0.3)
    return sae


@pytest.fixture(scope="module")
def toy():
    features = _features()
    return features, _data(features), _unsplit(features), _split(features)


@pytest.mark.parametrize("families", ["kmeans", "agglomerative"])
@pytest.mark.parametrize("encoder_fit", ["lstsq", "mean"])
def test_recovers_split_features(toy, families: str, encoder_fit: str) -> None:
    features, x, unsplit, split = toy
    fvu_split = evaluate_reconstruction(split, x).fvu
    fvu_unsplit = evaluate_reconstruction(unsplit, x).fvu
    assert fvu_split == pytest.approx(fvu_unsplit, abs=1e-5)  # the construction is exact
    small, report = distill(split, x, G, DistillConfig(families=families,
                                                       encoder_fit=encoder_fit))
    assert (small.num_latents, small.cfg.k) == (G, K)
    assert mean_max_cosine_similarity(small.W_dec, features) >= 0.99
    assert evaluate_reconstruction(small, x).fvu <= fvu_unsplit + 0.01
    assert sorted(len(m) for m in small.cfg.metadata[METADATA_KEY]["families"]) == [2] * G
    assert report.family_sizes == {"min": 2, "median": 2, "max": 2}


def test_beats_truncation_on_split_sae(toy) -> None:
    _, x, _, split = toy
    from progressive_sae import make_progressive
    truncated = make_progressive(split, x).truncate(G)
    small, _ = distill(split, x, G)
    assert evaluate_reconstruction(small, x).fvu < evaluate_reconstruction(truncated, x).fvu


def test_round_trips_and_metadata(toy, tmp_path: Path) -> None:
    _, x, _, split = toy
    small, report = distill(split, x, G, DistillConfig(tune_tokens=512, tune_batch_size=256))
    record = small.cfg.metadata[METADATA_KEY]
    assert record["tune_tokens"] == report.tune_tokens == 512
    assert small.cfg.metadata["model"] == "toy" and "fine_tune" in small.cfg.metadata
    assert sorted(i for fam in record["families"] for i in fam) == list(range(2 * G))
    json.dumps(small.cfg.metadata, allow_nan=False)
    json.dumps(report.to_dict(), allow_nan=False)
    expected = small(x[:64])
    save_sae(small, tmp_path / "native")
    assert torch.allclose(load_sae(tmp_path / "native")(x[:64]), expected, atol=1e-5)
    assert load_sae(tmp_path / "native").cfg.metadata[METADATA_KEY] == record
    for fmt in ("saelens", "sparsify"):
        export_sae(small, tmp_path / fmt, fmt)
        back = import_sae(tmp_path / fmt, fmt)
        assert torch.allclose(back(x[:64]), expected, atol=1e-4), fmt


def test_cli(toy, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np
    _, x, _, split = toy
    save_sae(split, tmp_path / "big")
    np.save(tmp_path / "acts.npy", x.numpy())
    out = tmp_path / "small"
    assert main(["distill", str(tmp_path / "big"), "--granularity", str(G), "--data",
                 str(tmp_path / "acts.npy"), "--out", str(out)]) == 0
    assert load_sae(out).num_latents == G
    assert json.loads((out / "distill_report.json").read_text())["granularity"] == G
    assert "FVU" in capsys.readouterr().out


@pytest.mark.parametrize("args, named", [
    (["--granularity", str(2 * G)], "granularity=32"),
    (["--granularity", "1"], "granularity=1"),
    (["--granularity", str(G), "--wide"], "d_in=49"),
])
def test_bad_input_one_line(toy, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                            args: list[str], named: str) -> None:
    import numpy as np
    _, x, _, split = toy
    save_sae(split, tmp_path / "big")
    wide = "--wide" in args
    args = [a for a in args if a != "--wide"]
    acts = torch.cat([x, x[:, :1]], 1) if wide else x
    np.save(tmp_path / "acts.npy", acts[:256].numpy())
    code = main(["distill", str(tmp_path / "big"), "--data", str(tmp_path / "acts.npy"),
                 "--out", str(tmp_path / "out"), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and named in err[0], err
    assert not (tmp_path / "out").exists()


def test_api_rejects_bad_granularity(toy) -> None:
    _, x, _, split = toy
    with pytest.raises(PSAEError, match="granularity=32"):
        distill(split, x, 2 * G)


def test_min_cosine_leaves_out_unrelated_latents(toy) -> None:
    features, x, unsplit, split = toy
    big = build_sae(SAEConfig(d_in=D, num_latents=2 * G + 4, k=2 * K))
    extra = torch.nn.functional.normalize(torch.randn(4, D, generator=torch.Generator()
                                                      .manual_seed(4)), dim=1)
    with torch.no_grad():
        big.W_dec.copy_(torch.cat([split.W_dec, extra]))
        big.W_enc.copy_(torch.cat([split.W_enc, torch.zeros(4, D)]))
        big.b_enc.copy_(torch.cat([split.b_enc, -torch.ones(4)]))  # never fire
        big.b_dec.copy_(split.b_dec)
    small, _ = distill(big, x, G, DistillConfig(min_cosine=0.6))
    record = small.cfg.metadata[METADATA_KEY]
    assert record["dropped"] == list(range(2 * G, 2 * G + 4))
    assert mean_max_cosine_similarity(small.W_dec, features) >= 0.99
    assert evaluate_reconstruction(small, x).fvu <= evaluate_reconstruction(unsplit, x).fvu + 0.01
