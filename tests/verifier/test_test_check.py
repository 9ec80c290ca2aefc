"""The verifier re-derives the test split's statistics and which split the verdict rests on (test_check.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from eval_engine.pack import Pack
from eval_engine.test_check import check_test_split
from nvseg_bench.evidence.gain_stats import output_fields

BEFORE = {f"t{i}.nii.gz": 0.30 + 0.02 * i for i in range(6)}
AFTER = {name: value + 0.05 + 0.01 * (i % 2) for i, (name, value) in enumerate(BEFORE.items())}


def _csv(folder: Path, values: dict[str, float]) -> None:
    folder.mkdir(parents=True)
    rows = "".join(f"/data/imagesTs/{k},{v},{v}\n" for k, v in values.items())
    (folder / "val_mean_dice_raw.csv").write_text("filename,class0,mean\n" + rows)


def _pack(tmp_path: Path, after: dict[str, float] = AFTER, split: str = "test") -> Pack:
    _csv(tmp_path / "eval_test_pretrained", BEFORE)
    _csv(tmp_path / "eval_test_finetuned", after)
    test = {"n_cases": len(after), **output_fields(BEFORE, after, True)}
    return Pack(root=tmp_path, output={"output": {"test": test, "verdict_split": split}}, manifest=None)


def test_six_paired_testing_cases_carry_the_verdict(tmp_path):
    finding = check_test_split(_pack(tmp_path))
    assert finding.status == "pass", finding.detail
    assert finding.numbers["verdict_split"] == "test" and finding.numbers["n_cases"] == 6


def test_a_verdict_claimed_on_validation_when_the_test_split_decides_fails(tmp_path):
    finding = check_test_split(_pack(tmp_path, split="validation"))
    assert finding.status == "fail" and "give 'test'" in finding.detail


@pytest.mark.parametrize("n", [2, 5])
def test_fewer_than_six_testing_cases_leave_the_verdict_on_validation(tmp_path, n):
    kept = dict(list(BEFORE.items())[:n])
    pack = _pack(tmp_path, {k: AFTER[k] for k in kept}, split="test")
    (tmp_path / "eval_test_pretrained" / "val_mean_dice_raw.csv").write_text(
        "filename,class0,mean\n" + "".join(f"/d/{k},{v},{v}\n" for k, v in kept.items()))
    pack.output["output"]["test"] = {"n_cases": n, **output_fields(kept, {k: AFTER[k] for k in kept}, True)}
    assert check_test_split(pack).status == "fail"
    pack.output["output"]["verdict_split"] = "validation"
    assert check_test_split(pack).status == "pass"


def test_a_flattered_test_gain_fails(tmp_path):
    pack = _pack(tmp_path)
    pack.output["output"]["test"]["formal_gain_stats"]["mean_gain"] += 0.05
    finding = check_test_split(pack)
    assert finding.status == "fail" and "test: mean gain" in finding.detail


def test_a_run_without_testing_cases_is_skipped_unless_it_claims_a_test_verdict(tmp_path):
    plain = Pack(root=tmp_path, output={"output": {"test": None, "verdict_split": "validation"}}, manifest=None)
    assert check_test_split(plain).status == "skipped"
    plain.output["output"]["verdict_split"] = "test"
    assert check_test_split(plain).status == "fail"


def test_a_cross_validations_verdict_is_its_pooled_one_whatever_its_testing_cases(tmp_path):
    pack = _pack(tmp_path, split="cv")
    pack.output["output"]["cv"] = {"folds": [0, 1], "n_cases": 4, "cv_json": "cv.json"}
    assert check_test_split(pack).status == "pass"
    pack.output["output"]["verdict_split"] = "test"
    assert check_test_split(pack).status == "fail"
