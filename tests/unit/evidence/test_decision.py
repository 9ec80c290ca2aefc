"""The recommended-checkpoint decision rule."""
from __future__ import annotations

from nvseg_bench.evidence.decision import decide


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
