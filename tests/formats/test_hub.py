"""hf:// SAE paths, resolved by huggingface_hub's own code OFFLINE, against a cache folder
laid out here exactly as huggingface_hub lays it out (huggingface_hub/file_download.py):

    <HF_HUB_CACHE>/models--ORG--REPO/refs/<branch or tag>    the commit hash, no newline
    <HF_HUB_CACHE>/models--ORG--REPO/blobs/<etag>            file contents
    <HF_HUB_CACHE>/models--ORG--REPO/snapshots/<commit>/<path>  relative symlinks to blobs
    <HF_HUB_CACHE>/models--ORG--REPO/trees/<commit>.json     the repo's file listing (2.4+)
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from progressive_sae.cli import main
from progressive_sae.formats import export_sae, import_sae
from progressive_sae.formats.gemmascope import load_gemmascope
from progressive_sae.hub_paths import is_hub_path, parse_hub_path
from tests.formats.test_formats import assert_same_sae, make_sae
from tests.helpers import one_line_error

GEMMA = "google/gemma-scope-2b-pt-res"
GEMMA_FOLDER = "layer_2/width_16k/average_l0_71"
PYTHIA = "EleutherAI/sae-pythia-70m-32k"
COMMIT_A, COMMIT_B = "a" * 40, "b" * 40
SECRET = "hf_not_a_real_token_0123456789"


def files_of(folder: Path, prefix: str = "") -> dict[str, bytes]:
    """The files under `folder` by their path in a repo, inside the folder `prefix`."""
    return {str(Path(prefix) / f.relative_to(folder)): f.read_bytes()
            for f in sorted(folder.rglob("*")) if f.is_file()}


def cache_repo(cache: Path, repo_id: str, commit: str, files: dict[str, bytes],
               refs: tuple[str, ...] = ("main",), listing: dict[str, bytes] | None = None) -> None:
    """One commit of a model repo in the cache, as snapshot_download/hf_hub_download leave
    it; `listing` (default `files`) is what the cached tree says the commit holds."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    for ref in refs:
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    tree = {}
    for path, data in (listing if listing is not None else files).items():
        tree[path] = {"size": len(data), "blob_id": hashlib.sha1(data).hexdigest()}
    for path, data in files.items():
        etag = hashlib.sha256(data).hexdigest()
        blob = repo / "blobs" / etag
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        pointer = repo / "snapshots" / commit / path
        pointer.parent.mkdir(parents=True, exist_ok=True)
        pointer.symlink_to(os.path.relpath(blob, pointer.parent))
    (repo / "trees").mkdir(exist_ok=True)
    (repo / "trees" / f"{commit}.json").write_text(
        json.dumps({"format_version": 1, "files": tree}))


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Path:
    """An offline Hugging Face cache holding a GemmaScope and a sparsify repo (two commits)."""
    import huggingface_hub.constants as constants

    cache = tmp_path / "hf_home" / "hub"
    for name, value in (("HF_HOME", str(tmp_path / "hf_home")), ("HF_HUB_CACHE", str(cache)),
                        ("HF_HUB_OFFLINE", "1"), ("HF_TOKEN", SECRET)):
        monkeypatch.setenv(name, value)
    # huggingface_hub read its environment when first imported: point it here as well
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    src = tmp_path / "src"
    export_sae(make_sae("jumprelu"), src / "gemma", "gemmascope")
    cache_repo(cache, GEMMA, COMMIT_A, files_of(src / "gemma", GEMMA_FOLDER))
    export_sae(make_sae("topk", seed=1), src / "pythia_a", "sparsify")
    export_sae(make_sae("topk", seed=2), src / "pythia_b", "sparsify")
    cache_repo(cache, PYTHIA, COMMIT_A, files_of(src / "pythia_a", "layers.2"))
    cache_repo(cache, PYTHIA, COMMIT_B, files_of(src / "pythia_b", "layers.2"), refs=("v2",))
    return src


def test_hub_paths_parse_with_revision_and_folder():
    assert parse_hub_path(f"hf://{GEMMA}/{GEMMA_FOLDER}") == (GEMMA, None, GEMMA_FOLDER)
    assert parse_hub_path("hf://org/repo@abc123/a/b/") == ("org/repo", "abc123", "a/b")
    assert parse_hub_path("hf://org/repo") == ("org/repo", None, "")
    # pathlib collapses the double slash; such paths still resolve
    assert parse_hub_path(Path("hf://org/repo@v1/x")) == ("org/repo", "v1", "x")
    assert str(parse_hub_path("hf:/org/repo@v1/x")) == "hf://org/repo@v1/x"
    assert is_hub_path("hf://a/b") and not is_hub_path("runs/hf/a")
    for bad in ("hf://repo-without-org", "hf://org/repo@/x", "hf://org/repo/../../etc"):
        one_line_error(lambda bad=bad: parse_hub_path(bad), repr(bad), "hf://ORG/REPO")


