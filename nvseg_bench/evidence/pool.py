"""Pooling over a campaign's member runs: each case's figures from the member that held it out, and
what a single run reports computed over all of them (nnU-Net keeps its cross-validation accumulation in its
evaluation package too).

For a CV, every fold's share of the shared pretrained evaluation and every fold's eval_finetuned are
merged into one eval folder of OUT (`merge_eval`: predictions linked, per-case CSV rows cut to the fold's
cases, metrics.csv recomputed from those rows), so OUT is a pack the verifier re-derives; the per-class
fields and the forgetting check are then scored over OUT's folders as one run's are. For a sweep, the
spread of a figure over the seeds (`distribution`). Never runs a phase and never writes output.json.
"""
from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path
from typing import Any

from nvseg_bench.evidence import boundary, collect, forgetting, per_class
from nvseg_bench.inputs.dataset import case_name
from nvseg_bench.paths import fold_dir
from nvseg_bench.phase_names import EVAL_FINETUNED, EVAL_PRETRAINED, FORGETTING
from nvseg_bench.prepared import FINETUNED_NAME, Prepared
from nvseg_bench.store.files import link_file

RAW_CSV, METRICS_CSV = "val_mean_dice_raw.csv", "metrics.csv"


def distribution(values: list[float]) -> dict[str, Any]:
    """mean, min, max and sample standard deviation (null below 2 values)."""
    if not values:
        return {"n": 0, "mean": None, "min": None, "max": None, "std": None}
    return {"n": len(values), "mean": statistics.fmean(values), "min": min(values), "max": max(values),
            "std": statistics.stdev(values) if len(values) >= 2 else None}


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def merge_eval(parts: list[tuple[Path, set[str]]], target: Path) -> None:
    """An eval folder holding the named cases of each part (image file names, e.g. spleen_03.nii.gz): their
    predictions linked, their per-case CSV rows, and metrics.csv's val_mean_dice as the mean of those rows,
    which is what the verifier recomputes from the predictions."""
    target.mkdir(parents=True, exist_ok=True)
    header: list[str] = []
    kept: list[dict[str, str]] = []
    for src, names in parts:
        for name in sorted(names):
            prediction = collect.prediction_file(src, name)  # either bundle's layout, kept as it is
            if prediction is not None and not (target / prediction.relative_to(src)).exists():
                (target / prediction.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
                link_file(prediction, target / prediction.relative_to(src))
        if (src / RAW_CSV).is_file():
            fields, rows = _rows(src / RAW_CSV)
            header = header or fields
            kept += [row for row in rows if Path(row["filename"]).name in names]
    with (target / RAW_CSV).open("w", newline="") as handle:
        out = csv.DictWriter(handle, fieldnames=header)
        out.writeheader()
        out.writerows(kept)
    means = [float(r["mean"]) for r in kept if r.get("mean") not in (None, "") and not math.isnan(float(r["mean"]))]
    if means:
        (target / METRICS_CSV).write_text(f"val_mean_dice,{sum(means) / len(means)!r}\n")


def pooled_cases(docs: dict[int, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """case -> its fold and formal Dice before and after, from the fold that held it out."""
    cases: dict[str, dict[str, Any]] = {}
    for fold, doc in docs.items():
        out = doc.get("output", {})
        before, after = out.get("formal_pretrained_per_case") or {}, out.get("formal_finetuned_per_case") or {}
        for name in sorted(before.keys() | after.keys()):
            cases[name] = {"fold": fold, "pretrained": before.get(name), "finetuned": after.get(name)}
    return cases


def pooled_classes(p: Prepared, out_dir: Path) -> dict[str, Any]:
    """The per-class fields over every case, from OUT's two eval folders (each case from the fold that held
    it out), as a single run reports them over its own validation cases."""
    classes = per_class.mapped_classes(p.mapping.pairs, p.mapping.names)
    before = per_class.read_case_class_dice(out_dir / EVAL_PRETRAINED, classes)
    after = per_class.read_case_class_dice(out_dir / EVAL_FINETUNED, classes)
    return per_class.output_fields(before, after, classes)


def pooled_boundary(p: Prepared, out_dir: Path) -> dict[str, Any] | None:
    """NSD and HD95 over every case, from OUT's merged eval folders, as a single run reports them."""
    labels = boundary.label_index(p.dataset_dir, p.entries, p.datalist_path)
    classes = per_class.mapped_classes(p.mapping.pairs, p.mapping.names)
    return boundary.boundary_block(out_dir, labels, classes, p.request.nsd_tolerance_mm)


def pooled_forgetting(p: Prepared, cv: dict[str, Any], out_dir: Path) -> dict[str, Any] | None:
    """The forgetting check over every case: each fold's two label maps of its own cases linked into
    OUT/forget_*, then scored as one run's; None when the check did not run in every fold."""
    plan = p.forgetting
    if plan is None or not plan.enabled or any(r["status"] != "passed" for r in cv["runs"]):
        return None
    images = []
    for row in cv["runs"]:
        for name in row["cases"]:
            for phase in FORGETTING:
                found = fold_dir(out_dir, row["fold"]) / phase / f"{case_name(name)}_seg.nii.gz"
                if not found.is_file():
                    return None
                (out_dir / phase).mkdir(exist_ok=True)
                link_file(found, out_dir / phase / found.name)
            images.append(Path(name))
    each = str(out_dir / "fold-K" / "checkpoints" / FINETUNED_NAME)
    return forgetting.forgetting_block(plan, out_dir, tuple(images), {"pretrained": p.weights.path,
                                                                    "finetuned": f"{each} (each case's own fold K)"})


def mean(values: Any) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None
