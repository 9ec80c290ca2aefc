"""The terminal table at the end of a session: one row per run, with each gate feature's column
(`Feature.column`), then what failed, each feature's lines (`Feature.terminal_lines`, in table order)
and where the evidence is.
"""
from __future__ import annotations

from nvseg_bench.harness.feature import Feature, number
from nvseg_bench.harness.gates import FEATURES
from nvseg_bench.harness.ledger import Ledger, RunRecord
from nvseg_bench.harness.options import HarnessOptions


def summary_row(record: RunRecord, columns: tuple[Feature, ...] = ()) -> list[str]:
    out = (record.output_json() or {}).get("output", {})
    dice = f"{number(out.get('formal_pretrained_val_dice'))} -> {number(out.get('formal_finetuned_val_dice'))}"
    keep = "finetuned" if out.get("recommended_is_finetuned") else "pretrained"
    judged = [o for o in record.gates.values() if o.outcome != "skipped"]
    gates = f"{len(judged) - len(record.failed)}/{len(judged)} passed"
    row = [record.name, record.source, dice, number(out.get("formal_improvement_over_pretrained"), "+.4f"),
           keep, gates, record.verdict]
    return row + [feature.column[1](record) or "-" for feature in columns if feature.column]


def summary_lines(ledger: Ledger, opts: HarnessOptions) -> list[str]:
    # a feature's column shows when any run has a value in it (the verifier's verdict in trusted mode)
    columns = tuple(f for f in FEATURES if f.column and any(f.column[1](r) for r in ledger.runs.values()))
    header = ["run", "source", "formal Dice pre -> post", "gain", "keep", "gates", "verdict"] + \
        [f.column[0] for f in columns if f.column]
    judged = [r for r in ledger.runs.values() if r.out is not None]
    rows = [summary_row(r, columns) for r in judged]
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
