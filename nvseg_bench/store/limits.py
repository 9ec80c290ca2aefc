"""The cache root's size and its limit: what each key holds, and the least recently used out first.

The root (preprocess_cache.py) holds one folder per preprocessing key (`ROOT/KEY/CHAIN/*.pt`), the
kept evaluations (`ROOT/evaluations/KEY/`), the audit rows and the digest memo. Left alone it only
grows: a Task06-sized dataset is gigabytes per key, and every changed file adds more. So the root
has a cap (`--preprocess-cache-max-gb`, default a quarter of the disk space that is free or already
held by the cache), and a run makes room by removing whole keys, least recently used first. A run
holds a shared lock on its key while its phases run; removal takes the lock exclusively without
waiting and skips a key another run holds, so two concurrent runs stay safe. A removed key is renamed
into ROOT/tmp first, so no run ever sees half a key. `nvseg-finetune cache` shows and prunes.
No torch, no monai.
"""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

DEFAULT_SHARE = 0.25  # of the free disk plus what the cache already holds
LOCK = ".lock"
USED = ".last_used"
EVALUATIONS = "evaluations"
_KEY = re.compile(r"^[0-9a-f]{16,64}$")


@dataclass(frozen=True)
class KeyInfo:
    """One removable unit of the cache."""

    kind: str  # "preprocess" | "evaluation"
    path: Path
    bytes: int
    files: int
    last_used: float  # epoch seconds

    @property
    def name(self) -> str:
        return self.path.name if self.kind == "preprocess" else f"{EVALUATIONS}/{self.path.name}"


def _size(folder: Path) -> tuple[int, int]:
    total, count = 0, 0
    for path in folder.rglob("*"):
        if path.is_file() and path.name not in (LOCK, USED):
            try:
                total += path.stat().st_size
                count += 1
            except OSError:
                continue  # removed meanwhile by another run
    return total, count


def _last_used(folder: Path) -> float:
    marker = folder / USED
    return (marker if marker.exists() else folder).stat().st_mtime


def keys(root: Path) -> list[KeyInfo]:
    """Every key under the root, least recently used first."""
    found = []
    places = [("preprocess", p) for p in root.iterdir() if p.is_dir() and _KEY.match(p.name)] if root.is_dir() else []
    evals = root / EVALUATIONS
    places += [("evaluation", p) for p in evals.iterdir() if p.is_dir() and _KEY.match(p.name)] if evals.is_dir() else []
    for kind, path in places:
        try:
            size, files = _size(path)
            found.append(KeyInfo(kind, path, size, files, _last_used(path)))
        except OSError:
            continue
    return sorted(found, key=lambda k: k.last_used)


def total_bytes(root: Path) -> int:
    return _size(root)[0] if root.is_dir() else 0


def default_cap(root: Path) -> int:
    """A quarter of what the disk at the root has free, plus what the cache holds already."""
    probe = next(p for p in (root, *root.parents) if p.exists())
    return int(DEFAULT_SHARE * (shutil.disk_usage(probe).free + total_bytes(root)))


def cap_bytes(root: Path, max_gb: float | None) -> int:
    return int(max_gb * 2**30) if max_gb is not None else default_cap(root)


def touch(folder: Path) -> None:
    """Mark a key used now (its USED marker's mtime); a read-only cache is used, just not marked."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / USED).touch()
    except OSError:
        pass


class Hold:
    """A shared lock on a key for as long as a run uses it (a context manager; also closable by hand)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.handle: IO[bytes] | None = (folder / LOCK).open("ab")
        fcntl.flock(self.handle.fileno(), fcntl.LOCK_SH)
        touch(folder)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()  # releases the lock
            self.handle = None

    def __enter__(self) -> "Hold":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def remove(info: KeyInfo, root: Path) -> bool:
    """Remove a key unless a run holds it; True when it is gone."""
    lock = info.path / LOCK
    try:
        handle = lock.open("ab")
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # a running phase holds it
        trash = root / "tmp" / f"removed-{info.path.name}-{uuid.uuid4().hex[:8]}"
        try:
            trash.parent.mkdir(parents=True, exist_ok=True)
            os.replace(info.path, trash)  # gone at once for every reader
        except OSError:
            return False
    shutil.rmtree(trash, ignore_errors=True)
    return True


def make_room(root: Path, cap: int, incoming: int, keep: frozenset[Path] = frozenset(),
              dry_run: bool = False) -> list[KeyInfo]:
    """Remove least recently used keys (never those in `keep`, nor one a run holds) until the cache and
    `incoming` bytes fit under `cap`; returns what was removed (with dry_run: what would be, nothing is)."""
    removed: list[KeyInfo] = []
    total = total_bytes(root)
    for info in keys(root):
        if total + incoming <= cap:
            break
        if info.path in keep:
            continue
        if dry_run or remove(info, root):
            removed.append(info)
            total -= info.bytes
    return removed


RESAMPLED_MM = 1.5  # the bundle's resample_to_spacing


def resampled_voxels(row: dict) -> float:
    """Voxels of an audited case after resampling to 1.5 mm (an upper bound: the crop to foreground is left out)."""
    if not row.get("shape") or not row.get("spacing"):
        return 0.0
    volume_mm3 = 1.0
    for size, spacing in zip(row["shape"][:3], row["spacing"][:3]):
        volume_mm3 *= size * spacing
    return volume_mm3 / RESAMPLED_MM**3


def estimate_bytes(rows: list[dict], formal_eval: bool) -> int:
    """What one run's entries take: each training and validation case resampled (float32 image, uint8
    label), and for the formal evaluation each validation image resampled with its label at the original grid."""
    total = 0.0
    for row in rows:
        total += resampled_voxels(row) * 5
        if formal_eval and row.get("fold") == 0:
            total += resampled_voxels(row) * 4 + float(_product(row.get("shape") or [0]))
    return int(total)


def _product(values: list[int]) -> int:
    out = 1
    for value in values[:3]:
        out *= int(value)
    return out


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def older_than(root: Path, seconds: float) -> Iterator[KeyInfo]:
    cutoff = time.time() - seconds
    return (info for info in keys(root) if info.last_used < cutoff)
