"""Each gate on a stored pack (tests/packs, a real smoke run's output.json with two tiny checkpoints),
and on copies of it edited to break one claim. No finetune runs here."""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest

from nvseg_bench.harness.gates import GATES, check_gate, conditional_gates, gate_names, opt_in_gates, reference_bounds
from nvseg_bench.harness.options import HarnessOptions
from nvseg_bench.harness.runs import RunEvidence
from nvseg_bench.harness.trust import Trust

from ..helpers import materialize_pack


def as_run(pack: Path, **changes) -> RunEvidence:
    run = RunEvidence("smoke", pack, 0, 90.0, ["nvseg-finetune: done"], "cache", "k" * 64, "now", True, "spleen_micro")
    return dataclasses.replace(run, **changes)


@pytest.fixture()
def run(tmp_path) -> RunEvidence:
    return as_run(materialize_pack("smoke", tmp_path / "smoke-run"))


def edited(run: RunEvidence, change) -> RunEvidence:
    """The run with a deep-copied output.json that `change` edits in place."""
    doc = copy.deepcopy(run.doc)
    change(doc)
    return dataclasses.replace(run, _doc=doc)


def test_every_gate_of_an_untrusted_session_passes_on_the_stored_pack_and_opt_in_gates_skip(run):
    skipping = {*opt_in_gates(), *conditional_gates()}  # the smoke preset runs no forgetting check
    expected = {gate: "skipped" if gate in skipping else "passed" for gate in gate_names(trusted=False)}
    assert {gate: check_gate(gate, run).status for gate in gate_names(trusted=False)} == expected


def test_the_trusted_gate_is_an_item_only_in_trusted_mode():
    assert "trusted" in gate_names(trusted=True) and "trusted" not in gate_names(trusted=False)
    assert set(gate_names(trusted=True)) == set(GATES)


def test_a_dice_below_its_reference_names_the_number_and_the_bound(run):
    low = reference_bounds("spleen_micro")[0]["formal_finetuned_val_dice"]
    verdict = check_gate("reference", edited(run, lambda d: d["output"].update(formal_finetuned_val_dice=low - 0.01)))
    assert verdict.status == "failed"
    assert f"formal_finetuned_val_dice {low - 0.01:.4f} < {low} (min)" in verdict.message


def test_a_pretrained_score_above_its_window_fails_too(run):
    high = reference_bounds("spleen_micro")[1]["formal_pretrained_val_dice"]
    verdict = check_gate("reference", edited(run, lambda d: d["output"].update(formal_pretrained_val_dice=high + 0.01)))
    assert f"formal_pretrained_val_dice {high + 0.01:.4f} > {high} (max)" in verdict.message


def test_a_failed_phase_is_named_with_its_code_and_cause(run):
    def crash(doc):
        doc["invocation"]["phase_return_codes"]["finetune"] = 1
        doc["runtime"]["phase_failures"] = {"finetune": "crash: RuntimeError"}
    verdict = check_gate("phases", edited(run, crash))
    assert verdict.status == "failed" and "finetune returned 1 (crash: RuntimeError)" in verdict.message


def test_unchanged_tensors_fail_when_the_epoch_zero_trap_is_not_reported(run):
    def same(doc):
        comparison = doc["output"]["checkpoint_comparisons_to_pretrained"]
        (comparison.get("best") or comparison).update(identical=True, weights_identical=True, n_changed=0,
                                                       differing_tensors=0)
    assert check_gate("ckpt_changed", edited(run, same)).status == "failed"


def test_the_epoch_zero_pack_passes_with_a_note_and_keeps_the_pretrained_checkpoint(tmp_path):
    trap = as_run(materialize_pack("smoke_epoch0", tmp_path / "epoch0"))
    verdict = check_gate("ckpt_changed", trap)
    assert verdict.status == "passed" and verdict.note and "epoch-0 trap" in verdict.message
    assert check_gate("decision", trap).message.endswith("keep the pretrained checkpoint")


def test_a_comparison_nested_under_best_is_read_as_the_peer_writes_it(run):
    def peer(doc):
        doc["output"]["checkpoint_comparisons_to_pretrained"] = {
            "best": {"weights_identical": False, "same_keys": True, "tensor_count": 2, "differing_tensors": 1,
                     "max_abs_diff": 0.25, "total_abs_diff": 0.25}}
    verdict = check_gate("ckpt_changed", edited(run, peer))
    assert verdict.status == "passed" and verdict.message.startswith("1 of 2 tensors changed")


def test_a_recommendation_against_the_rule_fails(run):
    verdict = check_gate("decision", edited(run, lambda d: d["output"].update(formal_finetuned_val_dice=0.1)))
    assert verdict.status == "failed" and "picks" in verdict.message and "formal Dice gain -0." in verdict.message


def test_missing_seconds_of_a_phase_fail_the_telemetry_gate(run):
    verdict = check_gate("telemetry", edited(run, lambda d: d["runtime"]["phase_seconds"].pop("finetune")))
    assert verdict.status == "failed" and "seconds of finetune" in verdict.message


