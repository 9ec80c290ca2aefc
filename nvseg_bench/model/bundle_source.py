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
from nvseg_bench.inputs.family import CT, MODELS, Model
from nvseg_bench.model import hub_files
from nvseg_bench.model.hub_files import UpstreamCheck, git_blob_id  # noqa: F401 (git_blob_id: the fixtures use it)
from nvseg_bench.model.weights import HUB_FILE, hub_cache_dir, hub_unreachable

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
    model: str = CT  # the family member (inputs/family.py): ct | ctmr

    @property
    def check(self) -> UpstreamCheck:
        return self.upstream or UpstreamCheck(hub_files.NOT_HUB, None)

    @property
    def matches_pinned_upstream(self) -> bool:
        return self.pinned and self.check.state == hub_files.VERIFIED

    @property
    def pinned(self) -> bool:
        """A hub bundle at its model's pinned revision (an unpinned model, CTMR, never is)."""
        spec = MODELS[self.model]
        return self.source == "hub" and spec.pinned and self.revision == spec.revision

    @property
    def comparable(self) -> bool:
        """Whether a reference measured on the pinned recipe may judge this run (verified or self-consistent)."""
        return self.pinned and self.check.state in COMPARABLE

    def to_json(self) -> dict[str, Any]:
        spec = MODELS[self.model]
        return {"source": self.source, "model": self.model, "licence": spec.licence,
                "non_commercial": spec.non_commercial, "repo": self.repo, "revision": self.revision, "path": str(self.path),
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


def _missing_hub(detail: str, spec: Model = MODELS[CT]) -> ArgumentError:
    folder = spec.hub_repo.split("/")[1]
    return ArgumentError(
        f"NVIDIA's {folder} bundle is not available here ({detail}); nothing was run.",
        evidence=[f"A run without --bundle-dir uses {spec.hub_repo} at revision {spec.revision[:12]} from the "
                  f"Hugging Face cache ({hub_cache_dir()})."],
        fix=[f"Run `nvseg-finetune fetch-bundle{'' if spec.name == CT else ' --model ' + spec.name}` once on a machine "
             f"with network access (it fills that cache), or pass --bundle-dir DIR with the {folder}/ folder of "
             "NVIDIA-Medtech/NV-Segment-CTMR."])


def hub_snapshot(download: bool, patterns: list[str] | None = None, spec: Model = MODELS[CT]) -> Path:
    """The pinned snapshot folder in the HF cache; downloads `patterns` first when allowed and not cached."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise _missing_hub("huggingface_hub is not installed: pip install huggingface_hub") from None
    wanted = RECIPE_PATTERNS if patterns is None else patterns
    try:  # the cache first: a cached snapshot never costs a network round trip
        return Path(snapshot_download(spec.hub_repo, revision=spec.revision, cache_dir=hub_cache_dir(),
                                      allow_patterns=wanted, local_files_only=True))
    except Exception as exc:  # not cached, or cached in part (the hub raises several types)
        if not download or offline():
            raise _missing_hub("HF_HUB_OFFLINE is set and it is not cached" if offline() else
                               f"not cached: {type(exc).__name__}", spec) from None
    if unreachable := hub_unreachable():  # one quick try: no retries against a hub that is not there
        raise _missing_hub(f"not cached, and {unreachable}", spec)
    print(f"nvseg-finetune: downloading the bundle files of {spec.hub_repo}@{spec.revision[:12]}", flush=True)
    try:
        return Path(snapshot_download(spec.hub_repo, revision=spec.revision, cache_dir=hub_cache_dir(),
                                      allow_patterns=wanted))
    except Exception as exc:  # the hub raises many types; all mean "not available here"
        raise _missing_hub(f"not cached and not downloadable: {type(exc).__name__}", spec) from None


def from_hub(download: bool = True, spec: Model = MODELS[CT]) -> BundleSource:
    snapshot = hub_snapshot(download, spec=spec)
    if not (snapshot / "configs").is_dir():
        raise _missing_hub(f"the cached snapshot {snapshot} has no configs/ folder", spec)
    # an unpinned repo (CTMR) records the commit its cached main resolved to: the snapshot folder's name
    revision = spec.revision if spec.pinned else snapshot.name
    return BundleSource("hub", snapshot, spec.hub_repo, revision, recipe_digests(snapshot),
                        upstream=hub_files.check_snapshot(snapshot, RECIPE_PATTERNS, spec.hub_repo), model=spec.name)


def bundle_dir(given: Path) -> Path:
    """A --bundle-dir, resolved; refused unless it holds a configs/ folder. Reads no file."""
    path = given.expanduser().resolve()
    if not (path / "configs").is_dir():
        raise ArgumentError(f"--bundle-dir {given} is not a MONAI bundle (no configs/ folder).",
                            fix=["Point --bundle-dir at a VISTA3D bundle (the NV-Segment-CT/ folder of "
                                 "NVIDIA-Medtech/NV-Segment-CTMR), or leave it out for NVIDIA's bundle from the hub."])
    return path


def from_dir(given: Path, model: str = CT) -> BundleSource:
    path = bundle_dir(given)
    return BundleSource("builtin" if path == BUILTIN else "dir", path, configs_sha256=recipe_digests(path), model=model)


def choose(given: Path | None, preset: str, download: bool = True, spec: Model = MODELS[CT]) -> BundleSource:
    """--bundle-dir wins; the smoke preset keeps the builtin stand-in (an NV-Segment-CT bundle: only for --model ct);
    every other run uses NVIDIA's bundle of the chosen model from the hub."""
    if given is not None:
        return from_dir(given, spec.name)
    if preset in BUILTIN_PRESETS and spec.name == CT:
        return from_dir(BUILTIN)
    return from_hub(download, spec)


def differing_files(used: BundleSource) -> list[str]:
    """Recipe files in which a bundle differs from the pinned upstream one (the cached snapshot's),
    as 'configs/x.json (changed)', '... (missing)' or '... (extra)'; [] when the snapshot is not cached."""
    if used.matches_pinned_upstream:
        return []
    try:
        pinned = recipe_digests(hub_snapshot(download=False, spec=MODELS[used.model]))
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
        unpinned = "" if used.pinned else ", unpinned: the commit the cached main named; no revision is pinned"
        what = f"NVIDIA's recipe, {used.repo}@{(used.revision or '')[:12]} from the Hugging Face cache ({state}{unpinned})"
    elif used.source == "builtin":
        what = "this project's offline stand-in bundle/ (the smoke preset's micro model needs it)"
    else:
        what = f"--bundle-dir {used.path}"
    borrowed = "" if class_list.is_relative_to(used.path) else \
        f"; class list {class_list} (the bundle ships none; the same classes as upstream's)"
    return f"bundle: {what}{borrowed}"
