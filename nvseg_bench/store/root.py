"""The cache root: one folder per user (default $XDG_CACHE_HOME/nvseg-bench/preprocess, else
~/.cache/...) that holds the preprocessing cache's keys, the digest memo (digests.json), the audit memo
(audit/) and the kept evaluations (evaluations/). Never inside the dataset or the bundle."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from nvseg_bench import paths
from nvseg_bench.errors import ArgumentError


def default_root(env: dict[str, str] | None = None) -> Path:
    env = dict(os.environ if env is None else env)
    base = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path(env.get("HOME", "~")).expanduser() / ".cache"
    return base / "nvseg-bench" / "preprocess"


def root_path(given: Path | None) -> Path:
    """--preprocess-cache DIR, else the default root; absolute."""
    return (given.expanduser() if given else default_root()).resolve()


def choose_root(given: Path | None, off: bool, protected: dict[str, Path]) -> tuple[Path | None, str | None]:
    """The cache root, or None and why. A dir inside the dataset or bundle is refused; one that cannot be
    written falls back to no cache with a warning (returned as the note)."""
    if off:
        return None, "--no-preprocess-cache"
    root = root_path(given)
    for name, folder in protected.items():
        if paths.is_inside(root, folder):
            raise ArgumentError(f"--preprocess-cache {root} lies inside the {name} {folder}.",
                                fix=["Choose a cache dir elsewhere (default: $XDG_CACHE_HOME/nvseg-bench/preprocess, else "
                                     "~/.cache/nvseg-bench/preprocess), or pass --no-preprocess-cache."])
    try:
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root / "tmp"):
            pass
    except OSError as exc:
        return None, f"the preprocess cache dir {root} cannot be written ({exc.strerror or exc}); running without it"
    return root, None
