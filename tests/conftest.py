"""Shared test fixtures: the real smoke run of the shipped fixture comes from the nvseg plugin's cache.

Paths and helpers live in tests/helpers.py; test modules import from there, never from here.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

from nvseg_bench.harness.runs import RunEvidence

# every run a test starts (and their children) keeps its preprocessing cache here, never in ~/.cache
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="nvseg-test-cache-")

# runs without --bundle-dir resolve NVIDIA's bundle from the Hugging Face cache: here, one laid out at the
# pinned revision by fixtures/make_hub_cache.py (this project's bundle files, the micro model as weights),
# offline, so no test reaches the network
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
import make_hub_cache  # noqa: E402

os.environ.pop("HF_HUB_CACHE", None)
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="nvseg-test-hf-")
os.environ["HF_HUB_OFFLINE"] = "1"
make_hub_cache.build(Path(os.environ["HF_HOME"]) / "hub")
# and nvidia/NV-Segment-CTMR (unpinned: refs/main names a test commit) for --model ctmr without --bundle-dir
import make_ctmr_bundle  # noqa: E402

make_ctmr_bundle.build_hub_cache(Path(os.environ["HF_HOME"]) / "hub")


@pytest.fixture(scope="session")
def smoke_run(nvseg_runs) -> RunEvidence:
    """`nvseg-finetune fixtures/spleen_micro --smoke`, run for real by the harness (cached across sessions)."""
    return nvseg_runs.get("smoke")
