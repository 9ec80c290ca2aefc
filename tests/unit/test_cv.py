"""Cross-validation's own steps on hand-made fold documents: the eval folders it cuts and joins, the
pooled cv.json, the top-level output.json and the refusals."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from nvseg_bench.campaign.folds import assemble, refuse_combinations, with_values
from nvseg_bench.evidence.pool import merge_eval
from nvseg_bench.output.pooled import cv_document
from nvseg_bench.errors import ArgumentError
from nvseg_bench.inputs.request import Request

PRE = {0: {"a.nii.gz": 0.20, "b.nii.gz": 0.30}, 1: {"c.nii.gz": 0.25, "d.nii.gz": 0.35}, 2: {"e.nii.gz": 0.4, "f.nii.gz": 0.1}}
GAIN = {0: 0.10, 1: 0.02, 2: 0.05}
ENTRIES = [{"image": f"imagesTr/{name}", "label": f"labelsTr/{name}", "fold": fold}
           for fold, cases in PRE.items() for name in cases]


def _doc(fold: int, status: str = "passed") -> dict:
    before = PRE[fold]
    after = {k: v + GAIN[fold] for k, v in before.items()}
    mean = lambda d: sum(d.values()) / len(d)  # noqa: E731
    out = {"formal_pretrained_per_case": before, "formal_finetuned_per_case": after,
           "formal_pretrained_val_dice": mean(before), "formal_finetuned_val_dice": mean(after),
           "formal_improvement_over_pretrained": mean(after) - mean(before),
           "finetuned_ckpt": f"/out/fold-{fold}/checkpoints/model_finetune.pt", "finetuned_ckpt_exists": True,
           "finetuned_ckpt_matches_pretrained_weights": False, "pretrained_ckpt": "/pre.pt",
           "recommended_is_finetuned": True, "gain_confidence": "too_few_cases"}
    return {"status": status, "headline": "h", "output": out, "input": {"datalist": "x"},
            "invocation": {"command": "c", "cwd": f"/out/fold-{fold}"}, "runtime": {"wall_seconds": 1.0}}


def _assemble(statuses: dict[int, str] | None = None) -> dict:
    docs = {k: (_doc(k, (statuses or {}).get(k, "passed")), Path(f"/out/fold-{k}/output.json")) for k in PRE}
    return assemble(docs, ENTRIES, list(PRE), Path("/out"), "given: d.json", scored="best")


def test_every_case_is_pooled_once_from_the_fold_that_held_it_out():
    cv = _assemble()
    assert cv["n_cases"] == 6 and cv["cases"]["c.nii.gz"] == {"fold": 1, "pretrained": 0.25, "finetuned": 0.27, "best": 0.27,
                                                       "last": None}
    assert cv["pooled"]["n_cases"] == 6 and cv["pooled"]["mean_gain"] == pytest.approx(sum(GAIN.values()) / 3)


def test_the_fold_gains_spread_is_recorded():
    spread = _assemble()["fold_gain"]
    assert (spread["min"], spread["max"], spread["n"]) == (pytest.approx(0.02), pytest.approx(0.10), 3)


def test_a_clear_pooled_gain_recommends_the_median_folds_checkpoint_not_the_best():
    cv = _assemble()
    assert cv["gain_confidence"] == "clear" and cv["representative_fold"] == 2 and cv["recommended_fold"] == 2
    assert cv["recommended_ckpt"].endswith("fold-2/checkpoints/model_finetune.pt")


def test_the_headline_names_the_folds_and_cases():
    assert _assemble()["headline"].startswith(
        "3-fold CV over 6 cases (each fold's best epoch, selected on the scored cases): formal Dice ")


def test_a_failed_fold_gives_no_verdict_and_keeps_the_pretrained_checkpoint():
    cv = _assemble({1: "failed"})
    assert cv["gain_confidence"] is None and cv["recommended_ckpt"] == "/pre.pt"
    assert "did not finish" in cv["headline"]


def test_the_top_document_carries_the_pooled_figures_and_roots_on_out():
    cv = _assemble()
    doc = cv_document(cv, _doc(2), command_line="nvseg-finetune --folds all", out_dir=Path("/out"), wall=9.0,
                      pooled_fields={"formal_classes": [{"name": "spleen", "local": 1, "global": 3}]})
    out = doc["output"]
    assert len(out["formal_pretrained_per_case"]) == 6 and out["formal_gain_stats"] is cv["pooled"]
    assert out["cv"]["case_folds"]["e.nii.gz"] == 2 and out["recommended_ckpt"] == cv["recommended_ckpt"]
    assert out["formal_classes"] == [{"name": "spleen", "local": 1, "global": 3}]  # the pooled per-class fields
    assert doc["invocation"]["cwd"] == "/out" and doc["input"]["n_val_cases"] == 6 and doc["headline"] == cv["headline"]


def test_the_top_document_is_built_beside_the_fold_s_document_and_leaves_it_unchanged():
    import copy

    fold = _doc(2, status="failed")
    kept = copy.deepcopy(fold)
    doc = cv_document(_assemble({2: "failed"}), fold, command_line="nvseg-finetune --folds all", out_dir=Path("/out"),
                      wall=9.0, pooled_fields={}, tracking={"mlflow": {"run_id": "parent"}})
    assert fold == kept  # the representative fold's own output.json stays that fold's
    assert doc["status"] == "failed" and doc["error"]["phase"] == "finetune" and doc["tracking"]["mlflow"]["run_id"] == "parent"
    assert doc["invocation"] == {"command": "nvseg-finetune --folds all", "cwd": "/out"}


def _write_eval(folder: Path, scores: dict[str, float]) -> None:
    folder.mkdir(parents=True)
    with (folder / "val_mean_dice_raw.csv").open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["filename", "class0", "mean"])
        out.writerows([f"/data/imagesTr/{name}", v, v] for name, v in scores.items())
    for name in scores:
        (folder / name.replace(".nii.gz", "_seg.nii.gz")).write_bytes(name.encode())


def test_merging_eval_folders_keeps_the_named_cases_and_their_mean(tmp_path):
    _write_eval(tmp_path / "a", {"x.nii.gz": 0.2, "y.nii.gz": 0.4, "z.nii.gz": 0.9})
    _write_eval(tmp_path / "b", {"w.nii.gz": 0.6})
    merge_eval([(tmp_path / "a", {"x.nii.gz", "y.nii.gz"}), (tmp_path / "b", {"w.nii.gz"})], tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").glob("*_seg.nii.gz")) == ["w_seg.nii.gz", "x_seg.nii.gz",
                                                                             "y_seg.nii.gz"]
    rows = list(csv.DictReader((tmp_path / "m" / "val_mean_dice_raw.csv").open()))
    assert [Path(r["filename"]).name for r in rows] == ["x.nii.gz", "y.nii.gz", "w.nii.gz"]
    name, value = (tmp_path / "m" / "metrics.csv").read_text().strip().split(",")
    assert name == "val_mean_dice" and float(value) == pytest.approx(0.4)


def test_bundle_values_are_replaced_where_given_and_appended_where_not():
    command = ["python", "-m", "monai.bundle", "run", "--output_dir", "/a", "--ckpt_path", "/c"]
    assert with_values(command, {"output_dir": "/b", "data_list_file_path": "/d.json"}) == [
        "python", "-m", "monai.bundle", "run", "--output_dir", "/b", "--ckpt_path", "/c", "--data_list_file_path", "/d.json"]


@pytest.mark.parametrize("flag", [{"seeds": [0, 1]}, {"dry_run": True}, {"skip_formal_eval": True}, {"resuming": True}])
def test_folds_refuse_seeds_dry_run_skipping_the_formal_eval_and_resume(flag):
    with pytest.raises(ArgumentError, match="--folds runs one formal finetune per fold"):
        refuse_combinations(Request(output_dir=Path("/out"), folds="all", **flag))


def test_the_forgetting_check_is_pooled_over_every_fold_s_own_cases(tmp_path):
    import types

    import nibabel
    import numpy as np

    from nvseg_bench.evidence.pool import pooled_forgetting
    from nvseg_bench.phase_names import FORGETTING as PHASES
    from nvseg_bench.planning.forgetting import ForgettingPlan

    for fold, case, changed in ((0, "a", 0), (1, "b", 3)):
        for phase in PHASES:
            volume = np.zeros((6, 6, 6), np.uint8)
            volume[:3] = 1
            if phase == PHASES[1]:
                volume[:changed] = 0  # fold 1's finetuned model lost 3 of the liver's slices
            (tmp_path / f"fold-{fold}" / phase).mkdir(parents=True)
            nibabel.save(nibabel.Nifti1Image(volume, np.eye(4)), str(tmp_path / f"fold-{fold}" / phase / f"{case}_seg.nii.gz"))
    plan = ForgettingPlan(True, "", named=(1,), prompts=(1,), names={1: "liver"})
    p = types.SimpleNamespace(forgetting=plan, weights=types.SimpleNamespace(path="/m/pretrained.pt"))
    cv = {"runs": [{"fold": 0, "status": "passed", "cases": ["a.nii.gz"]},
                   {"fold": 1, "status": "passed", "cases": ["b.nii.gz"]}]}
    block = pooled_forgetting(p, cv, tmp_path)
    assert block["per_case"] == {"a.nii.gz": {"liver": 1.0}, "b.nii.gz": {"liver": 0.0}}
    assert block["classes"] == {"liver": 0.5} and (tmp_path / PHASES[1] / "b_seg.nii.gz").is_file()


LAST_GAIN = {0: 0.06, 1: 0.00, 2: 0.03}  # each fold's last epoch gains less than its best (GAIN): the best was chosen


def _last_epoch_out(tmp_path: Path) -> tuple[Path, dict]:
    """OUT with every fold's eval_last CSV and tiny checkpoints: the last epochs changed, the pretrained one not."""
    import torch

    out = tmp_path / "out"
    torch.save({"w": torch.zeros(3)}, tmp_path / "pre.pt")
    docs = {}
    for fold, before in PRE.items():
        root = out / f"fold-{fold}"
        (root / "eval_last").mkdir(parents=True)
        (root / "checkpoints").mkdir()
        torch.save({"w": torch.ones(3)}, root / "checkpoints" / "model_last.pt")
        with (root / "eval_last" / "val_mean_dice_raw.csv").open("w", newline="") as handle:
            rows = csv.writer(handle)
            rows.writerow(["filename", "mean"])
            rows.writerows([f"/data/imagesTr/{name}", before[name] + LAST_GAIN[fold]] for name in before)
        doc = _doc(fold)
        doc["output"] |= {"finetuned_ckpt": str(root / "checkpoints" / "model_finetune.pt"),
                          "pretrained_ckpt": str(tmp_path / "pre.pt")}
        docs[fold] = (doc, root / "output.json")
    return out, docs


