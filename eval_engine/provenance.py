"""Bundle provenance: which recipe a run drove, re-derived from the bundle's files where they are reachable.

output.json's `input.bundle` claims the source, the sha256 of every config and script, and how the
bundle compares with NVIDIA's pinned upstream (`upstream_check.state`: `verified` against the hub's
own file list, `self_consistent` when no list was kept, `differs`, or `not_hub`; and
`matches_pinned_upstream`, true only when verified). The hub cache keeps a repo under
`models--nvidia--NV-Segment-CT/snapshots/REVISION/`; `nvseg-finetune fetch-bundle` keeps the hub's
list of the revision's files (path, size, git blob id, LFS sha256) in that repo folder as
`nvseg-file-list.REVISION.json`. This verifier re-derives the state with its own code and its own
pinned repo and revision, and fails a pack that claims a stronger state than it finds. A run of
NV-Segment-CTMR (`input.bundle.model` "ctmr") has no pinned revision: its snapshot is checked against
the list kept for the commit it names (the snapshot folder's name) in `models--nvidia--NV-Segment-CTMR`,
and is never pinned.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .findings import Finding, failed, passed, skipped
from .pack import Pack, sha256_file

PINNED_REPO = "nvidia/NV-Segment-CT"
PINNED_REVISION = "afb51518689f71e6abb367ee6301b2cd0225c66a"  # the revision the NV-Segment-CT weights come from
UNPINNED_REPOS = {"ctmr": "nvidia/NV-Segment-CTMR"}  # model -> hub repo of a model no revision is pinned for
WEIGHT_SUFFIXES = (".pt", ".safetensors")
RECIPE = ("configs/*", "scripts/*", "*.json", "LICENSE*", "README*", "docs/*")  # what a run needs from the hub
VERIFIED, SELF_CONSISTENT, DIFFERS, NOT_HUB = "verified", "self_consistent", "differs", "not_hub"
STRENGTH = {VERIFIED: 2, SELF_CONSISTENT: 1, DIFFERS: 0, NOT_HUB: 0}  # a claim may be weaker than found, never stronger


def _blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob " + str(len(data)).encode() + b"\0" + data).hexdigest()


def _content_id(data: bytes, blob: str) -> str:
    """The hash the hub cache would name this content by, in the form of `blob`'s name."""
    return hashlib.sha256(data).hexdigest() if len(blob) == 64 else _blob_id(data)


