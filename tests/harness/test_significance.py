"""The opt-in significance gate, the harness's --nvseg-seeds, and the per-case slope chart."""
from __future__ import annotations

from pathlib import Path

import pytest

from nvseg_bench.evidence.gain_stats import output_fields
from nvseg_bench.harness.gates import check_gate
from nvseg_bench.harness.options import HarnessOptions
from nvseg_bench.harness.plots import slope_plot
from nvseg_bench.harness.runs import RunEvidence

from ..harness_util import make_project

BEFORE = {f"c{i}.nii.gz": 0.5 + 0.02 * i for i in range(6)}


def _run(gains: list[float]) -> RunEvidence:
    after = {name: v + g for (name, v), g in zip(BEFORE.items(), gains)}
    out = {"formal_pretrained_per_case": BEFORE, "formal_finetuned_per_case": after}
    out |= output_fields(BEFORE, after, kept_finetuned=True)
    return RunEvidence("smoke", Path("/nowhere"), 0, 1.0, [], "ran", "k", "now", True, None,
                       _doc={"status": "passed", "output": out})


CLEAR = [0.01, 0.02, 0.03, 0.02, 0.01, 0.04]
NOISY = [0.05, -0.05, 0.03, -0.03, 0.02, -0.01]


def test_the_significance_gate_is_off_by_default_and_says_so():
    verdict = check_gate("significance", _run(NOISY))
    assert verdict.status == "skipped" and "--nvseg-require-significant" in verdict.message


def test_when_required_a_gain_within_noise_fails():
    verdict = check_gate("significance", _run(NOISY), HarnessOptions(require_significant=True))
    assert verdict.status == "failed" and "within_noise" in verdict.message


def test_when_required_a_clear_gain_passes():
    assert check_gate("significance", _run(CLEAR), HarnessOptions(require_significant=True)).status == "passed"


def test_the_slope_chart_draws_a_png_from_the_per_case_dice():
    assert slope_plot(_run(CLEAR).doc).startswith(b"\x89PNG\r\n\x1a\n")


def test_a_run_without_per_case_dice_gets_no_slope_chart():
    assert slope_plot({"output": {}}) is None


def test_harness_seeds_that_do_not_parse_are_a_usage_error(pytester):
    make_project(pytester)
    result = pytester.runpytest_subprocess("-m", "smoke", "--nvseg-seeds=0,x")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--nvseg-seeds*"])


def test_harness_seeds_reach_the_cli_as_a_sweep():
    from nvseg_bench.harness.options import _seed_args

    assert _seed_args("0,1,2") == ["--seeds", "0,1,2"]


def test_harness_folds_reach_the_cli_as_a_cross_validation():
    from nvseg_bench.harness.options import _fold_args

    assert _fold_args("ALL") == ["--folds", "all"] and _fold_args("0, 2") == ["--folds", "0,2"] and _fold_args(None) == []


def test_harness_folds_that_do_not_parse_are_a_usage_error():
    from nvseg_bench.harness.options import _fold_args

    with pytest.raises(pytest.UsageError, match="--nvseg-folds"):
        _fold_args("0")


def test_when_required_a_gain_on_too_few_cases_fails_and_points_to_folds():
    few = {k: v for k, v in list(BEFORE.items())[:3]}
    out = {"formal_pretrained_per_case": few, "formal_finetuned_per_case": {k: v + 0.1 for k, v in few.items()}}
    out |= output_fields(few, out["formal_finetuned_per_case"], kept_finetuned=True)
    run = RunEvidence("smoke", Path("/nowhere"), 0, 1.0, [], "ran", "k", "now", True, None,
                      _doc={"status": "passed", "output": out})
    verdict = check_gate("significance", run, HarnessOptions(require_significant=True))
    assert verdict.status == "failed" and "--nvseg-folds=all" in verdict.message


def test_a_cross_validations_slope_chart_colours_cases_by_fold():
    doc = _run(CLEAR).doc
    doc["output"]["cv"] = {"folds": [0, 1], "case_folds": {n: i % 2 for i, n in enumerate(BEFORE)},
                           "fold_gains": {"0": 0.02, "1": 0.025}}
    assert slope_plot(doc).startswith(b"\x89PNG\r\n\x1a\n")


def _cv_run(confidence: str, recommended: str) -> RunEvidence:
    out = {"formal_eval_enabled": True, "formal_pretrained_val_dice": 0.2, "formal_finetuned_val_dice": 0.3,
           "gain_confidence": confidence, "finetuned_ckpt": "fold-2.pt", "pretrained_ckpt": "pre.pt",
           "finetuned_ckpt_exists": True, "finetuned_ckpt_matches_pretrained_weights": False,
           "recommended_ckpt": recommended, "cv": {"folds": [0, 1, 2], "representative_fold": 2}}
    return RunEvidence("user", Path("/nowhere"), 0, 1.0, [], "ran", "k", "now", True, None,
                       _doc={"status": "passed", "output": out})


def test_the_decision_gate_holds_a_cross_validation_to_its_own_rule():
    assert check_gate("decision", _cv_run("within_noise", "pre.pt")).status == "passed"
    assert check_gate("decision", _cv_run("clear", "fold-2.pt")).status == "passed"
    verdict = check_gate("decision", _cv_run("within_noise", "fold-2.pt"))
    assert verdict.status == "failed" and "cross-validation rule" in verdict.message


def test_the_report_lists_each_folds_gain_in_fold_order():
    from nvseg_bench.harness.report import fold_gains

    assert fold_gains({"folds": [0, 3], "fold_gains": {"3": -0.01, "0": 0.125}}) == "fold 0 +0.1250, fold 3 -0.0100"
