"""What a bundle phase's log says: train loss per iteration, validation Dice per epoch, telemetry, OOM.

The patterns are those of MONAI's StatsHandler, so logs of an upstream bundle parse the same way.
Pure functions over text; used live by the phase runner and afterwards by the evidence step.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

ITER_RE = re.compile(r"Epoch: (\d+)/(\d+), Iter: (\d+)/(\d+) -- train_loss: (\S+)")
VAL_RE = re.compile(r"Epoch\[(\d+)\] Metrics -- .*?val_mean_dice: (\S+)")
TELEMETRY_MARK = "NVSEG_TELEMETRY "
OOM_RE = re.compile(r"CUDA out of memory|OutOfMemoryError|DefaultCPUAllocator: can't allocate memory")


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


@dataclass
class LogFacts:
    train_loss: list[float] = field(default_factory=list)
    val_dice: dict[int, float] = field(default_factory=dict)  # validation epoch index -> mean Dice
    telemetry: list[dict[str, Any]] = field(default_factory=list)
    oom: bool = False
    last_iter: tuple[int, int, int, int] | None = None  # epoch, epochs, iter, iters

    def feed(self, line: str) -> str | None:
        """Take one log line; return 'iter', 'val', 'telemetry' or 'oom' when it was one of those."""
        if line.startswith(TELEMETRY_MARK):
            try:
                self.telemetry.append(json.loads(line[len(TELEMETRY_MARK):]))
                return "telemetry"
            except json.JSONDecodeError:
                return None
        match = ITER_RE.search(line)
        if match:
            e, n_e, i, n_i = (int(g) for g in match.groups()[:4])
            self.last_iter = (e, n_e, i, n_i)
            self.train_loss.append(_number(match.group(5)))
            return "iter"
        match = VAL_RE.search(line)
        if match:
            self.val_dice[int(match.group(1))] = _number(match.group(2))
            return "val"
        if OOM_RE.search(line):
            self.oom = True
            return "oom"
        return None

    def peak(self, key: str) -> float | None:
        values = [float(t[key]) for t in self.telemetry if t.get(key) is not None]
        return max(values) if values else None


def parse_lines(lines: Iterable[str]) -> LogFacts:
    facts = LogFacts()
    for line in lines:
        facts.feed(line.rstrip("\n"))
    return facts
