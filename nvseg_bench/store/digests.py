"""The digest memo: each file's sha256 remembered under its (path, size, mtime), so a later run or session
keys the same unchanged files without reading them. One format for the CLI's memo (ROOT/digests.json)
and the harness's (in pytest's cache): {path: {"stamp": "SIZE:MTIME_NS", "sha256": HEX}}."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nvseg_bench.store.files import sha256_file, write_atomic

FILE = "digests.json"  # the CLI's memo, at the cache root


def read_memo(memo_path: Path) -> dict[str, Any]:
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}


def stamp(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def entry(path: Path, sha256: str) -> dict[str, str]:
    return {"stamp": stamp(path), "sha256": sha256}


def remembered(memo: dict[str, Any], path: Path) -> str | None:
    """The memo's sha256 of this file if its size and mtime are those it was taken at."""
    found = memo.get(str(path))
    if isinstance(found, dict) and found.get("stamp") == stamp(path) and found.get("sha256"):
        return found["sha256"]
    return None


def known_digests(paths: list[Path], memo_path: Path) -> dict[str, str]:
    """The remembered sha256 of each file whose (path, size, mtime) is unchanged; reads no file."""
    memo = read_memo(memo_path)
    return {str(path): sha for path in paths if (sha := remembered(memo, path))}


def remember_digests(digests: dict[str, str], memo_path: Path) -> None:
    """Add these digests (taken now) to the memo under each file's current stamp."""
    memo = read_memo(memo_path)
    fresh = {path: entry(Path(path), sha) for path, sha in digests.items()}
    if any(memo.get(path) != value for path, value in fresh.items()):
        try:
            write_atomic(memo_path, json.dumps(memo | fresh, indent=1) + "\n")
        except OSError:
            pass  # the next run hashes again; nothing else depends on the memo


def file_digests(paths: list[Path], memo_path: Path) -> dict[str, str]:
    """sha256 of each file, reusing the memo when (path, size, mtime) is unchanged."""
    digests = known_digests(paths, memo_path)
    missing = {str(path): sha256_file(path) for path in paths if str(path) not in digests}
    if missing:
        remember_digests(missing, memo_path)
    return digests | missing
