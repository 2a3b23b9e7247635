"""Loading only the first G latents: the same SAE as loading all and truncating, for a
fraction of the memory."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import save_file

from progressive_sae import load_sae
from progressive_sae.formats import export_sae, import_sae
from tests.formats.test_formats import assert_same_sae, make_sae
from tests.helpers import one_line_error

N = 64
CASES = [  # (format, activation, Matryoshka granularities)
    ("native", "topk", None), ("native", "topk", [8, 24]), ("native", "batchtopk", [8, 32]),
    ("native", "jumprelu", None), ("saelens", "topk", None), ("saelens", "jumprelu", None),
    ("saelens", "batchtopk", [16, 40]), ("sparsify", "topk", [4, 16]),
    ("gemmascope", "jumprelu", None),
]


@pytest.mark.parametrize(("fmt", "activation", "granularities"), CASES)
def test_loading_at_g_equals_truncating_the_full_sae(tmp_path, fmt, activation, granularities):
    path = export_sae(make_sae(activation, granularities), tmp_path / "sae", fmt)
    full = import_sae(path)
    for g in (2, 7, 16, 33, N):
        assert_same_sae(import_sae(path, granularity=g), full.truncate(g))
    assert_same_sae(import_sae(path, granularity=20, k=3), full.truncate(20, k=3))
    small = import_sae(path, granularity=24)
    assert small.num_latents == 24 and small.W_enc.shape == (24, 16)
    if granularities:
        assert small.cfg.granularities == [g for g in granularities if g < 24] + [24]


def test_saelens_folds_commute_with_slicing(tmp_path):
    """b_dec not applied to the input and decoder-norm rescaling are folded per latent."""
    path = export_sae(make_sae("topk"), tmp_path / "sae", "saelens")
    cfg = json.loads((path / "cfg.json").read_text())
    cfg.update(apply_b_dec_to_input=False, rescale_acts_by_decoder_norm=True)
    (path / "cfg.json").write_text(json.dumps(cfg))
    full = import_sae(path)
    for g in (5, 32, 63):
        assert_same_sae(import_sae(path, granularity=g), full.truncate(g))


def test_native_load_sae_takes_a_granularity_and_refuses_bad_ones(tmp_path):
    path = export_sae(make_sae("topk"), tmp_path / "sae", "native")
    assert_same_sae(load_sae(path, granularity=16), load_sae(path).truncate(16))
    one_line_error(lambda: load_sae(path, granularity=N + 1), f"granularity={N + 1}")
    one_line_error(lambda: load_sae(path, granularity=1), "granularity=1")
    one_line_error(lambda: load_sae(path, k=3), "k=3", "granularity")
    one_line_error(lambda: import_sae(path, k=3), "k=3", "granularity")


def test_a_file_that_disagrees_with_its_config_is_refused_at_any_granularity(tmp_path):
    path = export_sae(make_sae("topk"), tmp_path / "sae", "native")
    cfg = json.loads((path / "cfg.json").read_text())
    (path / "cfg.json").write_text(json.dumps({**cfg, "num_latents": 2 * N}))
    for g in (None, 8):
        one_line_error(lambda g=g: load_sae(path, granularity=g), "sae.safetensors", "128")


MEASURE = textwrap.dedent("""
    import gc, json, sys
    from progressive_sae import load_sae

    def reset_peak():  # Linux: make VmHWM (peak RSS) start again from the current RSS
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")

    def rss_mb(field):
        with open("/proc/self/status") as f:
            line = next(line for line in f if line.startswith(field + ":"))
        return int(line.split()[1]) / 1024

    def peak_of(load):
        gc.collect()
        reset_peak()
        base = rss_mb("VmRSS")
        sae = load()
        del sae
        return rss_mb("VmHWM") - base

    load_sae(sys.argv[3], granularity=8)  # one-time lazy initialisations (~70 MB) first
    small = peak_of(lambda: load_sae(sys.argv[1], granularity=int(sys.argv[2])))
    full = peak_of(lambda: load_sae(sys.argv[1]))
    print(json.dumps({"small": small, "full": full}))
""")


def test_peak_memory_of_loading_an_eighth_is_a_fraction_of_loading_all(tmp_path):
    """N = 65536, d = 256: 128 MB of fp32 weights. Peak RSS (VmHWM, reset before each load;
    ru_maxrss would start from the forking pytest process's RSS) grows by the SAE's own
    tensors plus the file pages read; at G = N/8 both are an eighth."""
    n, d = 65536, 256
    folder = tmp_path / "big"
    folder.mkdir()
    (folder / "cfg.json").write_text(json.dumps({"d_in": d, "num_latents": n, "k": 64}))
    save_file({"W_enc": torch.full((n, d), 0.5), "b_enc": torch.zeros(n),
               "W_dec": torch.full((n, d), 0.25), "b_dec": torch.zeros(d)},
              str(folder / "sae.safetensors"))
    tiny = export_sae(make_sae("topk"), tmp_path / "tiny", "native")
    out = subprocess.run([sys.executable, "-c", MEASURE, str(folder), str(n // 8), str(tiny)],
                         capture_output=True, text=True, check=True)
    peaks = json.loads(out.stdout.strip().splitlines()[-1])
    # measured: full ≈ 256 MB (weights + file pages), small ≈ 36 MB
    assert peaks["full"] > 128, peaks  # the full load held at least the 128 MB of weights
    assert peaks["small"] < 0.3 * peaks["full"], peaks
