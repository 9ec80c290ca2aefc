"""Re-derive the paired gain statistics (output.formal_gain_stats) from the pack's per-case CSVs.

Reads each eval phase's val_mean_dice_raw.csv itself, pairs cases by file name, and recomputes
the mean gain, the bootstrap interval with this verifier's own seed, resample count and level (the
documented draw: numpy's default_rng(seed).integers(0, n, size=(resamples, n)) over cases in sorted name
order, bounds by linear interpolation between order statistics), the exact two-sided Wilcoxon
signed-rank p-value where it is exact (no ties, no zero gains, up to 50 cases), the counts of cases
better, worse and unchanged, and the confidence class (`too_few_cases` below 6 paired cases). Own code;
nothing of the producer's.

The statistical rules (RULES: level, resamples, seed, the unchanged tolerance) are the verifier's
constants, never the pack's: a pack that records other values fails naming them. A pack cannot size
the work either: more than MAX_CASES paired cases is refused.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from .findings import Finding, failed, passed, skipped, unverified
from .pack import Pack

DECIMALS_TOLERANCE = 5e-5  # "the same to 4 decimals"
CSV_NAME = "val_mean_dice_raw.csv"
EXACT_MAX_CASES = 50
MIN_VERDICT_CASES = 6  # fewer paired cases: `too_few_cases` (a two-sided signed-rank p cannot reach 0.05 below 6)
LEVEL, RESAMPLES, SEED = 0.95, 10_000, 0
UNCHANGED_TOLERANCE = 1e-6  # closer than this is a tie
MAX_CASES = 1000  # resamples x cases draws are held at once: 80 MB here
# where a claim records each rule (a path into formal_gain_stats), and the verifier's own value
RULES = {"ci_level": (("ci_level",), LEVEL), "resamples": (("bootstrap", "resamples"), RESAMPLES),
         "seed": (("bootstrap", "seed"), SEED), "unchanged_tolerance": (("unchanged_tolerance",), UNCHANGED_TOLERANCE)}


def read_per_case(pack: Pack, phase: str) -> dict[str, float] | None:
    return read_csv(pack, pack.root / phase / CSV_NAME)


def read_csv(pack: Pack, path: Path) -> dict[str, float] | None:
    """Per-case mean Dice by image file name from one val_mean_dice_raw.csv; None when it is absent."""
    if not path.is_file():
        return None
    pack.note(path)
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    values = {}
    for row in rows:
        text = (row.get("mean") or "").strip()
        if text and text.lower() != "nan":
            values[Path(row["filename"]).name] = float(text)
    return values


def percentile(sorted_values: np.ndarray, q: float) -> float:
    """q-th percentile (0..100), linear between the two nearest order statistics."""
    position = (len(sorted_values) - 1) * q / 100.0
    below = math.floor(position)
    above = min(below + 1, len(sorted_values) - 1)
    weight = position - below
    return float(sorted_values[below] * (1 - weight) + sorted_values[above] * weight)


def bootstrap(gains: np.ndarray) -> tuple[float, float]:
    """The interval of the mean gain by this verifier's rules (SEED, RESAMPLES, LEVEL)."""
    draws = np.random.default_rng(SEED).integers(0, len(gains), size=(RESAMPLES, len(gains)))
    means = np.sort(np.array([gains[row].sum() / len(gains) for row in draws]))
    tail = (1.0 - LEVEL) / 2 * 100
    return percentile(means, tail), percentile(means, 100 - tail)


