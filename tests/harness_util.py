"""Helpers for tests that run whole pytest sessions of a throwaway project in a subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

GATE_MODULE = "from nvseg_bench.harness.gate_items import test_gate  # noqa: F401\n"


def make_project(root: Path, files: dict[str, str] | None = None) -> Path:
    """A project dir of its own (pytest.ini makes it the rootdir, so it gets its own cache)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text("[pytest]\naddopts = --strict-markers\n")
    for name, text in (files or {"test_nvseg.py": GATE_MODULE}).items():
        (root / name).write_text(text)
    return root


def run_pytest(project: Path, *args: str, timeout: float = 900, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NVSEG_"))} | (env or {})
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=project, env=env, capture_output=True,
                          text=True, timeout=timeout)


def cached_entry(project: Path, name: str) -> dict[str, Any] | None:
    path = project / ".pytest_cache" / "v" / "nvseg" / "runs" / name
    return json.loads(path.read_text()) if path.is_file() else None
