"""NSD and HD95 against values worked out by hand on small masks, the empty-mask conventions, anisotropic
spacing, the crop, and one phase folder read from files (evidence/boundary.py)."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import nibabel
import numpy as np
import pytest

from nvseg_bench.evidence import boundary
from nvseg_bench.evidence.per_class import MappedClass


def masks(shape=(9, 9, 9), *voxels) -> np.ndarray:
    out = np.zeros(shape, bool)
    for v in voxels:
        out[v] = True
    return out


def test_identical_masks_score_nsd_1_and_hd95_0():
    cube = np.zeros((8, 8, 8), bool)
    cube[2:6, 2:6, 2:6] = True
    assert boundary.class_metrics(cube, cube, (1.0, 1.0, 1.0), 2.0) == {"nsd": 1.0, "hd95_mm": 0.0}


def test_two_single_voxels_are_their_distance_apart_on_an_anisotropic_grid():
    # offset (1, 1, 0) voxels at spacing (0.5, 2, 3) mm: sqrt(0.5^2 + 2^2) = 2.0616 mm
    pred, label = masks((5, 5, 5), (2, 2, 2)), masks((5, 5, 5), (3, 3, 2))
    far = boundary.class_metrics(pred, label, (0.5, 2.0, 3.0), 2.0)
    assert far["nsd"] == 0.0 and far["hd95_mm"] == pytest.approx(math.sqrt(4.25))
    assert boundary.class_metrics(pred, label, (0.5, 2.0, 3.0), 2.1)["nsd"] == 1.0


def test_a_stray_voxel_counts_in_nsd_and_its_percentile_in_hd95():
    # pred = the label's voxel plus one 5 voxels away: pred->label distances [0, 5], label->pred [0];
    # NSD at 2 mm = (1 + 1) / (2 + 1); HD95 = 0.95 * 5 (linear percentile of [0, 5])
    label = masks((12, 4, 4), (1, 1, 1))
    pred = masks((12, 4, 4), (1, 1, 1), (6, 1, 1))
    got = boundary.class_metrics(pred, label, (1.0, 1.0, 1.0), 2.0)
    assert got["nsd"] == pytest.approx(2 / 3) and got["hd95_mm"] == pytest.approx(4.75)


def test_only_the_surface_counts_not_the_interior():
    # label a solid 3^3 cube: 26 surface voxels (its centre is inside); pred its centre alone. Centre -> surface
    # 1 voxel; surface -> centre: 6 at 1, 12 at sqrt 2, 8 at sqrt 3. NSD at 1 mm = (1 + 6) / 27; HD95 = sqrt 3
    label = np.zeros((7, 7, 7), bool)
    label[2:5, 2:5, 2:5] = True
    pred = masks((7, 7, 7), (3, 3, 3))
    got = boundary.class_metrics(pred, label, (1.0, 1.0, 1.0), 1.0)
    assert got["nsd"] == pytest.approx(7 / 27) and got["hd95_mm"] == pytest.approx(math.sqrt(3))


def test_a_label_without_the_class_gives_no_value_whatever_the_prediction():
    empty = np.zeros((4, 5, 6), bool)
    assert boundary.class_metrics(empty, empty, (1, 2, 3), 2.0) == {"nsd": None, "hd95_mm": None}
    assert boundary.class_metrics(masks((4, 5, 6), (1, 1, 1)), empty, (1, 2, 3), 2.0) == {"nsd": None, "hd95_mm": None}


def test_an_empty_prediction_scores_nsd_0_and_the_grids_diagonal():
    got = boundary.class_metrics(np.zeros((4, 5, 6), bool), masks((4, 5, 6), (1, 1, 1)), (1.0, 2.0, 3.0), 2.0)
    assert got == {"nsd": 0.0, "hd95_mm": pytest.approx(math.sqrt(3 ** 2 + 8 ** 2 + 15 ** 2))}


def brute_force(pred: np.ndarray, label: np.ndarray, spacing, tol: float) -> tuple[float, float]:
    """Every pair of surface voxels, no crop, no distance transform."""
    from scipy.ndimage import binary_erosion

    def points(m):
        return np.argwhere(m & ~binary_erosion(m, border_value=0)) * np.asarray(spacing)

    p, t = points(pred), points(label)
    d = np.sqrt(((p[:, None, :] - t[None, :, :]) ** 2).sum(-1))
    p_to_t, t_to_p = d.min(1), d.min(0)
    nsd = ((p_to_t <= tol).sum() + (t_to_p <= tol).sum()) / (len(p) + len(t))
    return nsd, max(np.percentile(p_to_t, 95), np.percentile(t_to_p, 95))


def test_the_crop_changes_nothing_against_all_pairs_on_a_larger_grid():
    grid = np.indices((40, 30, 20))
    label = ((grid[0] - 20) ** 2 + (grid[1] - 15) ** 2 + 2 * (grid[2] - 9) ** 2) <= 36
    pred = ((grid[0] - 22) ** 2 / 1.4 + (grid[1] - 14) ** 2 + 2 * (grid[2] - 10) ** 2) <= 40
    pred[2, 2, 2] = True  # a stray voxel far from both: the crop must still hold it
    spacing = (0.8, 0.8, 2.5)
    got = boundary.class_metrics(pred, label, spacing, 2.0)
    nsd, hd95 = brute_force(pred, label, spacing, 2.0)
    assert got["nsd"] == pytest.approx(nsd) and got["hd95_mm"] == pytest.approx(hd95)


def test_the_spacing_comes_from_the_affine_columns_not_their_order():
    affine = np.array([[0, 0, -2.5, 1], [0.8, 0, 0, 2], [0, -0.7, 0, 3], [0, 0, 0, 1]])
    assert boundary.spacing_of(affine) == pytest.approx((0.8, 0.7, 2.5))


def _write(path: Path, data: np.ndarray, spacing=(1.0, 1.0, 2.0)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nibabel.save(nibabel.Nifti1Image(data.astype(np.uint8), np.diag([*spacing, 1.0])), str(path))


def _phase(out: Path, phase: str, preds: dict[str, np.ndarray]) -> None:
    for name, pred in preds.items():
        _write(out / phase / f"{name}_seg.nii.gz", pred)
    with (out / phase / "val_mean_dice_raw.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "class0", "mean"])
        writer.writerows([[f"/data/imagesTr/{n}.nii.gz", "0.5", "0.5"] for n in preds])


def test_a_split_reads_each_phases_predictions_and_pairs_the_gains(tmp_path):
    # local label value 1 is VISTA3D class 3; the pretrained prediction misses case b entirely
    classes = (MappedClass("spleen", 1, 3),)
    label = np.zeros((8, 8, 8), np.uint8)
    label[2:6, 2:6, 2:6] = 1
    labels = {}
    for name in ("a", "b"):
        _write(tmp_path / "data" / "labelsTr" / f"{name}.nii.gz", label)
        labels[f"{name}.nii.gz"] = tmp_path / "data" / "labelsTr" / f"{name}.nii.gz"
    good = label * 3
    _phase(tmp_path, "eval_pretrained", {"a": good, "b": np.zeros_like(label)})
    _phase(tmp_path, "eval_finetuned", {"a": good, "b": good})
    block = boundary.boundary_block(tmp_path, labels, classes, 2.0)
    pre, post = block["validation"]["pretrained"], block["validation"]["finetuned"]
    diagonal = math.sqrt(7 ** 2 + 7 ** 2 + 14 ** 2)
    assert pre["per_case_per_class"]["b.nii.gz"]["spleen"] == {"nsd": 0.0, "hd95_mm": pytest.approx(diagonal)}
    assert pre["empty_predictions"] == [{"case": "b.nii.gz", "class": "spleen"}]
    assert pre["mean_nsd"] == pytest.approx(0.5) and post["mean_nsd"] == 1.0
    assert block["validation"]["nsd_gain_stats"]["case_gains"] == {"a.nii.gz": 0.0, "b.nii.gz": 1.0}
    # HD95 gains are reductions in mm: the finetuned case b came down from the diagonal to 0
    assert block["validation"]["hd95_gain_stats"]["case_gains"]["b.nii.gz"] == pytest.approx(diagonal)
    assert "test" not in block and block["tolerance_mm"] == 2.0


def test_a_label_index_finds_the_testing_cases_of_the_datalist(tmp_path):
    datalist = tmp_path / "datalist.json"
    datalist.write_text('{"training": [], "testing": [{"image": "imagesTs/t.nii.gz", "label": "labelsTs/t.nii.gz"}]}')
    index = boundary.label_index(tmp_path, [{"image": "imagesTr/a.nii.gz", "label": "labelsTr/a.nii.gz", "fold": 0}],
                                 datalist)
    assert index == {"a.nii.gz": tmp_path / "labelsTr/a.nii.gz", "t.nii.gz": tmp_path / "labelsTs/t.nii.gz"}


def test_the_tolerance_travels_from_the_flag_to_the_request_with_2_mm_by_default():
    from nvseg_bench.cli import build_parser
    from nvseg_bench.inputs.request import from_namespace

    def request(*extra: str):
        return from_namespace(build_parser().parse_args(["data", "--output-dir", "o", *extra]))

    assert request().nsd_tolerance_mm == boundary.DEFAULT_TOLERANCE_MM == 2.0
    assert request("--nsd-tolerance-mm", "1.5").nsd_tolerance_mm == 1.5


def test_the_console_line_gives_each_split_before_and_after():
    side = {"mean_nsd": 0.8123, "mean_hd95_mm": 6.1, "n_cases": 2}
    block = {"tolerance_mm": 2.0, "validation": {"pretrained": side, "finetuned": side | {"mean_nsd": 0.85}}}
    assert boundary.summary_line(block) == "validation NSD at 2 mm 0.812 -> 0.850, HD95 6.10 -> 6.10 mm (2 cases)"


def test_the_plan_says_the_tolerance_and_its_source_and_nothing_without_formal_evaluation():
    assert "NSD at 2 mm (the default)" in boundary.plan_note(2.0, True)
    assert "NSD at 1.5 mm (your --nsd-tolerance-mm)" in boundary.plan_note(1.5, True)
    assert boundary.plan_note(2.0, False) is None