def exact_signed_rank_p(gains: np.ndarray) -> float | None:
    """Exact two-sided p of the signed-rank test, or None where it is not exact (ties, zeros, > 50)."""
    size = np.abs(gains)
    if len(gains) > EXACT_MAX_CASES or np.any(size == 0) or len(np.unique(size)) != len(size):
        return None
    n = len(gains)
    ranks = np.argsort(np.argsort(size)) + 1
    positive = int(ranks[gains > 0].sum())
    statistic = min(positive, n * (n + 1) // 2 - positive)
    ways = [1] + [0] * (n * (n + 1) // 2)  # ways[s]: subsets of ranks 1..n summing to s
    for rank in range(1, n + 1):
        for total in range(len(ways) - 1, rank - 1, -1):
            ways[total] += ways[total - rank]
    return min(1.0, 2 * sum(ways[: statistic + 1]) / 2**n)


def near(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(float(a) - float(b)) <= DECIMALS_TOLERANCE


def _class(low: float, high: float, n_cases: int) -> str:
    if n_cases < MIN_VERDICT_CASES:
        return "too_few_cases"
    return "clear" if low > 0 else "clear_loss" if high < 0 else "within_noise"


class TooMany(ValueError):
    """The pack sizes more work than the verifier's bound."""


def rule_problems(claimed: dict[str, Any]) -> list[str]:
    """Each statistical rule a claim records with a value other than this verifier's own."""
    problems = []
    for name, (where, mine) in RULES.items():
        value: Any = claimed
        for key in where:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None and not (isinstance(value, (int, float)) and math.isclose(float(value), mine)):
            problems.append(f"the pack records {name} {value!r}; the verifier's rule is {mine}")
    return problems


def derive(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """The paired figures of two per-case tables by this verifier's rules: n_cases, same_cases, mean_gain,
    better_worse_unchanged, ci_low/ci_high/confidence where an interval applies, wilcoxon_p where the exact
    test applies."""
    names = sorted(before.keys() & after.keys())
    if len(names) > MAX_CASES:
        raise TooMany(f"{len(names)} paired cases, more than this verifier re-derives ({MAX_CASES})")
    gains = np.array([after[k] - before[k] for k in names])
    same = before.keys() == after.keys()
    numbers: dict[str, Any] = {"n_cases": len(names), "same_cases": same}
    if len(names):
        tol = UNCHANGED_TOLERANCE
        numbers["mean_gain"] = float(gains.mean())
        numbers["better_worse_unchanged"] = (int((gains > tol).sum()), int((gains < -tol).sum()),
                                             int((np.abs(gains) <= tol).sum()))
    if same and len(names) >= 2:
        low, high = bootstrap(gains)
        numbers |= {"ci_low": low, "ci_high": high, "seed": SEED, "resamples": RESAMPLES, "ci_level": LEVEL,
                    "confidence": _class(low, high, len(names))}
    exact = exact_signed_rank_p(gains) if same and len(names) >= 5 else None
    if exact is not None:
        numbers["wilcoxon_p"] = exact
    return numbers


def disagreements(numbers: dict[str, Any], claimed: dict[str, Any]) -> list[str]:
    """Where a claimed formal_gain_stats-shaped block differs from derive()'s figures or rules."""
    problems = rule_problems(claimed)
    if claimed.get("same_cases") != numbers["same_cases"] or claimed.get("n_cases") != numbers["n_cases"]:
        problems.append(f"{numbers['n_cases']} paired cases (same cases: {numbers['same_cases']}); claimed "
                        f"{claimed.get('n_cases')} (same cases: {claimed.get('same_cases')})")
    if "mean_gain" in numbers and not near(numbers["mean_gain"], claimed.get("mean_gain")):
        problems.append(f"mean gain {numbers['mean_gain']:+.4f}, claimed {claimed.get('mean_gain')}")
    counts = numbers.get("better_worse_unchanged")
    said = (claimed.get("n_better"), claimed.get("n_worse"), claimed.get("n_unchanged"))
    if counts is not None and counts != said:
        problems.append(f"better/worse/unchanged {counts}, claimed {said}")
    if "ci_low" in numbers:
        if not (near(numbers["ci_low"], claimed.get("ci_low")) and near(numbers["ci_high"], claimed.get("ci_high"))):
            problems.append(f"bootstrap interval {numbers['ci_low']:+.4f}..{numbers['ci_high']:+.4f} (seed "
                            f"{numbers['seed']}), claimed {claimed.get('ci_low')}..{claimed.get('ci_high')}")
        elif claimed.get("confidence") != numbers["confidence"]:
            problems.append(f"confidence is {numbers['confidence']}, claimed {claimed.get('confidence')}")
    elif claimed.get("ci_low") is not None:
        problems.append("an interval is claimed where the cases do not support one")
    if "wilcoxon_p" in numbers and not near(numbers["wilcoxon_p"], claimed.get("wilcoxon_p")):
        problems.append(f"Wilcoxon p {numbers['wilcoxon_p']:.4f}, claimed {claimed.get('wilcoxon_p')}")
    return problems


def check_gain_stats(pack: Pack) -> Finding:
    name = "gain_stats"
    out = pack.output.get("output") or {}
    if not out.get("formal_eval_enabled") or out.get("formal_finetuned_val_dice") is None:
        return skipped(name, "no paired formal evaluation in this run")
    claimed = out.get("formal_gain_stats")
    if not claimed:
        return unverified(name, "output.json claims a formal gain and carries no formal_gain_stats to re-derive")
    before, after = read_per_case(pack, "eval_pretrained"), read_per_case(pack, "eval_finetuned")
    if before is None or after is None:
        return failed(name, f"the pack lacks eval_pretrained/{CSV_NAME} or eval_finetuned/{CSV_NAME}")
    problems = []
    for side, csv_values in (("formal_pretrained_per_case", before), ("formal_finetuned_per_case", after)):
        reported = out.get(side) or {}
        off = sorted(k for k in csv_values.keys() | reported.keys()
                     if not near(csv_values.get(k), reported.get(k)))
        if off:
            problems.append(f"{side} differs from the CSV for {', '.join(off)}")
    try:
        numbers = derive(before, after)
    except TooMany as exc:
        return failed(name, str(exc))
    problems += disagreements(numbers, claimed)
    if "confidence" in numbers and out.get("gain_confidence") != numbers["confidence"]:
        problems.append(f"gain_confidence is {out.get('gain_confidence')}, the interval over "
                        f"{numbers['n_cases']} cases gives {numbers['confidence']}")
    if problems:
        return failed(name, "; ".join(problems), **numbers)
    interval = f", interval {numbers['ci_low']:+.4f}..{numbers['ci_high']:+.4f}" if "ci_low" in numbers else ""
    return passed(name, f"re-derived from the per-case CSVs: {numbers['n_cases']} cases{interval}", **numbers)
