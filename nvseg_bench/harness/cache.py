"""The run cache: a key over everything that decides a run's result, and the store of finished runs.

The key hashes the run's CLI arguments, the bundle files, the dataset files, the checkpoint and
network config it starts from, the wrapper code that plans and stages (the harness itself is left
out: a report change does not change a result), package versions, and the machine facts the plan
reads (GPUs, CPUs, RAM). Staged configs are a pure function of these. File digests are
remembered by (path, size, mtime), so a cache hit re-reads no data. Entries live in pytest's cache
(`config.cache`), so `--cache-clear` empties them; with the cache provider off (`-p no:cacheprovider`)
they live in a `DirCache` under --nvseg-out, or, without it, in a folder of this session only
(nothing is reused). A file lock per run makes xdist workers share one execution.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Protocol

import pytest
from filelock import FileLock

from nvseg_bench import paths
from nvseg_bench.planning.environment import host_ram_mb, package_versions, visible_gpus_from_smi
from nvseg_bench.model.weights import HUB_REPO, HUB_REVISION
from nvseg_bench.store import digests
from nvseg_bench.store.files import sha256_file, write_atomic
from nvseg_bench.store.root import root_path

WRAPPER = paths.PACKAGE
MEMO_KEY = "nvseg/sha256-v2"  # store/digests.py's format: {path: {stamp, sha256}}
SKIP_NAMES = {"__pycache__", ".git", ".pytest_cache"}


class KeyValues(Protocol):
    """What the harness uses of pytest's cache: JSON values by key, and folders of its own."""

    def get(self, key: str, default: Any) -> Any: ...
    def set(self, key: str, value: Any) -> None: ...
    def mkdir(self, name: str) -> Path: ...


class DirCache:
    """pytest.Cache's get/set/mkdir over a folder, for sessions without the cache provider."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def get(self, key: str, default: Any) -> Any:
        path = self.root / "v" / key
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return default

    def set(self, key: str, value: Any) -> None:
        path = self.root / "v" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(value, indent=2, sort_keys=True))

    def mkdir(self, name: str) -> Path:
        path = self.root / "d" / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def choose_cache(config: pytest.Config, out: Path | None, session: str) -> tuple[KeyValues, str | None]:
    """pytest's cache when the provider is on; else a DirCache, and a line for the header saying so."""
    cache = getattr(config, "cache", None)
    if cache is not None:
        return cache, None
    off = "pytest's cache provider is off (-p no:cacheprovider)"
    if out is not None:
        root = out / ".nvseg-cache"
        return DirCache(root), f"nvseg: {off}; run entries are kept under {root} (from --nvseg-out)"
    root = Path(tempfile.gettempdir()) / f"nvseg-session-{session[:12]}"
    return DirCache(root), (f"nvseg: {off} and no --nvseg-out was given, so nothing is cached: every session runs "
                            f"its finetunes again (evidence under {root / 'd' / 'nvseg' / 'runs'}). "
                            "Pass --nvseg-out=DIR to keep runs between sessions.")


class DigestMemo:
    """sha256 of files, remembered across sessions by path, size and mtime.

    `shared` is the CLI's digest memo (the preprocessing cache's digests.json): digests found there
    are not taken again, and those taken here are added to it, so the harness's cache key and the run
    it starts read each dataset file once between them."""

    def __init__(self, cache: KeyValues, shared: Path | None = None) -> None:
        self.cache = cache
        kept = cache.get(MEMO_KEY, {})
        self.known: dict[str, Any] = dict(kept) if isinstance(kept, dict) else {}  # store/digests.py's format
        self.dirty = False
        self.shared = shared
        self.shared_memo: dict[str, Any] | None = None
        self.taken: dict[str, str] = {}

    def file(self, path: Path) -> str:
        found = digests.remembered(self.known, path)
        if found is None:
            found = self._from_shared(path) or self._take(path)
            self.known[str(path)] = digests.entry(path, found)
            self.dirty = True
        return found

    def _from_shared(self, path: Path) -> str | None:
        if self.shared is None:
            return None
        if self.shared_memo is None:
            self.shared_memo = digests.read_memo(self.shared)
        return digests.remembered(self.shared_memo, path)

    def _take(self, path: Path) -> str:
        self.taken[str(path)] = sha256_file(path)
        return self.taken[str(path)]

    def tree(self, root: Path, leave_out: tuple[Path, ...] = ()) -> str:
        digest = hashlib.sha256()
        for path in sorted(_files(root, leave_out)):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + self.file(path).encode())
        return digest.hexdigest()

    def save(self) -> None:
        if self.dirty:
            self.cache.set(MEMO_KEY, self.known)
            self.dirty = False
        if self.shared is not None and self.taken:
            try:
                self.shared.parent.mkdir(parents=True, exist_ok=True)
            except OSError:
                return  # an unwritable cache dir: the run it starts hashes again, nothing worse
            digests.remember_digests(self.taken, self.shared)
            self.taken = {}


