"""Paired per-case statistics of a formal gain: how sure the keep/discard verdict can be.

From the per-case Dice of the two formal eval phases (paired by case name): the mean gain, a
seeded 95% paired bootstrap interval of it, the Wilcoxon signed-rank p-value, and how many cases
got better, worse or stayed the same. The interval is what `gain_confidence` reads: `clear` when
it lies above 0, `clear_loss` below 0, `within_noise` when it spans 0, and `too_few_cases` below
MIN_VERDICT_CASES paired cases, whatever the interval says.

Why 6: below it neither test can tell a gain from chance. A two-sided Wilcoxon signed-rank test over
n cases has the smallest p-value 2/2^n, which first falls below 0.05 at n = 6 (0.031; 0.0625 at 5).
A bootstrap over n cases has only C(2n-1, n) distinct resamples (3 for 2 cases, 126 for 5, 462 for 6),
and its percentile interval over a handful of values is narrower than the truth: two cases that both
gained give an interval above 0 every time. The interval is still computed and kept, not trusted.

The bootstrap is reproducible from the recorded seed by anyone: indices come from
`numpy.random.default_rng(seed).integers(0, n, size=(resamples, n))` over the cases in sorted
name order, and the bounds are linear-interpolated percentiles of the resampled means (numpy's
default). The trusted verifier re-derives the interval that way with its own code.
Pure functions; numpy and scipy only, no torch, no monai.
"""
from __future__ import annotations

from typing import Any

import numpy as np

BOOTSTRAP_SEED = 0
RESAMPLES = 10_000
LEVEL = 0.95
MIN_WILCOXON_CASES = 5
MIN_VERDICT_CASES = 6  # see the module docstring: the first n at which a two-sided signed-rank p can be < 0.05
TOO_FEW = "too_few_cases"
UNCHANGED_TOLERANCE = 1e-6  # per-case Dice is written with finite precision; closer than this is a tie
TOO_FEW_FIX = (f"an interval needs at least {MIN_VERDICT_CASES} paired cases; cross-validate (--folds all) to "
               "score every case")
METHOD = ("indices numpy.random.default_rng(seed).integers(0, n, size=(resamples, n)) over cases in sorted "
          "name order; bounds are linear-interpolated percentiles of the resampled mean gains")


def paired_gains(before: dict[str, float], after: dict[str, float]) -> tuple[list[str], np.ndarray, dict[str, list[str]]]:
    """Cases both phases scored (sorted by name), their gains after minus before, and the unpaired ones."""
    names = sorted(set(before) & set(after))
    gains = np.array([after[n] - before[n] for n in names], dtype=float)
    unpaired = {"only_before": sorted(set(before) - set(after)), "only_after": sorted(set(after) - set(before))}
    return names, gains, unpaired


