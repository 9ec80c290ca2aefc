"""The example CI workflow (docs/ci/github-actions-example.yml) saves every run and fails on a real regression,
with options the plugin has."""
from __future__ import annotations

import re

import pytest
from ..helpers import REPO

yaml = pytest.importorskip("yaml")
WORKFLOW = REPO / "docs" / "ci" / "github-actions-example.yml"


def _steps() -> list[dict]:
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    return [step for job in jobs.values() for step in job["steps"]]


def test_every_nvseg_option_the_workflow_passes_is_one_the_plugin_has(pytestconfig):
    used = {flag for step in _steps() for flag in re.findall(r"(--nvseg-[a-z-]+|--gpu)\b", step.get("run", ""))}
    assert "--nvseg-compare-fail" in used
    for flag in used:  # the plugin is loaded in this session: getoption raises ValueError for an unknown name
        pytestconfig.getoption(flag[2:].replace("-", "_"))


def test_the_gpu_job_restores_saves_and_compares_with_the_history_store():
    steps = _steps()
    run = next(step["run"] for step in steps if "--nvseg-autosave" in step.get("run", ""))
    assert "--nvseg-compare=last" in run and "--nvseg-compare-fail=formal_dice:0.01" in run
    assert "--nvseg-storage=.nvseg-history" in run
    restore = next(s for s in steps if s.get("uses", "").startswith("actions/cache/restore@"))
    save = next(s for s in steps if s.get("uses", "").startswith("actions/cache/save@"))
    assert restore["with"]["path"] == save["with"]["path"] == ".nvseg-history"
    assert save["if"] == "always()" and restore["with"]["restore-keys"] == "nvseg-history-"