def test_gemmascope_folder_on_the_hub_loads_like_the_local_file(hub):
    sae = import_sae(f"hf://{GEMMA}/{GEMMA_FOLDER}")
    assert_same_sae(sae, load_gemmascope(hub / "gemma" / "params.npz", k=71))
    assert sae.cfg.k == 71  # from the folder name, through the cache's symlink to a blob
    assert_same_sae(import_sae(f"hf://{GEMMA}@{COMMIT_A}/{GEMMA_FOLDER}/params.npz",
                               granularity=16), sae.truncate(16))


def test_sparsify_repo_folder_with_revision_pinning(hub):
    main_sae = import_sae(f"hf://{PYTHIA}/layers.2")
    assert_same_sae(main_sae, import_sae(hub / "pythia_a"))
    for rev in ("v2", COMMIT_B):
        assert_same_sae(import_sae(f"hf://{PYTHIA}@{rev}/layers.2"), import_sae(hub / "pythia_b"))
    assert_same_sae(import_sae(f"hf://{PYTHIA}/layers.2", granularity=8), main_sae.truncate(8))


def test_an_sae_at_the_repo_root(hub):
    cache = Path(os.environ["HF_HUB_CACHE"])
    export_sae(make_sae("batchtopk", [8, 32]), hub / "root", "native")
    cache_repo(cache, "org/native-sae", COMMIT_B, files_of(hub / "root"))
    assert_same_sae(import_sae("hf://org/native-sae"), import_sae(hub / "root"))


def test_cli_commands_take_hub_paths(hub, tmp_path, capsys):
    assert main(["info", f"hf://{PYTHIA}@v2/layers.2"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "sparsify" and info["num_latents"] == 64
    assert main(["truncate", f"hf://{GEMMA}/{GEMMA_FOLDER}", "-g", "16",
                 "--out", str(tmp_path / "small")]) == 0
    assert_same_sae(import_sae(tmp_path / "small"),
                    import_sae(f"hf://{GEMMA}/{GEMMA_FOLDER}").truncate(16))
    assert main(["export", f"hf://{PYTHIA}/layers.2", "--format", "saelens",
                 "--out", str(tmp_path / "lens")]) == 0


def assert_one_line_exit_2(capsys, argv, *words):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("psae: error: "), err
    for word in words:
        assert word in err, err
    assert SECRET not in err
    return err


def test_missing_repo_revision_or_folder_is_one_line_and_exit_2(hub, capsys):
    assert_one_line_exit_2(capsys, ["info", "hf://nobody/nothing/layers.0"],
                           "hf://nobody/nothing/layers.0", "cache")
    assert_one_line_exit_2(capsys, ["info", f"hf://{PYTHIA}@v9/layers.2"],
                           f"hf://{PYTHIA}@v9/layers.2")
    assert_one_line_exit_2(capsys, ["import", f"hf://{PYTHIA}/layers.7", "--out", "x"],
                           f"hf://{PYTHIA}/layers.7", "'layers.7'")
    assert_one_line_exit_2(capsys, ["info", "hf://just-a-name"], "'hf://just-a-name'")
    assert_one_line_exit_2(capsys, ["info", f"hf://{PYTHIA}"], f"hf://{PYTHIA}", "root")


def test_a_cached_snapshot_missing_files_is_one_line_and_exit_2(hub, capsys):
    """The cached tree lists a file the snapshot lacks (an interrupted download)."""
    cache = Path(os.environ["HF_HUB_CACHE"])
    files = files_of(hub / "pythia_a", "layers.3")
    listing = {**files, "layers.3/sparsity.safetensors": b"x" * 10}
    cache_repo(cache, "org/partial", COMMIT_A, files, listing=listing)
    assert_one_line_exit_2(capsys, ["info", "hf://org/partial/layers.3"],
                           "hf://org/partial/layers.3", "lacks some files")


def test_a_fresh_process_reads_the_cache_from_its_environment_alone(hub, tmp_path):
    """No patching: `psae info` in a new process, configured only by HF_HOME and
    HF_HUB_OFFLINE (HF_HUB_CACHE unset, so the cache is HF_HOME/hub)."""
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_CACHE"}
    cmd = [sys.executable, "-m", "progressive_sae.cli", "info", "--text",
           f"hf://{GEMMA}/{GEMMA_FOLDER}"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "JumpReLUSAE (gemmascope format), N=64" in out.stdout
    assert SECRET not in out.stdout + out.stderr
