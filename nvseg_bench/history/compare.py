"""A run set beside a saved baseline: formal Dice, paired per case when both scored the same cases,
wall time, and the recipe values, versions, bundle and dataset that differ between the two.

Paired: the finetuned per-case Dice of the current run minus the baseline's, over the same case
names, with the same seeded 95% bootstrap interval the runs use for their own gain
(evidence/gain_stats.py). Unpaired (different cases): the difference of the two means, no interval.
"""
from __future__ import annotations

import hashlib
from typing import Any

from nvseg_bench.evidence.gain_stats import gain_stats

COMPARED = ("recipe", "versions", "machine")


def _flat(block: dict[str, Any] | None, prefix: str) -> dict[str, Any]:
    return {f"{prefix}.{k}": v for k, v in (block or {}).items()}


def differences(baseline: dict[str, Any], current: dict[str, Any]) -> dict[str, list[Any]]:
    """`recipe.epochs: [4, 5]` for each recipe value, version or machine field that differs, then bundle and data."""
    found = {}
    for part in COMPARED:
        before, after = _flat(baseline.get(part), part), _flat(current.get(part), part)
        for key in sorted(before.keys() | after.keys()):
            if before.get(key) != after.get(key):
                found[key] = [before.get(key), after.get(key)]
    models = [model_of(baseline), model_of(current)]
    if models[0] != models[1]:  # first: a run of one model is no baseline for the other's, and the line says so
        found = {"model": models, **found}
    bundles = [_bundle_id(baseline.get("bundle")), _bundle_id(current.get("bundle"))]
    if bundles[0] != bundles[1]:
        found["bundle"] = bundles
    digests = [(baseline.get("dataset") or {}).get("digest"), (current.get("dataset") or {}).get("digest")]
    if digests[0] != digests[1]:
        found["dataset.digest"] = [d[:12] if d else d for d in digests]
    return found


def model_of(record: dict[str, Any]) -> str:
    """The record's model (input.bundle.model); a record saved before the model axis ran NV-Segment-CT."""
    return str((record.get("bundle") or {}).get("model") or "ct")


def _bundle_id(bundle: dict[str, Any] | None) -> str | None:
    """source@revision, or source plus a short digest of its config files (the recipe it ran)."""
    if not bundle:
        return None
    if bundle.get("revision"):
        return f"{bundle.get('source')}@{bundle['revision']}"
    configs = bundle.get("configs_sha256") or {}
    digest = hashlib.sha256("".join(f"{k}{configs[k]}" for k in sorted(configs)).encode()).hexdigest()[:12]
    return f"{bundle.get('source')} configs {digest}"


def _dice(record: dict[str, Any]) -> float | None:
    return (record.get("figures") or {}).get("formal_finetuned_val_dice")


def dice_comparison(baseline: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """Current minus baseline finetuned formal Dice: paired with an interval, or unpaired and said so."""
    before = (baseline.get("per_case") or {}).get("finetuned") or {}
    after = (current.get("per_case") or {}).get("finetuned") or {}
    base, now = _dice(baseline), _dice(current)
    if before and after and set(before) == set(after):
        stats = gain_stats(before, after)
        return {"paired": True, "baseline": base, "current": now, "diff": stats["mean_gain"],
                "ci": None if stats["ci_low"] is None else [stats["ci_low"], stats["ci_high"]],
                "n_cases": stats["n_cases"], "n_better": stats["n_better"], "n_worse": stats["n_worse"],
                "note": stats["interval_note"]}
    why = "no per-case Dice in one of them" if not (before and after) else \
        f"they scored different cases ({len(set(before) & set(after))} shared of {len(before)} and {len(after)})"
    return {"paired": False, "baseline": base, "current": now,
            "diff": None if base is None or now is None else now - base, "ci": None, "n_cases": None,
            "n_better": None, "n_worse": None, "note": f"unpaired: {why}; no interval"}


def compare(baseline: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """The whole comparison of current with baseline, as the gate, the table, JUnit and the report carry it."""
    walls = [(r.get("figures") or {}).get("wall_seconds") for r in (baseline, current)]
    return {"baseline": baseline.get("run_id"), "baseline_saved_at": baseline.get("saved_at"),
            "baseline_name": baseline.get("name"), "baseline_commit": baseline.get("git_commit"),
            "current": current.get("run_id"), "formal_dice": dice_comparison(baseline, current),
            "models": [model_of(baseline), model_of(current)],
            "wall": {"baseline": walls[0], "current": walls[1],
                     "ratio": walls[1] / walls[0] if walls[0] and walls[1] is not None else None},
            "differs": differences(baseline, current)}


def _signed(value: float | None, spec: str = "+.4f") -> str:
    return "-" if value is None else format(value, spec)


def describe(comparison: dict[str, Any]) -> str:
    """One line: `formal Dice 0.3946 -> 0.3800 (-0.0146, 95% CI -0.02..-0.01, paired over 2 cases: 0 better, 2 worse)`."""
    dice = comparison["formal_dice"]
    models = comparison.get("models") or ["ct", "ct"]
    warn = f"NOT LIKE FOR LIKE: a {models[0]} baseline for a {models[1]} run; " if models[0] != models[1] else ""
    said = f"{warn}formal Dice {_signed(dice['baseline'], '.4f')} -> {_signed(dice['current'], '.4f')} ({_signed(dice['diff'])}"
    if dice["paired"]:
        ci = f", 95% CI {dice['ci'][0]:+.4f}..{dice['ci'][1]:+.4f}" if dice["ci"] else f", {dice['note']}"
        said += f"{ci}, paired over {dice['n_cases']} cases: {dice['n_better']} better, {dice['n_worse']} worse)"
    else:
        said += f"; {dice['note']})"
    wall = comparison["wall"]
    if wall["ratio"] is not None:
        said += f"; wall {wall['baseline']:.0f} s -> {wall['current']:.0f} s ({wall['ratio'] - 1:+.0%})"
    return said


def describe_differences(comparison: dict[str, Any], most: int = 8) -> str:
    """`differs: recipe.epochs 4 -> 5, versions.torch 2.3 -> 2.4` (or `same recipe, versions, bundle and data`)."""
    differs = comparison["differs"]
    if not differs:
        return "same recipe, versions, machine, bundle and data"
    shown = [f"{k} {a} -> {b}" for k, (a, b) in list(differs.items())[:most]]
    more = f" and {len(differs) - most} more" if len(differs) > most else ""
    return "differs: " + ", ".join(shown) + more
