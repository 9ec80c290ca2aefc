"""Reference gates: the numbers a preset's run is held to, with where they came from.

Task06 (sanity): the single-GPU "DFW" reference run in docs/task06-and-results.md (Python 3.10.16,
MONAI 1.4.0, Torch 2.7.0+cu126): formal pretrained 0.6697, formal finetuned 0.6836, training-time
best 0.6905.
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


# the output.json field each gate bounds from below, in the order the checks are reported
TASK06_FIELD_MIN: dict[str, float] = {
    "formal_pretrained_val_dice": TASK06_GATES["formal_pretrained_min"],
    "formal_finetuned_val_dice": TASK06_GATES["formal_finetuned_min"],
    "formal_improvement_over_pretrained": TASK06_GATES["formal_improvement_min"],
    "training_start_val_dice": TASK06_GATES["training_start_min"],
    "training_best_val_dice": TASK06_GATES["training_best_min"],
    "training_improvement": TASK06_GATES["training_improvement_min"],
}


def measured(out: dict[str, Any], name: str) -> float | None:
    """A checked value from output.json's `output`; `training_improvement` is best minus start."""
    if name == "training_improvement":
        start, best = out.get("training_start_val_dice"), out.get("training_best_val_dice")
        return None if start is None or best is None else best - start
    return out.get(name)


def _check(name: str, value: float | None, bound: float) -> dict[str, Any]:
    return {"check": name, "value": value, "min": bound, "passed": value is not None and value >= bound}


def task06_checks(out: dict[str, Any], return_code: int) -> dict[str, Any]:
    checks = [_check(name, measured(out, name), bound) for name, bound in TASK06_FIELD_MIN.items()]
    checks += [
        {"check": "best_checkpoint_changed", "value": out.get("finetuned_ckpt_matches_pretrained_weights") is False,
         "passed": out.get("finetuned_ckpt_matches_pretrained_weights") is False},
        {"check": "return_code", "value": return_code, "passed": return_code == 0},
    ]
    failed = [c["check"] for c in checks if not c["passed"]]
    return {"thresholds": TASK06_GATES, "checks": checks, "failed_checks": failed, "passed": not failed}