def test_the_pooled_score_comes_from_each_folds_last_epoch_with_the_best_epochs_optimism(tmp_path):
    out, docs = _last_epoch_out(tmp_path)
    cv = assemble(docs, ENTRIES, list(PRE), out, "given: d.json", scored="last")
    assert cv["cv_checkpoint"] == "last" and cv["scored_phase"] == "eval_last"
    assert cv["cases"]["c.nii.gz"] == {"fold": 1, "pretrained": 0.25, "finetuned": 0.25, "best": pytest.approx(0.27),
                                       "last": 0.25}
    assert cv["pooled"]["mean_gain"] == pytest.approx(sum(LAST_GAIN.values()) / 3)
    best, optimism = cv["selection"]["best_epoch"], cv["selection"]["optimism"]
    assert best["selected_on_scored_cases"] is True and cv["selection"]["last_epoch"]["selected_on_scored_cases"] is False
    assert best["pooled"]["mean_gain"] == pytest.approx(sum(GAIN.values()) / 3)
    want = (sum(GAIN.values()) - sum(LAST_GAIN.values())) / 3  # pooled best minus last, case by case
    assert optimism["mean_gain"] == pytest.approx(want) and optimism["n_cases"] == 6 and optimism["ci_low"] is not None
    assert {r["fold"]: r["formal_gain"] for r in cv["runs"]} == pytest.approx(LAST_GAIN)
    assert "(each fold's last epoch)" in cv["headline"] and "selected on the scored cases (optimism +" in cv["headline"]


def test_a_clear_last_epoch_gain_recommends_the_median_folds_last_checkpoint_and_reports_its_comparison(tmp_path):
    out, docs = _last_epoch_out(tmp_path)
    cv = assemble(docs, ENTRIES, list(PRE), out, "given: d.json", scored="last")
    assert cv["representative_fold"] == 2 and cv["recommended_ckpt"].endswith("fold-2/checkpoints/model_last.pt")
    assert cv["scored_checkpoint"]["changed"] is True and cv["verdict_split"] == "cv"
    doc = cv_document(cv, docs[2][0], command_line="c", out_dir=out, wall=1.0, pooled_fields={})
    assert doc["output"]["finetuned_ckpt"] == cv["recommended_ckpt"]
    assert doc["output"]["finetuned_ckpt_matches_pretrained_weights"] is False
    assert doc["output"]["cv"]["optimism"] == cv["selection"]["optimism"]
