"""A class VISTA3D lacks, on purpose: `--new-class` finetunes on a free id end to end, and predict names it."""
from __future__ import annotations

import json

import nibabel
import numpy as np
import pytest

from nvseg_bench.cli import main

from ..helpers import FIXTURE


@pytest.mark.slow
def test_a_new_class_finetune_runs_end_to_end_and_predict_uses_its_name(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([str(FIXTURE), "--smoke", "--new-class", "1=bile duct", "--epochs", "1", "--no-preprocess-cache",
                 "--output-dir", str(out)]) == 0
    doc = json.loads((out / "output.json").read_text())
    assert doc["status"] == "passed"
    assert doc["input"]["new_classes"] == [{"local": 1, "global": 133, "name": "bile duct"}]
    assert doc["input"]["label_mappings"] == {"default": [[1, 133]]} and doc["input"]["label_names"] == {"133": "bile duct"}
    assert doc["output"]["formal_pretrained_val_dice"] is not None and doc["output"]["formal_finetuned_val_dice"] is not None
    image = FIXTURE / "imagesTr" / "spleen_03.nii.gz"
    assert main(["predict", str(out), str(image), "--output-dir", str(tmp_path / "pred")]) == 0
    row = json.loads((tmp_path / "pred" / "predictions.json").read_text())["images"][0]
    assert row["anatomy"]["1"]["class_name"] == "bile duct" and row["anatomy"]["1"]["in_table"] is False
    assert set(np.unique(np.asarray(nibabel.load(row["label_map"]).dataobj))) <= {0, 1}
