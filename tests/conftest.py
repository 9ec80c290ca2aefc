"""Shared test fixtures: one real smoke run of the shipped fixture, made once per session."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "fixtures" / "spleen_micro"


def tree_digest(root: Path) -> str:
    """sha256 over every file's path and bytes: any write under root changes it."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def run_cli(*args: str, cwd: Path = REPO, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nvseg_bench", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> dict:
    """Run `nvseg-finetune fixtures/spleen_micro --smoke` for real; return its facts."""
    out = tmp_path_factory.mktemp("smoke") / "run"
    before = {name: tree_digest(REPO / name) for name in ("bundle", "fixtures")}
    proc = run_cli(str(FIXTURE), "--smoke", "--output-dir", str(out))
    after = {name: tree_digest(REPO / name) for name in ("bundle", "fixtures")}
    doc = json.loads((out / "output.json").read_text()) if (out / "output.json").is_file() else None
    return {"proc": proc, "out": out, "doc": doc, "inputs_unchanged": before == after}
