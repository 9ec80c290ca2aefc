"""Formal Dice per mapped class: what each class gained, so one class getting worse cannot hide behind another.

The bundle's MetricsSaver writes `val_mean_dice_raw.csv` with one column per class, `class0` ..
`classK-1`, in the order of the evaluation config's `label_set`: the global ids of
`label_mappings#default` in the order given (this project's bundle/ and NVIDIA's evaluate.json both
build it so). An empty cell or `nan` means the case's label lacks that class (MONAI's DiceMetric
ignores such a pair), so it is None here and does not count. Per class, the paired statistics of
gain_stats.py; a class whose interval lies below 0 is a regression with its own warning line.
Pure functions; no torch, no monai.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nvseg_bench.evidence import gain_stats

RAW_CSV = "val_mean_dice_raw.csv"

CaseClassDice = dict[str, dict[str, float | None]]  # case file name -> class name -> Dice (None: class absent)


@dataclass(frozen=True)
class MappedClass:
    name: str  # the key in every per-class field: the class name, with its id where two share one
    local: int
    global_id: int


def mapped_classes(pairs: list[list[int]], names: dict[int, str]) -> tuple[MappedClass, ...]:
    """The mapped classes in the evaluation's column order, each with a key unique in the run."""
    plain = [names.get(glob) or f"class {glob}" for _, glob in pairs]
    keys = [name if plain.count(name) == 1 else f"{name} ({glob})" for name, (_, glob) in zip(plain, pairs)]
    return tuple(MappedClass(key, local, glob) for key, (local, glob) in zip(keys, pairs))


def _cell(text: str | None) -> float | None:
    if text is None or not text.strip():
        return None
    value = float(text)
    return None if math.isnan(value) else value


def read_case_class_dice(eval_dir: Path, classes: tuple[MappedClass, ...]) -> CaseClassDice:
    """Dice per case per class from the phase's raw metrics CSV; {} when the phase wrote none."""
    path = eval_dir / RAW_CSV
    if not path.is_file():
        return {}
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {Path(row["filename"]).name: {c.name: _cell(row.get(f"class{i}")) for i, c in enumerate(classes)}
            for row in rows}


def class_means(table: CaseClassDice, classes: tuple[MappedClass, ...]) -> dict[str, float | None]:
    """Mean Dice per class over the cases whose label holds it (None when none does)."""
    means = {}
    for c in classes:
        values = [row[c.name] for row in table.values() if row.get(c.name) is not None]
        means[c.name] = sum(values) / len(values) if values else None
    return means


def one_class(table: CaseClassDice, name: str) -> dict[str, float]:
    return {case: row[name] for case, row in table.items() if row.get(name) is not None}


def class_gain_stats(before: CaseClassDice, after: CaseClassDice,
                     classes: tuple[MappedClass, ...]) -> dict[str, dict[str, Any] | None]:
    """gain_stats per class over the cases that hold it; None for a class no paired case holds."""
    stats = {}
    for c in classes:
        pre, post = one_class(before, c.name), one_class(after, c.name)
        stats[c.name] = gain_stats.gain_stats(pre, post) if pre and post else None
    return stats


def regressions(stats: dict[str, dict[str, Any] | None], classes: tuple[MappedClass, ...]) -> list[dict[str, Any]]:
    """Every class whose paired interval lies below 0."""
    found = []
    for c in classes:
        s = stats.get(c.name)
        if s and s["confidence"] == "clear_loss":
            found.append({"class": c.name, "local": c.local, "global": c.global_id, "mean_gain": s["mean_gain"],
                          "ci_low": s["ci_low"], "ci_high": s["ci_high"], "n_cases": s["n_cases"]})
    return found


def regression_warning(row: dict[str, Any]) -> str:
    return (f"class {row['class']} (label {row['local']}, VISTA3D id {row['global']}) got worse: Dice "
            f"{row['mean_gain']:+.4f}, 95% interval {row['ci_low']:+.4f}..{row['ci_high']:+.4f} over "
            f"{row['n_cases']} cases lies below 0, whatever the mean over classes says")


def output_fields(before: CaseClassDice, after: CaseClassDice, classes: tuple[MappedClass, ...]) -> dict[str, Any]:
    """output.formal_classes and the per-class fields; the statistics need both phases' tables."""
    stats = class_gain_stats(before, after, classes) if before and after else None
    found = regressions(stats, classes) if stats else []
    return {
        "formal_classes": [{"name": c.name, "local": c.local, "global": c.global_id} for c in classes],
        "formal_pretrained_per_class": class_means(before, classes) if before else {},
        "formal_finetuned_per_class": class_means(after, classes) if after else {},
        "formal_pretrained_per_case_per_class": before,
        "formal_finetuned_per_case_per_class": after,
        "formal_class_gain_stats": stats,
        "class_regressions": found,
        "class_warnings": [regression_warning(row) for row in found],
    }
