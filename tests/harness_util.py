"""Helpers for the plugin tests, which run whole pytest sessions of a throwaway project with `pytester`."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from nvseg_bench.harness.cache import DigestMemo, DirCache, cache_key, fingerprint
from nvseg_bench.harness.options import HarnessOptions
from nvseg_bench.harness.runs import build_spec
from nvseg_bench.harness.trust import pack_digests

from .helpers import GATE_MODULE, materialize_pack

HEADER = "nvseg-bench *: torch *, monai *, numpy *; *"


def make_project(pytester: pytest.Pytester, files: dict[str, str] | None = None, ini: str = "") -> Path:
    """A project of its own (its pytest.ini makes it the rootdir, so it has its own cache)."""
    pytester.makeini("[pytest]\naddopts = --strict-markers\n" + ini)
    pytester.makepyfile(**(files or {"test_nvseg": GATE_MODULE}))
    return pytester.path


def cached_entry(cache_root: Path, name: str) -> dict[str, Any] | None:
    """A run's entry in a pytest cache dir (.pytest_cache) or a DirCache root (DIR/.nvseg-cache)."""
    path = cache_root / "v" / "nvseg" / "runs" / name
    return json.loads(path.read_text()) if path.is_file() else None


def write_entry(project: Path, entry: dict[str, Any]) -> None:
    value = project / ".pytest_cache" / "v" / "nvseg" / "runs" / entry["name"]
    value.parent.mkdir(parents=True, exist_ok=True)
    value.write_text(json.dumps(entry))


def seed_entry(project: Path, run_dir: Path, tmp: Path, name: str = "smoke",
               opts: HarnessOptions | None = None) -> dict[str, Any]:
    """Put run_dir into the project's cache as an earlier session's run, under the key this machine
    computes for it now (so the next session with these options is a cache hit), with its digests."""
    spec = build_spec(name, opts or HarnessOptions())
    memo = DigestMemo(DirCache(tmp / "memo"))
    parts = fingerprint(spec.args, spec.inputs, spec.uses_gpu, memo)
    entry = {"name": name, "out": str(run_dir), "returncode": 0, "wall_seconds": 90.0, "console_tail": [],
             "key": cache_key(parts), "parts": parts, "session": "an earlier session", "finished_at": "earlier",
             "inputs_unchanged": True, "reference": spec.reference, "args": spec.args, "executions": 1,
             "pack": pack_digests(run_dir)}
    write_entry(project, entry)
    return entry


def project_with_stored_pack(pytester: pytest.Pytester, tmp: Path) -> Path:
    """A project whose cache holds the stored smoke pack as its smoke run: gate sessions run nothing."""
    project = make_project(pytester)
    run_dir = materialize_pack("smoke", project / "evidence" / "smoke-run")
    seed_entry(project, run_dir, tmp)
    return run_dir


def copy_entry(project: Path, entry: dict[str, Any], run_dir: Path, cache: Path | None = None) -> Path:
    """Copy a finished run and its entry into another project's cache, as an earlier session's."""
    cache = cache or project / ".pytest_cache"
    target = cache / "d" / "nvseg" / "runs" / Path(run_dir).name
    shutil.copytree(run_dir, target)
    copied = dict(entry, session="an earlier session", out=str(target))
    value = cache / "v" / "nvseg" / "runs" / entry["name"]
    value.parent.mkdir(parents=True, exist_ok=True)
    value.write_text(json.dumps(copied))
    return target
