"""The top-level OUT/output.json of a cross-validation, built from the pooled value (cv.json's content,
evidence/pool.py's figures) and one member's document.

The pooled fields come from the pooled value only: formal Dice and per-case Dice over every case, the
paired gain statistics, the decision by decision.CV_RULE, the per-class fields and the forgetting check
over every case, and the `cv` block. What is the same in every fold (plan, bundle, environment, the
output fields a single run has and a CV does not pool) comes from the representative fold's document,
which is read, never changed. Writing the document is write.py's; deciding anything is not done here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from nvseg_bench.evidence import forgetting, gain_stats
from nvseg_bench.output import peer
from nvseg_bench.paths import CV_FILE
from nvseg_bench.phase_names import FINETUNE

DECISION_KEYS = ("recommended_ckpt", "recommended_is_finetuned", "decision_reason", "decision_basis", "improved",
                 "regressed", "formal_improvement_over_pretrained", "formal_improved", "formal_regressed", "verdict_split")


def pooled_output(cv: dict[str, Any], out_dir: Path, pooled_fields: dict[str, Any]) -> dict[str, Any]:
    """The `output` fields a CV pools: cv.json's figures and decision, plus `pooled_fields` (per class,
    forgetting) scored over OUT's merged folders."""
    pooled, cases = cv["pooled"], cv["cases"]
    return {
        "formal_pretrained_val_dice": cv["formal_pretrained_val_dice"],
        "formal_finetuned_val_dice": cv["formal_finetuned_val_dice"],
        "formal_pretrained_per_case": {n: c["pretrained"] for n, c in cases.items() if c["pretrained"] is not None},
        "formal_finetuned_per_case": {n: c["finetuned"] for n, c in cases.items() if c["finetuned"] is not None},
        "formal_gain_stats": pooled,
        "gain_confidence": cv["gain_confidence"],
        "gain_warning": gain_stats.noise_warning(pooled, cv["recommended_is_finetuned"]),
        **{k: cv[k] for k in DECISION_KEYS},
        "cv": {"folds": cv["folds"], "n_cases": cv["n_cases"], "cv_json": str(out_dir / CV_FILE),
               "representative_fold": cv["representative_fold"], "recommended_fold": cv["recommended_fold"],
               "case_folds": {n: c["fold"] for n, c in cases.items()},
               "fold_gains": {str(r["fold"]): r["formal_gain"] for r in cv["runs"]},
               "cv_checkpoint": cv.get("cv_checkpoint"), "optimism": (cv.get("selection") or {}).get("optimism"),
               "best_epoch_val_dice": ((cv.get("selection") or {}).get("best_epoch") or {}).get("formal_finetuned_val_dice")},
    } | scored_fields(cv) | pooled_fields


def scored_fields(cv: dict[str, Any]) -> dict[str, Any]:
    """The finetuned checkpoint a CV's verdict scored (the representative fold's last or best epoch) and its
    tensor comparison, in the fields a single run gives its finetuned checkpoint; {} without one."""
    kept = cv.get("scored_checkpoint") or {}
    if not kept.get("path") or kept.get("epoch") != "last":  # the best epoch's fields are the member's own
        return {}
    comparison = kept.get("comparison")
    return {"finetuned_ckpt": kept["path"], "finetuned_ckpt_exists": kept["exists"],
            "finetuned_ckpt_matches_pretrained_weights": comparison["identical"] if comparison else None,
            "checkpoint_comparisons_to_pretrained": peer.checkpoint_comparisons(comparison)}


def _status(cv: dict[str, Any], member: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """status (and error) of the whole CV: failed unless every chosen fold finished."""
    if not any(r["status"] != "passed" for r in cv["runs"]) and len(cv["runs"]) >= len(cv["folds"]):
        return {}
    status = {"status": "failed" if member["status"] == "passed" else member["status"]}
    if "error" not in member:
        status["error"] = {"kind": "crash", "phase": FINETUNE, "message": f"not every fold finished; see {out_dir / CV_FILE}"}
    return status


def cv_document(cv: dict[str, Any], member: dict[str, Any], *, command_line: str, out_dir: Path, wall: float,
                pooled_fields: dict[str, Any], tracking: dict[str, Any] | None = None) -> dict[str, Any]:
    """OUT/output.json: the pooled figures in `output`, the all-case datalist as its input, OUT as its root
    (invocation.cwd: the verifier re-roots recorded paths on it), the CV's parent tracking run, and the
    rest from `member` (the representative fold's document, not modified)."""
    out = member["output"] | pooled_output(cv, out_dir, pooled_fields)
    doc = member | {
        "output": out,
        "input": member["input"] | {"datalist": cv["all_cases_datalist"], "n_val_cases": cv["n_cases"]},
        "invocation": member["invocation"] | {"command": command_line, "cwd": str(out_dir)},
        "runtime": member["runtime"] | {"wall_seconds": round(wall, 2)},
        "headline": cv["headline"] + forgetting.headline_tail(out.get("forgetting")),
    }
    doc.pop("tracking", None)  # the fold's own run; the top document is the CV's parent run
    if tracking:
        doc["tracking"] = tracking
    return doc | _status(cv, member, out_dir)
