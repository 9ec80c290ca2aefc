"""Pretrained weights: which checkpoint a run starts from, and proof of which file it was.

Order: the resolver's choice (--pretrained-ckpt PATH, else the dataset's fixture card); the bundle's models/model.pt; the
Hugging Face hub (repo nvidia/NV-Segment-CT at a pinned revision), which honours HF_HUB_OFFLINE,
HF_HOME and the local cache. Never loads the weights (the bundle does); hashes the file.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nvseg_bench.store.files import sha256_file
from nvseg_bench.errors import ArgumentError
from nvseg_bench.inputs.family import CT, MODELS, Model

HUB_REPO = MODELS[CT].hub_repo  # NV-Segment-CT's, the default model's (inputs/family.py holds each model's)
HUB_REVISION = MODELS[CT].revision
HUB_FILE = MODELS[CT].hub_file
FULL_MODEL_NAME = MODELS[CT].title


@dataclass(frozen=True)
class Weights:
    path: str
    source: str
    model_name: str
    sha256: str
    bytes: int
    layout_check: str = "not checked"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _describe(path: Path, source: str, model_name: str) -> Weights:
    return Weights(str(path.resolve()), source, model_name, sha256_file(path), path.stat().st_size)


def hub_cache_dir() -> Path:
    """HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub, read now (huggingface_hub reads at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "huggingface"
    return Path(home).expanduser() / "hub"


HUB_PROBE_SECONDS = 3.0  # one connection attempt before a download; the download itself keeps its retries


def hub_endpoint() -> str:
    """The hub huggingface_hub talks to (HF_ENDPOINT, as it reads it)."""
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def hub_unreachable() -> str | None:
    """Why the hub cannot be reached at all (None when a connection opens): one TCP connect, no retries, so a
    machine without network learns in seconds, not after the download's retries."""
    import socket
    from urllib.parse import urlsplit

    where = urlsplit(hub_endpoint())
    port = where.port or (443 if where.scheme == "https" else 80)
    try:
        with socket.create_connection((where.hostname or "", port), timeout=HUB_PROBE_SECONDS):
            return None
    except OSError as exc:
        return f"the hub at {hub_endpoint()} cannot be reached ({type(exc).__name__}: {exc})"


def from_hub(spec: Model = MODELS[CT]) -> Path:
    """The model's hub checkpoint (pinned for NV-Segment-CT), from the local cache when offline."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ArgumentError(
            "no pretrained checkpoint was given and huggingface_hub is not installed.",
            fix=["Pass --pretrained-ckpt PATH, or pip install huggingface_hub."],
        ) from None
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}
    try:
        # the local cache first, so a cached file never costs a network round trip
        return Path(hf_hub_download(spec.hub_repo, spec.hub_file, revision=spec.revision, cache_dir=hub_cache_dir(),
                                    local_files_only=True))
    except Exception:  # not cached (the hub raises several types for that)
        if offline:
            return _unavailable("offline (HF_HUB_OFFLINE is set) and not in the local cache", "LocalEntryNotFound", spec)
        if unreachable := hub_unreachable():
            return _unavailable("not in the local cache, and the hub cannot be reached", unreachable, spec)
    print(f"nvseg-finetune: downloading {spec.hub_file} (about 832 MiB) from {spec.hub_repo}@{spec.revision[:12]}",
          flush=True)
    try:
        return Path(hf_hub_download(spec.hub_repo, spec.hub_file, revision=spec.revision, cache_dir=hub_cache_dir()))
    except Exception as exc:  # the hub raises many types; all mean "not available here"
        return _unavailable("not in the local cache and not downloadable", type(exc).__name__, spec)


def _unavailable(mode: str, reason: str, spec: Model = MODELS[CT]) -> Path:
    raise ArgumentError(
        f"the pretrained {spec.hub_repo.split('/')[1]} checkpoint is {mode} ({reason}).",
        evidence=[f"Looked for {spec.hub_repo}@{spec.revision[:12]} file {spec.hub_file} (cache: HF_HOME / "
                  "~/.cache/huggingface)."],
        fix=["Pass --pretrained-ckpt PATH, put the file at BUNDLE/models/model.pt, or download it once on a "
             "machine with network access into the Hugging Face cache."],
    )


def resolve_weights(chosen: str | None, source: str, model_name: str | None, bundle_dir: Path,
                    spec: Model = MODELS[CT]) -> Weights:
    """The resolver's checkpoint (from --pretrained-ckpt or the fixture card), else the bundle's, else the hub's."""
    if chosen:
        path = Path(chosen).expanduser()
        by_caller = source.startswith("--")
        if not path.is_file():
            raise ArgumentError(
                f"--pretrained-ckpt {chosen} does not exist." if by_caller else
                f"the dataset's {source} names {path}, which does not exist.",
                fix=["Point it at a VISTA3D checkpoint file (model.pt), or leave it out to use the default."
                     if by_caller else "Regenerate the fixture model, or pass --pretrained-ckpt PATH."],
            )
        return _describe(path, source, model_name or ("user checkpoint" if by_caller else "fixture model"))
    bundled = bundle_dir / "models" / "model.pt"
    if bundled.is_file():
        return _describe(bundled, "bundle models/model.pt", spec.title)
    return _describe(from_hub(spec), f"hub {spec.hub_repo}@{spec.revision}", spec.title)
