"""Boundary claims (output.boundary): normalised surface Dice and HD95 per case and class, re-derived from the
saved predictions and the trusted labels, with their paired gains.

Own algorithm, nothing of the producer's: a surface voxel is one with a face neighbour outside the mask (the
grid's edge counts as outside), found by shifting the padded mask; the distance from each surface voxel to the
other surface is a nearest-neighbour query in a k-d tree of the other surface's voxel centres in mm (the
label's affine column lengths). NSD is the share of both surfaces within the tolerance, HD95 the larger of the
two directed linear 95th percentiles. The conventions where a mask is empty are those docs/results.md
(#boundary-metrics) states: the label lacks the class -> no value; the prediction lacks it -> NSD 0 and HD95
the grid's diagonal. Cases: the trusted datalist's fold 0 for `validation`, its `testing` list for `test`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import nibabel
import numpy as np

from .findings import Finding, failed, passed, skipped, unverified
from .gain_check import MAX_CASES, bootstrap, percentile
from .inputs import Inputs, validation_entries
from .pack import Pack
from .recompute import prediction_path
from .test_check import testing_entries

TOLERANCE = 1e-3  # NSD (a share) and HD95 (mm): a tie at exactly the tolerance may round either way
PHASES = {"validation": ("eval_pretrained", "eval_finetuned"), "test": ("eval_test_pretrained", "eval_test_finetuned")}
SIDES = ("pretrained", "finetuned")
MAX_VOXELS = 1024 ** 3  # a label grid larger than this is refused, not scored


def surface_points(mask: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Centres (mm) of the mask's voxels that have a face neighbour outside it."""
    padded = np.pad(mask, 1, constant_values=False)
    inner = padded[1:-1, 1:-1, 1:-1].copy()
    for axis in range(3):
        for step in (-1, 1):
            inner &= np.roll(padded, step, axis=axis)[1:-1, 1:-1, 1:-1]
    return np.argwhere(mask & ~inner).astype(float) * spacing


def nsd_hd95(pred: np.ndarray, label: np.ndarray, spacing: np.ndarray, tol: float) -> tuple[float | None, float | None]:
    from scipy.spatial import cKDTree

    if not label.any():
        return None, None
    if not pred.any():
        return 0.0, float(np.sqrt((((np.array(label.shape) - 1) * spacing) ** 2).sum()))
    p, t = surface_points(pred, spacing), surface_points(label, spacing)
    p_to_t, _ = cKDTree(t).query(p)
    t_to_p, _ = cKDTree(p).query(t)
    share = (np.count_nonzero(p_to_t <= tol) + np.count_nonzero(t_to_p <= tol)) / (len(p) + len(t))
    return float(share), max(percentile(np.sort(p_to_t), 95.0), percentile(np.sort(t_to_p), 95.0))


def split_entries(inputs: Inputs, split: str) -> list[dict] | str:
    """The split's labelled cases from the trusted datalist (the test split's as test_check.py reads them)."""
    if split == "validation":
        return validation_entries(inputs)
    labelled = testing_entries(inputs)
    if isinstance(labelled, list) and not labelled:
        return f"the datalist {inputs.datalist} lists no labelled `testing` cases"
    return labelled


def recompute_phase(pack: Pack, phase: str, entries: list[dict], dataset_dir: Path,
                    pairs: list[tuple[int, int]], tol: float) -> dict[str, dict[int, tuple]] | str:
    """case -> VISTA3D id -> (NSD, HD95) from the phase's predictions, or why not."""
    found = {}
    for entry in entries:
        image = Path(str(entry["image"])).name
        stem = image[: -len(".nii.gz")] if image.endswith(".nii.gz") else Path(image).stem
        pred_path = prediction_path(pack.root / phase, stem)
        if pred_path is None:
            return f"{phase} has no prediction for {image}"
        pack.note(pred_path)
        label_img = nibabel.load(dataset_dir / entry["label"])
        if math.prod(label_img.shape[:3]) > MAX_VOXELS:
            return f"the label of {image} is beyond this verifier's bound"
        label = np.asanyarray(label_img.dataobj).astype(np.int64)
        pred = np.asanyarray(nibabel.load(pred_path).dataobj).astype(np.int64)
        if pred.shape != label.shape:
            return f"{pred_path.name} has shape {pred.shape}, its label {label.shape}"
        spacing = np.sqrt((np.asarray(label_img.affine)[:3, :3] ** 2).sum(axis=0))
        found[image] = {g: nsd_hd95(pred == g, label == lv, spacing, tol) for lv, g in pairs}
    return found


def _off(mine: float | None, claim: Any) -> bool:
    if mine is None or claim is None:
        return (mine is None) != (claim is None)
    return not isinstance(claim, (int, float)) or abs(mine - float(claim)) > TOLERANCE * max(1.0, abs(mine) / 100)


