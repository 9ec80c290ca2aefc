"""Integrity: the manifest's hashes against the files, the inputs outside the pack, and paths that
leave the pack without being declared inputs."""
from __future__ import annotations

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


def check_inputs(pack: Pack) -> list[Finding]:
    inputs = (pack.manifest or {}).get("inputs") or {}
    findings = []
    ckpt = inputs.get("pretrained_ckpt")
    if not ckpt:
        findings.append(warned("integrity.pretrained_ckpt", "the manifest records no pretrained checkpoint"))
    elif not Path(ckpt["path"]).is_file():
        findings.append(skipped("integrity.pretrained_ckpt", f"{ckpt['path']} is not reachable here"))
    else:
        actual = sha256_file(Path(ckpt["path"]))
        status = passed if actual == ckpt.get("sha256") else failed
        findings.append(status("integrity.pretrained_ckpt", f"{ckpt['path']} sha256 {'matches' if status is passed else 'differs'}",
                               recorded=ckpt.get("sha256"), actual=actual))
    findings.append(_check_dataset(inputs.get("dataset")))
    return findings


def _check_dataset(dataset: dict[str, Any] | None) -> Finding:
    if not dataset:
        return warned("integrity.dataset", "the manifest records no dataset files")
    root = Path(dataset["dataset_dir"])
    if not root.is_dir():
        return skipped("integrity.dataset", f"{root} is not reachable here")
    changed = [rel for rel, meta in dataset["files"].items()
               if not (root / rel).is_file() or sha256_file(root / rel) != meta["sha256"]]
    if changed:
        return failed("integrity.dataset", f"{len(changed)} dataset files differ from the run's ({', '.join(changed[:5])})",
                      changed=changed)
    return passed("integrity.dataset", f"all {len(dataset['files'])} dataset files match", files=len(dataset["files"]))


def _paths(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, f"{where}/{index}")
    elif isinstance(node, str) and node.startswith("/") and " " not in node:
        yield where, node


# fields that legitimately point outside the pack: inputs, the environment, the commands
ALLOWED_OUTSIDE = ("/input/", "/invocation/", "/environment/", "/output/pretrained_ckpt",
                   "/output/checkpoint_comparisons_to_pretrained/best/pretrained", "/runtime/log_tail",
                   "/runtime/preprocess_cache",  # the shared preprocessing cache lives outside every run
                   "/output/forgetting/checkpoints/pretrained")


def check_escaping_paths(pack: Pack) -> Finding:
    """Every other path in output.json must point inside the pack."""
    bad = []
    for where, value in _paths(pack.output):
        if any(where.startswith(prefix) for prefix in ALLOWED_OUTSIDE) or where == "/output/recommended_ckpt":
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
