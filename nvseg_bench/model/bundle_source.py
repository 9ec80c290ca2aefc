"""Which MONAI bundle a run drives, and the proof of where it came from (output.json `input.bundle`).

Three sources, in this order: `--bundle-dir DIR` ("dir"); this repository's `bundle/` ("builtin",
the offline stand-in that the smoke preset and the micro model use); else NVIDIA's recipe, the
Hugging Face repo nvidia/NV-Segment-CT at the pinned revision the weights come from ("hub"),
looked up in the ordinary HF cache first and downloaded only when HF_HUB_OFFLINE is not set and the
hub answers at all. A hub snapshot is used in place and never written to. Whether it is exactly
the pinned revision is checked offline against the hub's own file list that fetch-bundle keeps
(hub_files.py): `verified`, `self_consistent` (no list: each file only matches its own blob name),
`differs`, or `not_hub`. No torch, no monai.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nvseg_bench import paths
from nvseg_bench.errors import ArgumentError
from nvseg_bench.model import hub_files
from nvseg_bench.model.hub_files import UpstreamCheck, git_blob_id  # noqa: F401 (git_blob_id: the fixtures use it)
from nvseg_bench.model.weights import HUB_FILE, HUB_REPO, HUB_REVISION, hub_cache_dir, hub_unreachable

BUILTIN = paths.BUILTIN_BUNDLE
BUILTIN_PRESETS = ("smoke",)  # presets whose default is the builtin stand-in: the micro model needs it
RECIPE_DIRS = ("configs", "scripts")  # the files that make the recipe: digested into input.bundle
# what a run needs from the hub repo; the weights come separately (weights.py), or with fetch-bundle
RECIPE_PATTERNS = ["configs/*", "scripts/*", "*.json", "LICENSE*", "README*", "docs/*"]
CODE_SUFFIXES = (".json", ".py", ".conf", ".yaml", ".yml")
WEIGHT_SUFFIXES = (".pt", ".safetensors")  # kept with git LFS on the hub: blobs named by their sha256
COMPARABLE = (hub_files.VERIFIED, hub_files.SELF_CONSISTENT)  # the reference gates compare these, never `differs`


@dataclass(frozen=True)
class BundleSource:
    """The bundle a run uses: where it is, where it came from, and its recipe files' digests."""

    source: str  # "hub" | "builtin" | "dir"
    path: Path
    repo: str | None = None
    revision: str | None = None
    configs_sha256: dict[str, str] = field(default_factory=dict)
    upstream: UpstreamCheck | None = None  # hub only: the snapshot against the hub's file list (hub_files.py)

    @property
    def check(self) -> UpstreamCheck:
        return self.upstream or UpstreamCheck(hub_files.NOT_HUB, None)

    @property
    def matches_pinned_upstream(self) -> bool:
        return self.source == "hub" and self.revision == HUB_REVISION and self.check.state == hub_files.VERIFIED

    @property
    def comparable(self) -> bool:
        """Whether a reference measured on the pinned recipe may judge this run (verified or self-consistent)."""
        return self.source == "hub" and self.revision == HUB_REVISION and self.check.state in COMPARABLE

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "repo": self.repo, "revision": self.revision, "path": str(self.path),
                "configs_sha256": dict(self.configs_sha256),
                "matches_pinned_upstream": self.matches_pinned_upstream,
                "upstream_check": self.check.to_json(), "weights_sha256": self.check.weights_sha256,
                "altered_files": list(self.check.different)}


