"""The saved-run record: what a finished run leaves in the history, built once from its output.json
(and manifest.json) and never from anything the run did not write down.

Fields: run id, time, the git commit of the project under test (None outside git), machine and
versions, recipe (the plan's values), bundle provenance (`input.bundle`), dataset digest, headline
figures, per-case formal Dice before and after, gates and verdict.
"""
from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from nvseg_bench.evidence.gain_stats import bootstrap_interval

FORMAT = "nvseg-history/1"
VERSIONS = ("torch", "monai", "numpy", "nvseg-bench")
MACHINE = ("platform", "cpu_count", "gpu_name", "gpu_count", "cuda_available", "python")
PLAN_NOT_RECIPE = ("rationale", "expected_peak_gpu_mb")  # explanations and estimates, not values a run used
FIGURES = ("formal_pretrained_val_dice", "formal_finetuned_val_dice", "formal_improvement_over_pretrained",
           "training_start_val_dice", "training_best_val_dice", "gain_confidence", "recommended_is_finetuned")


def data_digest(manifest: dict[str, Any]) -> str | None:
    """sha256 over the dataset files' names and sha256 as the run's manifest recorded them (None without any)."""
    files = ((manifest.get("inputs") or {}).get("dataset") or {}).get("files") or {}
    if not files:
        return None
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{files[name]['sha256']}\n".encode())
    return digest.hexdigest()


def git_commit(root: Path | None) -> str | None:
    """`git rev-parse HEAD` in root, or None (no root, not a repository, no git): never an error."""
    if root is None:
        return None
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def run_name(doc: dict[str, Any]) -> str:
    """The harness's name for the run a document describes: smoke, sanity, or user."""
    given = doc.get("input") or {}
    return "smoke" if given.get("smoke") else "sanity" if given.get("sanity") else "user"


def new_run_id(name: str, when: float) -> str:
    """Sortable by time, unique across processes: 20261206T011500Z-smoke-3fa2c1d0."""
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(when))}-{name}-{uuid.uuid4().hex[:8]}"


def dice_interval(cases: dict[str, float]) -> list[float] | None:
    """Seeded 95% bootstrap interval of the mean per-case Dice (None under 2 cases)."""
    values = np.array([v for v in cases.values() if v is not None], dtype=float)
    return list(bootstrap_interval(values)) if len(values) >= 2 else None


def figures(doc: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers: formal Dice before and after, gain and its interval, wall time."""
    out = doc.get("output") or {}
    stats = out.get("formal_gain_stats") or {}
    return {name: out.get(name) for name in FIGURES} | {
        "gain_ci": [stats["ci_low"], stats["ci_high"]] if stats.get("ci_low") is not None else None,
        "formal_finetuned_ci": dice_interval(out.get("formal_finetuned_per_case") or {}),
        "wall_seconds": (doc.get("runtime") or {}).get("wall_seconds")}


def recipe(doc: dict[str, Any]) -> dict[str, Any]:
    """The values the run trained with: the plan less its reasons, plus seed and label mapping."""
    plan = {k: v for k, v in (doc.get("plan") or {}).items() if k not in PLAN_NOT_RECIPE}
    given = doc.get("input") or {}
    return plan | {"seed": given.get("seed"), "label_mappings": given.get("label_mappings")}


def build_record(doc: dict[str, Any], manifest: dict[str, Any] | None, *, name: str | None = None,
                 verdict: str | None = None, root: Path | None = None, out: Path | None = None,
                 when: float | None = None) -> dict[str, Any]:
    """The saved-run record of one finished run (gates from the doc's `gates` section when it has one)."""
    when = time.time() if when is None else when
    name = name or run_name(doc)
    env, given, out_block = doc.get("environment") or {}, doc.get("input") or {}, doc.get("output") or {}
    gates = {g: item.get("outcome") for g, item in ((doc.get("gates") or {}).get("items") or {}).items()}
    return {
        "format": FORMAT, "run_id": new_run_id(name, when), "name": name,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when)), "time": when,
        "git_commit": git_commit(root), "host": platform.node(),
        "machine": {k: env.get(k) for k in MACHINE},
        "versions": {k: (env.get("packages") or {}).get(k) for k in VERSIONS},
        "recipe": recipe(doc), "bundle": given.get("bundle"),
        "dataset": {"dir": given.get("dataset_dir"), "digest": data_digest(manifest or {}),
                    "n_val_cases": given.get("n_val_cases")},
        "pretrained_sha256": (given.get("pretrained_weights") or {}).get("sha256"),
        "figures": figures(doc), "headline": doc.get("headline"),
        "per_case": {"pretrained": out_block.get("formal_pretrained_per_case") or {},
                     "finetuned": out_block.get("formal_finetuned_per_case") or {}},
        "gates": gates, "status": doc.get("status"), "verdict": verdict or doc.get("status"),
        "out": str(out) if out else None,
    }


def record_from_run_dir(run_dir: Path, **given: Any) -> dict[str, Any]:
    """A record from a run folder (output.json, and manifest.json when there is one); OSError/ValueError if unreadable."""
    doc = json.loads((run_dir / "output.json").read_text())
    manifest_path = run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else None
    for name, part in (("output.json", doc), ("manifest.json", manifest)):
        if part is not None and not (isinstance(part, dict) and all(isinstance(v, dict) for k, v in part.items()
                                                                    if k in ("input", "output", "plan", "inputs"))):
            raise ValueError(f"{run_dir / name}: JSON, but not the {name} of an nvseg-finetune run")
    return build_record(doc, manifest, out=run_dir.resolve(), **given)
