"""The verifier re-derives a cross-validation's pooled figures from every fold's per-case CSVs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval_engine.cv_check import check_cv
from eval_engine.pack import Pack
from nvseg_bench.campaign.folds import assemble

PRE = {0: {"a.nii.gz": 0.21, "b.nii.gz": 0.33}, 1: {"c.nii.gz": 0.25, "d.nii.gz": 0.38},
       2: {"e.nii.gz": 0.42, "f.nii.gz": 0.12}}
GAINS = {"a.nii.gz": 0.11, "b.nii.gz": 0.07, "c.nii.gz": 0.013, "d.nii.gz": 0.031, "e.nii.gz": 0.052, "f.nii.gz": -0.004}


def _csv(folder: Path, values: dict[str, float]) -> None:
    folder.mkdir(parents=True)
    rows = "".join(f"/data/imagesTr/{k},{v},{v}\n" for k, v in values.items())
    (folder / "val_mean_dice_raw.csv").write_text("filename,class0,mean\n" + rows)


def _fold_doc(fold: int) -> dict:
    before = PRE[fold]
    after = {k: round(v + GAINS[k], 6) for k, v in before.items()}
    mean = lambda d: sum(d.values()) / len(d)  # noqa: E731
    return {"status": "passed", "output": {
        "formal_pretrained_per_case": before, "formal_finetuned_per_case": after,
        "formal_improvement_over_pretrained": mean(after) - mean(before), "finetuned_ckpt": f"f{fold}.pt",
        "finetuned_ckpt_exists": True, "finetuned_ckpt_matches_pretrained_weights": False, "pretrained_ckpt": "p.pt"}}


@pytest.fixture
def pack(tmp_path) -> Pack:
    docs = {}
    for fold in PRE:
        doc = _fold_doc(fold)
        _csv(tmp_path / f"fold-{fold}" / "eval_pretrained", doc["output"]["formal_pretrained_per_case"])
        _csv(tmp_path / f"fold-{fold}" / "eval_finetuned", doc["output"]["formal_finetuned_per_case"])
        _csv(tmp_path / f"fold-{fold}" / "eval_last", {k: round(v + GAINS[k] / 2, 6) for k, v in PRE[fold].items()})
        docs[fold] = (doc, tmp_path / f"fold-{fold}" / "output.json")
    entries = [{"image": f"imagesTr/{n}", "label": "", "fold": f} for f, cases in PRE.items() for n in cases]
    cv = assemble(docs, entries, list(PRE), tmp_path, "given")
    (tmp_path / "cv.json").write_text(json.dumps(cv))
    out = {"formal_gain_stats": cv["pooled"], "gain_confidence": cv["gain_confidence"], "cv": {"folds": list(PRE)}}
    return Pack(root=tmp_path, output={"output": out}, manifest=None)


def _tamper(pack: Pack, change) -> None:
    path = pack.root / "cv.json"
    cv = json.loads(path.read_text())
    change(cv)
    path.write_text(json.dumps(cv))


def test_an_honest_cv_json_is_re_derived(pack):
    finding = check_cv(pack)
    assert finding.status == "pass", finding.detail
    assert finding.numbers["n_cases"] == 6 and finding.numbers["folds"] == [0, 1, 2]


def test_a_flattered_pooled_mean_gain_fails(pack):
    _tamper(pack, lambda cv: cv["pooled"].update(mean_gain=cv["pooled"]["mean_gain"] + 0.01))
    finding = check_cv(pack)
    assert finding.status == "fail" and "pooled: mean gain" in finding.detail


def test_a_narrowed_pooled_interval_fails(pack):
    _tamper(pack, lambda cv: cv["pooled"].update(ci_low=cv["pooled"]["ci_low"] + 0.01))
    assert "bootstrap interval" in check_cv(pack).detail


def test_a_flattered_fold_gain_fails(pack):
    _tamper(pack, lambda cv: cv["runs"][2].update(formal_gain=0.3))
    finding = check_cv(pack)
    assert finding.status == "fail" and "fold 2's gain" in finding.detail


def test_a_claimed_verdict_the_pooled_cases_do_not_give_fails(pack):
    _tamper(pack, lambda cv: cv.update(gain_confidence="clear_loss"))
    assert "gain_confidence is clear_loss" in check_cv(pack).detail


def test_a_case_scored_by_two_folds_fails(pack):
    _csv(pack.root / "fold-3" / "eval_pretrained", {"a.nii.gz": 0.2})
    _csv(pack.root / "fold-3" / "eval_finetuned", {"a.nii.gz": 0.3})
    _csv(pack.root / "fold-3" / "eval_last", {"a.nii.gz": 0.25})
    _tamper(pack, lambda cv: cv["runs"].append(dict(cv["runs"][0], fold=3)))
    assert "a.nii.gz is scored by fold 0 and fold 3" in check_cv(pack).detail


def test_output_json_whose_pooled_figures_differ_from_cv_json_fails(pack):
    pack.output["output"]["formal_gain_stats"] = dict(pack.output["output"]["formal_gain_stats"], mean_gain=0.5)
    assert "differ from cv.json" in check_cv(pack).detail


def test_a_cross_validation_without_cv_json_fails(pack):
    (pack.root / "cv.json").unlink()
    assert check_cv(pack).status == "fail"


def test_a_single_run_is_skipped(tmp_path):
    assert check_cv(Pack(root=tmp_path, output={"output": {}}, manifest=None)).status == "skipped"


def _decision_out(confidence: str) -> dict:
    return {"formal_eval_enabled": True, "formal_pretrained_val_dice": 0.2, "formal_finetuned_val_dice": 0.3,
            "finetuned_ckpt_matches_pretrained_weights": False, "finetuned_ckpt_exists": True,
            "finetuned_ckpt": "fold-2/ckpt.pt", "pretrained_ckpt": "pre.pt", "gain_confidence": confidence,
            "cv": {"folds": [0, 1, 2]}}


def test_the_verifiers_keep_rule_wants_a_pooled_gain_clear_of_noise_in_a_cv_pack():
    from eval_engine.claims import expected_decision

    assert expected_decision(_decision_out("clear"))["recommended_ckpt"] == "fold-2/ckpt.pt"
    assert expected_decision(_decision_out("within_noise"))["recommended_ckpt"] == "pre.pt"
    single = {k: v for k, v in _decision_out("within_noise").items() if k != "cv"}
    assert expected_decision(single)["recommended_ckpt"] == "fold-2/ckpt.pt"  # a single run keeps on the gain


def test_the_pooled_figures_are_each_folds_last_epoch_and_a_flattered_optimism_fails(pack):
    cv = json.loads((pack.root / "cv.json").read_text())
    assert cv["cv_checkpoint"] == "last" and cv["pooled"]["mean_gain"] == pytest.approx(sum(GAINS.values()) / 12, abs=1e-6)
    assert cv["selection"]["optimism"]["mean_gain"] == pytest.approx(sum(GAINS.values()) / 12, abs=1e-6)
    _tamper(pack, lambda cv: cv["selection"]["optimism"].update(mean_gain=0.0))
    finding = check_cv(pack)
    assert finding.status == "fail" and "optimism: mean gain" in finding.detail


def test_a_cv_json_naming_no_known_checkpoint_fails(pack):
    _tamper(pack, lambda cv: cv.update(cv_checkpoint="luckiest"))
    finding = check_cv(pack)
    assert finding.status == "fail" and "'luckiest'" in finding.detail
