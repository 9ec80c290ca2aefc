"""The history as text: the table of saved runs `nvseg-finetune history` prints, and a comparison's lines."""
from __future__ import annotations

from typing import Any

from nvseg_bench.history.compare import describe, describe_differences

HEADER = ["run id", "saved (UTC)", "commit", "formal Dice pre -> post", "gain", "wall s", "verdict"]


def _number(value: Any, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def history_row(record: dict[str, Any]) -> list[str]:
    figures = record.get("figures") or {}
    dice = f"{_number(figures.get('formal_pretrained_val_dice'))} -> {_number(figures.get('formal_finetuned_val_dice'))}"
    return [record["run_id"], str(record.get("saved_at", "-")).replace("T", " ").rstrip("Z"),
            (record.get("git_commit") or "-")[:10], dice, _number(figures.get("formal_improvement_over_pretrained"), "+.4f"),
            _number(figures.get("wall_seconds"), ".0f"), str(record.get("verdict") or "-")]


def history_table(records: list[dict[str, Any]]) -> list[str]:
    """One aligned row per saved run, oldest first."""
    rows = [HEADER] + [history_row(r) for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def comparison_lines(comparison: dict[str, Any], a: str, b: str) -> list[str]:
    """`A -> B: formal Dice ...` then what differs."""
    return [f"{a} -> {b}", f"  {describe(comparison)}", f"  {describe_differences(comparison, most=20)}"]
