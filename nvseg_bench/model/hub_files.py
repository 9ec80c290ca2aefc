"""The hub's own list of the pinned revision's files, and the check of a cached snapshot against it.

`nvseg-finetune fetch-bundle` asks the hub for the revision's tree (huggingface_hub's
`HfApi.list_repo_tree(recursive=True)`: each file's path, size, git blob id and, for a file kept
with git LFS such as the weights, its sha256) and writes it beside the cache, in the repo's cache
folder as `nvseg-file-list.REVISION.json`. A run then compares the snapshot with that list: no
recipe file missing, none added, none whose bytes differ (`verified`). Without a usable list (a
cache filled another way, or offline) it can only check that each cached file still hashes to its
own blob name, which an edited file relinked under a new name also does: `self_consistent`, never
`verified`. A snapshot file that fails either check makes the state `differs`. No torch, no monai.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from nvseg_bench.model.weights import HUB_FILE, HUB_REPO, HUB_REVISION
from nvseg_bench.store.files import sha256_file, write_atomic

VERIFIED, SELF_CONSISTENT, DIFFERS, NOT_HUB = "verified", "self_consistent", "differs", "not_hub"
LISTED_BY = "huggingface_hub HfApi.list_repo_tree(recursive=True)"


def list_path(repo_folder: Path, revision: str = HUB_REVISION) -> Path:
    """Where fetch-bundle keeps the revision's file list: the repo's folder in the HF cache, a name of ours."""
    return repo_folder / f"nvseg-file-list.{revision}.json"


def git_blob_id(data: bytes) -> str:
    """The id git (and so the hub) gives a file's content: sha1 of 'blob <size>\\0' and the bytes."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class UpstreamCheck:
    """What the snapshot was compared with, and how it came out (output.json `input.bundle.upstream_check`)."""

    state: str  # verified | self_consistent | differs | not_hub
    file_list: str | None
    missing: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    different: tuple[str, ...] = ()
    weights_sha256: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "file_list": self.file_list, "missing": list(self.missing),
                "added": list(self.added), "different": list(self.different)}

    def warning(self) -> str | None:
        """The line a run prints when the check is weaker than `verified`."""
        if self.state == SELF_CONSISTENT:
            return ("the hub bundle is only self-consistent: no file list from the hub was found "
                    f"({self.file_list_name()}), so an edited file relinked under a new name, or an added one, would "
                    "not show; run `nvseg-finetune fetch-bundle` once with network access to record it")
        if self.state == DIFFERS:
            named = [f"{p} (missing)" for p in self.missing] + [f"{p} (added)" for p in self.added] + \
                [f"{p} (different)" for p in self.different]
            return f"the hub bundle differs from the pinned revision: {', '.join(named[:8])}"
        return None

    @staticmethod
    def file_list_name() -> str:
        return list_path(Path("models--" + HUB_REPO.replace("/", "--"))).as_posix()


def entries_from_tree(tree: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """The file list from huggingface_hub's RepoFile objects (folders are left out): path -> size, blob id, LFS sha256."""
    files = {}
    for item in tree:
        blob_id = getattr(item, "blob_id", None)
        if blob_id is None:  # a RepoFolder
            continue
        lfs = getattr(item, "lfs", None)
        lfs_sha = lfs.get("sha256") if isinstance(lfs, dict) else getattr(lfs, "sha256", None)
        lfs_size = lfs.get("size") if isinstance(lfs, dict) else getattr(lfs, "size", None)
        files[str(item.path)] = {"size": int(lfs_size if lfs_size is not None else item.size), "blob_id": str(blob_id),
                                 "lfs_sha256": lfs_sha}
    return files


def write_list(repo_folder: Path, files: dict[str, dict[str, Any]], revision: str = HUB_REVISION,
               repo: str = HUB_REPO) -> Path:
    """Keep the hub's list of the revision's files beside the cache; returns where."""
    repo_folder.mkdir(parents=True, exist_ok=True)
    path = list_path(repo_folder, revision)
    doc = {"repo": repo, "revision": revision, "listed_by": LISTED_BY,
           "listed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "files": files}
    write_atomic(path, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return path


def fetch_list(repo_folder: Path, api: Any = None, repo: str = HUB_REPO, revision: str = HUB_REVISION) -> Path:
    """Ask the hub for the revision's tree and keep it (fetch-bundle; needs the network)."""
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    tree = api.list_repo_tree(repo, revision=revision, recursive=True)
    return write_list(repo_folder, entries_from_tree(tree), revision, repo)


def read_list(path: Path, repo: str = HUB_REPO, revision: str = HUB_REVISION) -> dict[str, dict[str, Any]] | None:
    """The list's files, or None when it is absent, unreadable, or of another repo or revision."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("repo") != repo or doc.get("revision") != revision:
        return None
    files = doc.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, dict) for v in files.values()):
        return None
    return files


def _matches(data_path: Path, listed: dict[str, Any]) -> tuple[bool, str | None]:
    """Whether the file's bytes are the listed ones; its sha256 when it is an LFS file (the weights)."""
    if data_path.stat().st_size != listed.get("size"):
        return False, None
    if listed.get("lfs_sha256"):
        digest = sha256_file(data_path)
        return digest == listed["lfs_sha256"], digest
    return git_blob_id(data_path.read_bytes()) == listed.get("blob_id"), None


def _blob_self_consistent(path: Path) -> bool:
    """The file still hashes to the name of the blob it links to (the weights are left out: too big to matter here)."""
    blob = path.resolve().name
    if path.name.endswith((".pt", ".safetensors")):
        return True
    data = path.read_bytes()
    return (hashlib.sha256(data).hexdigest() if len(blob) == 64 else git_blob_id(data)) == blob


def check_snapshot(snapshot: Path, recipe_patterns: list[str], repo: str = HUB_REPO) -> UpstreamCheck:
    """The snapshot against the hub's list when fetch-bundle kept one, else against its own blob names. The
    revision is the snapshot folder's name (the commit refs/main named, for an unpinned repo)."""
    present = {p.relative_to(snapshot).as_posix(): p for p in sorted(snapshot.rglob("*")) if p.is_file()}
    path = list_path(snapshot.parents[1], snapshot.name)
    listed = read_list(path, repo, snapshot.name)
    weights = present.get(HUB_FILE)
    if listed is None:
        altered = tuple(rel for rel, p in present.items() if not _blob_self_consistent(p))
        digest = sha256_file(weights) if weights is not None else None
        return UpstreamCheck(DIFFERS if altered else SELF_CONSISTENT, None, different=altered, weights_sha256=digest)
    added = tuple(rel for rel in present if rel not in listed)
    missing = tuple(rel for rel in sorted(listed) if rel not in present
                    and any(fnmatch.fnmatch(rel, pattern) for pattern in recipe_patterns))
    different, digest = [], None
    for rel, file in present.items():
        if rel in listed:
            same, sha = _matches(file, listed[rel])
            digest = sha if rel == HUB_FILE else digest
            if not same:
                different.append(rel)
    if weights is not None and digest is None:
        digest = sha256_file(weights)
    state = DIFFERS if (missing or added or different) else VERIFIED
    return UpstreamCheck(state, str(path), missing, added, tuple(different), digest)
