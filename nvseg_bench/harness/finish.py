"""End of a session (controller only): write each judged run's `gates` into its output.json,
write the reports when --nvseg-report asks, and build the terminal table.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ..output import both_schema_errors
from .gates import gate_title
from .ledger import Ledger, RunRecord
from .options import HarnessOptions


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
    partial = path.with_name(f".output.json.{os.getpid()}")
    partial.write_text(json.dumps(doc, indent=2) + "\n")
    partial.replace(path)


def finish_session(ledger: Ledger, opts: HarnessOptions, session: str) -> None:
    for record in ledger.runs.values():
        write_gates(record, session)
    if opts.report is not None:
        from .report import write_reports

        ledger.report_paths = write_reports(ledger, opts.report)


def number(value: Any, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def summary_row(record: RunRecord) -> list[str]:
    out = (record.output_json() or {}).get("output", {})
    dice = f"{number(out.get('formal_pretrained_val_dice'))} -> {number(out.get('formal_finetuned_val_dice'))}"
    keep = "finetuned" if out.get("recommended_is_finetuned") else "pretrained"
    judged = [o for o in record.gates.values() if o.outcome != "skipped"]
    gates = f"{len(judged) - len(record.failed)}/{len(judged)} passed"
    return [record.name, record.source, dice, number(out.get("formal_improvement_over_pretrained"), "+.4f"),
            keep, gates, record.verdict]


def summary_lines(ledger: Ledger, opts: HarnessOptions) -> list[str]:
    header = ["run", "source", "formal Dice pre -> post", "gain", "keep", "gates", "verdict"]
    judged = [r for r in ledger.runs.values() if r.out is not None]
    rows = [summary_row(r) for r in judged]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]] \
        if rows else []
    skipped = [f"{r.name}: skipped, {r.skip_reason or 'no gate ran'}" for r in ledger.runs.values() if r.out is None]
    for record in judged:
        for gate in record.failed:
            lines.append(f"  {record.name}/{gate} FAILED: {record.gates[gate].message}")
        for problem in record.schema_problems[:3]:
            lines.append(f"  {record.name}: output.json with gates breaks the schema: {problem}")
        if record.out:
            lines.append(f"  {record.name} evidence: {record.out}")
    lines += skipped
    for path in ledger.report_paths:
        lines.append(f"report: {path}")
    return lines
