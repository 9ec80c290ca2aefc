"""End of a session (controller only): write each judged run's `gates` into its output.json (never
into a pack judged as found: --nvseg-trusted-only audits and does not write), then each feature's
own step at the end (`Feature.finish`, in table order: the baseline feature saves runs for
--nvseg-autosave, the report feature writes --nvseg-report last). The terminal table is summary.py's.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from nvseg_bench.store.files import write_atomic
from nvseg_bench.output.write import both_schema_errors
from nvseg_bench.harness.feature import Feature
from nvseg_bench.harness.gates import gate_title
from nvseg_bench.harness.ledger import Ledger, RunRecord
from nvseg_bench.harness.options import HarnessOptions


def gates_section(record: RunRecord, session: str) -> dict[str, Any]:
    items = {gate: {"title": gate_title(gate), "outcome": o.outcome,
                    "message": o.message, "seconds": o.seconds} for gate, o in record.gates.items()}
    count = {kind: sum(1 for o in record.gates.values() if o.outcome == kind) for kind in ("passed", "skipped")}
    return {"session": session, "judged_at": time.strftime("%Y-%m-%d %H:%M:%S"), "passed": count["passed"],
            "failed": len(record.failed), "skipped": count["skipped"], "items": items}


def write_gates(record: RunRecord, session: str) -> None:
    """Add `gates` to the run's output.json (atomically); keep the doc and any schema problems on the record."""
    doc = record.output_json()
    if doc is None:
        return
    doc["gates"] = gates_section(record, session)
    record.schema_problems = both_schema_errors(doc)
    path = Path(record.out) / "output.json"
    write_atomic(path, json.dumps(doc, indent=2) + "\n")


def finish_session(ledger: Ledger, opts: HarnessOptions, session: str, features: tuple[Feature, ...],
                   root: Path | None = None) -> None:
    for record in ledger.runs.values():
        if record.source != "pack":  # a pack judged as found (--nvseg-trusted-only) is audited, never written
            write_gates(record, session)
    for feature in features:
        if feature.finish is not None:
            feature.finish(ledger, opts, root)
