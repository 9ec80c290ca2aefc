"""The verifier re-derives the paired gain statistics from the per-case CSVs with its own code."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import wilcoxon

from eval_engine import gain_check
from eval_engine.gain_check import bootstrap, check_gain_stats, exact_signed_rank_p
from eval_engine.pack import Pack
from nvseg_bench.evidence import gain_stats
from nvseg_bench.evidence.gain_stats import bootstrap_interval, output_fields

BEFORE = {f"case_{i:02d}.nii.gz": round(0.55 + 0.031 * i, 6) for i in range(7)}
AFTER = {k: round(v + g, 6) for (k, v), g in zip(BEFORE.items(), [0.04, -0.013, 0.021, 0.052, -0.006, 0.033, 0.017])}


def _csv(folder: Path, values: dict[str, float]) -> None:
    folder.mkdir(parents=True)
    rows = "".join(f"/data/imagesTr/{k},{v},{v}\n" for k, v in values.items())
    (folder / "val_mean_dice_raw.csv").write_text("filename,class0,mean\n" + rows)


@pytest.fixture
def pack(tmp_path) -> Pack:
    _csv(tmp_path / "eval_pretrained", BEFORE)
    _csv(tmp_path / "eval_finetuned", AFTER)
    out = {"formal_eval_enabled": True, "formal_finetuned_val_dice": 0.7,
           "formal_pretrained_per_case": dict(BEFORE), "formal_finetuned_per_case": dict(AFTER)}
    out |= output_fields(BEFORE, AFTER, kept_finetuned=True)
    return Pack(root=tmp_path, output={"output": out}, manifest=None)


def test_an_honest_claim_is_re_derived(pack):
    finding = check_gain_stats(pack)
    assert finding.status == "pass", finding.detail


def test_the_verifier_bootstrap_gives_the_producers_interval_to_four_decimals():
    gains = np.array([AFTER[k] - BEFORE[k] for k in sorted(BEFORE)])
    mine, theirs = bootstrap(gains), bootstrap_interval(gains)
    assert np.allclose(mine, theirs, atol=5e-5)


def test_the_verifiers_own_rules_are_the_producers_defaults():
    mine = (gain_check.LEVEL, gain_check.RESAMPLES, gain_check.SEED, gain_check.UNCHANGED_TOLERANCE)
    assert mine == (gain_stats.LEVEL, gain_stats.RESAMPLES, gain_stats.BOOTSTRAP_SEED, gain_stats.UNCHANGED_TOLERANCE)


def test_a_claim_drawn_with_a_smaller_resample_count_fails_naming_it(pack):
    pack.output["output"]["formal_gain_stats"]["bootstrap"]["resamples"] = 50
    finding = check_gain_stats(pack)
    assert finding.status == "fail" and "resamples 50" in finding.detail


def test_the_exact_signed_rank_p_matches_scipy():
    gains = np.array([AFTER[k] - BEFORE[k] for k in sorted(BEFORE)])
    assert exact_signed_rank_p(gains) == pytest.approx(wilcoxon(gains).pvalue, abs=1e-9)


def test_a_tampered_per_case_value_fails(pack):
    pack.output["output"]["formal_finetuned_per_case"]["case_03.nii.gz"] += 0.01
    finding = check_gain_stats(pack)
    assert finding.status == "fail" and "case_03.nii.gz" in finding.detail


def test_a_tampered_interval_fails(pack):
    pack.output["output"]["formal_gain_stats"]["ci_low"] += 0.001
    finding = check_gain_stats(pack)
    assert finding.status == "fail" and "bootstrap interval" in finding.detail


def test_a_flattering_confidence_class_fails(pack):
    pack.output["output"]["formal_gain_stats"]["ci_low"] = 0.0001  # keep the numbers but call it clear
    pack.output["output"]["gain_confidence"] = "clear"
    assert check_gain_stats(pack).status == "fail"


def test_a_tampered_csv_value_fails_against_the_claim(pack):
    edited = pack.root / "edited"
    _csv(edited, AFTER | {"case_01.nii.gz": AFTER["case_01.nii.gz"] + 0.1})
    (edited / "val_mean_dice_raw.csv").replace(pack.root / "eval_finetuned" / "val_mean_dice_raw.csv")
    assert check_gain_stats(pack).status == "fail"


def test_a_count_of_cases_better_that_was_raised_fails(pack):
    pack.output["output"]["formal_gain_stats"]["n_better"] += 1
    assert "better/worse/unchanged" in check_gain_stats(pack).detail


def test_a_formal_gain_without_its_statistics_is_unverified_not_a_warning(pack):
    del pack.output["output"]["formal_gain_stats"]
    assert check_gain_stats(pack).status == "unverified"
