"""SAE paths on the Hugging Face Hub: ``hf://ORG/REPO[@REVISION][/FOLDER]``.

Examples: ``hf://google/gemma-scope-2b-pt-res/layer_2/width_16k/average_l0_71`` (a
GemmaScope params.npz inside), ``hf://EleutherAI/sae-pythia-70m-32k/layers.2`` (a
sparsify hook folder), ``hf://org/repo@abc123/folder`` (pinned to a commit, branch or
tag; a revision cannot contain '/'). Without a folder, only an SAE at the repo's root is
fetched.

`resolve_sae_path` turns such a path into a local one with ``huggingface_hub``'s
``snapshot_download``, fetching only that folder's files into its usual cache
(``HF_HUB_CACHE`` / ``HF_HOME``), honouring ``HF_HUB_OFFLINE`` and reading ``HF_TOKEN``
for gated repos itself (the token is never printed). The local path is then read by the
ordinary format readers. Every failure is one line naming the hf:// path.

`require_existing` is where every SAE reader starts (the native one in `sae/io.py` and
the foreign formats' in `formats/`): hence this module sits below both and imports
neither.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from progressive_sae.errors import PSAEError, first_line

HUB_PATH = re.compile(
    r"^hf:/{1,2}(?P<repo>[^/@\s]+/[^/@\s]+)(?:@(?P<revision>[^/\s]+))?(?:/(?P<folder>.*))?$"
)
"""hf:// paths; one slash is accepted too, since Path('hf://a/b') prints as 'hf:/a/b'."""
EXPECTED = "expected hf://ORG/REPO[@REVISION][/FOLDER]"
ROOT_FILES = ("cfg.json", "sae.safetensors", "sae_weights.safetensors", "params.npz")
"""The files of an SAE at a repo's root, in every format we read (see formats/*.py)."""


class HubPath(NamedTuple):
    """A location on the Hub: a model repository, a revision and a folder in it."""

    repo_id: str
    revision: str | None
    folder: str

    def __str__(self) -> str:
        rev = f"@{self.revision}" if self.revision else ""
        return f"hf://{self.repo_id}{rev}" + (f"/{self.folder}" if self.folder else "")


def is_hub_path(path: str | Path) -> bool:
    """Whether `path` names a Hub location (starts with hf:/)."""
    return str(path).startswith("hf:/")


def parse_hub_path(path: str | Path) -> HubPath:
    text = str(path)
    match = HUB_PATH.match(text)
    if match is None:
        raise PSAEError(f"SAE path {text!r}: {EXPECTED}")
    folder = match["folder"] or ""
    parts = [p for p in folder.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise PSAEError(f"SAE path {text!r}: '.' and '..' are not allowed; {EXPECTED}")
    return HubPath(match["repo"], match["revision"], "/".join(parts))


def resolve_sae_path(path: str | Path) -> Path:
    """The local path of `path`: itself, or for hf://… its folder in the Hub cache
    (downloaded first unless already cached or offline)."""
    if not is_hub_path(path):
        return Path(path)
    where = parse_hub_path(path)
    snapshot = _snapshot(where)
    local = Path(snapshot) / where.folder if where.folder else Path(snapshot)
    rev = where.revision or "main"
    if not where.folder and not any((local / name).is_file() for name in ROOT_FILES):
        raise PSAEError(f"{where}: {where.repo_id} at revision {rev!r} has no SAE at its "
                        "root; name the folder of one (hf://ORG/REPO/FOLDER)")
    if not local.exists():
        raise PSAEError(f"{where}: {where.repo_id} at revision {rev!r} has no file or folder "
                        f"{where.folder!r}")
    return local


def _snapshot(where: HubPath) -> str:
    try:
        from huggingface_hub import errors, snapshot_download
        from huggingface_hub.errors import (
            EntryNotFoundError,
            GatedRepoError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError:
        raise PSAEError(f"{where}: reading hf:// paths needs the huggingface_hub package "
                        "(pip install huggingface_hub)") from None
    # huggingface_hub < 2.4 has no IncompleteSnapshotError: nothing to catch there
    incomplete = getattr(errors, "IncompleteSnapshotError", ())
    # A folder's files (fnmatch's * spans subfolders too); a bare repo: only an SAE at its
    # root, never every SAE of a repo that holds hundreds (GemmaScope's hold thousands).
    patterns = [where.folder, f"{where.folder}/*"] if where.folder else list(ROOT_FILES)
    try:
        return snapshot_download(where.repo_id, revision=where.revision,
                                 allow_patterns=patterns)
    except GatedRepoError:
        raise PSAEError(f"{where}: {where.repo_id} is gated; accept its terms on the Hub and "
                        "set HF_TOKEN to a token with access") from None
    except RepositoryNotFoundError:
        raise PSAEError(f"{where}: no repository {where.repo_id!r} on the Hub (or it is "
                        "private: set HF_TOKEN)") from None
    except RevisionNotFoundError:
        raise PSAEError(f"{where}: {where.repo_id} has no revision "
                        f"{where.revision!r}") from None
    except incomplete:
        raise PSAEError(f"{where}: its cached copy lacks some files and the Hub cannot be "
                        "reached to complete it") from None
    except (LocalEntryNotFoundError, EntryNotFoundError):
        raise PSAEError(f"{where}: not in the Hugging Face cache and the Hub cannot be reached "
                        "(HF_HUB_OFFLINE is set or there is no connection)") from None
    except (HfHubHTTPError, OSError, ValueError) as err:
        raise PSAEError(f"{where}: could not fetch it from the Hub "
                        f"({first_line(err)})") from None


def require_existing(path: str | Path) -> Path:
    """`path` as a local path that exists: every SAE reader starts here, so this is where
    hf:// paths are resolved (fetched into the Hugging Face cache)."""
    path = resolve_sae_path(path)
    if not path.exists():
        raise PSAEError(f"{path} does not exist")
    return path
