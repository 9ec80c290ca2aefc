"""Boundary metrics of every formal evaluation: normalised surface Dice (NSD) at a tolerance and the 95th-percentile
Hausdorff distance (HD95), per case and class, at the original spacing, from the saved predictions.

Dice can rise while a border gets worse, so each split in EVAL_SPLITS whose phases scored cases gets both
metrics for its two checkpoints and their paired gain statistics (gain_stats.py, as Dice has them).

How a case and class is scored (docs/results.md#boundary-metrics says why, with the sources):
- a surface is the mask's voxels with a 6-neighbour outside it (or at the edge of the grid);
- distances are Euclidean in mm (the grid's spacing from the label's affine), from each surface voxel of
  one mask to the nearest surface voxel of the other, by a distance transform over the union of both masks'
  bounding boxes plus the tolerance (a crop changes no distance: every surface voxel lies inside it);
- NSD: the share of both surfaces' voxels within the tolerance of the other surface (Nikolov et al. 2021,
  counted per voxel as MONAI's compute_surface_dice with use_subvoxels=False); HD95: the larger of the two
  directed 95th percentiles (numpy's linear percentile), as MONAI's compute_hausdorff_distance;
- the label lacks the class: both None, not counted in any mean, as Dice; a prediction of it there is
  listed in `false_positives`;
- the label holds the class and the prediction does not: NSD 0 and HD95 the grid's diagonal in mm (the
  largest distance the grid holds), listed in `empty_predictions`, so a missed class costs the most.
A case's value is the mean over the classes its label holds; a side's mean is the mean over its cases.
Pure functions over arrays and files; numpy, scipy and nibabel, no torch, no monai.
"""
from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from nvseg_bench.evidence import gain_stats
from nvseg_bench.evidence.per_class import RAW_CSV, MappedClass
from nvseg_bench.inputs.dataset import case_name
from nvseg_bench.inputs.request import NSD_TOLERANCE_MM as DEFAULT_TOLERANCE_MM
from nvseg_bench.phase_names import EVAL_SPLITS

PERCENTILE = 95.0
CONVENTIONS = ("docs/results.md#boundary-metrics: label lacks the class -> null, not counted (as Dice); "
               "prediction empty where the label holds the class -> NSD 0, HD95 = the grid's diagonal in mm; "
               "per-case value = mean over the classes the label holds; hd95 gains are reductions in mm "
               "(pretrained minus finetuned), so positive is better")

Metric = dict[str, float | None]  # {"nsd": ..., "hd95_mm": ...}


