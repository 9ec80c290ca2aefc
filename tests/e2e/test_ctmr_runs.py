"""NV-Segment-CTMR end to end on the CPU (#37): the CTMR-shaped bundle (fixtures/make_ctmr_bundle.py) finetuned on the
MR fixture with --model ctmr --modality MRI_BODY, then verified and used by predict; and the CT-only recipe refused
on the same images before any phase. One real finetune, shared by every assertion here."""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import nibabel
import numpy as np
import pytest

from eval_engine.run_trusted import audit
from nvseg_bench.cli import main
from nvseg_bench.output.write import schema_errors

from ..helpers import REPO

sys.path.insert(0, str(REPO / "fixtures"))
import make_ctmr_bundle  # noqa: E402

MR = REPO / "fixtures" / "mr_micro"


@dataclass(frozen=True)
class CtmrRun:
    bundle: Path
    out: Path
    code: int
    doc: dict


@pytest.fixture(scope="module")
def ctmr_run(tmp_path_factory) -> CtmrRun:
    """`nvseg-finetune fixtures/mr_micro --smoke --model ctmr --modality MRI_BODY --bundle-dir CTMR --epochs 2`."""
    root = tmp_path_factory.mktemp("ctmr_run")
    bundle = make_ctmr_bundle.build(root / "NV-Segment-CTMR")
    out = root / "out"
    code = main([str(MR), "--smoke", "--model", "ctmr", "--modality", "MRI_BODY", "--bundle-dir", str(bundle),
                 "--epochs", "2", "--output-dir", str(out)])
    doc = json.loads((out / "output.json").read_text()) if (out / "output.json").is_file() else {}
    return CtmrRun(bundle, out, code, doc)


def test_the_ct_only_recipe_on_mr_images_is_refused_before_any_phase(tmp_path, capsys):
    out = tmp_path / "out"
    code = main([str(MR), "--smoke", "--output-dir", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "imagesTr/mr_01.nii.gz" in err and "--model ctmr" in err
    assert not (out / "logs").exists() and not (out / "output.json").exists()


@pytest.mark.slow
def test_the_ctmr_finetune_on_mr_ends_with_a_verdict_and_per_class_figures(ctmr_run):
    assert ctmr_run.code == 0, ctmr_run.doc.get("headline")
    doc = ctmr_run.doc
    assert schema_errors(doc) == []
    assert doc["input"]["bundle"]["model"] == "ctmr" and doc["input"]["bundle"]["non_commercial"] is True
    assert doc["input"]["modality"]["modality"] == "MRI_BODY" and doc["input"]["modality"]["images"] == {"CT": 0, "MR": 5}
    assert doc["plan"]["rationale"][1].startswith("model: NV-Segment-CTMR") and "NON-COMMERCIAL" in doc["plan"]["rationale"][1]
    out = doc["output"]
    assert out["recommended_ckpt"] and out["decision_reason"]
    assert set(out["formal_finetuned_per_class"]) == {"spleen"} and out["formal_pretrained_val_dice"] is not None
    assert doc["model_repo"] == "nvidia/NV-Segment-CTMR"


@pytest.mark.slow
def test_the_trusted_verifier_recomputes_the_ctmr_run(ctmr_run):
    findings = {f.name: f for f in audit(ctmr_run.out)[0]}
    failed = {name: f for name, f in findings.items() if f.status == "fail"}
    assert not failed, failed


@pytest.mark.slow
def test_predict_segments_an_mr_scan_with_the_kept_checkpoint(ctmr_run, tmp_path):
    out = tmp_path / "pred"
    code = main(["predict", str(ctmr_run.out), str(MR / "imagesTr" / "mr_03.nii.gz"), "--bundle-dir",
                 str(ctmr_run.bundle), "--output-dir", str(out)])
    assert code == 0
    result = json.loads((out / "predictions.json").read_text())
    assert result["label_mappings"] == [[1, 3]] and len(result["images"]) == 1
    staged = json.loads((out / "configs" / "predict_override.json").read_text())
    assert staged["modality"] == "MRI_BODY"  # the run's modality reaches the bundle's everything_labels
    label = np.asarray(nibabel.load(result["images"][0]["label_map"]).dataobj)
    assert label.shape == nibabel.load(MR / "imagesTr" / "mr_03.nii.gz").shape and set(np.unique(label)) <= {0, 1}