def recipe_digests(root: Path) -> dict[str, str]:
    """sha256 of every recipe file (configs/ and scripts/), by path relative to the bundle."""
    files = sorted(f for sub in RECIPE_DIRS for f in (root / sub).rglob("*")
                   if f.is_file() and f.suffix in CODE_SUFFIXES and "__pycache__" not in f.parts)
    return {f.relative_to(root).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _missing_hub(detail: str) -> ArgumentError:
    return ArgumentError(
        f"NVIDIA's NV-Segment-CT bundle is not available here ({detail}); nothing was run.",
        evidence=[f"A run without --bundle-dir uses {HUB_REPO} at revision {HUB_REVISION[:12]} from the "
                  f"Hugging Face cache ({hub_cache_dir()})."],
        fix=["Run `nvseg-finetune fetch-bundle` once on a machine with network access (it fills that cache), "
             "or pass --bundle-dir DIR with the NV-Segment-CT/ folder of NVIDIA-Medtech/NV-Segment-CTMR."])


def hub_snapshot(download: bool, patterns: list[str] | None = None) -> Path:
    """The pinned snapshot folder in the HF cache; downloads `patterns` first when allowed and not cached."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise _missing_hub("huggingface_hub is not installed: pip install huggingface_hub") from None
    wanted = RECIPE_PATTERNS if patterns is None else patterns
    try:  # the cache first: a cached snapshot never costs a network round trip
        return Path(snapshot_download(HUB_REPO, revision=HUB_REVISION, cache_dir=hub_cache_dir(),
                                      allow_patterns=wanted, local_files_only=True))
    except Exception as exc:  # not cached, or cached in part (the hub raises several types)
        if not download or offline():
            raise _missing_hub("HF_HUB_OFFLINE is set and it is not cached" if offline() else
                               f"not cached: {type(exc).__name__}") from None
    if unreachable := hub_unreachable():  # one quick try: no retries against a hub that is not there
        raise _missing_hub(f"not cached, and {unreachable}")
    print(f"nvseg-finetune: downloading the bundle files of {HUB_REPO}@{HUB_REVISION[:12]}", flush=True)
    try:
        return Path(snapshot_download(HUB_REPO, revision=HUB_REVISION, cache_dir=hub_cache_dir(),
                                      allow_patterns=wanted))
    except Exception as exc:  # the hub raises many types; all mean "not available here"
        raise _missing_hub(f"not cached and not downloadable: {type(exc).__name__}") from None


def from_hub(download: bool = True) -> BundleSource:
    snapshot = hub_snapshot(download)
    if not (snapshot / "configs").is_dir():
        raise _missing_hub(f"the cached snapshot {snapshot} has no configs/ folder")
    return BundleSource("hub", snapshot, HUB_REPO, HUB_REVISION, recipe_digests(snapshot),
                        upstream=hub_files.check_snapshot(snapshot, RECIPE_PATTERNS))


def bundle_dir(given: Path) -> Path:
    """A --bundle-dir, resolved; refused unless it holds a configs/ folder. Reads no file."""
    path = given.expanduser().resolve()
    if not (path / "configs").is_dir():
        raise ArgumentError(f"--bundle-dir {given} is not a MONAI bundle (no configs/ folder).",
                            fix=["Point --bundle-dir at a VISTA3D bundle (the NV-Segment-CT/ folder of "
                                 "NVIDIA-Medtech/NV-Segment-CTMR), or leave it out for NVIDIA's bundle from the hub."])
    return path


def from_dir(given: Path) -> BundleSource:
    path = bundle_dir(given)
    return BundleSource("builtin" if path == BUILTIN else "dir", path, configs_sha256=recipe_digests(path))


def choose(given: Path | None, preset: str, download: bool = True) -> BundleSource:
    """--bundle-dir wins; the smoke preset keeps the builtin stand-in; every other run uses NVIDIA's."""
    if given is not None:
        return from_dir(given)
    if preset in BUILTIN_PRESETS:
        return from_dir(BUILTIN)
    return from_hub(download)


def differing_files(used: BundleSource) -> list[str]:
    """Recipe files in which a bundle differs from the pinned upstream one (the cached snapshot's),
    as 'configs/x.json (changed)', '... (missing)' or '... (extra)'; [] when the snapshot is not cached."""
    if used.matches_pinned_upstream:
        return []
    try:
        pinned = recipe_digests(hub_snapshot(download=False))
    except ArgumentError:
        return list(used.check.different)
    mine = used.configs_sha256
    changed = [f"{name} (changed)" for name in sorted(mine.keys() & pinned.keys()) if mine[name] != pinned[name]]
    return (changed + [f"{name} (missing)" for name in sorted(pinned.keys() - mine.keys())]
            + [f"{name} (extra)" for name in sorted(mine.keys() - pinned.keys())])


def fetch_patterns() -> list[str]:
    """What `nvseg-finetune fetch-bundle` brings: the recipe files and the pinned weights."""
    return [*RECIPE_PATTERNS, HUB_FILE]


def plan_line(used: BundleSource, class_list: Path) -> str:
    """The plan's line on which bundle runs, why, and where its class list comes from."""
    if used.source == "hub":
        against = "against the hub's file list" if used.check.file_list else "no hub file list"
        warning = used.check.warning()
        state = f"{used.check.state}, {against}" + (f"; warning: {warning}" if warning else "")
        what = f"NVIDIA's recipe, {used.repo}@{(used.revision or '')[:12]} from the Hugging Face cache ({state})"
    elif used.source == "builtin":
        what = "this project's offline stand-in bundle/ (the smoke preset's micro model needs it)"
    else:
        what = f"--bundle-dir {used.path}"
    borrowed = "" if class_list.is_relative_to(used.path) else \
        f"; class list {class_list} (the bundle ships none; the same classes as upstream's)"
    return f"bundle: {what}{borrowed}"
