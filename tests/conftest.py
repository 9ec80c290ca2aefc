"""Shared test fixtures: the real smoke run of the shipped fixture comes from the nvseg plugin's cache.

Paths and helpers live in tests/helpers.py; test modules import from there, never from here.
"""
from __future__ import annotations

import pytest

from nvseg_bench.harness.runs import RunEvidence


@pytest.fixture(scope="session")
def smoke_run(nvseg_runs) -> RunEvidence:
    """`nvseg-finetune fixtures/spleen_micro --smoke`, run for real by the harness (cached across sessions)."""
    return nvseg_runs.get("smoke")
