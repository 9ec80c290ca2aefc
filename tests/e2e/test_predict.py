"""`nvseg-finetune predict`: new scans segmented with a run's checkpoint through the bundle's inference config."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel
import numpy as np
import pytest

from nvseg_bench.cli import main

from ..helpers import FIXTURE, REPO


def _fake_run(tmp_path: Path, status: str = "passed") -> Path:
    """A run dir whose output.json says what predict reads (no phase needed for the refusals)."""
    run = tmp_path / "run"
    run.mkdir()
    micro = str(REPO / "fixtures" / "micro_model" / "model.pt")
    doc = {"status": status, "output": {"recommended_ckpt": micro, "pretrained_ckpt": micro},
           "input": {"bundle": {"path": str(REPO / "bundle")}, "label_mappings": {"default": [[1, 3]]},
                     "label_names": {"3": "spleen"}},
           "plan": {"patch_size": [64, 64, 64], "sw_overlap": 0.25}}
    (run / "output.json").write_text(json.dumps(doc))
    return run


@pytest.mark.parametrize("case", ["not_a_run", "unfinished", "missing_checkpoint", "not_3d", "output_inside"])
def test_bad_input_is_exit_2_with_one_paragraph_and_nothing_written(tmp_path, capsys, case):
    run, images, out = _fake_run(tmp_path, "failed" if case == "unfinished" else "passed"), tmp_path / "images", \
        tmp_path / "out"
    images.mkdir()
    image = images / "ct.nii.gz"
    shape = (8, 8) if case == "not_3d" else (8, 8, 8)
    nibabel.save(nibabel.Nifti1Image(np.zeros(shape, np.int16), np.eye(4)), str(image))
    argv = ["predict", str(tmp_path if case == "not_a_run" else run), str(images), "--output-dir",
            str(images / "out" if case == "output_inside" else out)]
    argv += ["--checkpoint", str(tmp_path / "nope.pt")] if case == "missing_checkpoint" else []
    assert main(argv) == 2
    err = capsys.readouterr().err
    expected = {"not_a_run": "is not an nvseg-finetune run dir", "unfinished": "did not finish",
                "missing_checkpoint": "nope.pt is not a file", "not_3d": "not a 3D volume",
                "output_inside": "lies inside the input folder"}[case]
    assert expected in err and "Traceback" not in err
    assert not out.exists() and not (images / "out").exists()


@pytest.mark.slow
def test_predict_writes_label_maps_in_each_images_grid_that_score_as_the_formal_evaluation(smoke_run, tmp_path,
                                                                                            capsys):
    cases = sorted(Path(k).name.removesuffix(".nii.gz") for k in smoke_run.doc["output"]["formal_finetuned_per_case"])
    images = [str(FIXTURE / "imagesTr" / f"{case}.nii.gz") for case in cases]
    assert main(["predict", str(smoke_run.out), *images, "--output-dir", str(tmp_path / "pred")]) == 0
    assert "2 of 2 images segmented with the recommended checkpoint" in capsys.readouterr().out
    doc = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert doc["checkpoint"] == smoke_run.doc["output"]["recommended_ckpt"] and len(doc["images"]) == len(cases)
    for case, row in zip(cases, doc["images"]):
        image = nibabel.load(FIXTURE / "imagesTr" / f"{case}.nii.gz")
        found = nibabel.load(row["label_map"])
        labels = np.asarray(found.dataobj)
        assert found.shape == image.shape and np.allclose(found.affine, image.affine)
        assert set(np.unique(labels)) <= {0, 1} and row["voxels"]["1"] == int((labels == 1).sum()) > 0
        truth = np.asarray(nibabel.load(FIXTURE / "labelsTr" / f"{case}.nii.gz").dataobj) == 1
        dice = 2 * float((truth & (labels == 1)).sum()) / float(truth.sum() + (labels == 1).sum())
        formal = smoke_run.doc["output"]["formal_finetuned_per_case"][f"{case}.nii.gz"]
        assert abs(dice - formal) <= 0.02, (case, dice, formal)
        assert row["anatomy"]["1"]["class_name"] == "spleen" and isinstance(row["plausible"], bool)