def spacing_of(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel edge lengths in mm: the lengths of the affine's first three columns (what MONAI resamples by)."""
    return tuple(float(v) for v in np.linalg.norm(np.asarray(affine)[:3, :3], axis=0))


def grid_diagonal(shape: tuple[int, ...], spacing: tuple[float, ...]) -> float:
    """The largest distance between two voxel centres of the grid, in mm."""
    return float(math.sqrt(sum(((n - 1) * s) ** 2 for n, s in zip(shape, spacing))))


def _crop(a: np.ndarray, b: np.ndarray, margin: tuple[int, ...]) -> tuple[slice, ...]:
    """The union bounding box of both masks, widened by `margin` voxels per axis and kept inside the grid."""
    box = []
    for axis in range(a.ndim):
        others = tuple(i for i in range(a.ndim) if i != axis)
        hit = np.flatnonzero(a.any(axis=others) | b.any(axis=others))
        box.append(slice(max(int(hit[0]) - margin[axis], 0), min(int(hit[-1]) + 1 + margin[axis], a.shape[axis])))
    return tuple(box)


def _surface(mask: np.ndarray) -> np.ndarray:
    from scipy.ndimage import binary_erosion

    return mask & ~binary_erosion(mask, border_value=0)


def _distances(mask_a: np.ndarray, mask_b: np.ndarray, spacing: tuple[float, ...],
               tolerance_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Distances in mm from each surface voxel of a to b's surface, and from each of b's to a's (both non-empty)."""
    from scipy.ndimage import distance_transform_edt

    margin = tuple(int(math.ceil(tolerance_mm / s)) + 1 for s in spacing)
    box = _crop(mask_a, mask_b, margin)
    surf_a, surf_b = _surface(mask_a[box]), _surface(mask_b[box])
    to_b = distance_transform_edt(~surf_b, sampling=spacing)[surf_a]
    to_a = distance_transform_edt(~surf_a, sampling=spacing)[surf_b]
    return to_b, to_a


def class_metrics(pred: np.ndarray, label: np.ndarray, spacing: tuple[float, ...],
                  tolerance_mm: float = DEFAULT_TOLERANCE_MM) -> Metric:
    """NSD and HD95 of one class's boolean masks on the same grid, by the conventions in the module docstring."""
    if not label.any():
        return {"nsd": None, "hd95_mm": None}
    if not pred.any():
        return {"nsd": 0.0, "hd95_mm": grid_diagonal(label.shape, spacing)}
    pred_to_label, label_to_pred = _distances(pred, label, spacing, tolerance_mm)
    within = int((pred_to_label <= tolerance_mm).sum()) + int((label_to_pred <= tolerance_mm).sum())
    nsd = within / (pred_to_label.size + label_to_pred.size)
    hd95 = max(float(np.percentile(pred_to_label, PERCENTILE)), float(np.percentile(label_to_pred, PERCENTILE)))
    return {"nsd": float(nsd), "hd95_mm": hd95}


def case_metrics(pred: np.ndarray, local_label: np.ndarray, spacing: tuple[float, ...],
                 classes: tuple[MappedClass, ...], tolerance_mm: float) -> dict[str, Metric]:
    """Per class of one case: the prediction holds VISTA3D ids, the label the dataset's local values."""
    return {c.name: class_metrics(pred == c.global_id, local_label == c.local, spacing, tolerance_mm) for c in classes}


def label_index(dataset_dir: Path, entries: list[dict], datalist: Path | None) -> dict[str, Path]:
    """Image file name -> its label, over the run's entries and every other labelled list of its datalist
    (`testing` included), so every split's cases find their labels."""
    rows = list(entries)
    try:
        doc = json.loads(datalist.read_text()) if datalist is not None else {}
    except (OSError, ValueError):
        doc = {}
    for key, value in doc.items() if isinstance(doc, dict) else ():
        if key != "training" and isinstance(value, list):
            rows += [e for e in value if isinstance(e, dict) and "image" in e and "label" in e]
    return {Path(str(e["image"])).name: dataset_dir / str(e["label"]) for e in rows if "label" in e}


def scored_cases(eval_dir: Path) -> list[str]:
    """The image file names a phase scored: its raw metrics CSV's rows (the cases its Dice counts)."""
    path = eval_dir / RAW_CSV
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return sorted({Path(row["filename"]).name for row in csv.DictReader(handle) if row.get("filename")})


def prediction_file(eval_dir: Path, image_name: str) -> Path | None:
    """Either bundle's layout: `NAME_seg.nii.gz` (this project's) or `NAME/NAME_trans.nii.gz` (NVIDIA's)."""
    stem = case_name(image_name)
    for path in (eval_dir / f"{stem}_seg.nii.gz", eval_dir / stem / f"{stem}_trans.nii.gz"):
        if path.is_file():
            return path
    return None


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(sum(kept) / len(kept)) if kept else None


def side_block(eval_dir: Path, labels: dict[str, Path], classes: tuple[MappedClass, ...],
               tolerance_mm: float) -> dict[str, Any] | None:
    """One phase's boundary figures over the cases it scored; None when it scored none it can be read for."""
    import nibabel

    started = time.perf_counter()
    table: dict[str, dict[str, Metric]] = {}
    empty, false_pos, unread = [], [], []
    for name in scored_cases(eval_dir):
        pred_path, label_path = prediction_file(eval_dir, name), labels.get(name)
        if pred_path is None or label_path is None or not label_path.is_file():
            unread.append(name)
            continue
        label_img = nibabel.load(label_path)
        pred = np.asanyarray(nibabel.load(pred_path).dataobj)  # kept in their stored dtypes: a Task06 case
        local = np.asanyarray(label_img.dataobj)  # as int64 would be 630 MB each
        if pred.shape != local.shape:
            unread.append(name)
            continue
        table[name] = case_metrics(pred, local, spacing_of(label_img.affine), classes, tolerance_mm)
        for c in classes:
            held = table[name][c.name]["nsd"] is not None
            if held and not (pred == c.global_id).any():
                empty.append({"case": name, "class": c.name})
            elif not held and (pred == c.global_id).any():
                false_pos.append({"case": name, "class": c.name})
    if not table:
        return None
    per_case = {n: {k: _mean(m[k] for m in row.values()) for k in ("nsd", "hd95_mm")} for n, row in table.items()}
    per_class = {c.name: {"nsd": _mean(row[c.name]["nsd"] for row in table.values()),
                          "hd95_mm": _mean(row[c.name]["hd95_mm"] for row in table.values()),
                          "n_cases": sum(1 for row in table.values() if row[c.name]["nsd"] is not None)}
                 for c in classes}
    return {"phase": eval_dir.name, "n_cases": len(table),
            "mean_nsd": _mean(v["nsd"] for v in per_case.values()),
            "mean_hd95_mm": _mean(v["hd95_mm"] for v in per_case.values()),
            "per_class": per_class, "per_case": per_case, "per_case_per_class": table,
            "empty_predictions": empty, "false_positives": false_pos, "unread_cases": unread,
            "seconds": round(time.perf_counter() - started, 3)}


def _by_case(side: dict[str, Any] | None, key: str, sign: float = 1.0) -> dict[str, float]:
    rows = (side or {}).get("per_case", {})
    return {n: sign * v[key] for n, v in rows.items() if v[key] is not None}


def split_block(out_dir: Path, phases: tuple[str, str], labels: dict[str, Path], classes: tuple[MappedClass, ...],
                tolerance_mm: float) -> dict[str, Any]:
    """Both checkpoints of one split and the paired gains: NSD after minus before; HD95 before minus after
    (a reduction in mm, so that a positive gain is better for both, as for Dice)."""
    pre, post = (side_block(out_dir / phase, labels, classes, tolerance_mm) for phase in phases)
    both = pre is not None and post is not None
    return {"pretrained": pre, "finetuned": post,
            "nsd_gain_stats": gain_stats.gain_stats(_by_case(pre, "nsd"), _by_case(post, "nsd")) if both else None,
            "hd95_gain_stats": (gain_stats.gain_stats(_by_case(pre, "hd95_mm", -1.0), _by_case(post, "hd95_mm", -1.0))
                                if both else None)}


def boundary_block(out_dir: Path, labels: dict[str, Path], classes: tuple[MappedClass, ...], tolerance_mm: float,
                   splits: Iterable[str] | None = None) -> dict[str, Any] | None:
    """output.boundary: each split (of `splits`, default every one whose two phase folders exist) with its
    figures; None when no split has any."""
    chosen = [s for s in (EVAL_SPLITS if splits is None else splits)
              if all((out_dir / phase).is_dir() for phase in EVAL_SPLITS[s])]
    blocks = {s: split_block(out_dir, EVAL_SPLITS[s], labels, classes, tolerance_mm) for s in chosen}
    blocks = {s: b for s, b in blocks.items() if b["pretrained"] is not None or b["finetuned"] is not None}
    if not blocks:
        return None
    return {"tolerance_mm": float(tolerance_mm), "percentile": PERCENTILE, "conventions": CONVENTIONS} | blocks


def _shown(side: dict[str, Any], key: str, spec: str) -> str:
    return "-" if side.get(key) is None else format(side[key], spec)


def summary_line(block: dict[str, Any]) -> str:
    """The console's line, e.g. `validation NSD at 2 mm 0.812 -> 0.845, HD95 6.10 -> 4.95 mm (2 cases)`."""
    parts = []
    for split in EVAL_SPLITS:
        pre, post = (((block.get(split) or {}).get(side) or {}) for side in ("pretrained", "finetuned"))
        if pre or post:
            n_cases = max(pre.get("n_cases", 0), post.get("n_cases", 0))
            parts.append(f"{split} NSD at {block['tolerance_mm']:g} mm {_shown(pre, 'mean_nsd', '.3f')} -> "
                         f"{_shown(post, 'mean_nsd', '.3f')}, HD95 {_shown(pre, 'mean_hd95_mm', '.2f')} -> "
                         f"{_shown(post, 'mean_hd95_mm', '.2f')} mm ({n_cases} cases)")
    return "; ".join(parts)


def plan_note(tolerance_mm: float, formal_eval: bool) -> str | None:
    """The plan's line on the boundary metrics; None when no formal evaluation runs."""
    if not formal_eval:
        return None
    said = "the default" if tolerance_mm == DEFAULT_TOLERANCE_MM else "your --nsd-tolerance-mm"
    return (f"boundary metrics: NSD at {tolerance_mm:g} mm ({said}) and HD95 per case and class, from each formal "
            "evaluation's saved predictions at the original spacing")
