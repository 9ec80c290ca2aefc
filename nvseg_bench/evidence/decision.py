"""Decision: which checkpoint to keep, whether the finetune improved anything, and the run's status and
exit code (with a sanity run's reference checks).

The finetuned checkpoint is recommended only if its formal Dice beats the pretrained formal Dice by
more than MIN_GAIN, its tensors changed, and the file exists. Without formal evaluation the
training trace decides (best epoch beats the epoch-0 score). `improved: false` is a valid result.
Which cases the formal Dice comes from is SPLIT_RULE (`verdict_split`): the held-out testing cases when
they give a verdict, else the validation cases, which also chose the kept epoch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nvseg_bench.errors import EXIT_OK, EXIT_PHASE_FAILED, EXIT_SANITY_FAILED
from nvseg_bench.evidence.collect import Evidence
from nvseg_bench.evidence.gain_stats import MIN_VERDICT_CASES
from nvseg_bench.evidence.test_split import TestScores
from nvseg_bench.evidence.ranges import comparable, task06_checks, task06_not_comparable
from nvseg_bench.phases.runner import PhaseResult

MIN_GAIN = 1e-3
SPLIT_RULE = ("the keep rule and the headline rest on the datalist's labelled testing cases when they give a verdict "
              f"(at least {MIN_VERDICT_CASES} cases scored by both checkpoints, the same cases); otherwise on the "
              "validation cases, which also chose the finetune's kept epoch, so their gain is optimistic")


def _gain(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else after - before


def decide(*, formal_enabled: bool, formal_pre: float | None, formal_post: float | None,
           start: float | None, best: float | None, tensors_changed: bool, finetuned_exists: bool,
           finetuned_ckpt: str, pretrained_ckpt: str, split: str = "validation") -> dict[str, Any]:
    formal_gain = _gain(formal_post, formal_pre)
    train_gain = _gain(best, start)
    formal_improved = formal_gain is not None and formal_gain > MIN_GAIN
    formal_regressed = formal_gain is not None and formal_gain < -MIN_GAIN
    if formal_enabled:
        improved, regressed, basis = formal_improved, formal_regressed, "formal original-spacing Dice"
        basis += " on the held-out test cases" if split == "test" else ""
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


def verdict_split(test_stats: dict[str, Any] | None) -> str:
    """SPLIT_RULE: `test` when the testing cases' paired statistics cover enough of the same cases, else
    `validation`."""
    enough = bool(test_stats) and test_stats["same_cases"] and test_stats["n_cases"] >= MIN_VERDICT_CASES
    return "test" if enough else "validation"


def decide_on(ev: Evidence, pretrained_ckpt: str, test: TestScores | None = None) -> dict[str, Any]:
    """The rule applied to a run's gathered evidence, on the split SPLIT_RULE picks (`verdict_split`)."""
    split = verdict_split(test.stats() if test is not None else None)
    pre, post = (test.formal_pre, test.formal_post) if test is not None and split == "test" else (ev.formal_pre,
                                                                                                   ev.formal_post)
    return decide(formal_enabled=ev.formal_enabled, formal_pre=pre, formal_post=post,
                  start=ev.trace["training_start_val_dice"], best=ev.trace["training_best_val_dice"],
                  tensors_changed=ev.tensors_changed, finetuned_exists=ev.finetuned_exists,
                  finetuned_ckpt=str(ev.finetuned_ckpt), pretrained_ckpt=pretrained_ckpt,
                  split=split) | {"verdict_split": split}


@dataclass(frozen=True)
class RunStatus:
    """A run's status and exit code, and for a sanity run its reference checks."""

    status: str  # planned | passed | failed | interrupted
    code: int
    sanity_checks: dict[str, Any] | None = None
    sanity_recovery: bool | None = None

    def output_fields(self) -> dict[str, Any]:
        return {"sanity_reference_checks": self.sanity_checks, "sanity_recovery_demonstrated": self.sanity_recovery}


def run_status(results: dict[str, PhaseResult], *, interrupted: bool, planned: bool, preset: str,
          bundle: dict[str, Any] | None, out: dict[str, Any]) -> RunStatus:
    """Status and exit code from the phases; a sanity run is also held to the Task06 reference when its recipe
    is the reference's (ranges.comparable), and fails with EXIT_SANITY_FAILED when it misses it."""
    failed = any(r.return_code != 0 or r.failure for r in results.values())
    status = "planned" if planned else "interrupted" if interrupted else "failed" if failed else "passed"
    code = EXIT_OK if status in ("passed", "planned") else EXIT_PHASE_FAILED
    if preset != "sanity" or planned:
        return RunStatus(status, code)
    fair, why = comparable(bundle)
    if not fair:
        return RunStatus(status, code, task06_not_comparable(why))  # no verdict either way
    checks = task06_checks(out, code)
    if status == "passed" and not checks["passed"]:
        code = EXIT_SANITY_FAILED
    return RunStatus(status, code, checks, checks["passed"])


CV_RULE = ("cross-validation judges the recipe, not a checkpoint: the pretrained checkpoint unless the pooled 95% "
           "interval over every case lies above 0 (gain_confidence clear) and the pooled gain exceeds "
           f"{MIN_GAIN}; then the checkpoint of the fold with the median gain (lower median for an even count), "
           "if its tensors changed, never the best fold's (the fold gains are noisy, the maximum the luckiest)")


def median_fold(gains: dict[int, float]) -> int | None:
    """The fold with the median gain, the lower median for an even count (ties broken by fold value)."""
    ranked = sorted(gains, key=lambda fold: (gains[fold], fold))
    return ranked[(len(ranked) - 1) // 2] if ranked else None


def decide_cv(*, confidence: str | None, pooled_gain: float | None, fold: int | None, fold_ckpt: str | None,
              fold_changed: bool, pretrained_ckpt: str, epoch: str = "best") -> dict[str, Any]:
    """CV_RULE for a cross-validation's pooled figures; `fold` is median_fold of the fold gains; `epoch`: each
    fold's checkpoint the pooled figures score (--cv-checkpoint: its last or its best epoch)."""
    improved = pooled_gain is not None and pooled_gain > MIN_GAIN
    keep = confidence == "clear" and improved and fold is not None and bool(fold_ckpt) and fold_changed
    if keep:
        reason = (f"the pooled gain {pooled_gain:+.4f} is clear of noise; fold {fold} has the median gain, so its "
                  "checkpoint stands for the recipe")
    elif confidence != "clear":
        reason = (f"the pooled gain is not clear of noise ({confidence or 'no paired evaluation'}); keep the "
                  "pretrained checkpoint")
    elif not improved:
        reason = f"the pooled gain does not exceed {MIN_GAIN}; keep the pretrained checkpoint"
    else:
        reason = f"fold {fold}'s checkpoint holds the pretrained weights; keep the pretrained checkpoint"
    return {
        "recommended_ckpt": fold_ckpt if keep else pretrained_ckpt,
        "recommended_is_finetuned": keep,
        "recommended_fold": fold if keep else None,
        "verdict_split": "cv",
        "decision_reason": reason,
        "decision_basis": ("pooled formal original-spacing Dice over every case, each scored by the fold that held it "
                           f"out (each fold's {epoch} epoch)"),
        "improved": improved,
        "regressed": pooled_gain is not None and pooled_gain < -MIN_GAIN,
        "formal_improvement_over_pretrained": pooled_gain,
        "formal_improved": improved,
        "formal_regressed": pooled_gain is not None and pooled_gain < -MIN_GAIN,
    }
