"""Reference gates: the numbers a preset's run is held to, with where they came from.

Task06 (sanity): the single-GPU "DFW" reference run of DESIGN.md (Python 3.10.16, MONAI 1.4.0,
Torch 2.7.0+cu126): formal pretrained 0.6697, formal finetuned 0.6836, training-time best 0.6905.
"""
from __future__ import annotations

from typing import Any

TASK06_GATES: dict[str, float] = {
    "formal_pretrained_min": 0.65,
    "formal_finetuned_min": 0.67,
    "formal_improvement_min": 0.005,
    "training_start_min": 0.65,
    "training_best_min": 0.68,
    "training_improvement_min": 0.005,
}


def _check(name: str, value: float | None, bound: float) -> dict[str, Any]:
    return {"check": name, "value": value, "min": bound, "passed": value is not None and value >= bound}


def task06_checks(out: dict[str, Any], return_code: int) -> dict[str, Any]:
    g = TASK06_GATES
    start, best = out.get("training_start_val_dice"), out.get("training_best_val_dice")
    train_gain = None if start is None or best is None else best - start
    checks = [
        _check("formal_pretrained_val_dice", out.get("formal_pretrained_val_dice"), g["formal_pretrained_min"]),
        _check("formal_finetuned_val_dice", out.get("formal_finetuned_val_dice"), g["formal_finetuned_min"]),
        _check("formal_improvement_over_pretrained", out.get("formal_improvement_over_pretrained"), g["formal_improvement_min"]),
        _check("training_start_val_dice", start, g["training_start_min"]),
        _check("training_best_val_dice", best, g["training_best_min"]),
        _check("training_improvement", train_gain, g["training_improvement_min"]),
        {"check": "best_checkpoint_changed", "value": out.get("finetuned_ckpt_matches_pretrained_weights") is False,
         "passed": out.get("finetuned_ckpt_matches_pretrained_weights") is False},
        {"check": "return_code", "value": return_code, "passed": return_code == 0},
    ]
    failed = [c["check"] for c in checks if not c["passed"]]
    return {"thresholds": g, "checks": checks, "failed_checks": failed, "passed": not failed}
