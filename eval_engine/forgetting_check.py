"""The forgetting check's claims, re-derived from the two label maps per validation case it saved.

For every validation case, `forget_pretrained/NAME_seg.nii.gz` and `forget_finetuned/NAME_seg.nii.gz`
hold the VISTA3D ids each checkpoint predicted, prompted with `input.forgetting_check.prompts`. The
classes scored must be the named ones, or the `count` with the most pretrained foreground in mL (ties
to the lower id); each agreement is the Dice of the two masks of a class, averaged over the cases where
either is non-empty. Own code; nothing of the producer's.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import nibabel
import numpy as np

from .findings import Finding, failed, passed, skipped
from .inputs import Inputs, validation_entries
from .pack import Pack
from .recompute import _case

NAME = "forgetting"
PHASES = ("forget_pretrained", "forget_finetuned")
TOLERANCE = 1e-6  # the same voxels, counted again


def _map(path: Path) -> tuple[np.ndarray, float]:
    image = nibabel.load(str(path))
    return np.asarray(image.dataobj).astype(np.uint8), float(np.prod(image.header.get_zooms()[:3])) / 1000.0


def _dice(a: np.ndarray, b: np.ndarray) -> float | None:
    total = int(a.sum()) + int(b.sum())
    return None if total == 0 else 2.0 * int((a & b).sum()) / total


def _maps(pack: Pack, images: list[str]) -> dict[str, tuple[Path, Path]] | str:
    """Case file name -> the two saved label maps (read one case at a time later: they can be large)."""
    maps, missing = {}, []
    for image in images:
        paths = [pack.root / phase / f"{_case(image)}_seg.nii.gz" for phase in PHASES]
        if not all(p.is_file() for p in paths):
            missing += [str(p.relative_to(pack.root)) for p in paths if not p.is_file()]
            continue
        for path in paths:
            pack.note(path)
        maps[Path(image).name] = (paths[0], paths[1])
    return f"the pack lacks {', '.join(missing[:4])}" if missing else maps


def _scored(plan: dict[str, Any], maps: dict[str, tuple[Path, Path]]) -> list[int]:
    if plan.get("count") is None:
        return [int(i) for i in plan.get("named") or []]
    volume = {int(i): 0.0 for i in plan.get("prompts") or []}
    for pre_path, _ in maps.values():
        pre, ml = _map(pre_path)
        counts = np.bincount(pre.ravel(), minlength=256)
        for glob in volume:
            volume[glob] += int(counts[glob]) * ml
    return sorted(volume, key=lambda i: (-volume[i], i))[: int(plan["count"])]


def _agreements(maps: dict[str, tuple[Path, Path]], ids: list[int]) -> dict[int, list[float | None]]:
    found: dict[int, list[float | None]] = {glob: [] for glob in ids}
    for pre_path, post_path in maps.values():
        pre, post = _map(pre_path)[0], _map(post_path)[0]
        for glob in ids:
            found[glob].append(_dice(pre == glob, post == glob))
    return found


def _off(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is not b
    return math.isnan(a) or math.isnan(b) or abs(a - b) > TOLERANCE


def check_forgetting(pack: Pack, inputs: Inputs) -> Finding:
    plan = (pack.output.get("input") or {}).get("forgetting_check") or {}
    claimed = (pack.output.get("output") or {}).get("forgetting")
    if not plan.get("enabled"):
        return skipped(NAME, "the run did not plan a forgetting check")
    if claimed is None:
        if pack.output.get("status") == "passed":
            return failed(NAME, "the plan ran the forgetting check, and output.json reports no result of it")
        return skipped(NAME, "the run stopped before the forgetting check")
    entries = validation_entries(inputs)
    if isinstance(entries, str):
        return skipped(NAME, f"the validation cases are unknown: {entries}")
    if len(plan.get("named") or []) > 255 or len(plan.get("prompts") or []) > 255:
        return failed(NAME, "the plan names more classes than a label map holds (255)")
    images = [str(e.get("image", "")) for e in entries]
    maps = _maps(pack, images)
    if isinstance(maps, str):
        return failed(NAME, maps)
    ids = _scored(plan, maps)
    problems = []
    if sorted(ids) != sorted(int(v) for v in (claimed.get("class_ids") or {}).values()):
        problems.append(f"the classes to score are ids {ids}; output.json scored {claimed.get('class_ids')}")
    by_id = {int(v): k for k, v in (claimed.get("class_ids") or {}).items()}
    mine: dict[str, float | None] = {}
    for glob, values in _agreements(maps, ids).items():
        held = [v for v in values if v is not None]
        key = by_id.get(glob, f"class {glob}")
        mine[key] = sum(held) / len(held) if held else None
        if _off(mine[key], (claimed.get("classes") or {}).get(key)):
            problems.append(f"{key}: agreement recomputed {mine[key]}, claimed {(claimed.get('classes') or {}).get(key)}")
    scored = [v for v in mine.values() if v is not None]
    lowest = min(scored) if scored else None
    if _off(lowest, claimed.get("min_agreement")):
        problems.append(f"min_agreement recomputed {lowest}, claimed {claimed.get('min_agreement')}")
    numbers = {"classes": mine, "min_agreement": lowest, "cases": len(maps)}
    if problems:
        return failed(NAME, "; ".join(problems[:6]), **numbers)
    low = f"{lowest:.3f}" if lowest is not None else "none"
    return passed(NAME, f"agreement of {len(ids)} classes over {len(maps)} cases re-derived from the saved "
                        f"predictions; lowest {low}", **numbers)
