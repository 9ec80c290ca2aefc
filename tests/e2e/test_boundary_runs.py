"""Boundary metrics on real runs: the shared smoke run (tests/conftest.py) and the shared cross-validation
(tests/e2e/test_cv_runs.py) carry output.boundary, and the verifier re-derives it from their predictions."""
from __future__ import annotations

import json

import pytest

from eval_engine.run_trusted import main as verify

from ..helpers import FIXTURE
from .test_cv_runs import cv_run, ten_cases  # noqa: F401  the one CV run this session shares

pytestmark = pytest.mark.slow


def test_the_smoke_run_reports_nsd_and_hd95_for_both_checkpoints(smoke_run):
    block = smoke_run.doc["output"]["boundary"]
    assert block["tolerance_mm"] == 2.0 and set(block) >= {"validation", "conventions"} and "test" not in block
    split = block["validation"]
    for side, phase in (("pretrained", "eval_pretrained"), ("finetuned", "eval_finetuned")):
        cases = split[side]["per_case"]
        assert split[side]["phase"] == phase and sorted(cases) == ["spleen_03.nii.gz", "spleen_06.nii.gz"]
        assert all(0.0 <= row["nsd"] <= 1.0 and row["hd95_mm"] >= 0.0 for row in cases.values())
    assert split["nsd_gain_stats"]["n_cases"] == 2 and split["hd95_gain_stats"]["n_cases"] == 2


def test_the_verifier_re_derives_the_smoke_runs_boundary_metrics(smoke_run, tmp_path):
    code = verify(["--pack", str(smoke_run.out), "--out", str(tmp_path / "trust"), "--dataset-dir", str(FIXTURE)])
    findings = {f["name"]: f for f in json.loads((tmp_path / "trust" / "trust_summary.json").read_text())["findings"]}
    assert findings["boundary.validation"]["status"] == "pass", findings["boundary.validation"]["detail"]
    assert code == 0


def test_the_cv_pools_boundary_metrics_over_every_case(cv_run):  # noqa: F811
    split = cv_run.doc("output.json")["output"]["boundary"]["validation"]
    assert len(split["pretrained"]["per_case"]) == len(split["finetuned"]["per_case"]) == 10
    assert split["nsd_gain_stats"]["n_cases"] == 10 and split["nsd_gain_stats"]["ci_low"] is not None
