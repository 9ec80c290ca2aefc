"""Anatomy plausibility re-derived: the run's per-case foreground volumes and component counts of
each mapped label, judged again against the project's table of plausible ranges, must give the
verdicts output.json records. Own code; reads the table as data, imports nothing of the producer's."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .findings import Finding, failed, passed, skipped
from .pack import Pack

TABLE = Path(__file__).with_name("anatomy_ranges.json")  # its own copy; a test holds it equal to nvseg_bench/data's


def _fits(value: float, low: float | None, high: float | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def rederive(rows: list[dict], pairs: list[list[int]], table: dict[str, Any]) -> dict[str, Any]:
    """Cases outside each mapped class's ranges, and the two all-cases verdicts (None: no class judged)."""
    outside: dict[str, dict[str, list[str]]] = {}
    for local, class_id in pairs:
        ranges = table.get(str(class_id))
        if ranges is None:
            continue
        key = str(local)
        outside[key] = {
            "volume": [r["name"] for r in rows if not _fits(float(r["foreground_ml"].get(key, 0.0)), *ranges["volume_ml"])],
            "components": [r["name"] for r in rows if not _fits(int(r["components"].get(key, 0)), *ranges["components"])],
        }
    if not outside:
        return {"volume_all_in_range": None, "components_all_match": None, "outside": outside}
    return {"volume_all_in_range": not any(o["volume"] for o in outside.values()),
            "components_all_match": not any(o["components"] for o in outside.values()), "outside": outside}


def check_anatomy(pack: Pack, table_path: Path = TABLE) -> Finding:
    inp = pack.output.get("input") or {}
    audit = inp.get("dataset_audit") or {}
    rows, pairs = audit.get("samples"), (inp.get("label_mappings") or {}).get("default")
    if not rows or not pairs or "anatomy_volume_all_in_range" not in audit:
        return skipped("anatomy", "output.json records no per-case audit rows or anatomy verdicts")
    if not table_path.is_file():
        return skipped("anatomy", f"the table of plausible ranges {table_path} is not here")
    pack.note(table_path)
    found = rederive(rows, pairs, json.loads(table_path.read_text())["classes"])
    recorded = {"volume_all_in_range": audit.get("anatomy_volume_all_in_range"),
                "components_all_match": audit.get("anatomy_components_all_match")}
    wrong = [f"anatomy_{k} is {recorded[k]!r}, the table gives {found[k]!r}" for k in recorded if recorded[k] != found[k]]
    numbers = {"rederived": found, "recorded": recorded}
    if wrong:
        return failed("anatomy", "; ".join(wrong), **numbers)
    flagged = sum(len(v) for o in found["outside"].values() for v in o.values())
    return passed("anatomy", f"volume and component verdicts re-derived from {len(rows)} cases agree "
                             f"({flagged} out-of-range findings, warnings only)", **numbers)
