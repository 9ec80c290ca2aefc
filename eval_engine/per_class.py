"""Per-class claims: Dice per case per class and per class, each class's gain statistics and the regressions.

The Dice per case and class comes from recompute.py (the saved predictions against the dataset's
labels). Here it is held against what the pack says of it: output.json's per-case-per-class table
and per-class means, and the bundle's own raw CSV, whose column `classI` is the I-th pair of
input.label_mappings. Each class's paired statistics are re-derived from those CSV columns the way
gain_check.py does it for the mean (by the verifier's own rules), and `class_regressions` must list exactly the classes whose
interval lies below 0 over at least MIN_VERDICT_CASES cases. Own code; nothing of the producer's.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from .findings import Finding, failed, passed, skipped
from .gain_check import CSV_NAME, MAX_CASES, MIN_VERDICT_CASES, bootstrap, rule_problems
from .pack import Pack

TOLERANCE = 1e-3  # as recompute.DICE_TOLERANCE: predictions are re-scored on the original grid
SIDES = {"eval_pretrained": "pretrained", "eval_finetuned": "finetuned",
         "eval_test_pretrained": "pretrained", "eval_test_finetuned": "finetuned"}  # the test split's, in output.test
MAX_CLASSES = 256


def class_ids(pack: Pack) -> dict[str, int] | None:
    """Class key -> VISTA3D id as output.formal_classes states it, or None for a pack without per-class fields."""
    rows = (pack.output.get("output") or {}).get("formal_classes")
    return {row["name"]: int(row["global"]) for row in rows} if rows else None


def csv_columns(pack: Pack, phase: str) -> dict[str, dict[int, float]] | None:
    """Case -> VISTA3D id -> Dice from the bundle's raw CSV; column classI is label_mappings pair I."""
    path = pack.root / phase / CSV_NAME
    if not path.is_file():
        return None
    pairs = (pack.output.get("input") or {}).get("label_mappings", {}).get("default", [])
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    table = {}
    for row in rows:
        cells = {int(g): (row.get(f"class{i}") or "nan").strip() or "nan" for i, (_, g) in enumerate(pairs)}
        table[Path(row["filename"]).name] = {g: float(text) for g, text in cells.items()}
    return table


def _differs(a: float | None, b: float | None) -> bool:
    a = None if a is None or math.isnan(a) else a
    b = None if b is None or math.isnan(b) else b
    return (a is None) != (b is None) or (a is not None and abs(a - b) > TOLERANCE)


def _class_mean(by_case: dict[str, dict[int, float]], glob: int) -> float | None:
    held = [s[glob] for s in by_case.values() if not math.isnan(s.get(glob, math.nan))]
    return float(np.mean(held)) if held else None


def check_per_class(pack: Pack, phase: str, recomputed: dict[str, dict[int, float]],
                    block: dict[str, Any] | None = None) -> Finding:
    """The pack's per-class Dice of one phase against the Dice recomputed from its predictions; `block` holds the
    claims (output.json's `output`, or its `test` block for a test phase)."""
    name = f"per_class.{phase}"
    ids = class_ids(pack)
    if ids is None:
        return skipped(name, "output.json carries no formal_classes (written before per-class Dice)")
    out, side = block if block is not None else pack.output.get("output") or {}, SIDES[phase]
    pairs = (pack.output.get("input") or {}).get("label_mappings", {}).get("default", [])
    off = []
    if sorted(ids.values()) != sorted(int(g) for _, g in pairs):
        off.append(f"formal_classes names ids {sorted(ids.values())}, the mapping {sorted(g for _, g in pairs)}")
    table = out.get(f"formal_{side}_per_case_per_class") or {}
    means = out.get(f"formal_{side}_per_class") or {}
    columns = csv_columns(pack, phase) or {}
    for case, scores in sorted(recomputed.items()):
        for key, glob in ids.items():
            mine = scores.get(glob, math.nan)
            for source, claim in ((f"formal_{side}_per_case_per_class", (table.get(case) or {}).get(key)),
                                  (f"{phase}/{CSV_NAME}", (columns.get(case) or {}).get(glob))):
                if _differs(mine, claim):
                    off.append(f"{source} gives {claim} for {case} {key}, recomputed {mine}")
    for key, glob in ids.items():
        if _differs(_class_mean(recomputed, glob), means.get(key)):
            off.append(f"formal_{side}_per_class gives {means.get(key)} for {key}, recomputed {_class_mean(recomputed, glob)}")
    numbers = {"classes": ids, "per_class": {k: _class_mean(recomputed, g) for k, g in ids.items()}}
    if off:
        return failed(name, "per-class claims differ from the predictions: " + "; ".join(off[:6]), **numbers)
    return passed(name, f"Dice of {len(ids)} classes over {len(recomputed)} cases matches output.json and the CSV",
                  **numbers)


def _stats(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """One class's paired figures by the verifier's own rules (gain_check.RULES)."""
    names = sorted(before.keys() & after.keys())
    gains = np.array([after[k] - before[k] for k in names])
    found: dict[str, Any] = {"n_cases": len(names), "mean_gain": float(gains.mean()) if names else None}
    if len(names) >= 2:
        found["ci_low"], found["ci_high"] = bootstrap(gains)
    return found


def check_class_gains(pack: Pack) -> Finding:
    """Each class's paired gain statistics and `class_regressions`, re-derived from the two phases' CSVs."""
    name = "class_gain_stats"
    out, ids = pack.output.get("output") or {}, class_ids(pack)
    claimed = out.get("formal_class_gain_stats")
    if ids is None or not claimed:
        return skipped(name, "no per-class paired statistics in this run")
    before, after = csv_columns(pack, "eval_pretrained"), csv_columns(pack, "eval_finetuned")
    if before is None or after is None:
        return failed(name, f"the pack lacks eval_pretrained/{CSV_NAME} or eval_finetuned/{CSV_NAME}")
    if len(before) > MAX_CASES or len(ids) > MAX_CLASSES:
        return failed(name, f"{len(before)} cases and {len(ids)} classes: beyond this verifier's bound")
    problems, below = [], []
    for key, glob in ids.items():
        pre = {c: s[glob] for c, s in before.items() if not math.isnan(s[glob])}
        post = {c: s[glob] for c, s in after.items() if not math.isnan(s[glob])}
        stated = claimed.get(key) or {}
        found = _stats(pre, post)
        problems += [f"{key}: {p}" for p in rule_problems(stated)]
        for field in ("n_cases", "mean_gain", "ci_low", "ci_high"):
            if _differs(found.get(field), stated.get(field)):
                problems.append(f"{key}: {field} {found.get(field)}, claimed {stated.get(field)}")
        if found.get("ci_high") is not None and found["ci_high"] < 0 and found["n_cases"] >= MIN_VERDICT_CASES:
            below.append(key)  # fewer cases get no verdict (too_few_cases), so no regression either
    listed = sorted(row["class"] for row in out.get("class_regressions") or [])
    if listed != sorted(below):
        problems.append(f"class_regressions lists {listed}; the intervals below 0 are {sorted(below)}")
    if problems:
        return failed(name, "; ".join(problems[:6]), regressions=below)
    return passed(name, f"{len(ids)} classes' statistics re-derived from the CSVs; regressions: {below or 'none'}",
                  regressions=below)
