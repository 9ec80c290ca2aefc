"""Evidence: the numbers a run can prove from its own files.

Formal Dice from each eval phase's metrics.csv, the training trace from the finetune log, a
tensor-by-tensor comparison of the finetuned and pretrained checkpoints (a re-saved identical state
hashes differently, so hashes cannot tell), and sha256 of every artifact. No torch import: the
checkpoints are compared by model/checkpoints.py.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nvseg_bench.phase_names import EVAL_FINETUNED, EVAL_PRETRAINED, EVAL_SPLITS, FINETUNE, FORGETTING
from nvseg_bench.evidence import boundary, forgetting, per_class
from nvseg_bench.evidence.boundary import prediction_file  # noqa: F401 (pool.py and callers read it here)
from nvseg_bench.inputs.dataset import validation_images
from nvseg_bench.model.checkpoints import compare_checkpoints
from nvseg_bench.phases.logparse import LogFacts
from nvseg_bench.phases.runner import PhaseResult
from nvseg_bench.prepared import FINETUNED_NAME, Prepared
from nvseg_bench.store.files import sha256_file, write_atomic

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
    write_atomic(out_dir / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return manifest


@dataclass(frozen=True)
class Evidence:
    """The numbers a finished (or stopped) run proves from its own files, gathered once after the phases."""

    finetuned_ckpt: Path
    finetuned_exists: bool  # written by this run (a file an earlier run left in OUT does not count)
    comparison: dict[str, Any] | None  # model/checkpoints.compare_checkpoints, when the file exists
    formal_enabled: bool
    formal_pre: float | None  # only from an evaluation phase that ran and succeeded in this run
    formal_post: float | None
    per_case_pre: dict[str, float]
    per_case_post: dict[str, float]
    classes: tuple[per_class.MappedClass, ...]  # the mapped classes, in the evaluation's column order
    case_class_pre: per_class.CaseClassDice  # Dice per case per class, from the same phases as per_case_*
    case_class_post: per_class.CaseClassDice
    trace: dict[str, Any]  # training_trace of the finetune's log
    forgetting: dict[str, Any] | None  # evidence/forgetting.py, when both of its phases ran and succeeded
    oom: bool
    started: float  # when this run (or the stopped run it resumes) started, epoch seconds
    boundary: dict[str, Any] | None = None  # evidence/boundary.py: NSD and HD95 of each split both phases scored

    @property
    def tensors_changed(self) -> bool:
        return self.comparison is not None and self.comparison["identical"] is False


def succeeded(results: dict[str, PhaseResult], name: str) -> bool:
    return name in results and results[name].return_code == 0 and results[name].failure is None


def started_at(p: Prepared, started_epoch: float) -> float:
    """When this run started; for a resumed run, when the run it continues started (0: not recorded, as in
    runs written before started_at was: then any file in OUT counts)."""
    return p.resume_point.since if p.resume_point is not None else started_epoch


def forgetting_evidence(p: Prepared, results: dict[str, PhaseResult], finetuned: Path) -> dict[str, Any] | None:
    if p.forgetting is None or not all(succeeded(results, name) for name in FORGETTING):
        return None
    return forgetting.forgetting_block(p.forgetting, p.out_dir, validation_images(p.entries, p.dataset_dir),
                                       {"pretrained": p.weights.path, "finetuned": str(finetuned)})


def boundary_evidence(p: Prepared, results: dict[str, PhaseResult],
                      classes: tuple[per_class.MappedClass, ...]) -> dict[str, Any] | None:
    splits = [s for s, phases in EVAL_SPLITS.items() if all(succeeded(results, name) for name in phases)]
    if not splits:
        return None
    labels = boundary.label_index(p.dataset_dir, p.entries, p.datalist_path)
    return boundary.boundary_block(p.out_dir, labels, classes, p.request.nsd_tolerance_mm, splits)


def gather(p: Prepared, results: dict[str, PhaseResult], started_epoch: float) -> Evidence:
    since = started_at(p, started_epoch)
    finetuned = p.staged.ckpt_dir / FINETUNED_NAME
    exists = finetuned.is_file() and finetuned.stat().st_mtime >= since
    pre = formal_dice(p.out_dir / EVAL_PRETRAINED) if succeeded(results, EVAL_PRETRAINED) else None
    post = formal_dice(p.out_dir / EVAL_FINETUNED) if succeeded(results, EVAL_FINETUNED) else None
    classes = per_class.mapped_classes(p.mapping.pairs, p.mapping.names)
    return Evidence(
        finetuned_ckpt=finetuned, finetuned_exists=exists,
        comparison=compare_checkpoints(finetuned, Path(p.weights.path)) if exists else None,
        formal_enabled=not p.request.skip_formal_eval, formal_pre=pre, formal_post=post,
        per_case_pre=per_case_dice(p.out_dir / EVAL_PRETRAINED) if pre is not None else {},
        per_case_post=per_case_dice(p.out_dir / EVAL_FINETUNED) if post is not None else {},
        classes=classes,
        case_class_pre=per_class.read_case_class_dice(p.out_dir / EVAL_PRETRAINED, classes) if pre is not None else {},
        case_class_post=per_class.read_case_class_dice(p.out_dir / EVAL_FINETUNED, classes) if post is not None else {},
        trace=training_trace(results[FINETUNE].facts if FINETUNE in results else LogFacts()),
        forgetting=forgetting_evidence(p, results, finetuned),
        oom=any(r.facts.oom or r.failure == "oom" for r in results.values()), started=since,
        boundary=boundary_evidence(p, results, classes))
