"""Bundle provenance: which recipe a run drove, re-derived from the bundle's files where they are reachable.

output.json's `input.bundle` claims the source, the sha256 of every config and script, and whether
the bundle is NVIDIA's pinned upstream exactly as the hub delivered it. The hub cache names each
file's content by its hash (the git blob id, or the sha256 of a large file) under
`models--nvidia--NV-Segment-CT/snapshots/REVISION/`, so that claim is checked offline with this
verifier's own code. The pinned repo and revision are the verifier's own record, not the producer's.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from .findings import Finding, failed, passed, skipped
from .pack import Pack, sha256_file

PINNED_REPO = "nvidia/NV-Segment-CT"
PINNED_REVISION = "afb51518689f71e6abb367ee6301b2cd0225c66a"  # the revision the NV-Segment-CT weights come from
WEIGHT_SUFFIXES = (".pt", ".safetensors")


def _content_id(data: bytes, blob: str) -> str:
    """The hash the hub cache would name this content by, in the form of `blob`'s name."""
    if len(blob) == 64:
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob " + str(len(data)).encode() + b"\0" + data).hexdigest()


def unchanged_snapshot(path: Path, revision: str) -> list[str]:
    """Why `path` is not the pinned snapshot as the hub delivered it ([] when it is)."""
    expected = f"models--{PINNED_REPO.replace('/', '--')}"
    if path.parent.name != "snapshots" or path.parents[1].name != expected or path.name != PINNED_REVISION:
        return [f"{path} is not {expected}/snapshots/{PINNED_REVISION} in a Hugging Face cache"]
    if revision != PINNED_REVISION:
        return [f"revision {revision} is not the pinned {PINNED_REVISION}"]
    problems = []
    for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.endswith(WEIGHT_SUFFIXES)):
        blob = Path(os.path.realpath(file)).name
        if _content_id(file.read_bytes(), blob) != blob:
            problems.append(f"{file.relative_to(path).as_posix()} differs from its blob {blob[:12]}")
    return problems


def derived_pinned(bundle: dict[str, Any]) -> bool | None:
    """Whether the run's bundle is the pinned upstream unchanged, as this verifier finds it (None: not reachable)."""
    path = Path(bundle.get("path") or "")
    if not bundle or not path.is_dir():
        return None
    return bundle.get("source") == "hub" and not unchanged_snapshot(path, str(bundle.get("revision")))


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
    pinned = derived_pinned(bundle)
    numbers = {"files": len(claimed), "changed": changed, "pinned_derived": pinned,
               "pinned_claimed": bundle.get("matches_pinned_upstream")}
    if changed:
        return failed(name, f"{len(changed)} recipe files differ from the digests output.json gives: "
                      f"{', '.join(changed[:5])}", **numbers)
    if pinned != bool(bundle.get("matches_pinned_upstream")):
        why = "; ".join(unchanged_snapshot(path, str(bundle.get("revision")))[:3]) or "it is"
        return failed(name, f"output.json claims matches_pinned_upstream={bundle.get('matches_pinned_upstream')}, "
                      f"the verifier finds {pinned} ({why})", **numbers)
    return passed(name, f"{len(claimed)} recipe files match; {bundle.get('source')} bundle"
                  + (", the pinned upstream unchanged" if pinned else ""), **numbers)
