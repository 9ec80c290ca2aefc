"""Anatomy plausibility: does each case's mapped label look like the class it is mapped to?

Compares the audit's per-case foreground volume (mL) and connected-component count of every mapped
local value against the plausible range of its VISTA3D class in data/anatomy_ranges.json. The
verdicts are warnings for output.json and the console, never refusals: a partial scan or an
accessory spleen is real data. Pure functions over the audit rows; reads no voxels.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from nvseg_bench import paths

TABLE = paths.DATA / "anatomy_ranges.json"


@lru_cache(maxsize=1)
def load_table(path: Path = TABLE) -> dict[int, dict[str, Any]]:
    """VISTA3D class id -> {name, volume_ml [lo, hi], components [lo, hi or None], basis}."""
    return {int(k): v for k, v in json.loads(path.read_text(encoding="utf-8"))["classes"].items()}


def _within(value: float, bounds: list[float | None]) -> bool:
    low, high = bounds
    return (low is None or value >= low) and (high is None or value <= high)


def _expected(bounds: list[int | None]) -> str:
    low, high = bounds
    return str(low) if low == high else f"{low} or more" if high is None else f"{low} to {high}"


def assess_class(rows: list[dict], local: int, class_id: int, name: str,
                 table: dict[int, dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """One mapped class: its plausible ranges, which cases fall outside its range, and the warnings."""
    key = str(local)
    volumes = [float(r["foreground_ml"].get(key, 0.0)) for r in rows]
    parts = [int(r["components"].get(key, 0)) for r in rows]
    entry: dict[str, Any] = {"local_value": local, "class_id": class_id, "class_name": name}
    ranges = table.get(class_id)
    if ranges is None:
        return entry | {"in_table": False}, []
    low, high = ranges["volume_ml"]
    off_volume = [(r["name"], v) for r, v in zip(rows, volumes) if not _within(v, ranges["volume_ml"])]
    off_parts = [(r["name"], n) for r, n in zip(rows, parts) if not _within(n, ranges["components"])]
    warnings = [f"{case}: label {local} ({name}) is {v:.4g} mL, outside the plausible {low:g}-{high:g} mL"
                for case, v in off_volume]
    warnings += [f"{case}: label {local} ({name}) has {n} connected components, expected "
                 f"{_expected(ranges['components'])}" for case, n in off_parts]
    return entry | {"in_table": True, "volume_ml_range": ranges["volume_ml"], "components_range": ranges["components"],
                    "basis": ranges["basis"], "cases_volume_out_of_range": [c for c, _ in off_volume],
                    "cases_components_mismatch": [c for c, _ in off_parts]}, warnings


def assess(rows: list[dict], pairs: list[list[int]], names: dict[int, str],
           table: dict[int, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Every mapped class; the all-cases verdicts are None when no mapped class has a range."""
    table = load_table() if table is None else table
    classes, warnings = {}, []
    for local, class_id in pairs:
        entry, found = assess_class(rows, local, class_id, names.get(class_id, table.get(class_id, {}).get("name", "?")),
                                    table)
        classes[str(local)] = entry
        warnings += found
    judged = [c for c in classes.values() if c["in_table"]]
    return {
        "anatomy": classes,
        "anatomy_volume_all_in_range": all(not c["cases_volume_out_of_range"] for c in judged) if judged else None,
        "anatomy_components_all_match": all(not c["cases_components_mismatch"] for c in judged) if judged else None,
        "anatomy_warnings": warnings,
    }
