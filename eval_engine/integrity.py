"""Integrity: the manifest's hashes against the files, links that leave the pack, and paths in
output.json that leave the pack (by an absolute path, `..` or a link) without being declared inputs.
The inputs outside the pack are compared in inputs.py. Reads only; never follows a link to write."""
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

from .findings import Finding, failed, passed, skipped, warned
from .pack import Pack, sha256_file

NOT_IN_MANIFEST = {"output.json", "manifest.json", "trust_summary.json", "trust_summary.md"}  # the last two: this verifier's own output


def check_manifest(pack: Pack) -> Finding:
    manifest = pack.manifest
    if not manifest or "files" not in manifest:
        return failed("integrity.manifest", "manifest.json is missing or unreadable: nothing in the pack can be trusted")
    bad, missing, escaping = [], [], []
    for rel, meta in manifest["files"].items():
        if PurePosixPath(rel).is_absolute() or ".." in PurePosixPath(rel).parts:
            escaping.append(rel)
            continue
        path = pack.root / rel
        if not path.is_file():
            missing.append(rel)
        elif sha256_file(path) != meta.get("sha256"):
            bad.append(rel)
    unlisted = sorted(p.relative_to(pack.root).as_posix() for p in pack.root.rglob("*")
                      if p.is_file() and p.relative_to(pack.root).as_posix() not in manifest["files"]
                      and p.name not in NOT_IN_MANIFEST and p.parent != pack.root / "trust")
    numbers = {"listed": len(manifest["files"]), "hash_mismatch": bad, "missing": missing,
               "escaping": escaping, "unlisted": unlisted[:20]}
    if bad or missing or escaping:
        parts = [f"{len(bad)} changed since the run ({', '.join(bad[:5])})" if bad else "",
                 f"{len(missing)} missing ({', '.join(missing[:5])})" if missing else "",
                 f"{len(escaping)} listed outside the pack" if escaping else ""]
        return failed("integrity.manifest", "; ".join(p for p in parts if p), **numbers)
    if unlisted:
        return warned("integrity.manifest", f"all {len(manifest['files'])} listed files match; "
                      f"{len(unlisted)} files are not listed", **numbers)
    return passed("integrity.manifest", f"all {len(manifest['files'])} listed files match their sha256", **numbers)


def _paths(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, f"{where}/{index}")
    elif isinstance(node, str) and (where.startswith(RELATIVE_FIELDS) or node.startswith("/") and " " not in node):
        yield where, node


# fields that legitimately point outside the pack: inputs, the environment, the commands
ALLOWED_OUTSIDE = ("/input/", "/invocation/", "/environment/", "/output/pretrained_ckpt",
                   "/output/checkpoint_comparisons_to_pretrained/best/pretrained", "/runtime/log_tail",
                   "/runtime/preprocess_cache",  # the shared preprocessing cache lives outside every run
                   "/output/forgetting/checkpoints/pretrained")


# fields the verifier reads files from, checked even when they hold a relative path
RELATIVE_FIELDS = ("/output/finetuned_ckpt", "/output/recommended_ckpt", "/runtime/phase_logs/",
                   "/runtime/resumed/earlier_logs/", "/input/datalist")


def _may_leave(where: str, value: str) -> bool:
    """Inputs, the environment and the commands may point anywhere; a relative datalist is the pack's."""
    if where == "/input/datalist":
        return PurePosixPath(value).is_absolute()
    return where == "/output/recommended_ckpt" or where.startswith(ALLOWED_OUTSIDE)


def check_links(pack: Pack) -> Finding:
    """No file or folder in the pack is a link that resolves outside it: every read stays in the pack."""
    out = []
    for folder, dirs, files in os.walk(pack.root):  # os.walk does not descend into linked folders
        for entry in dirs + files:
            path = Path(folder) / entry
            if path.is_symlink() and not pack.inside(path):
                out.append(f"{path.relative_to(pack.root).as_posix()} -> {os.readlink(path)}")
    if out:
        return failed("integrity.links", f"{len(out)} links in the pack lead outside it: {', '.join(out[:5])}",
                      links=out[:20])
    return passed("integrity.links", "no link in the pack leads outside it")


def check_escaping_paths(pack: Pack) -> Finding:
    """Every other path in output.json must point inside the pack."""
    bad = []
    for where, value in _paths(pack.output):
        if _may_leave(where, value):
            continue  # the recommendation may be the pretrained file: judged just below
        if not pack.inside(pack.locate(value) or Path(value)):
            bad.append(f"{where}: {value}")
    recommended = (pack.output.get("output") or {}).get("recommended_ckpt")
    allowed = {(pack.output.get("output") or {}).get("pretrained_ckpt")}
    if recommended and recommended not in allowed and not pack.inside(pack.locate(recommended) or Path(recommended)):
        bad.append(f"/output/recommended_ckpt: {recommended}")
    if bad:
        return failed("integrity.paths", f"{len(bad)} paths in output.json leave the pack: {bad[0]}", paths=bad)
    return passed("integrity.paths", "every output path in output.json lies inside the pack")
