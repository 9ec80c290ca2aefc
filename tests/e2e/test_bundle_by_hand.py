"""The bundle runs without the wrapper: `python -m monai.bundle run` with configs and an override."""
from __future__ import annotations

import os
import subprocess
import sys

import nibabel
import numpy as np
import pytest

from ..helpers import FIXTURE, REPO, tree_digest

pytestmark = pytest.mark.slow
BUNDLE = REPO / "bundle"
MICRO = REPO / "fixtures" / "micro_model"


def test_inference_segments_one_image_with_a_class_prompt(tmp_path):
    image = FIXTURE / "imagesTr" / "spleen_06.nii.gz"  # stored PLS: the prediction must come back on that grid
    before = tree_digest(BUNDLE)
    cmd = [sys.executable, "-m", "monai.bundle", "run",
           "--config_file", f"['{BUNDLE}/configs/inference.json','{MICRO}/network.json']",
           "--bundle_root", str(BUNDLE), "--ckpt_path", str(MICRO / "model.pt"), "--patch_size", "[64,64,64]",
           "--output_dir", str(tmp_path), "--input_dict", f"{{'image': '{image}', 'label_prompt': [3]}}"]
    env = dict(os.environ, PYTHONPATH=str(BUNDLE), PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    pred = nibabel.load(tmp_path / "spleen_06_seg.nii.gz")
    source = nibabel.load(image)
    assert pred.shape == source.shape and np.allclose(pred.affine, source.affine, atol=1e-3)
    assert set(np.unique(np.asarray(pred.dataobj)).tolist()) == {0, 3}  # spleen found, nothing else
    assert tree_digest(BUNDLE) == before