def _listed_files(repo_folder: Path, repo: str, revision: str) -> dict[str, Any] | None:
    try:
        doc = json.loads((repo_folder / f"nvseg-file-list.{revision}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(doc, dict) and doc.get("repo") == repo and doc.get("revision") == revision
    files = doc.get("files") if ok else None
    return files if isinstance(files, dict) and all(isinstance(v, dict) for v in files.values()) else None


def _same_bytes(path: Path, entry: dict[str, Any]) -> bool:
    if path.stat().st_size != entry.get("size"):
        return False
    if entry.get("lfs_sha256"):
        return sha256_file(path) == entry["lfs_sha256"]
    return _blob_id(path.read_bytes()) == entry.get("blob_id")


def snapshot_state(path: Path, repo: str = PINNED_REPO, revision: str = PINNED_REVISION) -> tuple[str, list[str]]:
    """The snapshot's state as this verifier finds it, and the reasons when it is not `verified`."""
    expected = f"models--{repo.replace('/', '--')}"
    if path.parent.name != "snapshots" or path.parents[1].name != expected or path.name != revision:
        return DIFFERS, [f"{path} is not {expected}/snapshots/{revision} in a Hugging Face cache"]
    present = {p.relative_to(path).as_posix(): p for p in sorted(path.rglob("*")) if p.is_file()}
    listed = _listed_files(path.parents[1], repo, revision)
    if listed is None:
        altered = [f"{rel} differs from its blob {Path(os.path.realpath(p)).name[:12]}" for rel, p in present.items()
                   if not rel.endswith(WEIGHT_SUFFIXES)
                   and _content_id(p.read_bytes(), Path(os.path.realpath(p)).name) != Path(os.path.realpath(p)).name]
        return (DIFFERS, altered) if altered else (SELF_CONSISTENT, ["no hub file list in the cache"])
    problems = [f"{rel} (added)" for rel in present if rel not in listed]
    problems += [f"{rel} (missing)" for rel in sorted(listed) if rel not in present
                 and any(fnmatch.fnmatch(rel, pattern) for pattern in RECIPE)]
    problems += [f"{rel} (different)" for rel, p in present.items() if rel in listed and not _same_bytes(p, listed[rel])]
    return (DIFFERS, problems) if problems else (VERIFIED, [])


def derived_state(bundle: dict[str, Any]) -> tuple[str, list[str]] | None:
    """The run's bundle state as this verifier finds it (None when the bundle is not reachable here)."""
    path = Path(bundle.get("path") or "")
    if not bundle or not path.is_dir():
        return None
    if bundle.get("source") != "hub":
        return NOT_HUB, []
    if bundle.get("model") in UNPINNED_REPOS:  # checked against the list of the commit it names; never pinned
        return snapshot_state(path, UNPINNED_REPOS[bundle["model"]], str(bundle.get("revision")))
    if bundle.get("revision") != PINNED_REVISION:
        return DIFFERS, [f"revision {bundle.get('revision')} is not the pinned {PINNED_REVISION}"]
    return snapshot_state(path)


def derived_pinned(bundle: dict[str, Any]) -> bool | None:
    """Whether a reference measured on the pinned recipe may judge the run: the pinned upstream bundle verified or
    (no file list) self-consistent, as this verifier finds it (None: not reachable)."""
    found = derived_state(bundle)
    if found is None:
        return None
    return found[0] in (VERIFIED, SELF_CONSISTENT) and bundle.get("model") not in UNPINNED_REPOS


def claimed_state(bundle: dict[str, Any]) -> str:
    check = bundle.get("upstream_check")
    if isinstance(check, dict) and check.get("state") in STRENGTH:
        return str(check["state"])
    return VERIFIED if bundle.get("matches_pinned_upstream") is True else NOT_HUB  # an older output.json


def check_bundle(pack: Pack) -> Finding:
    name = "bundle_provenance"
    bundle = (pack.output.get("input") or {}).get("bundle")
    if not bundle:
        return skipped(name, "output.json records no bundle provenance (written by an older nvseg-bench?)")
    path = Path(bundle.get("path") or "")
    if not path.is_dir():
        return skipped(name, f"the bundle {path} is not reachable here")
    claimed = bundle.get("configs_sha256") or {}
    changed = sorted(rel for rel, digest in claimed.items()
                     if not (path / rel).is_file() or sha256_file(path / rel) != digest)
    state, why = derived_state(bundle) or (NOT_HUB, [])
    says, pinned = claimed_state(bundle), bundle.get("matches_pinned_upstream")
    pinned_found = state == VERIFIED and bundle.get("model") not in UNPINNED_REPOS
    numbers = {"files": len(claimed), "changed": changed, "state_derived": state, "state_claimed": says,
               "pinned_derived": pinned_found, "pinned_claimed": pinned}
    if changed:
        return failed(name, f"{len(changed)} recipe files differ from the digests output.json gives: "
                      f"{', '.join(changed[:5])}", **numbers)
    if STRENGTH[says] > STRENGTH[state] or (pinned is True and not pinned_found):
        return failed(name, f"output.json claims upstream state {says} (matches_pinned_upstream={pinned}), the "
                      f"verifier finds {state} ({'; '.join(why[:3]) or 'it is'})", **numbers)
    return passed(name, f"{len(claimed)} recipe files match; {bundle.get('source')} bundle, upstream state {state}"
                  + (f" ({why[0]})" if why else ""), **numbers)
