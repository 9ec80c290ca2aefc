"""A cross-validation's two finetuned scores per case: each fold's best epoch (chosen by the validation Dice of
the very cases it is then scored on) and its last epoch (which those cases did not choose), and the optimism
of the first: the pooled best minus last, paired per case, with gain_stats.py's bootstrap interval.

`--cv-checkpoint` names which of the two the pooled verdict uses (campaign/last_epoch.py stages and scores
the last epoch); the other is reported beside it, labelled. Pure functions over per-case Dice; no torch.
"""
from __future__ import annotations

from typing import Any

from nvseg_bench.evidence import gain_stats

BEST_NOTE = ("each fold's best epoch was chosen by the validation Dice of the very cases it is scored on, so its "
             "pooled score is selected on the scored cases and optimistic")
LAST_NOTE = "each fold's final epoch: the scored cases did not choose it"


def _mean(values: dict[str, float]) -> float | None:
    return sum(values.values()) / len(values) if values else None


def epoch_block(before: dict[str, float], after: dict[str, float], note: str, selected: bool) -> dict[str, Any]:
    """One checkpoint's pooled score over every case, its paired gain over the pretrained model, and what chose it."""
    return {"formal_finetuned_val_dice": _mean(after), "per_case": after,
            "pooled": gain_stats.gain_stats(before, after) if before and after else None,
            "selected_on_scored_cases": selected, "note": note}


def selection_block(before: dict[str, float], best: dict[str, float], last: dict[str, float],
                    scored: str) -> dict[str, Any]:
    """cv.json's `selection`: which checkpoint the verdict scores, both pooled scores and the optimism."""
    optimism = gain_stats.gain_stats(last, best) if best and last else None
    return {
        "scored": scored,
        "best_epoch": epoch_block(before, best, BEST_NOTE, True),
        "last_epoch": epoch_block(before, last, LAST_NOTE, False) if last else None,
        "optimism": optimism,  # best minus last per case: mean_gain and its interval
        "optimism_note": ("pooled best-epoch Dice minus last-epoch Dice over the same cases, paired per case "
                          "(95% bootstrap interval): how much choosing the epoch on the scored cases flatters it"
                          if optimism else "no last-epoch score: the optimism of the best epoch is not measured"),
    }


def summary(selection: dict[str, Any]) -> str:
    """The CV headline's tail, e.g. `; best epoch 0.41 (selected on the scored cases; optimism +0.012, 95% CI ..)`."""
    best, optimism = selection["best_epoch"], selection.get("optimism")
    if selection["scored"] != "last" or not optimism or best["formal_finetuned_val_dice"] is None:
        return ""
    interval = (f", 95% CI {optimism['ci_low']:+.4f}..{optimism['ci_high']:+.4f}" if optimism["ci_low"] is not None
                else "")
    return (f"; best epoch {best['formal_finetuned_val_dice']:.4f}, selected on the scored cases "
            f"(optimism {optimism['mean_gain']:+.4f}{interval})")
