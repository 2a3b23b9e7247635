"""Export/import through native, SAELens, sparsify and GemmaScope files.

Compatibility with the real peer packages is proved by benchmarks/peers/check_formats.py;
these tests pin the round trips, the GemmaScope formula, detection and bad inputs.
"""

import json
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from progressive_sae import SAEConfig, build_sae
from progressive_sae.formats import FORMATS, detect_format, export_sae, import_sae
from progressive_sae.formats.gemmascope import load_gemmascope
from tests.helpers import one_line_error

D, N, K = 16, 64, 6
METADATA = {"model_name": "gpt2", "hook_name": "blocks.2.hook_resid_post",
            "train_config": {"lr": 0.001, "seed": 3}}


def make_sae(activation="topk", granularities=None, seed=0, metadata=METADATA):
    cfg = SAEConfig(d_in=D, num_latents=N, k=K, activation=activation,
                    granularities=granularities, metadata=dict(metadata))
    sae = build_sae(cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(N, D, generator=g))
        sae.W_dec.copy_(torch.randn(N, D, generator=g) * 0.3)
        sae.b_enc.copy_(torch.randn(N, generator=g) * 0.1)
        sae.b_dec.copy_(torch.randn(D, generator=g))
        if activation == "jumprelu":
            sae.threshold.copy_(torch.rand(N, generator=g) * 2)
        if activation == "batchtopk":
            sae.threshold.fill_(1.25)
    sae.eval()
    sae.selection_dtype = torch.float32
    return sae


def dense_code(sae, x):
    sae.eval()
    sae.selection_dtype = torch.float32
    with torch.no_grad():
        return sae.encode(x).to_dense(sae.num_latents)


def assert_same_sae(a, b):
    assert type(a) is type(b)
    assert a.cfg == b.cfg
    assert a.state_dict().keys() == b.state_dict().keys()
    for name, tensor in a.state_dict().items():
        assert torch.equal(b.state_dict()[name], tensor), name


ROUND_TRIPS = [
    ("native", "topk", None), ("native", "batchtopk", [8, 32]), ("native", "jumprelu", None),
    ("saelens", "topk", None), ("saelens", "topk", [8, 32, 64]), ("saelens", "jumprelu", None),
    ("saelens", "jumprelu", [16]),
    ("sparsify", "topk", None), ("sparsify", "topk", [4, 16]),
]


@pytest.mark.parametrize("fmt, activation, granularities", ROUND_TRIPS)
def test_round_trip_is_exact(tmp_path, fmt, activation, granularities):
    sae = make_sae(activation, granularities)
    path = export_sae(sae, tmp_path / "out", fmt)
    assert detect_format(path) == fmt
    back = import_sae(path)
    assert_same_sae(sae, back)
    x = torch.randn(200, D)
    assert torch.equal(dense_code(back, x), dense_code(sae, x))


def test_batchtopk_through_saelens_is_jumprelu_with_equal_thresholds(tmp_path):
    sae = make_sae("batchtopk", granularities=[8, 32])
    back = import_sae(export_sae(sae, tmp_path / "btk", "saelens"))
    assert back.cfg.activation == "jumprelu"
    assert (back.cfg.k, back.cfg.granularities, back.cfg.metadata) == (K, [8, 32, 64], METADATA)
    assert torch.equal(back.threshold, torch.full((N,), 1.25))
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        assert torch.equal(getattr(back, name), getattr(sae, name)), name
    x = torch.randn(300, D)
    assert torch.equal(dense_code(back, x), dense_code(sae, x))
    torch.testing.assert_close(back(x), sae(x), rtol=0, atol=1e-6)
    cfg = json.loads((tmp_path / "btk" / "cfg.json").read_text())
    assert cfg["architecture"] == "jumprelu"
    assert cfg["metadata"]["training_architecture"] == "matryoshka_batchtopk"
    assert cfg["metadata"]["training_architecture_details"]["matryoshka_widths"] == [8, 32, 64]


