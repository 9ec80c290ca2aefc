"""Shared test fixtures: the real smoke run of the shipped fixture comes from the nvseg plugin's cache."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import pytest

from nvseg_bench.harness.runs import RunEvidence

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "fixtures" / "spleen_micro"
# every run a test starts (and their children) keeps its preprocessing cache here, never in ~/.cache
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="nvseg-test-cache-")


def tree_digest(root: Path) -> str:
    """sha256 over every file's path and bytes: any write under root changes it."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="session")
def smoke_run(nvseg_runs) -> RunEvidence:
    """`nvseg-finetune fixtures/spleen_micro --smoke`, run for real by the harness (cached across sessions)."""
    return nvseg_runs.get("smoke")