def shared_digest_memo(cli_args: list[str]) -> Path | None:
    """The digest memo the CLI runs will use: the cache root their flags choose (read by the CLI's own
    parser), else the default root; none with --no-preprocess-cache."""
    from nvseg_bench.cli import build_parser  # the CLI's parser: --help-free, no torch

    known, _ = build_parser().parse_known_args([*cli_args, "--output-dir", "unused"])
    if known.no_preprocess_cache:
        return None
    return root_path(known.preprocess_cache) / digests.FILE


def _files(root: Path, leave_out: tuple[Path, ...]) -> list[Path]:
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_NAMES and Path(folder, d) not in leave_out]
        found += [Path(folder, n) for n in names if not n.endswith(".pyc")]
    return found


def stat_listing(paths: list[Path]) -> list[tuple[str, int, int]]:
    """Every file under the given inputs with size and mtime, __pycache__ included: any write shows."""
    listing = []
    for root in paths:
        files = [root] if root.is_file() else [Path(d, n) for d, _, names in os.walk(root) for n in names]
        for path in files:
            stat = path.stat()
            listing.append((str(path), stat.st_size, stat.st_mtime_ns))
    return sorted(listing)


def machine_facts(gpu_allowed: bool) -> str:
    """What the plan reads from the machine: GPUs (patch size, processes), CPUs (workers), RAM (cache)."""
    gpus = (visible_gpus_from_smi() or []) if gpu_allowed else []
    gpu = "; ".join(f"{g['name']} {g['total_mb']:.0f} MiB" for g in gpus) or \
        ("none visible" if gpu_allowed else "hidden (no --gpu)")
    return f"GPU {gpu}; {os.cpu_count()} CPUs; {host_ram_mb() / 1024:.0f} GiB RAM"


def fingerprint(args: list[str], inputs: dict[str, Path | None], gpu_allowed: bool, memo: DigestMemo) -> dict[str, str]:
    """One digest per decisive input; the key is their hash, the parts say what changed."""
    parts: dict[str, str] = {"arguments": json.dumps(args)}
    for name, path in inputs.items():
        if path is None:
            continue
        parts[name] = memo.tree(path) if path.is_dir() else memo.file(path) if path.is_file() else f"missing: {path}"
    if "pretrained checkpoint" not in parts:
        parts["pretrained checkpoint"] = f"hub {HUB_REPO}@{HUB_REVISION} (or the bundle's models/model.pt)"
    parts["wrapper code"] = memo.tree(WRAPPER, leave_out=(WRAPPER / "harness", paths.SHIPPED))  # a wheel's bundle and
    # fixture copy: hashed as the run's own inputs above
    parts["packages"] = json.dumps(package_versions(), sort_keys=True)
    parts["machine"] = machine_facts(gpu_allowed)
    parts["environment"] = json.dumps({k: os.environ.get(k) for k in ("NPROC_PER_NODE", "CUDA_VISIBLE_DEVICES")})
    memo.save()
    return parts


def cache_key(parts: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def changed_parts(old: dict[str, str], new: dict[str, str]) -> list[str]:
    return sorted(name for name in old.keys() | new.keys() if old.get(name) != new.get(name))


class RunStore:
    """Finished runs by name, in pytest's cache (or a DirCache); run dirs under the evidence root."""

    def __init__(self, cache: KeyValues, evidence_root: Path | None) -> None:
        self.cache = cache
        self.home = cache.mkdir("nvseg")
        self.root = evidence_root or self.home / "runs"

    def lock(self, name: str) -> FileLock:
        return FileLock(str(self.home / f"{name}.lock"))

    def device_lock(self) -> FileLock:
        return FileLock(str(self.home / "gpu.lock"))

    def load(self, name: str) -> dict[str, Any] | None:
        entry = self.cache.get(f"nvseg/runs/{name}", None)
        return entry if isinstance(entry, dict) else None

    def save(self, name: str, entry: dict[str, Any]) -> None:
        self.cache.set(f"nvseg/runs/{name}", entry)

    def fresh_dir(self, name: str, key: str) -> Path:
        """A run dir that does not exist yet: never write over earlier evidence."""
        base = self.root / f"{name}-{key[:12]}"
        path, n = base, 1
        while path.exists():
            n += 1
            path = base.with_name(f"{base.name}-{n}")
        return path

    def forget_dir(self, path: Path) -> None:
        """Remove a superseded run dir, but only one this store made under pytest's cache dir."""
        if path.is_dir() and self.home in path.resolve().parents:
            shutil.rmtree(path, ignore_errors=True)