def _avg(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def side_problems(claim: dict[str, Any], mine: dict[str, dict[int, tuple]], ids: dict[str, int]) -> tuple[list[str], dict]:
    """Where one side's claimed figures differ from the recomputed ones; and the recomputed per-case means."""
    off = []
    if sorted((claim.get("per_case") or {})) != sorted(mine):
        off.append(f"the cases scored are {sorted(claim.get('per_case') or {})}, the datalist's {sorted(mine)}")
    means = {}
    for case, by_id in mine.items():
        rows = (claim.get("per_case_per_class") or {}).get(case) or {}
        for key, glob in ids.items():
            for i, metric in enumerate(("nsd", "hd95_mm")):
                said = (rows.get(key) or {}).get(metric)
                if _off(by_id[glob][i], said):
                    off.append(f"{case} {key} {metric} is {by_id[glob][i]}, claimed {said}")
        means[case] = {m: _avg([v[i] for v in by_id.values()]) for i, m in enumerate(("nsd", "hd95_mm"))}
        for metric in ("nsd", "hd95_mm"):
            if _off(means[case][metric], ((claim.get("per_case") or {}).get(case) or {}).get(metric)):
                off.append(f"{case} mean {metric} is {means[case][metric]}, claimed differently")
    for metric in ("nsd", "hd95_mm"):
        overall = _avg([m[metric] for m in means.values()])
        if _off(overall, claim.get(f"mean_{metric}")):
            off.append(f"mean_{metric} is {overall}, claimed {claim.get(f'mean_{metric}')}")
    return off, means


def gain_problems(claim: dict[str, Any] | None, before: dict[str, float], after: dict[str, float]) -> list[str]:
    names = sorted(before.keys() & after.keys())
    gains = np.array([after[n] - before[n] for n in names])
    if claim is None:
        return ["no gain statistics claimed for two scored sides"] if len(names) >= 2 else []
    off = [] if claim.get("n_cases") == len(names) else [f"{len(names)} paired cases, claimed {claim.get('n_cases')}"]
    if names and _off(float(gains.mean()), claim.get("mean_gain")):
        off.append(f"mean gain {gains.mean():+.4f}, claimed {claim.get('mean_gain')}")
    if len(names) >= 2 and before.keys() == after.keys():
        low, high = bootstrap(gains)
        if _off(low, claim.get("ci_low")) or _off(high, claim.get("ci_high")):
            off.append(f"interval {low:+.4f}..{high:+.4f}, claimed {claim.get('ci_low')}..{claim.get('ci_high')}")
    return off


def check_split(pack: Pack, split: str, block: dict[str, Any], tol: float, inputs: Inputs) -> Finding:
    name = f"boundary.{split}"
    out = pack.output.get("output") or {}
    ids = {row["name"]: int(row["global"]) for row in out.get("formal_classes") or []}
    pairs = [(int(lv), int(g)) for lv, g in (pack.output.get("input") or {}).get("label_mappings", {}).get("default", [])]
    entries = split_entries(inputs, split)
    if isinstance(entries, str):
        return unverified(name, f"output.boundary.{split} cannot be re-derived: {entries}")
    if len(entries) > MAX_CASES or inputs.dataset_dir is None:
        return unverified(name, f"{len(entries)} cases or no dataset: beyond this verifier")
    problems, per_case = [], {}
    for side, phase in zip(SIDES, PHASES[split]):
        if block.get(side) is None and not (pack.root / phase).is_dir():
            continue  # nothing claimed, nothing to score it from
        mine = recompute_phase(pack, phase, entries, inputs.dataset_dir, pairs, tol)
        if isinstance(mine, str):
            return failed(name, mine)
        if block.get(side) is None:
            problems.append(f"{side}: the pack holds {phase}'s predictions and claims no boundary figures for them")
            block = block | {side: {}}
        off, per_case[side] = side_problems(block[side], mine, ids)
        problems += [f"{side}: {p}" for p in off]
    if len(per_case) == 2:
        for metric, key, sign in (("nsd", "nsd_gain_stats", 1.0), ("hd95_mm", "hd95_gain_stats", -1.0)):
            before, after = ({c: sign * v[metric] for c, v in per_case[s].items() if v[metric] is not None} for s in SIDES)
            problems += [f"{key}: {p}" for p in gain_problems(block.get(key), before, after)]
    summary = {s: {"mean_nsd": _avg([v["nsd"] for v in rows.values()]),
                   "mean_hd95_mm": _avg([v["hd95_mm"] for v in rows.values()])} for s, rows in per_case.items()}
    if problems:
        return failed(name, "boundary claims differ from the predictions: " + "; ".join(problems[:6]), **summary)
    return passed(name, f"NSD at {tol} mm and HD95 of {len(entries)} cases re-derived from the predictions", **summary)


def check_boundary(pack: Pack, inputs: Inputs) -> list[Finding]:
    """One finding per split output.boundary claims; skipped for a run without formal evaluation."""
    out = pack.output.get("output") or {}
    block = out.get("boundary")
    if not out.get("formal_eval_enabled"):
        return [skipped("boundary", "formal evaluation was not part of this run")]
    if not block:
        return [skipped("boundary", "output.json carries no boundary metrics (written before they were)")]
    tol = block.get("tolerance_mm")
    if not isinstance(tol, (int, float)) or not 0 < tol < 1000:
        return [failed("boundary", f"output.boundary.tolerance_mm is {tol!r}, not a tolerance in mm")]
    splits = [s for s in block if s in PHASES]
    unknown = [s for s in block if isinstance(block[s], dict) and s not in PHASES]
    findings = [check_split(pack, s, block[s], float(tol), inputs) for s in splits]
    if unknown:
        findings.append(failed("boundary", f"output.boundary names splits this verifier does not know: {unknown}"))
    return findings or [failed("boundary", "output.boundary claims no split")]
