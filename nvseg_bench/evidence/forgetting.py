"""Forgetting: how far the finetune changed what the model says about classes it was not trained on.

The forgetting check's two inference phases (planning/forgetting.py) leave one label map of VISTA3D
ids per validation case from each checkpoint, both prompted with the same classes. Per class, the
agreement is the Dice between the two maps' masks of that class, averaged over the cases where
either map holds it (a case where neither does says nothing). No label is involved: 1.0 means the
finetune left the class as the pretrained model saw it, whether that was right or not. With a
count, the classes scored are the N with the most pretrained foreground (mL over the cases; ties to
the lower id). Reads NIfTI with nibabel; no torch, no monai.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel
import numpy as np

from nvseg_bench.phase_names import FORGETTING
from nvseg_bench.inputs.dataset import case_name
from nvseg_bench.planning.forgetting import ForgettingPlan
from nvseg_bench.stage.inference import POSTFIX

HEADLINE_BELOW = 0.9  # below this the headline names the class (output.forgetting.min_agreement)
METHOD = ("per class, Dice between the pretrained and the finetuned checkpoint's masks of that class on each "
          "validation case, mean over the cases where either mask is non-empty")


def read_map(path: Path) -> tuple[np.ndarray, float]:
    """A label map as VISTA3D ids (uint8), and one voxel's volume in mL."""
    image = nibabel.load(str(path))
    ml = float(np.prod(image.header.get_zooms()[:3])) / 1000.0
    return np.asarray(image.dataobj).astype(np.uint8), ml


def agreement(a: np.ndarray, b: np.ndarray) -> float | None:
    """Dice of two masks; None when both are empty."""
    total = int(a.sum()) + int(b.sum())
    return None if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def chosen(plan: ForgettingPlan, foreground_ml: dict[int, float]) -> tuple[int, ...]:
    """The named classes, else the `count` with the most pretrained foreground."""
    if plan.count is None:
        return plan.named
    ranked = sorted(plan.prompts, key=lambda i: (-foreground_ml.get(i, 0.0), i))
    return tuple(ranked[: plan.count])


def case_maps(out_dir: Path, images: tuple[Path, ...]) -> dict[str, tuple[Path, Path]]:
    """Case file name -> (pretrained map, finetuned map)."""
    maps = {}
    for image in images:
        maps[image.name] = tuple(out_dir / phase / f"{case_name(image)}_{POSTFIX}.nii.gz" for phase in FORGETTING)
    return maps


def pretrained_ml(maps: dict[str, tuple[Path, Path]], prompts: tuple[int, ...]) -> dict[int, float]:
    """mL of each prompted class in the pretrained maps, over every case (one map in memory at a time)."""
    volume = dict.fromkeys(prompts, 0.0)
    for pre_path, _ in maps.values():
        pre, ml = read_map(pre_path)
        counts = np.bincount(pre.ravel(), minlength=256)
        for glob in prompts:
            volume[glob] += int(counts[glob]) * ml
    return volume


def forgetting_block(plan: ForgettingPlan, out_dir: Path, images: tuple[Path, ...],
                     checkpoints: dict[str, str]) -> dict[str, Any]:
    """output.forgetting: agreement per class and per case, the lowest, and what was compared."""
    maps = case_maps(out_dir, images)
    pre_ml = pretrained_ml(maps, plan.prompts)
    classes = chosen(plan, pre_ml)
    name = {glob: plan.names.get(glob, f"class {glob}") for glob in classes}
    per_case: dict[str, dict[str, float | None]] = {}
    post_ml = dict.fromkeys(name.values(), 0.0)
    for case, (pre_path, post_path) in maps.items():  # a case at a time: Task06 maps are ~80 MB each
        (pre, _), (post, ml) = read_map(pre_path), read_map(post_path)
        per_case[case] = {name[g]: agreement(pre == g, post == g) for g in classes}
        for glob in classes:
            post_ml[name[glob]] += int(np.count_nonzero(post == glob)) * ml
    means = {}
    for glob in classes:
        values = [row[name[glob]] for row in per_case.values() if row[name[glob]] is not None]
        means[name[glob]] = sum(values) / len(values) if values else None
    scored = {k: v for k, v in means.items() if v is not None}
    low = min(scored, key=scored.get) if scored else None
    return {
        "classes": means,
        "min_agreement": scored[low] if low else None,
        "min_class": low,
        "class_ids": {name[g]: g for g in classes},
        "per_case": per_case,
        "pretrained_foreground_ml": {name[g]: round(pre_ml.get(g, 0.0), 3) for g in classes},
        "finetuned_foreground_ml": {k: round(v, 3) for k, v in post_ml.items()},
        "requested": {"count": plan.count} if plan.count is not None else {"named": list(plan.named)},
        "n_prompted": len(plan.prompts),
        "checkpoints": checkpoints,
        "phases": list(FORGETTING),
        "headline_below": HEADLINE_BELOW,
        "method": METHOD,
    }


def headline_tail(block: dict[str, Any] | None) -> str:
    """`; forgetting: liver agreement 0.812` when the lowest agreement is below HEADLINE_BELOW, else ''."""
    if not block or block.get("min_agreement") is None or block["min_agreement"] >= HEADLINE_BELOW:
        return ""
    return f"; forgetting: {block['min_class']} agreement {block['min_agreement']:.3f}"
