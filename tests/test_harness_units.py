"""The harness's parts on their own: gates on edited evidence, the cache key, options, the report."""
from __future__ import annotations

import copy
import dataclasses
import html
import json
import shutil
import sys
from pathlib import Path

import pytest

from nvseg_bench.harness.cache import DigestMemo, cache_key, changed_parts, fingerprint
from nvseg_bench.harness.gates import GATES, judge
from nvseg_bench.harness.ledger import GateOutcome, Ledger, RunRecord
from nvseg_bench.harness.options import HarnessOptions, check_passthrough
from nvseg_bench.harness.report import NO_MATPLOTLIB, write_reports
from nvseg_bench.harness.runs import build_spec, child_env

from .conftest import FIXTURE


def edited(run, change) -> object:
    """The run with a deep-copied output.json that `change` edits in place."""
    doc = copy.deepcopy(run.doc)
    change(doc)
    return dataclasses.replace(run, _doc=doc)


@pytest.mark.slow
def test_every_gate_passes_on_the_real_smoke_run(smoke_run):
    assert {gate: judge(gate, smoke_run).status for gate in GATES} == {gate: "passed" for gate in GATES}


@pytest.mark.slow
def test_a_dice_below_its_reference_names_the_number_and_the_bound(smoke_run):
    run = edited(smoke_run, lambda d: d["output"].update(formal_finetuned_val_dice=0.21))
    verdict = judge("reference", run)
    assert verdict.status == "failed"
    assert "formal_finetuned_val_dice 0.2100 < 0.3 (min)" in verdict.message


@pytest.mark.slow
def test_a_pretrained_score_above_its_window_fails_too(smoke_run):
    run = edited(smoke_run, lambda d: d["output"].update(formal_pretrained_val_dice=0.31))
    assert "formal_pretrained_val_dice 0.3100 > 0.25 (max)" in judge("reference", run).message


@pytest.mark.slow
def test_a_failed_phase_is_named_with_its_code_and_cause(smoke_run):
    def crash(doc):
        doc["invocation"]["phase_return_codes"]["finetune"] = 1
        doc["runtime"]["phase_failures"] = {"finetune": "crash: RuntimeError"}
    verdict = judge("phases", edited(smoke_run, crash))
    assert verdict.status == "failed" and "finetune returned 1 (crash: RuntimeError)" in verdict.message


@pytest.mark.slow
def test_unchanged_tensors_fail_unless_the_epoch_zero_trap_is_reported(smoke_run):
    def same(doc):
        doc["output"]["checkpoint_comparisons_to_pretrained"]["best"].update(identical=True, n_changed=0)
    assert judge("ckpt_changed", edited(smoke_run, same)).status == "failed"

    def trap(doc):
        same(doc)
        doc["output"].update(recommended_is_finetuned=False, decision_reason="the finetuned checkpoint holds the "
                             "pretrained weights (no epoch beat the epoch-0 score)")
    verdict = judge("ckpt_changed", edited(smoke_run, trap))
    assert verdict.status == "passed" and verdict.note and "epoch-0 trap" in verdict.message


@pytest.mark.slow
def test_a_recommendation_against_the_rule_fails(smoke_run):
    run = edited(smoke_run, lambda d: d["output"].update(formal_finetuned_val_dice=0.1))
    verdict = judge("decision", run)
    assert verdict.status == "failed" and "formal Dice gain -0.0992" in verdict.message


@pytest.mark.slow
def test_missing_telemetry_and_a_nan_loss_and_a_schema_break_each_fail(smoke_run):
    no_seconds = edited(smoke_run, lambda d: d["runtime"]["phase_seconds"].pop("finetune"))
    assert "seconds of finetune" in judge("telemetry", no_seconds).message
    nan = edited(smoke_run, lambda d: d["output"].update(train_loss_finite=False))
    assert judge("loss_finite", nan).status == "failed"
    broken = edited(smoke_run, lambda d: d.pop("plan"))
    assert "'plan' is a required property" in judge("schema", broken).message


@pytest.mark.slow
def test_formal_fields_skip_when_formal_eval_was_off_and_fail_when_missing(smoke_run):
    off = edited(smoke_run, lambda d: d["output"].update(formal_eval_enabled=False))
    assert judge("formal_fields", off).status == "skipped"
    gone = edited(smoke_run, lambda d: d["output"].update(formal_finetuned_per_case={}))
    assert "formal_finetuned_per_case (0 cases, 2 validation cases)" in judge("formal_fields", gone).message


def test_a_run_without_output_json_fails_every_gate_with_the_cli_words(tmp_path):
    from nvseg_bench.harness.runs import RunEvidence

    run = RunEvidence("user", tmp_path, 2, 1.0, ["nvseg-finetune: the dataset is not usable (nothing was run)"],
                      "ran", "k", "now", True, None)
    verdict = judge("schema", run)
    assert verdict.status == "failed" and "exit 2" in verdict.message and "not usable" in verdict.message


