"""A catalogue of bad inputs: each gets one clear error, and nothing on disk changes.

Through the CLI (`psae ...`, in process): exit code 2, exactly one stderr line
`psae: error: ...` naming the offending value, no traceback, and every file and folder that
existed before is byte-for-byte unchanged afterwards (none created, overwritten or lost).
Through the Python API: a `PSAEError` whose message names the offending value.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from progressive_sae import (
    PSAEError,
    SAEConfig,
    TrainConfig,
    Trainer,
    build_sae,
    evaluate_reconstruction,
    load_sae,
    make_progressive,
    save_sae,
    train,
)
from progressive_sae.cli import main
from progressive_sae.data import NpySource, TensorSource

D_IN, N, K = 8, 32, 4
TINY = ["--num-latents", str(N), "--k", str(K), "--batch-size", "32", "--total-tokens", "64"]
CKPT = ["--num-latents", str(N), "--k", str(K), "--batch-size", "32", "--total-tokens", "128",
        "--checkpoint-every", "2"]
"""The settings of the trained run the --resume cases start from."""


# --- the workspace every CLI case runs in -------------------------------------------------
def _acts(rows: int = 256, d: int = D_IN) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((rows, d)).astype(np.float32)


def _write_yaml(path: Path, text: str) -> None:
    path.write_text(text)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A finished tiny run with checkpoints at steps 2 and 4 (copied by the resume cases)."""
    run = tmp_path_factory.mktemp("template") / "run"
    cfg = TrainConfig(num_latents=N, k=K, batch_size=32, total_tokens=128, checkpoint_every=2)
    Trainer(cfg, torch.from_numpy(_acts()), run_dir=run, progress=False).fit()
    return run


@pytest.fixture
def ws(tmp_path, monkeypatch, trained_run) -> Path:
    """A folder with a valid SAE, good and bad activation files, and a valid run config."""
    monkeypatch.chdir(tmp_path)
    save_sae(build_sae(SAEConfig(d_in=D_IN, num_latents=N, k=K)), tmp_path / "sae")
    np.save(tmp_path / "good.npy", _acts())
    np.save(tmp_path / "d16.npy", _acts(d=16))
    np.save(tmp_path / "one_d.npy", _acts()[0])
    np.save(tmp_path / "three_d.npy", _acts().reshape(4, 8, 64)[:, :, :D_IN])
    np.save(tmp_path / "empty.npy", np.zeros((0, D_IN), np.float32))
    np.save(tmp_path / "ints.npy", np.arange(256 * D_IN).reshape(256, D_IN))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    for name, bad in (("nan.npy", np.nan), ("inf.npy", np.inf)):
        acts = _acts()
        acts[5, 3] = bad
        np.save(tmp_path / name, acts)
    np.savetxt(tmp_path / "acts.txt", _acts(4))
    _write_yaml(tmp_path / "run.yaml", (
        "data: good.npy\nout: fresh\n"
        f"train: {{num_latents: {N}, k: {K}, batch_size: 32, total_tokens: 64}}\n"
    ))
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("keep me\n")
    shutil.copytree(trained_run, tmp_path / "run")
    return tmp_path


def snapshot(root: Path) -> dict[str, tuple[bytes | None, int]]:
    """Every file's bytes and mtime (and every folder) under root."""
    state: dict[str, tuple[bytes | None, int]] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_dir():
            state[rel + "/"] = (None, 0)
        else:
            state[rel] = (path.read_bytes(), path.stat().st_mtime_ns)
    return state


def latest(ws: Path) -> Path:
    return ws / "run" / "checkpoints" / (ws / "run" / "checkpoints" / "LATEST").read_text()


def sae_file(name: str, content: Callable[[Path], bytes | str]) -> Callable[[Path], None]:
    """Set-up: a copy of the valid SAE folder (as `bad/`) with one file replaced."""
    def setup(ws: Path) -> None:
        shutil.copytree(ws / "sae", ws / "bad")
        data = content(ws)
        target = ws / "bad" / name
        if isinstance(data, str):
            target.write_text(data)
        else:
            target.write_bytes(data)
    return setup


