"""Shared test fixtures: the real smoke run of the shipped fixture comes from the nvseg plugin's cache.

Paths and helpers live in tests/helpers.py; test modules import from there, never from here.
"""
from __future__ import annotations

import os
import tempfile

import pytest

from nvseg_bench.harness.runs import RunEvidence

# every run a test starts (and their children) keeps its preprocessing cache here, never in ~/.cache
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="nvseg-test-cache-")


@pytest.fixture(scope="session")
def smoke_run(nvseg_runs) -> RunEvidence:
    """`nvseg-finetune fixtures/spleen_micro --smoke`, run for real by the harness (cached across sessions)."""
    return nvseg_runs.get("smoke")