def test_a_loss_that_is_not_finite_fails(run):
    assert check_gate("loss_finite", edited(run, lambda d: d["output"].update(train_loss_finite=False))).status == "failed"


def test_a_schema_break_is_named(run):
    assert "'plan' is a required property" in check_gate("schema", edited(run, lambda d: d.pop("plan"))).message


def test_formal_fields_skip_when_formal_eval_was_off(run):
    assert check_gate("formal_fields", edited(run, lambda d: d["output"].update(formal_eval_enabled=False))).status == "skipped"


def test_formal_fields_fail_when_a_side_lacks_cases(run):
    verdict = check_gate("formal_fields", edited(run, lambda d: d["output"].update(formal_finetuned_per_case={})))
    assert "formal_finetuned_per_case (0 cases," in verdict.message


def test_a_missing_finetuned_checkpoint_fails(run):
    Path(run.doc["output"]["finetuned_ckpt"]).unlink()
    assert check_gate("ckpt_exists", run).status == "failed"


def test_a_run_that_wrote_into_its_inputs_fails_the_gate(run):
    verdict = check_gate("inputs_untouched", dataclasses.replace(run, inputs_unchanged=False))
    assert verdict.status == "failed" and "must only write its output dir" in verdict.message


def test_a_pack_judged_as_found_skips_the_inputs_gate(run):
    assert check_gate("inputs_untouched", dataclasses.replace(run, inputs_unchanged=None)).status == "skipped"


def test_a_run_without_output_json_fails_every_gate_with_the_cli_words(tmp_path):
    run = as_run(tmp_path, returncode=2, console_tail=["nvseg-finetune: the dataset is not usable (nothing was run)"])
    verdict = check_gate("schema", run)
    assert verdict.status == "failed" and "exit 2" in verdict.message and "not usable" in verdict.message


def test_a_failed_verifier_verdict_fails_the_trusted_gate_with_its_findings(run):
    trust = Trust("failed", ["integrity.manifest: 1 changed since the run (models/model_finetune.pt)"])
    verdict = check_gate("trusted", dataclasses.replace(run, trust=trust))
    assert verdict.status == "failed" and "models/model_finetune.pt" in verdict.message


def test_a_warn_verdict_passes_with_the_warnings_in_its_message(run):
    trust = Trust("warn", warnings=["environment: pins not met: numpy==2.0"])
    verdict = check_gate("trusted", dataclasses.replace(run, trust=trust))
    assert verdict.status == "passed" and verdict.note and "numpy==2.0" in verdict.message


def test_a_pack_changed_since_its_run_fails_even_when_the_verifier_passes_it(run):
    trust = Trust("passed", changed=["output.json changed"])
    verdict = check_gate("trusted", dataclasses.replace(run, trust=trust))
    assert verdict.status == "failed" and "the pack changed after its run: output.json changed" in verdict.message


def with_forgetting(run: RunEvidence, classes: dict) -> RunEvidence:
    scored = [v for v in classes.values() if v is not None]
    block = {"classes": classes, "min_agreement": min(scored) if scored else None}
    return edited(run, lambda d: d["output"].update(forgetting=block))


def test_the_forgetting_gate_passes_when_every_scored_class_agrees_enough(run):
    verdict = check_gate("forgetting", with_forgetting(run, {"liver": 0.97, "aorta": 0.85, "kidney": None}))
    assert verdict.status == "passed" and "liver 0.970, aorta 0.850" in verdict.message


def test_the_forgetting_gate_names_the_class_below_the_bound(run):
    verdict = check_gate("forgetting", with_forgetting(run, {"liver": 0.97, "aorta": 0.71}))
    assert verdict.status == "failed" and "below 0.8 for aorta" in verdict.message


def test_the_forgetting_bound_is_the_sessions_min_agreement(run):
    assert check_gate("forgetting", with_forgetting(run, {"aorta": 0.71}), HarnessOptions(min_agreement=0.7)).status == "passed"
    assert check_gate("forgetting", with_forgetting(run, {"aorta": 0.95}), HarnessOptions(min_agreement=0.99)).status == "failed"


def test_a_smoke_run_on_nvidias_bundle_is_not_held_to_ranges_measured_on_bundle(run):
    other = edited(run, lambda d: d["input"]["bundle"].update(source="hub", path="/hub/NV-Segment-CT"))
    verdict = check_gate("reference", other)
    assert verdict.status == "skipped" and "measured with this project's bundle/" in verdict.message


def test_a_verdict_on_the_test_split_is_held_to_the_rule_on_the_test_figures(run):
    """output.verdict_split test: the keep rule reads output.test's Dice, not the validation cases'."""
    def on_test(doc, test_post):
        out = doc["output"]
        out.update(verdict_split="test", test={"formal_pretrained_val_dice": 0.30, "formal_finetuned_val_dice": test_post})
    kept = check_gate("decision", run).message  # the stored pack keeps its finetuned checkpoint on validation
    assert "keep the finetuned checkpoint" in kept
    assert check_gate("decision", edited(run, lambda d: on_test(d, 0.40))).status == "passed"
    worse = check_gate("decision", edited(run, lambda d: on_test(d, 0.20)))
    assert worse.status == "failed" and "picks" in worse.message
