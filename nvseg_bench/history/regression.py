"""The regression rule of --nvseg-compare-fail: when a difference from the baseline fails a session.

A threshold is `formal_dice:0.01` (absolute Dice), `formal_dice:1%` (relative to the baseline's
Dice), `wall:20%` (relative) or `wall:60` (seconds). Formal Dice fails only when the current run is
worse by more than the threshold AND the paired 95% interval of the per-case difference lies below
0; a drop past the threshold whose interval spans 0 is within the noise: a warning, not a failure.
An unpaired comparison (different cases) has no interval, so it can warn but never fail on Dice.
Wall time is one number per run: it fails when slower by more than the threshold.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

METRICS = ("formal_dice", "wall")


@dataclass(frozen=True)
class Threshold:
    metric: str  # formal_dice | wall
    value: float
    relative: bool  # value is a percentage of the baseline

    def limit(self, baseline: float) -> float:
        return abs(baseline) * self.value / 100 if self.relative else self.value

    def __str__(self) -> str:
        return f"{self.metric}:{self.value:g}{'%' if self.relative else ''}"


def parse_threshold(text: str) -> Threshold:
    """`formal_dice:0.01`, `formal_dice:1%`, `wall:20%` -> a Threshold; anything else is a ValueError that says the form."""
    metric, _, amount = text.partition(":")
    relative = amount.endswith("%")
    try:
        value = float(amount.removesuffix("%"))
    except ValueError:
        value = -1.0
    if metric not in METRICS or value < 0:
        raise ValueError(f"{text!r} is not METRIC:AMOUNT; use formal_dice:0.01 (absolute Dice), formal_dice:1% "
                         "(of the baseline) or wall:20% (time); metrics: " + ", ".join(METRICS))
    return Threshold(metric, value, relative)


@dataclass(frozen=True)
class RegressionCheck:
    status: str  # passed | warned | failed
    message: str


def check_dice(dice: dict[str, Any], threshold: Threshold) -> RegressionCheck:
    if dice["diff"] is None or dice["baseline"] is None:
        return RegressionCheck("warned", "formal Dice is missing in one of the runs; not compared")
    drop, limit = -dice["diff"], threshold.limit(dice["baseline"])
    if drop <= limit:
        return RegressionCheck("passed", f"formal Dice {dice['diff']:+.4f} is within {threshold} of the baseline")
    past = f"formal Dice dropped {drop:.4f}, more than {threshold} ({limit:.4f})"
    if not dice["paired"]:
        return RegressionCheck("warned", f"{past}, but the runs are unpaired ({dice['note']}): an unpaired drop cannot "
                                   "fail; validate both on the same cases")
    if dice["ci"] is None:
        return RegressionCheck("warned", f"{past}, but there is no interval ({dice['note']}): it cannot fail")
    if dice["ci"][1] < 0:
        return RegressionCheck("failed", f"{past}, and the paired 95% CI {dice['ci'][0]:+.4f}..{dice['ci'][1]:+.4f} "
                                   "lies below 0: a real regression")
    return RegressionCheck("warned", f"{past}, but the paired 95% CI {dice['ci'][0]:+.4f}..{dice['ci'][1]:+.4f} spans 0: "
                               "within the noise")


def check_wall(wall: dict[str, Any], threshold: Threshold) -> RegressionCheck:
    if wall["baseline"] is None or wall["current"] is None:
        return RegressionCheck("warned", "wall time is missing in one of the runs; not compared")
    slower, limit = wall["current"] - wall["baseline"], threshold.limit(wall["baseline"])
    if slower > limit:
        return RegressionCheck("failed", f"wall time {wall['baseline']:.0f} s -> {wall['current']:.0f} s, slower by more "
                                   f"than {threshold} ({limit:.0f} s)")
    return RegressionCheck("passed", f"wall time within {threshold}")


def check_regression(comparison: dict[str, Any], thresholds: list[Threshold]) -> list[RegressionCheck]:
    """One check per threshold, in the order given."""
    return [check_dice(comparison["formal_dice"], t) if t.metric == "formal_dice" else check_wall(comparison["wall"], t)
            for t in thresholds]
