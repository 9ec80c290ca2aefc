"""Evidence: the numbers a run can prove from its own files.

Formal Dice from each eval phase's metrics.csv, the training trace from the finetune log, a
tensor-by-tensor comparison of the finetuned and pretrained checkpoints (a re-saved identical state
hashes differently, so hashes cannot tell), and sha256 of every artifact. No torch import: the
checkpoints are read by torchzip (torch only for a legacy-format file).
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from nvseg_bench.model import torchzip
from nvseg_bench.model.layout import read_tensors
from nvseg_bench.phases.logparse import LogFacts
from nvseg_bench.model.weights import sha256_file

MANIFEST = "manifest.json"


def formal_dice(eval_dir: Path) -> float | None:
    """The `val_mean_dice` row of MetricsSaver's metrics.csv, or None when absent."""
    path = eval_dir / "metrics.csv"
    if not path.is_file():
        return None
    with path.open(newline="") as handle:
        for row in csv.reader(handle, delimiter=","):
            if len(row) >= 2 and row[0].strip() == "val_mean_dice":
                value = float(row[1])
                return None if math.isnan(value) else value
    return None


def per_case_dice(eval_dir: Path) -> dict[str, float]:
    path = eval_dir / "val_mean_dice_raw.csv"
    if not path.is_file():
        return {}
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {Path(r["filename"]).name: float(r["mean"]) for r in rows if r.get("mean") not in (None, "", "nan")}


def training_trace(facts: LogFacts) -> dict[str, Any]:
    epochs = sorted(facts.val_dice)
    trace = [facts.val_dice[e] for e in epochs]
    losses = facts.train_loss
    finite = [x for x in trace if not math.isnan(x)]
    best = max(finite) if finite else None
    return {
        "val_dice_epochs": epochs,
        "val_dice_per_epoch": trace,
        "training_start_val_dice": trace[0] if trace else None,
        "training_best_val_dice": best,
        "training_best_epoch_index": trace.index(best) if best is not None else None,
        "train_loss_first": losses[0] if losses else None,
        "train_loss_last": losses[-1] if losses else None,
        "train_loss_finite": bool(losses) and all(math.isfinite(x) for x in losses),
        "train_iterations": len(losses),
    }


def compare_checkpoints(finetuned: Path, pretrained: Path) -> dict[str, Any]:
    """Tensor-by-tensor comparison; `identical` means same keys and every tensor equal.

    `total_abs_diff` sums |finetuned - pretrained| over every changed floating-point tensor. Both
    files are read through torchzip without torch: each tensor is memory-mapped while it is compared
    and unmapped after, because pages read through a mapping stay resident until it is gone. Two
    full-size vista3d132 checkpoints (832 MiB each) then cost about two tensors of extra memory.
    """
    new, old = read_tensors(finetuned), read_tensors(pretrained)
    shared = sorted(set(new) & set(old))
    only_new, only_old = sorted(set(new) - set(old)), sorted(set(old) - set(new))
    changed, max_diff, total_diff, shape_mismatch = [], 0.0, 0.0, []
    for key in shared:
        if new[key].shape != old[key].shape:
            shape_mismatch.append(key)
            continue
        equal, tensor_max, tensor_total = torchzip.compare(new[key], old[key])
        if not equal:
            changed.append(key)
            max_diff, total_diff = max(max_diff, tensor_max), total_diff + tensor_total
    return {
        "finetuned": str(finetuned),
        "pretrained": str(pretrained),
        "n_tensors": len(shared),
        "n_changed": len(changed),
        "n_equal": len(shared) - len(changed) - len(shape_mismatch),
        "max_abs_diff": max_diff,
        "total_abs_diff": total_diff,
        "same_keys": not only_new and not only_old,
        "shape_mismatch": shape_mismatch[:20],
        "keys_only_in_finetuned": only_new[:20],
        "keys_only_in_pretrained": only_old[:20],
        "changed_examples": changed[:10],
        "identical": not changed and not shape_mismatch and not only_new and not only_old,
    }


def dataset_inputs(entries: list[dict], dataset_dir: Path, known: dict[str, str] | None = None) -> dict[str, Any]:
    """sha256 and size of every image and label the run used, keyed by path relative to the dataset.

    `known` holds digests already taken this run (by absolute path), so those files are not read again."""
    files, known = {}, known or {}
    for entry in entries:
        for key in ("image", "label"):
            path = dataset_dir / entry[key]
            digest = known.get(str(path)) or sha256_file(path)
            files[entry[key]] = {"sha256": digest, "bytes": path.stat().st_size}
    return {"dataset_dir": str(dataset_dir), "files": files}


def write_manifest(out_dir: Path, inputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """sha256 and size of every file under out_dir (but output.json and the manifest), plus inputs."""
    files = {}
    for path in sorted(out_dir.rglob("*")):
        rel = path.relative_to(out_dir).as_posix()
        if path.is_file() and rel not in ("output.json", MANIFEST):
            files[rel] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    manifest = {"root": str(out_dir), "files": files, "inputs": inputs}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
