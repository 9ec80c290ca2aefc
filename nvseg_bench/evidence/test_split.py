"""The test split's evidence: what the bundle's formal evaluation found on the datalist's labelled `testing`
cases (inputs/testing.py), with the pretrained and the kept finetuned checkpoint, after the finetune.

The validation cases chose the finetune's kept epoch, so their gain is measured on the cases that picked
it; the testing cases took no part in training or in that choice. `output.test` carries the same fields
as the validation evaluation (mean, per case, per class, the paired gain statistics), read from
OUT/eval_test_pretrained and OUT/eval_test_finetuned the way collect.py reads the validation phases.
Which split the verdict rests on is decision.py's rule. No torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nvseg_bench.evidence import gain_stats, per_class
from nvseg_bench.evidence.collect import formal_dice, per_case_dice, succeeded
from nvseg_bench.phase_names import EVAL_SPLITS
from nvseg_bench.phases.runner import PhaseResult
from nvseg_bench.prepared import Prepared

SPLIT = "test"


@dataclass(frozen=True)
class TestScores:
    """The test split's formal Dice before and after, per case and per case per class (empty: phase missing)."""

    formal_pre: float | None
    formal_post: float | None
    per_case_pre: dict[str, float]
    per_case_post: dict[str, float]
    case_class_pre: per_class.CaseClassDice
    case_class_post: per_class.CaseClassDice
    split: dict[str, Any]  # inputs/testing.TestSplit.to_json()

    def stats(self) -> dict[str, Any] | None:
        """The paired gain statistics, when both phases scored cases."""
        return gain_stats.gain_stats(self.per_case_pre, self.per_case_post) if self.per_case_pre and self.per_case_post else None


def gather(p: Prepared, results: dict[str, PhaseResult]) -> TestScores | None:
    """The test split's scores; None when the run has no labelled testing cases or did not evaluate them."""
    pre_phase, post_phase = EVAL_SPLITS[SPLIT]
    if p.test_split is None or pre_phase not in p.commands:
        return None
    classes = per_class.mapped_classes(p.mapping.pairs, p.mapping.names)
    read = {}
    for phase in (pre_phase, post_phase):
        folder = p.out_dir / phase
        mean = formal_dice(folder) if succeeded(results, phase) else None
        read[phase] = (mean, per_case_dice(folder) if mean is not None else {},
                       per_class.read_case_class_dice(folder, classes) if mean is not None else {})
    (pre, cases_pre, classes_pre), (post, cases_post, classes_post) = read[pre_phase], read[post_phase]
    return TestScores(pre, post, cases_pre, cases_post, classes_pre, classes_post, p.test_split.to_json())


def output_fields(scores: TestScores | None, kept_finetuned: bool, p: Prepared) -> dict[str, Any] | None:
    """output.test: the validation evaluation's fields for the testing cases, and where they were scored;
    `kept_finetuned`: a finetuned checkpoint was kept on these cases' verdict (gain_warning speaks of it)."""
    if scores is None:
        return None
    classes = per_class.mapped_classes(p.mapping.pairs, p.mapping.names)
    return {
        **scores.split,
        "phases": list(EVAL_SPLITS[SPLIT]),
        "formal_pretrained_val_dice": scores.formal_pre,
        "formal_finetuned_val_dice": scores.formal_post,
        "formal_pretrained_per_case": scores.per_case_pre,
        "formal_finetuned_per_case": scores.per_case_post,
        **gain_stats.output_fields(scores.per_case_pre, scores.per_case_post, kept_finetuned),
        **per_class.output_fields(scores.case_class_pre, scores.case_class_post, classes),
    }
