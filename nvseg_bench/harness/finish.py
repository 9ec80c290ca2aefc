"""End of a session (controller only): write each judged run's `gates` into its output.json (never
into a pack judged as found: --nvseg-trusted-only audits and does not write) and
write the reports when --nvseg-report asks; save each run's record in the history store when
--nvseg-autosave asks. The terminal table is summary.py's.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from nvseg_bench.store.files import write_atomic
from nvseg_bench.output.write import both_schema_errors
from nvseg_bench.harness.baseline import attach_history, save_runs
from nvseg_bench.harness.gates import gate_title
from nvseg_bench.harness.ledger import Ledger, RunRecord
from nvseg_bench.harness.options import HarnessOptions
from nvseg_bench.harness.report import write_reports


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


def finish_session(ledger: Ledger, opts: HarnessOptions, session: str, root: Path | None = None) -> None:
    for record in ledger.runs.values():
        if record.source != "pack":  # a pack judged as found (--nvseg-trusted-only) is audited, never written
            write_gates(record, session)
    if opts.autosave:
        ledger.saved_paths = save_runs(ledger, opts, root)
    if opts.report is not None and (opts.autosave or opts.compare):
        attach_history(ledger, opts)
    if opts.report is not None:
        ledger.report_paths = write_reports(ledger, opts.report)