def _inputs(dataset: Path) -> dict:
    return {"bundle": Path(__file__).parents[1] / "bundle", "dataset": dataset}


def test_the_key_is_stable_and_names_what_changed(tmp_path, pytestconfig):
    dataset = shutil.copytree(FIXTURE, tmp_path / "data")
    memo = DigestMemo(pytestconfig.cache)
    first = fingerprint(["--smoke"], _inputs(dataset), False, memo)
    assert cache_key(fingerprint(["--smoke"], _inputs(dataset), False, memo)) == cache_key(first)
    label = dataset / "labelsTr" / "spleen_01.nii.gz"
    label.write_bytes(label.read_bytes() + b"\0")
    assert changed_parts(first, fingerprint(["--smoke"], _inputs(dataset), False, memo)) == ["dataset"]
    assert changed_parts(first, fingerprint(["--smoke", "--seed", "1"], _inputs(dataset), False, memo)) \
        == ["arguments", "dataset"]


def test_file_digests_are_remembered_by_size_and_mtime(tmp_path, pytestconfig, monkeypatch):
    memo = DigestMemo(pytestconfig.cache)
    data = tmp_path / "blob.bin"
    data.write_bytes(b"x" * 1000)
    first = memo.file(data)
    monkeypatch.setattr("nvseg_bench.harness.cache.sha256_file", lambda path: pytest.fail("hashed again"))
    assert memo.file(data) == first


def test_passthrough_flags_are_checked_against_the_wrapper_parser():
    assert check_passthrough("--seed 1 --phase-timeout 600") == ["--seed", "1", "--phase-timeout", "600"]
    with pytest.raises(pytest.UsageError, match="Did you mean --learning-rate"):
        check_passthrough("--learning-rat 1e-4")
    with pytest.raises(pytest.UsageError, match="which the harness sets itself"):
        check_passthrough("--smoke")
    with pytest.raises(pytest.UsageError, match="check its quotes"):
        check_passthrough("--label-mapping '[[1, 3]]")


def test_without_gpu_a_run_sees_no_gpu_and_with_it_runs_take_the_gpu_lock(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert child_env(uses_gpu=False)["CUDA_VISIBLE_DEVICES"] == ""
    assert child_env(uses_gpu=True)["CUDA_VISIBLE_DEVICES"] == "0"
    assert build_spec("smoke", HarnessOptions(gpu=True)).uses_gpu
    assert not build_spec("smoke", HarnessOptions()).uses_gpu


def test_the_user_run_passes_its_options_as_wrapper_flags(tmp_path):
    opts = HarnessOptions(dataset=tmp_path, target_anatomy="lung tumor", args=["--epochs", "2"])
    spec = build_spec("user", opts)
    assert spec.args == ["--dataset-dir", str(tmp_path), "--target-anatomy", "lung tumor", "--epochs", "2"]
    assert spec.reference is None


@pytest.mark.slow
def test_without_matplotlib_the_report_says_so_and_keeps_the_tables(smoke_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    ledger = Ledger()
    ledger.runs["smoke"] = RunRecord("smoke", str(smoke_run.out), {"cache"},
                                     gates={"schema": GateOutcome("passed", "output.json validates", 0.01)})
    write_reports(ledger, tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert html.escape(NO_MATPLOTLIB) in page and "data:image/png" not in page and "output.json validates" in page
    assert json.loads((smoke_run.out / "output.json").read_text())["status"] == "passed"


def test_a_write_under_an_input_shows_in_the_stat_listing_even_in_pycache(tmp_path):
    from nvseg_bench.harness.cache import stat_listing

    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "train.json").write_text("{}")
    before = stat_listing([tmp_path])
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert stat_listing([tmp_path]) != before


@pytest.mark.slow
def test_a_run_that_wrote_into_its_inputs_fails_the_gate(smoke_run):
    verdict = judge("inputs_untouched", dataclasses.replace(smoke_run, inputs_unchanged=False))
    assert verdict.status == "failed" and "must only write its output dir" in verdict.message


def test_an_evidence_root_of_the_users_is_never_written_over_nor_deleted(tmp_path, pytestconfig):
    from nvseg_bench.harness.cache import RunStore

    store = RunStore(pytestconfig.cache, tmp_path / "evidence")
    first = store.fresh_dir("user", "ab" * 32)
    first.mkdir(parents=True)
    assert first.name == "user-abababababab"
    assert store.fresh_dir("user", "ab" * 32).name == "user-abababababab-2"
    store.forget_dir(first)
    assert first.is_dir()