def test_saelens_files_follow_its_layout(tmp_path):
    sae = make_sae("topk")
    path = export_sae(sae, tmp_path / "s", "saelens", context_size=1024)
    cfg = json.loads((path / "cfg.json").read_text())
    assert cfg["architecture"] == "topk" and cfg["k"] == K and cfg["d_sae"] == N
    assert cfg["apply_b_dec_to_input"] is True and cfg["normalize_activations"] == "none"
    meta = cfg["metadata"]
    assert meta["model_name"] == "gpt2" and meta["hook_name"] == METADATA["hook_name"]
    assert meta["context_size"] == 1024 and meta["sae_lens_version"]
    from safetensors.torch import load_file

    tensors = load_file(str(path / "sae_weights.safetensors"))
    assert tensors["W_enc"].shape == (D, N) and torch.equal(tensors["W_enc"], sae.W_enc.t())


def test_sparsify_hookpoint_folder_and_parent_import(tmp_path):
    sae = make_sae("topk")
    parent = export_sae(sae, tmp_path / "run", "sparsify", hookpoint="layers.2")
    assert (parent / "layers.2" / "sae.safetensors").is_file()
    cfg = json.loads((parent / "layers.2" / "cfg.json").read_text())
    assert cfg["num_latents"] == N and cfg["k"] == K and cfg["d_in"] == D
    assert not (cfg["skip_connection"] or cfg["transcode"] or cfg["multi_topk"])
    assert detect_format(parent) == "sparsify"
    assert_same_sae(sae, import_sae(parent))
    assert_same_sae(sae, import_sae(parent / "layers.2", format="sparsify"))


# --- GemmaScope ---------------------------------------------------------------------------
def gemmascope_arrays(seed=0, d=D, n=N):
    rng = np.random.default_rng(seed)
    threshold = rng.uniform(0.0, 1.0, n).astype(np.float32)
    threshold[:3] = -0.5  # negative θ: GemmaScope's ReLU makes them act as 0
    return {
        "W_enc": rng.normal(size=(d, n)).astype(np.float32),
        "W_dec": (rng.normal(size=(n, d)) * 0.3).astype(np.float32),
        "b_enc": (rng.normal(size=n) * 0.1).astype(np.float32),
        "b_dec": rng.normal(size=d).astype(np.float32),
        "threshold": threshold,
    }


def gemmascope_reference(arrays, x):
    """GemmaScope's JumpReLU in float64: relu(pre)·1[pre > θ], pre = x W_enc + b_enc."""
    a = {k: v.astype(np.float64) for k, v in arrays.items()}
    pre = x.astype(np.float64) @ a["W_enc"] + a["b_enc"]
    z = np.maximum(pre, 0) * (pre > a["threshold"])
    return pre, z, z @ a["W_dec"] + a["b_dec"]


def test_gemmascope_npz_loads_as_jumprelu_with_its_formula(tmp_path):
    arrays = gemmascope_arrays()
    folder = tmp_path / "layer_2" / "width_16k" / "average_l0_71"
    folder.mkdir(parents=True)
    np.savez(folder / "params.npz", **arrays)
    assert detect_format(folder) == detect_format(folder / "params.npz") == "gemmascope"
    sae = import_sae(folder)
    assert sae.cfg.activation == "jumprelu" and sae.cfg.k == 71
    assert sae.cfg.metadata == {"source_format": "gemmascope"}
    assert torch.equal(sae.W_enc, torch.from_numpy(arrays["W_enc"]).t())
    assert torch.equal(sae.b_dec, torch.from_numpy(arrays["b_dec"]))

    x = np.random.default_rng(1).normal(size=(500, D)).astype(np.float32)
    pre, z_ref, x_hat_ref = gemmascope_reference(arrays, x)
    z = dense_code(sae, torch.from_numpy(x)).double().numpy()
    # away from the jump (rounding may flip an entry sitting on θ) the codes agree
    clear = np.abs(pre - np.maximum(arrays["threshold"], 0)) > 1e-4
    assert clear.mean() > 0.99
    np.testing.assert_allclose(z[clear], z_ref[clear], rtol=0, atol=2e-5)
    assert ((z > 0) == (z_ref > 0))[clear].all()
    x_hat = sae(torch.from_numpy(x)).detach().double().numpy()
    rows = clear.all(1)
    np.testing.assert_allclose(x_hat[rows], x_hat_ref[rows], rtol=0, atol=1e-4)


