"""Prove the SAELens / sparsify / GemmaScope converters against the real peer packages.

    .venv/bin/python benchmarks/peers/check_formats.py [--work DIR] [--out JSON]

Ours → peer: small random TopK, JumpReLU, BatchTopK and Matryoshka SAEs are exported with
``progressive_sae.formats.export_sae``; SAELens 6.54.12 (``SAE.load_from_disk``) and
sparsify 1.3.3 (``Sae.load_from_disk``) load them in their own virtual environments and
encode + decode the same fixed inputs. GemmaScope exports are read by SAELens' own
GemmaScope loader (``gemma_2_sae_huggingface_loader``, its download pointed at the file).

Peer → ours: each package builds random SAEs of its own (TopK, JumpReLU, 'standard' ReLU,
apply_b_dec_to_input = false, BatchTopK and Matryoshka BatchTopK saved for inference,
a TopK training checkpoint with decoder-norm rescaling, a sparsify TopK hook folder, a
GemmaScope params.npz) and saves them; we ``import_sae`` the files and encode the inputs.

Prints the largest absolute differences of the codes (dense [rows, N]) and of the
reconstructions, and the number of code entries whose active/inactive status differs.
Writes the table to benchmarks/results/check_formats.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from setup_venv import ensure_peer_venv  # noqa: E402

from progressive_sae import SAEConfig, build_sae  # noqa: E402
from progressive_sae.formats import export_sae, import_sae  # noqa: E402
from progressive_sae.sae.base import SparseAutoencoder  # noqa: E402

D, N, K, ROWS = 64, 512, 16, 1024

SAELENS_DRIVER = textwrap.dedent('''
    import json, sys, warnings
    import numpy as np, torch
    warnings.filterwarnings("ignore")
    from sae_lens import SAE
    from sae_lens.saes import (
        BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig, JumpReLUSAE, JumpReLUSAEConfig,
        MatryoshkaBatchTopKTrainingSAE, MatryoshkaBatchTopKTrainingSAEConfig, StandardSAE,
        StandardSAEConfig, TopKSAE, TopKSAEConfig, TopKTrainingSAE, TopKTrainingSAEConfig)
    import sae_lens.loading.pretrained_sae_loaders as loaders

    spec = json.loads(open(sys.argv[1]).read())
    x = torch.from_numpy(np.load(spec["x"]))
    d, n, k = spec["d"], spec["n"], spec["k"]
    report = {}

    def run(sae, out):
        sae.eval()
        with torch.no_grad():
            z = sae.encode(x)
            np.save(out + "_z.npy", z.numpy())
            np.save(out + "_xhat.npy", sae.decode(z).numpy())
        report[out] = type(sae).__name__

    for job in spec["load"]:                        # our exports, read by SAELens
        run(SAE.load_from_disk(job["path"]), job["out"])

    for job in spec["gemmascope"]:                  # GemmaScope npz, via SAELens' loader
        loaders.hf_hub_download = lambda *a, _f=job["path"], **kw: _f
        cfg, state, _ = loaders.gemma_2_sae_huggingface_loader(
            "google/gemma-scope-2b-pt-res", "layer_2/width_16k/average_l0_71",
            cfg_overrides={"d_in": d, "d_sae": n})
        cfg = loaders.handle_config_defaulting(cfg)
        sae_cfg = SAE.get_sae_config_class_for_architecture(cfg["architecture"]).from_dict(cfg)
        sae = SAE.get_sae_class_for_architecture(sae_cfg.architecture())(sae_cfg)
        sae.load_state_dict(state)
        run(sae, job["out"])

    g = torch.Generator().manual_seed(1)
    def randomise(sae, dec_scale=None):
        with torch.no_grad():
            sae.W_enc.copy_(torch.randn(d, n, generator=g) / d ** 0.5)
            sae.b_enc.copy_(torch.randn(n, generator=g) * 0.1)
            w = torch.randn(n, d, generator=g) / d ** 0.5
            if dec_scale is not None:
                w = w * torch.linspace(0.3, 3.0, n)[:, None]
            sae.W_dec.copy_(w)
            sae.b_dec.copy_(torch.randn(d, generator=g) * 0.5)
            if hasattr(sae, "threshold"):
                sae.threshold.copy_(torch.rand(n, generator=g) * 1.5)
        return sae

    for job in spec["create"]:                      # SAELens' own SAEs, saved by SAELens
        kind, path = job["kind"], job["path"]
        if kind == "topk":
            randomise(TopKSAE(TopKSAEConfig(d_in=d, d_sae=n, k=k))).save_model(path)
        elif kind == "jumprelu":
            randomise(JumpReLUSAE(JumpReLUSAEConfig(d_in=d, d_sae=n))).save_model(path)
        elif kind == "jumprelu_no_b_dec":
            cfg = JumpReLUSAEConfig(d_in=d, d_sae=n, apply_b_dec_to_input=False)
            randomise(JumpReLUSAE(cfg)).save_model(path)
        elif kind == "standard":
            randomise(StandardSAE(StandardSAEConfig(d_in=d, d_sae=n))).save_model(path)
        elif kind == "topk_training_rescaled":
            cfg = TopKTrainingSAEConfig(d_in=d, d_sae=n, k=k, rescale_acts_by_decoder_norm=True)
            randomise(TopKTrainingSAE(cfg), dec_scale=True).save_model(path)
        elif kind in ("batchtopk", "matryoshka_batchtopk"):
            if kind == "batchtopk":
                sae = BatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(d_in=d, d_sae=n, k=k))
            else:
                sae = MatryoshkaBatchTopKTrainingSAE(MatryoshkaBatchTopKTrainingSAEConfig(
                    d_in=d, d_sae=n, k=k, matryoshka_widths=[n // 8, n // 2, n]))
            randomise(sae, dec_scale=True)
            sae.topk_threshold = torch.tensor(0.9, dtype=torch.double)
            sae.save_inference_model(path)
        else:
            raise ValueError(kind)
        run(SAE.load_from_disk(path), job["out"])   # what SAELens computes from the file

    print(json.dumps(report))
''')

SPARSIFY_DRIVER = textwrap.dedent('''
    import json, sys
    import numpy as np, torch
    from sparsify import Sae, SaeConfig

    spec = json.loads(open(sys.argv[1]).read())
    x = torch.from_numpy(np.load(spec["x"]))
    d, n, k = spec["d"], spec["n"], spec["k"]

    def run(sae, out):
        with torch.no_grad():
            acts, indices, _ = sae.encode(x)
            z = torch.zeros(x.shape[0], sae.num_latents).scatter_(1, indices, acts)
            np.save(out + "_z.npy", z.numpy())
            np.save(out + "_xhat.npy", sae.decode(acts, indices).numpy())

    for job in spec["load"]:
        run(Sae.load_from_disk(job["path"]), job["out"])

    g = torch.Generator().manual_seed(2)
    for job in spec["create"]:
        sae = Sae(d, SaeConfig(num_latents=n, k=k))
        with torch.no_grad():
            sae.encoder.weight.copy_(torch.randn(n, d, generator=g) / d ** 0.5)
            sae.encoder.bias.copy_(torch.randn(n, generator=g) * 0.1)
            sae.W_dec.copy_(torch.randn(n, d, generator=g) / d ** 0.5)
            sae.b_dec.copy_(torch.randn(d, generator=g) * 0.5)
        sae.save_to_disk(job["path"] + "/layers.3")   # the trainer's one-folder-per-hook layout
        run(Sae.load_from_disk(job["path"] + "/layers.3"), job["out"])
''')


def our_saes() -> dict[str, SparseAutoencoder]:
    """Random SAEs with non-zero biases; thresholds in the range of the pre-activations."""
    g = torch.Generator().manual_seed(0)
    saes = {}
    for name, activation, granularities in [
        ("topk", "topk", None), ("matryoshka_topk", "topk", [N // 8, N // 2]),
        ("jumprelu", "jumprelu", None), ("batchtopk", "batchtopk", None),
        ("matryoshka_batchtopk", "batchtopk", [N // 8, N // 2]),
    ]:
        sae = build_sae(SAEConfig(d_in=D, num_latents=N, k=K, activation=activation,
                                  granularities=granularities, metadata={"check": name}))
        with torch.no_grad():
            sae.W_enc.copy_(torch.randn(N, D, generator=g) / D**0.5)
            sae.b_enc.copy_(torch.randn(N, generator=g) * 0.1)
            sae.W_dec.copy_(torch.randn(N, D, generator=g) / D**0.5)
            sae.b_dec.copy_(torch.randn(D, generator=g) * 0.5)
            if activation == "jumprelu":
                sae.threshold.copy_(torch.rand(N, generator=g) * 1.5)
            if activation == "batchtopk":
                sae.threshold.fill_(0.9)
        saes[name] = sae
    return saes


def our_outputs(sae: SparseAutoencoder, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    sae.eval()  # the default encoder: exact on every product dtype
    with torch.no_grad():
        code = sae.encode(x)
        return code.to_dense(sae.num_latents).numpy(), sae.decode(code).numpy()


def compare(ours: tuple[np.ndarray, np.ndarray], prefix: Path) -> dict[str, float]:
    z_peer, xhat_peer = np.load(f"{prefix}_z.npy"), np.load(f"{prefix}_xhat.npy")
    z, xhat = ours
    return {
        "code_max_abs_diff": float(np.abs(z - z_peer).max()),
        "recon_max_abs_diff": float(np.abs(xhat - xhat_peer).max()),
        "active_set_mismatches": int(((z > 0) != (z_peer > 0)).sum()),
        "mean_l0": float((z > 0).sum(1).mean()),
    }


def run_driver(python: Path, driver: str, spec: dict, work: Path, name: str) -> dict:
    """Run a driver in a peer venv; returns the JSON object it prints last (if any)."""
    spec_file = work / f"{name}_spec.json"
    spec_file.write_text(json.dumps(spec))
    script = work / f"{name}_driver.py"
    script.write_text(driver)
    proc = subprocess.run([str(python), str(script), str(spec_file)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{name} driver failed:\n{proc.stderr[-4000:]}")
    lines = proc.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir)")
    p.add_argument("--out", type=Path, default=HERE.parent / "results" / "check_formats.json")
    args = p.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="check_formats_"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "peer").mkdir(exist_ok=True)
    (work / "ours").mkdir(exist_ok=True)
    torch.manual_seed(0)

    x = torch.randn(ROWS, D, generator=torch.Generator().manual_seed(3))
    np.save(work / "x.npy", x.numpy())
    pythons = {name: ensure_peer_venv(name, HERE.parent / ".venvs")
               for name in ("saelens", "sparsify")}

    # ours → peer -------------------------------------------------------------------------
    saes = our_saes()
    exports = {  # (format, sae name) → reader in the peer venv
        ("saelens", "topk"): "load", ("saelens", "matryoshka_topk"): "load",
        ("saelens", "jumprelu"): "load", ("saelens", "batchtopk"): "load",
        ("saelens", "matryoshka_batchtopk"): "load",
        ("gemmascope", "jumprelu"): "gemmascope", ("gemmascope", "batchtopk"): "gemmascope",
        ("sparsify", "topk"): "load", ("sparsify", "matryoshka_topk"): "load",
    }
    specs = {peer: {"x": str(work / "x.npy"), "d": D, "n": N, "k": K, "load": [],
                    "gemmascope": [], "create": []} for peer in pythons}
    for (fmt, name), reader in exports.items():
        folder = export_sae(saes[name], work / "ours" / f"{fmt}_{name}", fmt, overwrite=True)
        path = folder / "params.npz" if fmt == "gemmascope" else folder
        peer = "sparsify" if fmt == "sparsify" else "saelens"
        specs[peer][reader].append({"path": str(path), "out": str(work / "peer" / f"{fmt}_{name}")})

    # peer → ours -------------------------------------------------------------------------
    created = [("saelens", kind) for kind in (
        "topk", "jumprelu", "jumprelu_no_b_dec", "standard", "topk_training_rescaled",
        "batchtopk", "matryoshka_batchtopk")] + [("sparsify", "topk")]
    for peer, kind in created:
        specs[peer]["create"].append({"kind": kind, "path": str(work / "peer" / f"{peer}_{kind}"),
                                      "out": str(work / "peer" / f"created_{peer}_{kind}")})
    # a GemmaScope file (written the way DeepMind ships them), read by SAELens and by us
    rng = np.random.default_rng(4)
    gemma = work / "peer" / "layer_2" / "width_16k" / "average_l0_71"
    gemma.mkdir(parents=True, exist_ok=True)
    np.savez(gemma / "params.npz", W_enc=(rng.normal(size=(D, N)) / D**0.5).astype(np.float32),
             W_dec=(rng.normal(size=(N, D)) / D**0.5).astype(np.float32),
             b_enc=(rng.normal(size=N) * 0.1).astype(np.float32),
             b_dec=(rng.normal(size=D) * 0.5).astype(np.float32),
             threshold=rng.uniform(0, 1.5, N).astype(np.float32))
    specs["saelens"]["gemmascope"].append(
        {"path": str(gemma / "params.npz"), "out": str(work / "peer" / "created_gemmascope")})

    peer_classes = run_driver(pythons["saelens"], SAELENS_DRIVER, specs["saelens"], work,
                              "saelens")
    run_driver(pythons["sparsify"], SPARSIFY_DRIVER, specs["sparsify"], work, "sparsify")

    rows = []
    for (fmt, name), _ in exports.items():
        reader = "sparsify" if fmt == "sparsify" else "SAELens"
        result = compare(our_outputs(saes[name], x), work / "peer" / f"{fmt}_{name}")
        peer_class = peer_classes.get(str(work / "peer" / f"{fmt}_{name}"), "Sae")
        rows.append({"direction": f"ours → {reader}", "format": fmt,
                     "sae": f"{name} (as {peer_class})", **result})
    for peer, kind in created:
        ours = import_sae(work / "peer" / f"{peer}_{kind}")
        result = compare(our_outputs(ours, x), work / "peer" / f"created_{peer}_{kind}")
        rows.append({"direction": f"{peer} → ours", "format": peer,
                     "sae": f"{kind} (as {ours.cfg.activation})", **result})
    ours = import_sae(gemma)
    result = compare(our_outputs(ours, x), work / "peer" / "created_gemmascope")
    rows.append({"direction": "GemmaScope → ours (ref: SAELens)", "format": "gemmascope",
                 "sae": "params.npz (as jumprelu)", **result})

    header = f"{'direction':34} {'format':10} {'sae':40} {'code Δ':>9} {'recon Δ':>9} "
    print(header + f"{'flips':>5} {'L0':>6}")
    for r in rows:
        print(f"{r['direction']:34} {r['format']:10} {r['sae']:40} "
              f"{r['code_max_abs_diff']:9.2e} {r['recon_max_abs_diff']:9.2e} "
              f"{r['active_set_mismatches']:5d} {r['mean_l0']:6.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "d_in": D, "num_latents": N, "k": K, "rows_encoded": ROWS,
        "peers": {"saelens": "sae-lens 6.54.12", "sparsify": "eai-sparsify 1.3.3"},
        "torch": torch.__version__, "results": rows}, indent=2) + "\n")
    print(f"wrote {args.out} (scratch: {work})")


if __name__ == "__main__":
    main()
