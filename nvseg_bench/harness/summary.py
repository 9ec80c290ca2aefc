"""The terminal table at the end of a session: one row per run, then what failed, each gate
feature's own lines (`Feature.terminal_lines`, in table order) and where the evidence is. Also the
one number formatter the report uses.
"""
from __future__ import annotations

from typing import Any

from nvseg_bench.harness.gates import FEATURES
from nvseg_bench.harness.ledger import Ledger, RunRecord
from nvseg_bench.harness.options import HarnessOptions


def number(value: Any, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def summary_row(record: RunRecord, trusted: bool = False) -> list[str]:
    out = (record.output_json() or {}).get("output", {})
    dice = f"{number(out.get('formal_pretrained_val_dice'))} -> {number(out.get('formal_finetuned_val_dice'))}"
    keep = "finetuned" if out.get("recommended_is_finetuned") else "pretrained"
    judged = [o for o in record.gates.values() if o.outcome != "skipped"]
    gates = f"{len(judged) - len(record.failed)}/{len(judged)} passed"
    row = [record.name, record.source, dice, number(out.get("formal_improvement_over_pretrained"), "+.4f"),
           keep, gates, record.verdict]
    return row + ([record.trust.verdict if record.trust else "-"] if trusted else [])


def summary_lines(ledger: Ledger, opts: HarnessOptions) -> list[str]:
    trusted = any(r.trust for r in ledger.runs.values())
    header = ["run", "source", "formal Dice pre -> post", "gain", "keep", "gates", "verdict"] + \
        (["verifier"] if trusted else [])
    judged = [r for r in ledger.runs.values() if r.out is not None]
    rows = [summary_row(r, trusted) for r in judged]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]] \
        if rows else []
    skipped = [f"{r.name}: skipped, {r.skip_reason or 'no gate ran'}" for r in ledger.runs.values() if r.out is None]
    for record in judged:
        for gate in record.failed:
            lines.append(f"  {record.name}/{gate} FAILED: {record.gates[gate].message}")
        for feature in FEATURES:
            lines += feature.terminal_lines(record)
        if record.out:
            lines.append(f"  {record.name} evidence: {record.out}")
    lines += skipped
    lines += [f"saved: {path}" for path in ledger.saved_paths]
    for path in ledger.report_paths:
        lines.append(f"report: {path}")
    return lines
