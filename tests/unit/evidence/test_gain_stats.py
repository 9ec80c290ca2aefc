"""Paired per-case statistics of the formal gain, on hand-made per-case Dice."""
from __future__ import annotations

import numpy as np
import pytest

from nvseg_bench.evidence.gain_stats import bootstrap_interval, gain_stats, noise_warning, output_fields, summary


def _cases(values: list[float]) -> dict[str, float]:
    return {f"case_{i:02d}.nii.gz": v for i, v in enumerate(values)}


BEFORE = _cases([0.60, 0.62, 0.64, 0.66, 0.68, 0.70])


def test_gains_all_positive_give_an_interval_above_zero():
    after = _cases([v + g for v, g in zip(BEFORE.values(), [0.01, 0.02, 0.03, 0.02, 0.01, 0.04])])
    stats = gain_stats(BEFORE, after)
    assert stats["ci_low"] > 0 and stats["confidence"] == "clear"


def test_symmetric_gains_give_an_interval_that_spans_zero():
    after = _cases([v + g for v, g in zip(BEFORE.values(), [0.05, -0.05, 0.03, -0.03, 0.02, -0.02])])
    stats = gain_stats(BEFORE, after)
    assert stats["ci_low"] < 0 < stats["ci_high"] and stats["confidence"] == "within_noise"


def test_gains_all_negative_are_a_clear_loss():
    after = _cases([v - g for v, g in zip(BEFORE.values(), [0.01, 0.02, 0.03, 0.02, 0.01, 0.04])])
    assert gain_stats(BEFORE, after)["confidence"] == "clear_loss"


def test_fewer_than_five_cases_give_no_p_value_and_say_why():
    stats = gain_stats(_cases([0.5, 0.6, 0.7]), _cases([0.6, 0.7, 0.8]))
    assert stats["wilcoxon_p"] is None and "needs at least 5" in stats["wilcoxon_note"]


def test_five_cases_get_a_wilcoxon_p_value():
    stats = gain_stats(_cases([0.5, 0.6, 0.7, 0.4, 0.3]), _cases([0.6, 0.75, 0.72, 0.5, 0.31]))
    assert stats["wilcoxon_p"] == pytest.approx(0.0625)  # all 5 positive: the smallest two-sided exact p


def test_cases_are_counted_better_worse_and_unchanged():
    stats = gain_stats(_cases([0.5, 0.6, 0.7, 0.4]), _cases([0.6, 0.5, 0.7, 0.45]))
    assert (stats["n_better"], stats["n_worse"], stats["n_unchanged"]) == (2, 1, 1)


def test_mean_gain_is_the_mean_of_the_per_case_gains():
    stats = gain_stats(_cases([0.5, 0.6]), _cases([0.6, 0.9]))
    assert stats["mean_gain"] == pytest.approx(0.2)


def test_cases_are_paired_by_name_not_by_order():
    before = {"b.nii.gz": 0.2, "a.nii.gz": 0.9}
    after = {"a.nii.gz": 0.9, "b.nii.gz": 0.3}
    assert gain_stats(before, after)["case_gains"] == pytest.approx({"a.nii.gz": 0.0, "b.nii.gz": 0.1})


def test_phases_that_scored_different_cases_get_no_interval():
    stats = gain_stats(_cases([0.5, 0.6, 0.7]), {"case_00.nii.gz": 0.6, "case_09.nii.gz": 0.7})
    assert stats["same_cases"] is False and stats["ci_low"] is None and stats["confidence"] is None
    assert stats["unpaired_cases"] == {"only_before": ["case_01.nii.gz", "case_02.nii.gz"], "only_after": ["case_09.nii.gz"]}


def test_one_case_gets_no_interval():
    stats = gain_stats(_cases([0.5]), _cases([0.9]))
    assert stats["ci_low"] is None and "at least 2" in stats["interval_note"]


def test_the_bootstrap_repeats_exactly_with_its_seed_and_moves_with_another():
    gains = np.array([0.05, -0.02, 0.03, 0.01, -0.04, 0.06, 0.02])
    assert bootstrap_interval(gains, seed=7) == bootstrap_interval(gains, seed=7)
    assert bootstrap_interval(gains, seed=7) != bootstrap_interval(gains, seed=8)


def test_the_headline_tail_names_interval_and_cases_better():
    stats = gain_stats(BEFORE, _cases([v + 0.01 * (i + 1) for i, v in enumerate(BEFORE.values())]))
    text = summary(stats)
    assert text.startswith(", 95% CI +0.0") and text.endswith("6 of 6 cases better")


def test_a_kept_checkpoint_within_noise_gets_a_warning():
    after = _cases([v + g for v, g in zip(BEFORE.values(), [0.05, -0.05, 0.03, -0.03, 0.02, -0.01])])
    assert "within noise" in noise_warning(gain_stats(BEFORE, after), kept_finetuned=True)


def test_a_discarded_checkpoint_within_noise_gets_no_warning():
    after = _cases([v + g for v, g in zip(BEFORE.values(), [0.05, -0.05, 0.03, -0.03, 0.02, -0.01])])
    assert noise_warning(gain_stats(BEFORE, after), kept_finetuned=False) is None


def test_no_per_case_dice_leaves_the_fields_null():
    assert output_fields({}, {}, kept_finetuned=False) == {"formal_gain_stats": None, "gain_confidence": None,
                                                           "gain_warning": None}


def test_fewer_than_six_paired_cases_are_too_few_for_a_verdict_whatever_the_interval():
    before = _cases([0.2, 0.3, 0.4, 0.5, 0.6])
    stats = gain_stats(before, {k: v + 0.2 for k, v in before.items()})
    assert stats["ci_low"] > 0 and stats["confidence"] == "too_few_cases"


def test_six_paired_cases_get_a_verdict_from_the_interval():
    assert gain_stats(BEFORE, {k: v + 0.2 for k, v in BEFORE.items()})["confidence"] == "clear"


def test_a_headline_on_too_few_cases_prints_no_interval_and_points_to_folds():
    before = _cases([0.2, 0.3])
    tail = summary(gain_stats(before, {k: v + 0.2 for k, v in before.items()}))
    assert "95% CI" not in tail and "too few cases" in tail and "--folds" in tail


def test_a_kept_checkpoint_on_too_few_cases_gets_a_warning_that_points_to_folds():
    before = _cases([0.2, 0.3])
    fields = output_fields(before, {k: v + 0.2 for k, v in before.items()}, kept_finetuned=True)
    assert fields["gain_confidence"] == "too_few_cases" and "--folds" in fields["gain_warning"]
