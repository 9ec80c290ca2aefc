"""Agreement between the pretrained and the finetuned checkpoint's label maps, per class the check scores."""
from __future__ import annotations

from pathlib import Path

import nibabel
import numpy as np
import pytest

from nvseg_bench.evidence.forgetting import forgetting_block, headline_tail
from nvseg_bench.phase_names import FORGETTING as PHASES
from nvseg_bench.planning.forgetting import ForgettingPlan

NAMES = {1: "liver", 6: "aorta", 10: "gallbladder"}


def save(out: Path, phase: str, case: str, volume: np.ndarray, spacing: float = 2.0) -> None:
    (out / phase).mkdir(parents=True, exist_ok=True)
    nibabel.save(nibabel.Nifti1Image(volume.astype(np.float32), np.diag([spacing] * 3 + [1.0])),
                 str(out / phase / f"{case}_seg.nii.gz"))


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    pre, post = np.zeros((10, 10, 10)), np.zeros((10, 10, 10))
    pre[:5], post[:4] = 1, 1  # liver: 500 voxels before, 400 after, all inside
    pre[6:8, :2], post[6:8, :2] = 6, 6  # aorta: unchanged
    post[9, 9, 9] = 10  # gallbladder: only after, on one voxel
    save(tmp_path, PHASES[0], "a", pre)
    save(tmp_path, PHASES[1], "a", post)
    save(tmp_path, PHASES[0], "b", np.zeros((4, 4, 4)))
    save(tmp_path, PHASES[1], "b", np.zeros((4, 4, 4)))
    return tmp_path


def block(run_dir: Path, plan: ForgettingPlan) -> dict:
    images = (Path("/data/imagesTr/a.nii.gz"), Path("/data/imagesTr/b.nii.gz"))
    return forgetting_block(plan, run_dir, images, {"pretrained": "p.pt", "finetuned": "f.pt"})


def test_the_count_keeps_the_classes_with_most_pretrained_foreground_and_scores_each(run_dir):
    found = block(run_dir, ForgettingPlan(True, "", count=2, prompts=(1, 6, 10), names=NAMES))
    assert found["class_ids"] == {"liver": 1, "aorta": 6}
    assert found["classes"]["liver"] == pytest.approx(2 * 400 / 900) and found["classes"]["aorta"] == 1.0
    assert found["min_class"] == "liver" and found["min_agreement"] == pytest.approx(0.8889, abs=1e-4)
    assert found["pretrained_foreground_ml"]["liver"] == pytest.approx(500 * 8 / 1000)
    assert found["per_case"]["b.nii.gz"] == {"liver": None, "aorta": None}  # neither map holds them: no say


def test_a_named_class_only_one_checkpoint_finds_has_agreement_0(run_dir):
    found = block(run_dir, ForgettingPlan(True, "", named=(10,), prompts=(10,), names=NAMES))
    assert found["classes"] == {"gallbladder": 0.0} and found["requested"] == {"named": [10]}


def test_the_headline_names_the_class_only_below_0_9():
    assert headline_tail({"min_agreement": 0.812, "min_class": "liver"}) == "; forgetting: liver agreement 0.812"
    assert headline_tail({"min_agreement": 0.95, "min_class": "liver"}) == ""
    assert headline_tail(None) == ""
