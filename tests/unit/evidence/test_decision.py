"""The recommended-checkpoint decision rule."""
from __future__ import annotations

import pytest

from nvseg_bench.evidence.decision import decide, decide_cv, median_fold


def _decide(**kw):
    base = dict(formal_enabled=True, formal_pre=0.70, formal_post=0.75, start=0.70, best=0.72,
                tensors_changed=True, finetuned_exists=True, finetuned_ckpt="ft.pt", pretrained_ckpt="pre.pt")
    return decide(**(base | kw))


def test_a_formal_gain_recommends_the_finetuned_checkpoint():
    verdict = _decide()
    assert verdict["recommended_ckpt"] == "ft.pt" and verdict["improved"] and verdict["formal_improved"]


def test_a_gain_below_one_thousandth_keeps_the_pretrained_checkpoint():
    verdict = _decide(formal_post=0.7009)
    assert verdict["recommended_ckpt"] == "pre.pt" and not verdict["improved"] and not verdict["regressed"]


def test_the_epoch_zero_trap_keeps_the_pretrained_checkpoint():
    verdict = _decide(tensors_changed=False)
    assert verdict["recommended_ckpt"] == "pre.pt" and "pretrained weights" in verdict["decision_reason"]


def test_a_formal_loss_is_a_regression():
    verdict = _decide(formal_post=0.60)
    assert verdict["regressed"] and verdict["formal_regressed"] and verdict["recommended_ckpt"] == "pre.pt"


def test_without_formal_eval_the_training_trace_decides():
    verdict = _decide(formal_enabled=False, formal_pre=None, formal_post=None)
    assert verdict["recommended_ckpt"] == "ft.pt" and verdict["decision_basis"] == "training-time validation Dice"


def test_the_median_fold_is_the_lower_median_for_an_even_count():
    assert median_fold({0: 0.3, 1: 0.1, 2: 0.2}) == 2
    assert median_fold({0: 0.4, 1: 0.1, 2: 0.2, 3: 0.3}) == 2
    assert median_fold({}) is None


def _cv(**kw):
    given = {"confidence": "clear", "pooled_gain": 0.05, "fold": 2, "fold_ckpt": "f2.pt", "fold_changed": True,
             "pretrained_ckpt": "pre.pt"} | kw
    return decide_cv(**given)


def test_cv_keeps_the_median_folds_checkpoint_on_a_pooled_gain_clear_of_noise():
    verdict = _cv()
    assert verdict["recommended_ckpt"] == "f2.pt" and verdict["recommended_fold"] == 2 and verdict["improved"]


@pytest.mark.parametrize("change", [{"confidence": "within_noise"}, {"confidence": "too_few_cases"},
                                    {"pooled_gain": 0.0005}, {"fold_changed": False}, {"confidence": None}])
def test_cv_keeps_the_pretrained_checkpoint_otherwise(change):
    verdict = _cv(**change)
    assert verdict["recommended_ckpt"] == "pre.pt" and verdict["recommended_is_finetuned"] is False
    assert verdict["recommended_fold"] is None


def _stats(n: int, same: bool = True) -> dict:
    return {"n_cases": n, "same_cases": same}


def test_the_verdict_rests_on_the_test_split_only_with_six_paired_cases():
    from nvseg_bench.evidence.decision import verdict_split
    assert verdict_split(_stats(6)) == "test" and verdict_split(_stats(12)) == "test"
    assert verdict_split(_stats(5)) == "validation" and verdict_split(_stats(8, same=False)) == "validation"
    assert verdict_split(None) == "validation"


def test_a_decision_on_the_test_split_names_it_in_its_basis():
    verdict = _decide(split="test")
    assert verdict["decision_basis"] == "formal original-spacing Dice on the held-out test cases"
    assert verdict["recommended_ckpt"] == "ft.pt" and "held-out test cases" in verdict["decision_reason"]
    assert _decide()["decision_basis"] == "formal original-spacing Dice"


def test_the_cv_rule_names_the_scored_epoch_and_its_split():
    verdict = decide_cv(confidence="clear", pooled_gain=0.05, fold=2, fold_ckpt="f2/model_last.pt",
                        fold_changed=True, pretrained_ckpt="pre.pt", epoch="last")
    assert verdict["verdict_split"] == "cv" and verdict["decision_basis"].endswith("(each fold's last epoch)")
    assert verdict["recommended_ckpt"] == "f2/model_last.pt"
