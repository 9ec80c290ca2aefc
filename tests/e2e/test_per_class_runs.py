"""Two classes in one finetune, end to end on the micro model: per-class Dice, predict per class, forgetting.

One run on a two-label copy of the shipped fixture (its spleens split in two: the upper half keeps
label 1 = spleen, the lower half becomes label 2, a class VISTA3D lacks) with a forgetting check on
3 classes, shared by every test here.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel
import numpy as np
import pytest

from eval_engine.run_trusted import audit
from nvseg_bench.cli import main

from ..helpers import FIXTURE, REPO

pytestmark = pytest.mark.slow
LOWER = "spleen lower half"


def two_label_copy(dest: Path) -> Path:
    """The shipped fixture with each spleen's lower half (by slice) relabelled 2, and its card made absolute."""
    shutil.copytree(FIXTURE, dest)
    for path in sorted((dest / "labelsTr").glob("*.nii.gz")):
        image = nibabel.load(str(path))
        labels = np.asarray(image.dataobj).astype(np.uint8)
        slices = np.nonzero((labels == 1).any(axis=(0, 1)))[0]
        cut = int(np.median(slices)) if len(slices) else 0
        labels[:, :, :cut][labels[:, :, :cut] == 1] = 2
        nibabel.save(nibabel.Nifti1Image(labels, image.affine, image.header), str(path))
    card = json.loads((dest / "fixture.json").read_text())
    card |= {"pretrained_ckpt": str(REPO / "fixtures" / "micro_model" / "model.pt"),
             "network_config": str(REPO / "fixtures" / "micro_model" / "network.json")}
    (dest / "fixture.json").write_text(json.dumps(card))
    return dest


@pytest.fixture(scope="module")
def two_label_run(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("two_label")
    data = two_label_copy(root / "data")
    out = root / "run"
    code = main([str(data), "--smoke", "--label-mapping", "[[1, 3]]", "--new-class", f"2={LOWER}",
                 "--forgetting-check", "3", "--no-preprocess-cache", "--output-dir", str(out)])
    assert code == 0
    return out, json.loads((out / "output.json").read_text())


def test_each_class_is_scored_and_the_figures_add_up_to_the_reported_mean(two_label_run):
    _, doc = two_label_run
    out = doc["output"]
    assert [c["name"] for c in out["formal_classes"]] == ["spleen", LOWER]
    for side in ("pretrained", "finetuned"):
        table = out[f"formal_{side}_per_case_per_class"]
        cells = [v for row in table.values() for v in row.values() if v is not None]
        assert np.mean(cells) == pytest.approx(out[f"formal_{side}_val_dice"], abs=1e-4)
        for case, row in table.items():
            held = [v for v in row.values() if v is not None]
            assert np.mean(held) == pytest.approx(out[f"formal_{side}_per_case"][case], abs=1e-4)
        for name, mean in out[f"formal_{side}_per_class"].items():
            column = [row[name] for row in table.values() if row[name] is not None]
            assert mean == pytest.approx(np.mean(column), abs=1e-6)
    stats = out["formal_class_gain_stats"]
    assert set(stats) == {"spleen", LOWER} and all(s["n_cases"] == 2 for s in stats.values())
    # two validation cases: each class has an interval but no verdict, so none is called a regression
    assert all(s["confidence"] == "too_few_cases" and s["ci_low"] is not None for s in stats.values())
    assert out["class_regressions"] == [] and out["class_warnings"] == []


def test_predict_scores_each_class_as_the_formal_evaluation_did(two_label_run, tmp_path):
    run_dir, doc = two_label_run
    cases = sorted(doc["output"]["formal_finetuned_per_case_per_class"])
    data = Path(doc["input"]["dataset_dir"])
    assert main(["predict", str(run_dir), *(str(data / "imagesTr" / c) for c in cases),
                 "--output-dir", str(tmp_path / "pred")]) == 0
    rows = {Path(r["image"]).name: r for r in json.loads((tmp_path / "pred" / "predictions.json").read_text())["images"]}
    for case in cases:
        labels = np.asarray(nibabel.load(rows[case]["label_map"]).dataobj)
        truth = np.asarray(nibabel.load(data / "labelsTr" / case).dataobj)
        for value, name in ((1, "spleen"), (2, LOWER)):
            formal = doc["output"]["formal_finetuned_per_case_per_class"][case][name]
            if formal is None:
                continue
            t, p = truth == value, labels == value
            dice = 2 * float((t & p).sum()) / float(t.sum() + p.sum())
            assert abs(dice - formal) <= 0.02, (case, name, dice, formal)


def test_the_forgetting_check_reports_every_class_it_was_asked_for(two_label_run):
    _, doc = two_label_run
    block = doc["output"]["forgetting"]
    assert doc["input"]["forgetting_check"]["count"] == 3 and len(block["classes"]) == 3
    assert set(block["class_ids"]) == set(block["classes"]) and not {3, 133} & set(block["class_ids"].values())
    assert set(block["per_case"]) == set(doc["output"]["formal_finetuned_per_case"])
    scored = [v for v in block["classes"].values() if v is not None]
    assert all(0.0 <= v <= 1.0 for v in scored) and block["min_agreement"] == min(scored)
    assert set(doc["runtime"]["phase_seconds"]) >= {"forget_pretrained", "forget_finetuned"}
    assert all((Path(doc["runtime"]["phase_logs"][p])).is_file() for p in ("forget_pretrained", "forget_finetuned"))


def test_the_verifier_re_derives_per_class_dice_and_agreement(two_label_run):
    run_dir, _ = two_label_run
    findings = {f.name: f for f in audit(run_dir)[0]}
    for name in ("per_class.eval_pretrained", "per_class.eval_finetuned", "class_gain_stats", "forgetting"):
        assert findings[name].status == "pass", (name, findings[name].detail)


def edited_copy(run_dir: Path, dest: Path, change) -> Path:
    """The pack copied, output.json edited; the manifest does not list output.json, so nothing to re-hash."""
    shutil.copytree(run_dir, dest)
    doc = json.loads((dest / "output.json").read_text())
    change(doc["output"])
    (dest / "output.json").write_text(json.dumps(doc))
    return dest


def test_a_per_class_claim_the_predictions_do_not_support_fails_the_verifier(two_label_run, tmp_path):
    run_dir, _ = two_label_run
    pack = edited_copy(run_dir, tmp_path / "pack",
                       lambda out: out["formal_finetuned_per_class"].update({LOWER: 0.99}))
    found = {f.name: f for f in audit(pack)[0]}["per_class.eval_finetuned"]
    assert found.status == "fail" and f"gives 0.99 for {LOWER}" in found.detail


def test_an_agreement_claim_the_predictions_do_not_support_fails_the_verifier(two_label_run, tmp_path):
    run_dir, doc = two_label_run
    name, value = next((k, v) for k, v in doc["output"]["forgetting"]["classes"].items() if v is not None)
    wrong = 0.5 if value > 0.75 else 1.0
    pack = edited_copy(run_dir, tmp_path / "pack", lambda out: out["forgetting"]["classes"].update({name: wrong}))
    found = {f.name: f for f in audit(pack)[0]}["forgetting"]
    assert found.status == "fail" and f"{name}: agreement recomputed" in found.detail
