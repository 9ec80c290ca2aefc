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
    loss_epochs: list[int] = field(default_factory=list)  # the epoch of each train_loss entry
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
            self.loss_epochs.append(e)
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


def merge_resumed(parts: list[LogFacts]) -> LogFacts:
    """One training record from the logs of a run that was stopped and resumed, oldest first: for every
    epoch the newest log that has it wins (a resumed log redoes the epoch the stop cut short)."""
    merged = LogFacts()
    losses: dict[int, list[float]] = {}
    for part in parts:
        epochs: dict[int, list[float]] = {}
        for epoch, loss in zip(part.loss_epochs, part.train_loss):
            epochs.setdefault(epoch, []).append(loss)
        losses |= epochs
        merged.val_dice |= part.val_dice
        merged.telemetry += part.telemetry
        merged.oom = part.oom  # the last part's end is the run's end
        merged.last_iter = part.last_iter or merged.last_iter
    for epoch in sorted(losses):
        merged.train_loss += losses[epoch]
        merged.loss_epochs += [epoch] * len(losses[epoch])
    merged.val_dice = dict(sorted(merged.val_dice.items()))
    return merged
