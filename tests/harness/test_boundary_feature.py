"""The boundary feature (harness/boundary.py): the opt-in nsd_gain gate on the stored smoke pack given its
boundary metrics, the option's parsing, and the report's per-case table, class columns and chart."""
from __future__ import annotations

import json

import pytest

from nvseg_bench.harness.gates import check_gate
from nvseg_bench.harness.ledger import Ledger, RunRecord
from nvseg_bench.harness.options import HarnessOptions
from nvseg_bench.harness.report import write_reports

from ..helpers import materialize_pack, smoke_boundary
from .test_harness_gates import as_run, edited


@pytest.fixture()
def pack(tmp_path):
    pack_dir = materialize_pack("smoke", tmp_path / "smoke-run")
    doc = json.loads((pack_dir / "output.json").read_text())
    doc["output"]["boundary"] = smoke_boundary(pack_dir)
    (pack_dir / "output.json").write_text(json.dumps(doc))
    return pack_dir


def test_the_nsd_gain_gate_is_off_unless_asked_and_says_the_gain(pack):
    verdict = check_gate("nsd_gain", as_run(pack))
    assert verdict.status == "skipped" and "--nvseg-min-nsd-gain" in verdict.message and "gain" in verdict.message


def test_the_nsd_gain_gate_holds_the_mean_gain_to_its_bound(pack):
    run = as_run(pack)
    gain = run.doc["output"]["boundary"]["validation"]["nsd_gain_stats"]["mean_gain"]
    assert check_gate("nsd_gain", run, HarnessOptions(min_nsd_gain=gain - 0.01)).status == "passed"
    failed = check_gate("nsd_gain", run, HarnessOptions(min_nsd_gain=gain + 0.01))
    assert failed.status == "failed" and f"gain {gain:+.4f}" in failed.message and f"below {gain + 0.01}" in failed.message


def test_the_nsd_gain_gate_fails_a_run_without_boundary_metrics_when_asked(pack):
    run = edited(as_run(pack), lambda d: d["output"].update(boundary=None))
    verdict = check_gate("nsd_gain", run, HarnessOptions(min_nsd_gain=0.0))
    assert verdict.status == "failed" and "no paired boundary metrics" in verdict.message


def test_a_bound_outside_minus_one_to_one_is_a_usage_error(pytester):
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest("-p", "nvseg", "--nvseg-min-nsd-gain=2")
    assert "--nvseg-min-nsd-gain '2' must be a gain between -1 and 1" in result.stderr.str()


def test_the_report_shows_nsd_and_hd95_per_case_and_class_and_draws_them(pack, tmp_path):
    ledger = Ledger()
    ledger.runs["smoke"] = RunRecord("smoke", str(pack), {"cache"})
    write_reports(ledger, tmp_path / "report")
    markdown = (tmp_path / "report" / "report.md").read_text()
    split = json.loads((pack / "output.json").read_text())["output"]["boundary"]["validation"]
    case, post = sorted(split["finetuned"]["per_case"].items())[0]
    assert "### Cases" in markdown and f"| {case} |" in markdown and f"{post['hd95_mm']:.2f}" in markdown
    spleen = split["finetuned"]["per_class"]["spleen"]
    assert "NSD pretrained -> finetuned" in markdown and f"-> {spleen['nsd']:.4f}" in markdown
    assert (tmp_path / "report" / "smoke_boundary.png").is_file()