def test_gemmascope_k_defaults_to_zero_and_lower_case_keys_load(tmp_path):
    arrays = gemmascope_arrays()
    arrays["w_enc"], arrays["w_dec"] = arrays.pop("W_enc"), arrays.pop("W_dec")
    np.savez(tmp_path / "sae.npz", **arrays)
    sae = load_gemmascope(tmp_path / "sae.npz")
    assert sae.cfg.k == 0 and sae.W_enc.shape == (N, D)
    assert load_gemmascope(tmp_path / "sae.npz", k=40).cfg.k == 40


def test_gemmascope_export_unfolds_b_dec(tmp_path):
    sae = make_sae("jumprelu")
    path = export_sae(sae, tmp_path / "gs", "gemmascope")
    with np.load(path / "params.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    assert arrays["W_enc"].shape == (D, N)
    x = np.random.default_rng(2).normal(size=(200, D)).astype(np.float32)
    pre, _, _ = gemmascope_reference(arrays, x)
    ours = sae.pre_activations(torch.from_numpy(x)).detach().double().numpy()
    np.testing.assert_allclose(pre, ours, rtol=0, atol=1e-4)
    back = import_sae(path)
    for name in ("W_enc", "W_dec", "b_dec", "threshold"):
        assert torch.equal(getattr(back, name), getattr(sae, name)), name
    torch.testing.assert_close(back.b_enc, sae.b_enc, rtol=0, atol=1e-5)


# --- detection ------------------------------------------------------------------------------
def test_detection_of_each_format_and_of_nothing(tmp_path):
    topk, jump = make_sae("topk"), make_sae("jumprelu")
    for fmt in FORMATS:
        sae = jump if fmt == "gemmascope" else topk
        assert detect_format(export_sae(sae, tmp_path / fmt, fmt)) == fmt
    (tmp_path / "empty").mkdir()
    one_line_error(lambda: detect_format(tmp_path / "empty"), "no SAE files found")
    one_line_error(lambda: import_sae(tmp_path / "missing"), "does not exist")
    (tmp_path / "notes.txt").write_text("hi")
    one_line_error(lambda: detect_format(tmp_path / "notes.txt"), "notes.txt")
    two = tmp_path / "two"
    for hook in ("layers.0", "layers.1"):
        export_sae(topk, two / hook, "sparsify")
    one_line_error(lambda: detect_format(two), "2 SAE folders")
    one_line_error(lambda: import_sae(two, format="sparsify"), "2 hook folders")


# --- bad inputs -----------------------------------------------------------------------------
def write_npz(tmp_path, **changes):
    arrays = gemmascope_arrays()
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    file = tmp_path / "params.npz"
    np.savez(file, **arrays)
    return file


def test_gemmascope_object_array_is_refused(tmp_path):
    file = write_npz(tmp_path, threshold=np.array([{"a": 1}] * N, dtype=object))
    one_line_error(lambda: import_sae(file), "pickled data is never loaded")


class _Trap:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_gemmascope_pickle_is_never_unpickled(tmp_path):
    marker = tmp_path / "unpickled"
    (tmp_path / "params.npz").write_bytes(pickle.dumps(_Trap(marker)))
    one_line_error(lambda: import_sae(tmp_path), "params.npz")
    assert not marker.exists()
    (tmp_path / "params.npz").write_bytes(b"not an archive")
    one_line_error(lambda: import_sae(tmp_path), "params.npz")


def test_gemmascope_missing_key_and_shape_mismatch(tmp_path):
    file = write_npz(tmp_path, threshold=None)
    one_line_error(lambda: import_sae(file), "'threshold'")
    file = write_npz(tmp_path, W_dec=np.zeros((N, D + 1), np.float32))
    one_line_error(lambda: import_sae(file), "W_dec", f"({N}, {D})")
    file = write_npz(tmp_path, b_enc=np.zeros(N, np.int64))
    one_line_error(lambda: import_sae(file), "b_enc", "int64")
    np.save(tmp_path / "single.npy", np.zeros(3))
    (tmp_path / "single.npz").write_bytes((tmp_path / "single.npy").read_bytes())
    one_line_error(lambda: import_sae(tmp_path / "single.npz"), "single array")


def saelens_folder(tmp_path, **cfg_changes):
    path = export_sae(make_sae("jumprelu"), tmp_path / "sl", "saelens", overwrite=True)
    cfg = json.loads((path / "cfg.json").read_text())
    cfg.update(cfg_changes)
    (path / "cfg.json").write_text(json.dumps(cfg))
    return path


def test_saelens_bad_configs(tmp_path):
    one_line_error(lambda: import_sae(saelens_folder(tmp_path, architecture="gated")),
                   "architecture='gated'")
    one_line_error(
        lambda: import_sae(saelens_folder(tmp_path, normalize_activations="layer_norm")),
        "normalize_activations='layer_norm'")
    one_line_error(lambda: import_sae(saelens_folder(tmp_path, d_sae=N + 1)),
                   "'W_enc'", f"({D}, {N + 1})")
    one_line_error(lambda: import_sae(saelens_folder(tmp_path, architecture="topk", k=N)),
                   f"k={N}")
    path = saelens_folder(tmp_path)
    (path / "sae_weights.safetensors").write_bytes(b"garbage")
    one_line_error(lambda: import_sae(path), "not a valid safetensors file")


def write_saelens(path, cfg, tensors):
    path.mkdir()
    base = {"dtype": "float32", "device": "cpu", "apply_b_dec_to_input": True,
            "normalize_activations": "none", "reshape_activations": "none",
            "metadata": {"sae_lens_version": "6.54.12"}}
    (path / "cfg.json").write_text(json.dumps({**base, **cfg}))
    save_file({k: v.contiguous() for k, v in tensors.items()},
              str(path / "sae_weights.safetensors"))


def peer_tensors(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"W_enc": torch.randn(D, N, generator=g), "b_enc": torch.randn(N, generator=g) * 0.1,
            "W_dec": torch.randn(N, D, generator=g) * 0.3, "b_dec": torch.randn(D, generator=g)}


def test_saelens_folds_b_dec_standard_relu_and_decoder_norms(tmp_path):
    """apply_b_dec_to_input=false, 'standard' ReLU and rescaled TopK match SAELens' formulas."""
    t = peer_tensors()
    x = torch.randn(300, D, dtype=torch.float64)
    W_enc, b_enc, W_dec, b_dec = (t[n].double() for n in ("W_enc", "b_enc", "W_dec", "b_dec"))

    write_saelens(tmp_path / "std", {"architecture": "standard", "d_in": D, "d_sae": N,
                                     "apply_b_dec_to_input": False}, t)
    sae = import_sae(tmp_path / "std")
    assert sae.cfg.activation == "jumprelu" and torch.equal(sae.threshold, torch.zeros(N))
    assert sae.cfg.metadata["saelens_architecture"] == "standard"
    pre = x @ W_enc + b_enc
    z_ref = pre.clamp_min(0)
    z = dense_code(sae, x.float()).double()
    clear = pre.abs() > 1e-4
    torch.testing.assert_close(z[clear], z_ref[clear], rtol=0, atol=2e-5)

    t["W_dec"] = t["W_dec"] * torch.linspace(0.5, 3.0, N)[:, None]
    write_saelens(tmp_path / "rescaled", {"architecture": "topk", "d_in": D, "d_sae": N,
                                          "k": K, "rescale_acts_by_decoder_norm": True}, t)
    sae = import_sae(tmp_path / "rescaled")
    norms = t["W_dec"].double().norm(dim=1)
    pre = ((x - b_dec) @ W_enc + b_enc) * norms
    values, indices = pre.topk(K, dim=1)
    z_ref = torch.zeros_like(pre).scatter_(1, indices, values.clamp_min(0))
    x_hat_ref = (z_ref / norms) @ t["W_dec"].double() + b_dec
    z = dense_code(sae, x.float()).double()
    torch.testing.assert_close(z, z_ref, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(sae(x.float()).double(), x_hat_ref, rtol=1e-5, atol=1e-4)


def test_saelens_batchtopk_training_checkpoint(tmp_path):
    t = peer_tensors()
    t["topk_threshold"] = torch.tensor(0.75, dtype=torch.float64)
    write_saelens(tmp_path / "ckpt", {"architecture": "matryoshka_batchtopk", "d_in": D,
                                      "d_sae": N, "k": 5.0, "matryoshka_widths": [8, 32, 64]}, t)
    sae = import_sae(tmp_path / "ckpt")
    assert sae.cfg.activation == "batchtopk" and sae.cfg.k == 5
    assert sae.cfg.granularities == [8, 32, 64] and float(sae.threshold) == 0.75
    assert torch.equal(sae.W_enc, t["W_enc"].t())


def test_sparsify_unrepresentable_configs(tmp_path):
    path = export_sae(make_sae("topk"), tmp_path / "sp", "sparsify")
    cfg = json.loads((path / "cfg.json").read_text())
    for change, words in [({"skip_connection": True}, ["skip_connection"]),
                          ({"transcode": True}, ["transcode"]),
                          ({"activation": "groupmax"}, ["groupmax"])]:
        (path / "cfg.json").write_text(json.dumps({**cfg, **change}))
        one_line_error(lambda: import_sae(path), *words)
    (path / "cfg.json").write_text(json.dumps(cfg))
    tensors = {"encoder.weight": torch.zeros(N, D), "encoder.bias": torch.zeros(N),
               "W_dec": torch.zeros(N, D), "b_dec": torch.zeros(D), "W_skip": torch.zeros(D, D)}
    save_file(tensors, str(path / "sae.safetensors"))
    one_line_error(lambda: import_sae(path), "W_skip")


def test_unexportable_saes_and_options(tmp_path):
    one_line_error(lambda: export_sae(make_sae("jumprelu"), tmp_path / "a", "sparsify"),
                   "activation='jumprelu'")
    one_line_error(lambda: export_sae(make_sae("batchtopk"), tmp_path / "a", "sparsify"),
                   "activation='batchtopk'")
    one_line_error(lambda: export_sae(make_sae("topk"), tmp_path / "a", "gemmascope"),
                   "activation='topk'")
    untrained = make_sae("batchtopk")
    untrained.threshold.fill_(-1.0)
    one_line_error(lambda: export_sae(untrained, tmp_path / "a", "saelens"), "threshold=-1.0")
    negative = make_sae("jumprelu")
    negative.threshold[0] = -0.1
    one_line_error(lambda: export_sae(negative, tmp_path / "a", "saelens"), "θ ≥ 0")
    one_line_error(lambda: export_sae(make_sae(), tmp_path / "a", "onnx"), "format='onnx'")
    one_line_error(lambda: import_sae(tmp_path, format="onnx"), "format='onnx'")
    one_line_error(lambda: export_sae(make_sae(), tmp_path / "a", "saelens", layer=3),
                   "'layer'")
    one_line_error(lambda: export_sae(make_sae(), tmp_path / "a", "native", hookpoint="h"),
                   "'hookpoint'")
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("fmt", FORMATS)
def test_existing_folder_is_kept_without_overwrite(tmp_path, fmt):
    sae = make_sae("jumprelu" if fmt in ("gemmascope", "saelens") else "topk")
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("precious")
    one_line_error(lambda: export_sae(sae, target, fmt), "already exists")
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert (target / "keep.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no scratch left behind
    export_sae(sae, target, fmt, overwrite=True)
    assert not (target / "keep.txt").exists() and detect_format(target) == fmt