def edit_cfg(**changes) -> Callable[[Path], str]:
    def content(ws: Path) -> str:
        cfg = json.loads((ws / "sae" / "cfg.json").read_text())
        return json.dumps({**cfg, **changes})
    return content


def torch_saved(ws: Path) -> bytes:
    torch.save(load_sae(ws / "sae").state_dict(), ws / "pt.bin")
    data = (ws / "pt.bin").read_bytes()
    (ws / "pt.bin").unlink()
    return data


def checkpoint_file(name: str, content: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    """Set-up: replace one file of the run's latest checkpoint."""
    def setup(ws: Path) -> None:
        target = latest(ws) / name
        target.write_bytes(content(target.read_bytes()))
    return setup


def yaml_config(text: str) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        _write_yaml(ws / "bad.yaml", text)
    return setup


def touch(name: str) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        (ws / name).write_text("a file, not a folder\n")
    return setup


# --- the CLI catalogue ----------------------------------------------------------------------
@dataclass
class Case:
    id: str
    argv: list[str]
    names: list[str]
    """Substrings the error line must contain (the offending value, what was expected)."""
    setup: Callable[[Path], None] | None = None
    marks: list = field(default_factory=list)


no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
no_wandb = pytest.mark.skipif(importlib.util.find_spec("wandb") is not None,
                              reason="needs a machine without wandb")

CASES = [
    # activations
    Case("data-1d", ["train", "--data", "one_d.npy", "--out", "o", *TINY],
         ["one_d.npy", "(8,)", "[tokens, d]"]),
    Case("data-3d", ["train", "--data", "three_d.npy", "--out", "o", *TINY],
         ["three_d.npy", "(4, 8, 8)"]),
    Case("data-empty-train", ["train", "--data", "empty.npy", "--out", "o", *TINY],
         ["empty.npy", "no rows"]),
    Case("data-empty-permute", ["permute", "sae", "--data", "empty.npy", "--out", "o"],
         ["empty.npy", "no rows"]),
    Case("data-nan-train", ["train", "--data", "nan.npy", "--out", "o", *TINY], ["NaN"]),
    Case("data-inf-train", ["train", "--data", "inf.npy", "--out", "o", *TINY], ["Inf"]),
    Case("data-nan-permute", ["permute", "sae", "--data", "nan.npy", "--out", "o"], ["NaN"]),
    Case("data-inf-permute", ["permute", "sae", "--data", "inf.npy", "--out", "o"], ["Inf"]),
    Case("data-integers", ["train", "--data", "ints.npy", "--out", "o", *TINY],
         ["ints.npy", "int64", "floating point"]),
    Case("data-pickled-npy", ["train", "--data", "objects.npy", "--out", "o", *TINY],
         ["objects.npy", "not a readable .npy"]),
    Case("data-txt", ["train", "--data", "acts.txt", "--out", "o", *TINY],
         ["acts.txt", ".npy"]),
    Case("data-missing", ["train", "--data", "nowhere.npy", "--out", "o", *TINY],
         ["nowhere.npy", "does not exist"]),
    Case("data-d_in-mismatch", ["permute", "sae", "--data", "d16.npy", "--out", "o"],
         ["(256, 16)", f"d_in={D_IN}"]),
    Case("data-none-given", ["train", "--out", "o", *TINY], ["--data"]),
    Case("out-none-given", ["train", "--data", "good.npy", *TINY], ["--out"]),
    # sizes: k, N, granularities
    Case("k-equals-N", ["train", "--data", "good.npy", "--out", "o", *TINY, "--k", str(N)],
         [f"k={N}", f"num_latents={N}"]),
    Case("k-above-N", ["train", "--data", "good.npy", "--out", "o", *TINY, "--k", "100"],
         ["k=100"]),
    Case("k-zero", ["train", "--data", "good.npy", "--out", "o", *TINY, "--k", "0"], ["k=0"]),
    Case("k-negative", ["train", "--data", "good.npy", "--out", "o", *TINY, "--k", "-3"],
         ["k=-3"]),
    Case("num_latents-zero",
         ["train", "--data", "good.npy", "--out", "o", *TINY, "--num-latents", "0"],
         ["num_latents=0", "positive"]),
    Case("num_latents-negative",
         ["train", "--data", "good.npy", "--out", "o", *TINY, "--num-latents", "-8"],
         ["num_latents=-8"]),
    Case("granularities-unsorted",
         ["train", "--data", "good.npy", "--out", "o", *TINY, "--granularities", "16,8"],
         ["[16, 8]", "increasing"]),
    Case("granularities-duplicated",
         ["train", "--data", "good.npy", "--out", "o", *TINY, "--granularities", "8,8,32"],
         ["[8, 8, 32]", "no duplicates"]),
    Case("granularities-above-N",
         ["train", "--data", "good.npy", "--out", "o", *TINY, "--granularities", "8,64"],
         ["[8, 64]", f"num_latents={N}"]),
    Case("granularities-zero",
         ["train", "--data", "good.npy", "--out", "o", *TINY, "--granularities", "0,8"],
         ["[0, 8]"]),
    Case("granularities-negative",
         ["train", "--data", "good.npy", "--out", "o", *TINY, "--granularities=-4,8"],
         ["[-4, 8]"]),
    Case("granularities-not-integers",
         ["train", "--data", "good.npy", "--out", "o", *TINY, "--granularities", "8,x"],
         ["'8,x'", "integers"]),
    Case("granularities-scalar-via-set",
         ["train", "--data", "good.npy", "--out", "o", *TINY, "--set", "granularities=5"],
         ["granularities=5", "list"]),
    # training settings
    Case("total_tokens-below-batch",
         ["train", "--data", "good.npy", "--out", "o", *TINY, "--total-tokens", "16"],
         ["total_tokens=16", "32"]),
    Case("batch_size-zero",
         ["train", "--data", "good.npy", "--out", "o", *TINY, "--batch-size", "0"],
         ["batch_size=0"]),
    Case("lr-negative", ["train", "--data", "good.npy", "--out", "o", *TINY, "--lr", "-1"],
         ["lr=-1"]),
    Case("lr-not-a-number",
         ["train", "--data", "good.npy", "--out", "o", *TINY, "--set", "lr=fast"],
         ["lr='fast'", "number"]),
    Case("batch_size-not-an-integer",
         ["train", "--data", "good.npy", "--out", "o", *TINY, "--set", "batch_size=many"],
         ["batch_size='many'", "integer"]),
    Case("log_every-zero",
         ["train", "--data", "good.npy", "--out", "o", *TINY, "--set", "log_every=0"],
         ["log_every=0"]),
    Case("checkpoint_every-negative",
         ["train", "--data", "good.npy", "--out", "o", *TINY, "--checkpoint-every", "-1"],
         ["checkpoint_every=-1"]),
    Case("activation-jumprelu",
         ["train", "--data", "good.npy", "--out", "o", *TINY, "--activation", "jumprelu"],
         ["activation='jumprelu'"]),
    Case("device-unknown",
         ["train", "--data", "good.npy", "--out", "o", *TINY, "--device", "tpu"],
         ["device='tpu'"]),
    Case("device-cuda-unavailable",
         ["train", "--data", "good.npy", "--out", "o", *TINY, "--device", "cuda"],
         ["device='cuda'", "not available"], marks=[no_cuda]),
    Case("wandb-missing",
         ["train", "--data", "good.npy", "--out", "o", *TINY, "--wandb-project", "p"],
         ["wandb_project='p'", "wandb"], marks=[no_wandb]),
    # config files and --set
    Case("set-unknown-key",
         ["train", "--data", "good.npy", "--out", "o", *TINY, "--set", "bogus=1"], ["'bogus'"]),
    Case("set-without-equals",
         ["train", "--data", "good.npy", "--out", "o", *TINY, "--set", "lr"],
         ["'lr'", "KEY=VALUE"]),
    Case("set-invalid-yaml",
         ["train", "--data", "good.npy", "--out", "o", *TINY, "--set", "k=[1"], ["'k=[1'"]),
    Case("yaml-unknown-top-key", ["train", "bad.yaml"], ["'bogus'", "bad.yaml"],
         yaml_config("data: good.npy\nout: o\nbogus: 1\n")),
    Case("yaml-unknown-train-key", ["train", "bad.yaml"], ["'lr_sclae'"],
         yaml_config("data: good.npy\nout: o\ntrain: {lr_sclae: 0.1}\n")),
    Case("yaml-not-a-mapping", ["train", "bad.yaml"], ["bad.yaml", "mapping"],
         yaml_config("- data\n- out\n")),
    Case("yaml-train-not-a-mapping", ["train", "bad.yaml"], ["'train'", "mapping"],
         yaml_config("data: good.npy\nout: o\ntrain: [1, 2]\n")),
    Case("yaml-invalid", ["train", "bad.yaml"], ["bad.yaml", "not valid YAML"],
         yaml_config("data: [good.npy\n")),
    Case("yaml-missing", ["train", "nowhere.yaml"], ["nowhere.yaml", "does not exist"]),
    Case("yaml-synthetic-unknown-key", ["train", "bad.yaml", *TINY], ["'width'"],
         yaml_config("data: {synthetic: {width: 8}}\nout: o\n")),
    Case("yaml-synthetic-bad-type", ["train", "bad.yaml", *TINY], ["d_in='eight'"],
         yaml_config("data: {synthetic: {d_in: eight}}\nout: o\n")),
    Case("yaml-data-not-a-path", ["train", "bad.yaml", *TINY], ["data 5"],
         yaml_config("data: 5\nout: o\n")),
    # SAE folders
    Case("sae-missing", ["info", "nowhere"], ["nowhere", "does not exist"]),
    Case("sae-is-a-file", ["info", "good.npy"], ["good.npy", "cfg.json"]),
    Case("cfg-missing", ["info", "bad"], ["bad", "cfg.json"],
         lambda ws: (shutil.copytree(ws / "sae", ws / "bad"), (ws / "bad/cfg.json").unlink())),
    Case("cfg-not-json", ["info", "bad"], ["cfg.json", "not valid JSON"],
         sae_file("cfg.json", lambda ws: "{'d_in': 8,")),
    Case("cfg-not-an-object", ["info", "bad"], ["cfg.json", "JSON object"],
         sae_file("cfg.json", lambda ws: "[8, 32, 4]")),
    Case("cfg-unknown-key", ["info", "bad"], ["'colour'", "cfg.json"],
         sae_file("cfg.json", edit_cfg(colour="blue"))),
    Case("cfg-k-too-large", ["info", "bad"], ["k=99"], sae_file("cfg.json", edit_cfg(k=99))),
    Case("cfg-granularities-unsorted", ["info", "bad"], ["[16, 8, 32]"],
         sae_file("cfg.json", edit_cfg(granularities=[16, 8, 32]))),
    Case("cfg-granularities-not-a-list", ["info", "bad"], ["granularities=5"],
         sae_file("cfg.json", edit_cfg(granularities=5))),
    Case("cfg-metadata-not-a-mapping", ["permute", "bad", "--data", "good.npy", "--out", "o"],
         ["metadata=[1]"], sae_file("cfg.json", edit_cfg(metadata=[1]))),
    Case("cfg-shape-disagrees-with-weights", ["info", "bad"], ["'W_enc'", "(32, 8)", "(32, 16)"],
         sae_file("cfg.json", edit_cfg(d_in=16))),
    Case("weights-missing", ["info", "bad"], ["sae.safetensors", "missing"],
         lambda ws: (shutil.copytree(ws / "sae", ws / "bad"),
                     (ws / "bad/sae.safetensors").unlink())),
    Case("weights-pickle-renamed", ["info", "bad"], ["sae.safetensors", "not a valid safetensors"],
         sae_file("sae.safetensors", lambda ws: pickle.dumps({"W_enc": np.zeros((N, D_IN))}))),
    Case("weights-torch-save-renamed", ["truncate", "bad", "-g", "16", "--out", "o"],
         ["sae.safetensors", "not a valid safetensors"], sae_file("sae.safetensors", torch_saved)),
    Case("weights-truncated", ["info", "bad"], ["sae.safetensors", "not a valid safetensors"],
         sae_file("sae.safetensors", lambda ws: (ws / "sae/sae.safetensors").read_bytes()[:300])),
    Case("weights-empty", ["info", "bad"], ["sae.safetensors", "not a valid safetensors"],
         sae_file("sae.safetensors", lambda ws: b"")),
    # permute / truncate outputs
    Case("permute-out-exists", ["permute", "sae", "--data", "good.npy", "--out", "taken"],
         ["taken", "already exists"]),
    Case("truncate-out-exists", ["truncate", "sae", "-g", "16", "--out", "taken"],
         ["taken", "already exists"]),
    Case("truncate-out-is-the-input", ["truncate", "sae", "-g", "16", "--out", "sae"],
         ["sae", "already exists"]),
    Case("truncate-granularity-zero", ["truncate", "sae", "-g", "0", "--out", "o"],
         ["granularity=0"]),
    Case("truncate-granularity-above-N", ["truncate", "sae", "-g", str(N + 1), "--out", "o"],
         [f"granularity={N + 1}", f"num_latents={N}"]),
    Case("truncate-granularity-one", ["truncate", "sae", "-g", "1", "--out", "o"],
         ["granularity=1"]),
    Case("truncate-k-zero", ["truncate", "sae", "-g", "16", "--k", "0", "--out", "o"], ["k=0"]),
    Case("permute-max-rows-negative",
         ["permute", "sae", "--data", "good.npy", "--max-rows", "-5", "--out", "o"],
         ["max_rows=-5"]),
    # run directories and checkpoints
    Case("run-dir-not-empty", ["train", "--data", "good.npy", "--out", "taken", *TINY],
         ["taken", "--resume"]),
    Case("run-dir-is-a-file", ["train", "--data", "good.npy", "--out", "afile", *TINY],
         ["afile", "is a file"], touch("afile")),
    Case("finished-run-without-resume", ["train", "--data", "good.npy", "--out", "run", *CKPT],
         ["run", "already holds files"]),
    Case("resume-without-checkpoint",
         ["train", "--data", "good.npy", "--out", "taken", "--resume", *TINY],
         ["taken", "no checkpoint"]),
    Case("resume-missing-run-dir",
         ["train", "--data", "good.npy", "--out", "nowhere", "--resume", *TINY],
         ["nowhere", "no checkpoint"]),
    Case("resume-corrupt-optimizer",
         ["train", "--data", "good.npy", "--out", "run", "--resume", *CKPT],
         ["optimizer.safetensors", "not a valid safetensors"],
         checkpoint_file("optimizer.safetensors", lambda b: b"\x00" * 7 + b[7:])),
    Case("resume-truncated-trainer-state",
         ["train", "--data", "good.npy", "--out", "run", "--resume", *CKPT],
         ["trainer.safetensors", "not a valid safetensors"],
         checkpoint_file("trainer.safetensors", lambda b: b[: len(b) // 2])),
    Case("resume-pickle-renamed-weights",
         ["train", "--data", "good.npy", "--out", "run", "--resume", *CKPT],
         ["sae.safetensors", "not a valid safetensors"],
         checkpoint_file("sae.safetensors", lambda b: pickle.dumps({"W_enc": [1.0]}))),
    Case("resume-state-json-not-json",
         ["train", "--data", "good.npy", "--out", "run", "--resume", *CKPT],
         ["state.json", "not valid JSON"], checkpoint_file("state.json", lambda b: b"{\"step\":")),
    Case("resume-state-json-without-step",
         ["train", "--data", "good.npy", "--out", "run", "--resume", *CKPT],
         ["state.json", "'step'"], checkpoint_file("state.json", lambda b: b"{\"d_in\": 8}")),
    Case("resume-latest-names-missing-folder",
         ["train", "--data", "good.npy", "--out", "run", "--resume", *CKPT],
         ["LATEST", "step_00000099"],
         lambda ws: (ws / "run/checkpoints/LATEST").write_text("step_00000099")),
    Case("resume-latest-corrupt",
         ["train", "--data", "good.npy", "--out", "run", "--resume", *CKPT],
         ["LATEST", "corrupt"],
         lambda ws: (ws / "run/checkpoints/LATEST").write_bytes(b"\xff\xfe\x00")),
    Case("resume-with-other-k",
         ["train", "--data", "good.npy", "--out", "run", "--resume", *CKPT, "--k", "5"],
         ["k=4", "not 5"]),
    Case("resume-with-other-num_latents",
         ["train", "--data", "good.npy", "--out", "run", "--resume", *CKPT, "--num-latents", "64"],
         ["32 latents", "64"]),
    Case("resume-with-other-d_in",
         ["train", "--data", "d16.npy", "--out", "run", "--resume", *CKPT], ["× 8", "× 16"]),
]


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES]
)
def test_cli_bad_input(case: Case, ws: Path, capsys) -> None:
    if case.setup is not None:
        case.setup(ws)
    capsys.readouterr()
    before = snapshot(ws)
    code = main(case.argv)
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("psae: error: ")
    for name in case.names:
        assert name in lines[0], (name, lines[0])
    after = snapshot(ws)
    assert sorted(after) == sorted(before), "files were created or removed"
    for rel, (content, mtime) in before.items():
        assert after[rel] == (content, mtime), f"{rel} changed"


def test_catalogue_is_large_enough() -> None:
    assert len(CASES) >= 20 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("argv", [
    ["permute", "sae", "--data", "good.npy", "--by", "magic", "--out", "o"],
    ["truncate", "sae", "-g", "sixteen", "--out", "o"],
    ["train", "--k", "four"],
    ["explode"],
], ids=["permute-unknown-by", "truncate-granularity-text", "train-k-text", "unknown-command"])
def test_cli_argparse_errors_exit_2(argv: list[str], ws: Path, capsys) -> None:
    before = snapshot(ws)
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "error:" in err.splitlines()[-1]
    assert snapshot(ws) == before


# --- the Python API -------------------------------------------------------------------------
@pytest.fixture
def sae():
    return build_sae(SAEConfig(d_in=D_IN, num_latents=N, k=K))


def _acts_t(rows: int = 64, d: int = D_IN, bad: float | None = None) -> torch.Tensor:
    x = torch.from_numpy(_acts(rows, d))
    if bad is not None:
        x[rows // 2, 1] = bad
    return x


def _train(data) -> None:
    train(data, num_latents=N, k=K, batch_size=32, total_tokens=64, progress=False)


API_CASES: list[tuple[str, Callable, list[str]]] = [
    ("sae-k-equals-N", lambda s, p: SAEConfig(d_in=D_IN, num_latents=N, k=N), [f"k={N}"]),
    ("sae-k-zero", lambda s, p: SAEConfig(d_in=D_IN, num_latents=N, k=0), ["k=0"]),
    ("sae-num_latents-zero", lambda s, p: SAEConfig(d_in=D_IN, num_latents=0, k=K),
     ["num_latents=0"]),
    ("sae-d_in-negative", lambda s, p: SAEConfig(d_in=-1, num_latents=N, k=K), ["d_in=-1"]),
    ("sae-k-float", lambda s, p: SAEConfig(d_in=D_IN, num_latents=N, k=2.5), ["k=2.5"]),
    ("granularities-unsorted",
     lambda s, p: SAEConfig(d_in=D_IN, num_latents=N, k=K, granularities=[16, 8]), ["[16, 8]"]),
    ("granularities-duplicated",
     lambda s, p: SAEConfig(d_in=D_IN, num_latents=N, k=K, granularities=[8, 8]), ["[8, 8]"]),
    ("granularities-above-N",
     lambda s, p: SAEConfig(d_in=D_IN, num_latents=N, k=K, granularities=[8, 40]), ["[8, 40]"]),
    ("granularities-zero",
     lambda s, p: SAEConfig(d_in=D_IN, num_latents=N, k=K, granularities=[0, 8]), ["[0, 8]"]),
    ("granularities-negative",
     lambda s, p: TrainConfig(num_latents=N, k=K, granularities=[-2, 8]), ["[-2, 8]"]),
    ("granularities-empty",
     lambda s, p: TrainConfig(num_latents=N, k=K, granularities=[]), ["granularities=[]"]),
    ("train-num_latents-zero", lambda s, p: TrainConfig(num_latents=0, k=K), ["num_latents=0"]),
    ("train-k-above-N", lambda s, p: TrainConfig(num_latents=N, k=N + 1), [f"k={N + 1}"]),
    ("train-lr-text", lambda s, p: TrainConfig(num_latents=N, k=K, lr="fast"), ["lr='fast'"]),
    ("train-k_aux-zero", lambda s, p: TrainConfig(num_latents=N, k=K, k_aux=0), ["k_aux=0"]),
    ("train-init_rows-zero", lambda s, p: TrainConfig(num_latents=N, k=K, init_rows=0),
     ["init_rows=0"]),
    ("train-unknown-key", lambda s, p: TrainConfig.from_dict({"bogus": 1}), ["'bogus'"]),
    ("encode-wrong-width", lambda s, p: s.encode(_acts_t(d=16)), ["(64, 16)", f"d_in={D_IN}"]),
    ("encode-1d", lambda s, p: s.encode(torch.zeros(D_IN)), ["(8,)"]),
    ("encode-granularity-zero", lambda s, p: s.encode(_acts_t(), granularity=0),
     ["granularity=0"]),
    ("truncate-zero", lambda s, p: s.truncate(0), ["granularity=0"]),
    ("truncate-above-N", lambda s, p: s.truncate(N + 1), [f"granularity={N + 1}"]),
    ("permute-not-a-permutation", lambda s, p: s.permute(torch.zeros(N, dtype=torch.long)),
     ["permutation"]),
    ("tensor-3d", lambda s, p: TensorSource(torch.zeros(2, 3, 4)), ["(2, 3, 4)"]),
    ("tensor-integers", lambda s, p: TensorSource(torch.zeros(2, 3, dtype=torch.int64)),
     ["torch.int64"]),
    ("npy-empty", lambda s, p: NpySource(p / "empty.npy"), ["empty.npy", "no rows"]),
    ("train-empty-tensor", lambda s, p: _train(torch.zeros(0, D_IN)), ["no rows"]),
    ("train-nan", lambda s, p: _train(_acts_t(bad=float("nan"))), ["NaN"]),
    ("train-inf", lambda s, p: _train(_acts_t(bad=float("-inf"))), ["Inf"]),
    ("train-data-type", lambda s, p: _train(42), ["int"]),
    ("permute-nan", lambda s, p: make_progressive(s, _acts_t(bad=float("nan"))), ["NaN"]),
    ("evaluate-empty", lambda s, p: evaluate_reconstruction(s, torch.zeros(0, D_IN)),
     ["no activations"]),
    ("evaluate-granularity-above-N",
     lambda s, p: evaluate_reconstruction(s, _acts_t(), granularity=N + 1),
     [f"granularity={N + 1}"]),
    ("load-missing", lambda s, p: load_sae(p / "nowhere"), ["nowhere"]),
    ("save-over-existing", lambda s, p: save_sae(s, p / "sae"), ["sae", "already exists"]),
]


@pytest.mark.parametrize("make, names", [pytest.param(c[1], c[2], id=c[0]) for c in API_CASES])
def test_api_bad_input(make: Callable, names: list[str], sae, ws: Path) -> None:
    before = snapshot(ws)
    with pytest.raises(PSAEError) as exc:
        make(sae, ws)
    message = str(exc.value)
    assert "\n" not in message
    for name in names:
        assert name in message, (name, message)
    assert snapshot(ws) == before


def test_numbers_written_as_text_are_read() -> None:
    """YAML reads `1e-3` as text; the README's `--set lr=1e-3` must still work."""
    assert TrainConfig(num_latents=N, k=K, lr="1e-3").lr == pytest.approx(1e-3)