def bootstrap_interval(gains: np.ndarray, seed: int = BOOTSTRAP_SEED, resamples: int = RESAMPLES,
                       level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of the mean gain over `resamples` case resamples drawn with replacement."""
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(gains), size=(resamples, len(gains)))
    means = gains[index].mean(axis=1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def wilcoxon_p(gains: np.ndarray) -> tuple[float | None, str | None]:
    """Two-sided signed-rank p-value, or None and why the test does not apply."""
    if len(gains) < MIN_WILCOXON_CASES:
        return None, (f"not applicable: {len(gains)} paired cases; the signed-rank test needs at least "
                      f"{MIN_WILCOXON_CASES}")
    if np.all(np.abs(gains) <= UNCHANGED_TOLERANCE):
        return None, "not applicable: every case scored the same before and after"
    from scipy.stats import wilcoxon

    return float(wilcoxon(gains).pvalue), None


def confidence(low: float | None, high: float | None, n_cases: int = MIN_VERDICT_CASES) -> str | None:
    """`clear` (interval above 0), `clear_loss` (below 0), `within_noise` (spans 0); None without one;
    `too_few_cases` below MIN_VERDICT_CASES paired cases."""
    if low is None or high is None:
        return None
    if n_cases < MIN_VERDICT_CASES:
        return TOO_FEW
    if low > 0:
        return "clear"
    if high < 0:
        return "clear_loss"
    return "within_noise"


def gain_stats(before: dict[str, float], after: dict[str, float], seed: int = BOOTSTRAP_SEED) -> dict[str, Any]:
    """Everything output.formal_gain_stats holds, from the two phases' per-case Dice."""
    names, gains, unpaired = paired_gains(before, after)
    same_cases = not unpaired["only_before"] and not unpaired["only_after"]
    n = len(gains)
    low = high = None
    note = None
    if not same_cases:
        note = (f"the two eval phases scored different cases (only before: {unpaired['only_before'] or 'none'}; "
                f"only after: {unpaired['only_after'] or 'none'}); no interval is given")
    elif n < 2:
        note = f"{n} paired case(s): a bootstrap interval needs at least 2"
    else:
        low, high = bootstrap_interval(gains, seed)
    p_value, p_note = wilcoxon_p(gains) if same_cases else (None, "not applicable: the cases are not paired")
    return {
        "n_cases": n,
        "same_cases": same_cases,
        "unpaired_cases": unpaired,
        "case_gains": {name: float(g) for name, g in zip(names, gains)},
        "mean_gain": float(gains.mean()) if n else None,
        "ci_level": LEVEL,
        "ci_low": low,
        "ci_high": high,
        "interval_note": note,
        "bootstrap": {"seed": seed, "resamples": RESAMPLES, "method": METHOD},
        "wilcoxon_p": p_value,
        "wilcoxon_note": p_note,
        "n_better": int(np.sum(gains > UNCHANGED_TOLERANCE)),
        "n_worse": int(np.sum(gains < -UNCHANGED_TOLERANCE)),
        "n_unchanged": int(np.sum(np.abs(gains) <= UNCHANGED_TOLERANCE)),
        "unchanged_tolerance": UNCHANGED_TOLERANCE,
        "confidence": confidence(low, high, n),
    }


def summary(stats: dict[str, Any] | None) -> str:
    """The headline's parenthesis tail, e.g. `95% CI -0.004..+0.031, 9 of 13 cases better`."""
    if not stats or not stats.get("n_cases"):
        return ""
    better = f"{stats['n_better']} of {stats['n_cases']} cases better"
    if stats["ci_low"] is None:
        return f", {better}"
    if stats["confidence"] == TOO_FEW:
        return f", {better}; too few cases for a verdict: {TOO_FEW_FIX}"
    return f", 95% CI {stats['ci_low']:+.3f}..{stats['ci_high']:+.3f}, {better}"


def noise_warning(stats: dict[str, Any] | None, kept_finetuned: bool) -> str | None:
    """A warning when the finetuned checkpoint is kept on a gain its own interval cannot tell from 0."""
    if kept_finetuned and stats and stats.get("confidence") == TOO_FEW:
        return (f"the kept finetuned checkpoint's gain {stats['mean_gain']:+.4f} rests on {stats['n_cases']} "
                f"validation case(s), too few to tell it from chance: {TOO_FEW_FIX}")
    if not kept_finetuned or not stats or stats.get("confidence") != "within_noise":
        return None
    return (f"the kept finetuned checkpoint's gain {stats['mean_gain']:+.4f} is within noise: its 95% interval "
            f"{stats['ci_low']:+.4f}..{stats['ci_high']:+.4f} spans 0 over {stats['n_cases']} cases; "
            "more validation cases or a seed sweep (--seeds) would tell")


def output_fields(before: dict[str, float], after: dict[str, float], kept_finetuned: bool) -> dict[str, Any]:
    """output.formal_gain_stats, output.gain_confidence and output.gain_warning for one run.

    Without per-case Dice from both phases (no formal eval, or a phase failed) all three are null.
    """
    stats = gain_stats(before, after) if before and after else None
    return {
        "formal_gain_stats": stats,
        "gain_confidence": stats["confidence"] if stats else None,
        "gain_warning": noise_warning(stats, kept_finetuned),
    }
