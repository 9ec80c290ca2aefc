"""Decision: which checkpoint to keep, and whether the finetune improved anything.

The finetuned checkpoint is recommended only if its formal Dice beats the pretrained formal Dice by
more than MIN_GAIN, its tensors changed, and the file exists. Without formal evaluation the
training trace decides (best epoch beats the epoch-0 score). `improved: false` is a valid result.
"""
from __future__ import annotations

from typing import Any

MIN_GAIN = 1e-3


def _gain(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else after - before


def decide(*, formal_enabled: bool, formal_pre: float | None, formal_post: float | None,
           start: float | None, best: float | None, tensors_changed: bool, finetuned_exists: bool,
           finetuned_ckpt: str, pretrained_ckpt: str) -> dict[str, Any]:
    formal_gain = _gain(formal_post, formal_pre)
    train_gain = _gain(best, start)
    formal_improved = formal_gain is not None and formal_gain > MIN_GAIN
    formal_regressed = formal_gain is not None and formal_gain < -MIN_GAIN
    if formal_enabled:
        improved, regressed, basis = formal_improved, formal_regressed, "formal original-spacing Dice"
    else:
        improved = train_gain is not None and train_gain > MIN_GAIN
        regressed = False  # the best training checkpoint can never score below the start
        basis = "training-time validation Dice"
    keep = improved and tensors_changed and finetuned_exists
    if keep:
        reason = f"finetuned beats pretrained on {basis} by {(formal_gain if formal_enabled else train_gain):.4f}"
    elif not finetuned_exists:
        reason = "no finetuned checkpoint was written"
    elif not tensors_changed:
        reason = "the finetuned checkpoint holds the pretrained weights (no epoch beat the epoch-0 score)"
    else:
        reason = f"finetuned does not beat pretrained on {basis} by more than {MIN_GAIN}"
    return {
        "recommended_ckpt": finetuned_ckpt if keep else pretrained_ckpt,
        "recommended_is_finetuned": keep,
        "decision_reason": reason,
        "decision_basis": basis,
        "improved": improved,
        "regressed": regressed,
        "formal_improvement_over_pretrained": formal_gain,
        "formal_improved": formal_improved,
        "formal_regressed": formal_regressed,
        "improvement_over_baseline": train_gain,
    }
