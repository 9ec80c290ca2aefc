"""Saved runs in whole pytest sessions: --nvseg-autosave, --nvseg-compare, --nvseg-compare-fail.

Every session judges the stored smoke pack from the project's cache, so nothing is finetuned; a
baseline is made worse or better by saving a record of the same pack with edited per-case Dice.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from nvseg_bench.history.record import record_from_run_dir
from nvseg_bench.history.storage import FileStorage

from ..harness_util import project_with_stored_pack
from .test_harness_sessions import PNG_SIGNATURE, report_modules  # noqa: F401 (a fixture)


def _store(pytester) -> Path:
    return pytester.path / ".nvseg-history"


def _baseline_with(run_dir: Path, store: Path, shift: dict[str, float]) -> dict:
    """A saved smoke record of run_dir whose finetuned per-case Dice is moved by `shift` per case."""
    record = record_from_run_dir(run_dir, name="smoke", when=1.0e9)
    cases = record["per_case"]["finetuned"]
    record["per_case"]["finetuned"] = {name: value + shift[name] for name, value in cases.items()}
    record["figures"]["formal_finetuned_val_dice"] += sum(shift.values()) / len(shift)
    FileStorage(store).save(record)
    return record


def _junit(path: Path) -> dict[str, dict[str, str]]:
    return {c.get("name"): {p.get("name"): p.get("value") for p in c.iter("property")}
            for c in ET.parse(path).getroot().iter("testcase")}


def test_two_sessions_save_and_the_third_compares_with_the_newest(pytester, tmp_path):
    project_with_stored_pack(pytester, tmp_path)
    for _ in range(2):
        pytester.runpytest("-m", "smoke", "--nvseg-autosave").stdout.fnmatch_lines(["saved: *.nvseg-history*smoke*"])
    saved = FileStorage(_store(pytester)).records()
    assert [r["name"] for r in saved] == ["smoke", "smoke"]
    assert saved[0]["gates"]["schema"] == "passed" and saved[0]["verdict"] == "PASS"
    result = pytester.runpytest("-m", "smoke", "--nvseg-compare", "--junitxml=gates.xml")
    assert result.ret == 0
    result.stdout.fnmatch_lines([f"  smoke vs baseline {saved[1]['run_id']}: formal Dice 0.3946 -> 0.3946 (+0.0000*"
                                 "paired over 2 cases*"])
    props = _junit(pytester.path / "gates.xml")["test_gate[smoke-baseline]"]
    assert props["nvseg_baseline"] == saved[1]["run_id"] and props["nvseg_baseline_paired"] == "true"
    assert len(list(_store(pytester).glob("*.json"))) == 2  # comparing alone saves nothing


def test_a_run_worse_than_a_stored_baseline_fails_with_compare_fail(pytester, tmp_path):
    run_dir = project_with_stored_pack(pytester, tmp_path)
    _baseline_with(run_dir, _store(pytester), {"spleen_03.nii.gz": 0.05, "spleen_06.nii.gz": 0.04})
    result = pytester.runpytest("-m", "smoke", "--nvseg-compare-fail=formal_dice:0.01")
    result.assert_outcomes(failed=1, passed=len(_gates_judged()), skipped=_skips() - 1)
    result.stdout.fnmatch_lines(["*smoke/baseline FAILED: regression: formal Dice dropped 0.0450, more than "
                                 "formal_dice:0.01 (0.0100), and the paired 95% CI -0.0500..-0.0400 lies below 0*"])


def test_a_failed_run_is_saved_but_never_becomes_the_next_baseline(pytester, tmp_path):
    run_dir = project_with_stored_pack(pytester, tmp_path)
    good = _baseline_with(run_dir, _store(pytester), {"spleen_03.nii.gz": 0.05, "spleen_06.nii.gz": 0.04})
    for _ in range(2):  # the regression fails both times: the first failed run is kept, not compared with
        result = pytester.runpytest("-m", "smoke", "--nvseg-autosave", "--nvseg-compare-fail=formal_dice:0.01")
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.stdout.fnmatch_lines([f"  smoke vs baseline {good['run_id']}: *"])
    assert [r["verdict"] for r in FileStorage(_store(pytester)).records()] == ["passed", "FAIL", "FAIL"]


def test_the_same_drop_under_a_looser_threshold_passes(pytester, tmp_path):
    run_dir = project_with_stored_pack(pytester, tmp_path)
    _baseline_with(run_dir, _store(pytester), {"spleen_03.nii.gz": 0.05, "spleen_06.nii.gz": 0.04})
    result = pytester.runpytest("-m", "smoke", "--nvseg-compare-fail=formal_dice:20%")
    assert result.ret == 0


def test_a_drop_within_the_noise_warns_and_passes(pytester, tmp_path):
    run_dir = project_with_stored_pack(pytester, tmp_path)
    _baseline_with(run_dir, _store(pytester), {"spleen_03.nii.gz": 0.10, "spleen_06.nii.gz": -0.06})
    result = pytester.runpytest("-m", "smoke", "--nvseg-compare-fail=formal_dice:0.01", "-W", "always")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*NvsegGateNote: smoke/baseline: formal Dice dropped 0.0200, more than formal_dice:0.01 (0.0100), "
                                 "but the paired 95% CI -0.1000..+0.0600 spans 0: within the noise*"])


def test_under_xdist_the_workers_compare_and_the_controller_saves_once(pytester, tmp_path):
    pytest.importorskip("xdist")
    run_dir = project_with_stored_pack(pytester, tmp_path)
    good = _baseline_with(run_dir, _store(pytester), {"spleen_03.nii.gz": 0.0, "spleen_06.nii.gz": 0.0})
    result = pytester.runpytest("-n", "2", "-m", "smoke", "--nvseg-autosave", "--nvseg-compare")
    assert result.ret == 0
    result.stdout.fnmatch_lines([f"  smoke vs baseline {good['run_id']}: formal Dice 0.3946 -> 0.3946 *"])
    assert len(FileStorage(_store(pytester)).records()) == 2  # the baseline and this session's one record


def test_a_corrupt_store_file_warns_and_the_others_still_count(pytester, tmp_path):
    run_dir = project_with_stored_pack(pytester, tmp_path)
    good = _baseline_with(run_dir, _store(pytester), {"spleen_03.nii.gz": 0.0, "spleen_06.nii.gz": 0.0})
    (_store(pytester) / "20991231T000000Z-smoke-deadbeef.json").write_text('{"format": "nvseg-hist')
    result = pytester.runpytest("-m", "smoke", "--nvseg-compare", "-W", "always")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*HistoryWarning: skipped the damaged history file *20991231T000000Z-smoke-deadbeef.json*",
                                 f"  smoke vs baseline {good['run_id']}: *"], consecutive=False)


def test_an_unknown_baseline_id_fails_and_an_empty_store_skips(pytester, tmp_path):
    project_with_stored_pack(pytester, tmp_path)
    pytester.runpytest("-m", "smoke", "--nvseg-compare", "-rs").stdout.fnmatch_lines(
        ["SKIPPED * no passed smoke run saved in *.nvseg-history to compare with; --nvseg-autosave saves this one*"])
    result = pytester.runpytest("-m", "smoke", "--nvseg-compare=20260101T000000Z-smoke-0000")
    result.stdout.fnmatch_lines(["*smoke/baseline FAILED: no saved run matches '20260101T000000Z-smoke-0000'*"])


def test_a_bad_threshold_or_store_url_is_a_usage_error(pytester, tmp_path):
    project_with_stored_pack(pytester, tmp_path)
    result = pytester.runpytest("-m", "smoke", "--nvseg-compare-fail=dice:1%")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--nvseg-compare-fail: 'dice:1%' is not METRIC:AMOUNT; use formal_dice:0.01*"])
    result = pytester.runpytest("-m", "smoke", "--nvseg-storage=s3://bucket/runs")
    result.stderr.fnmatch_lines(["*--nvseg-storage: 's3://bucket/runs': only file:// stores are supported*"])


def test_a_file_url_store_is_where_runs_are_saved(pytester, tmp_path):
    project_with_stored_pack(pytester, tmp_path)
    store = tmp_path / "elsewhere"
    pytester.runpytest("-m", "smoke", "--nvseg-autosave", f"--nvseg-storage=file://{store}")
    [saved] = list(store.glob("*.json"))
    assert json.loads(saved.read_text())["dataset"]["digest"] and not _store(pytester).exists()


def test_the_report_carries_the_comparison_and_a_trend_of_the_saved_runs(pytester, tmp_path, report_modules):
    project_with_stored_pack(pytester, tmp_path)
    pytester.runpytest("-m", "smoke", "--nvseg-autosave")
    result = pytester.runpytest("-m", "smoke", "--nvseg-autosave", "--nvseg-compare", "--nvseg-report=report")
    assert result.ret == 0
    markdown = (pytester.path / "report" / "report.md").read_text()
    first = FileStorage(_store(pytester)).records()[0]["run_id"]
    assert f"| vs baseline {first} | formal Dice 0.3946 -> 0.3946 (+0.0000" in markdown
    assert "![Formal Dice over saved runs](smoke_trend.png)" in markdown
    assert (pytester.path / "report" / "smoke_trend.png").read_bytes().startswith(PNG_SIGNATURE)


def _gates_judged() -> list[str]:
    from nvseg_bench.harness.gates import gate_names, opt_in_gates

    return [g for g in gate_names(trusted=False) if g not in opt_in_gates() and g != "forgetting"]


def _skips() -> int:
    from nvseg_bench.harness.gates import opt_in_gates

    return len(opt_in_gates()) + 1
