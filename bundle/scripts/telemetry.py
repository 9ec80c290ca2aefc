"""Runtime telemetry from inside a bundle run: peak GPU memory, host RSS, wall time.

Prints one `NVSEG_TELEMETRY {json}` line when the engine completes (and after each epoch), so a
wrapper can read it from the log without importing anything of the bundle's.
"""
from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any

import torch

MARKER = "NVSEG_TELEMETRY"


def snapshot(phase: str, started: float, **extra: Any) -> dict[str, Any]:
    cuda = torch.cuda.is_available()
    peak_gpu_mb = torch.cuda.max_memory_allocated() / 2**20 if cuda else 0.0
    # ru_maxrss is in KiB on Linux
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "phase": phase,
        "cuda": cuda,
        "peak_gpu_mb": round(peak_gpu_mb, 1),
        "peak_rss_mb": round(rss_mb, 1),
        "seconds": round(time.monotonic() - started, 3),
        **extra,
    }


class TelemetryHandler:
    """Ignite handler: attach to a trainer or evaluator; prints telemetry lines on stdout."""

    def __init__(self, phase: str = "run") -> None:
        self.phase = phase
        self.started = time.monotonic()

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_COMPLETED, self._emit, "epoch")
        engine.add_event_handler(Events.COMPLETED, self._emit, "completed")

    def _emit(self, engine: Any, event: str) -> None:
        record = snapshot(self.phase, self.started, event=event, epoch=int(engine.state.epoch))
        print(f"{MARKER} {json.dumps(record)}", file=sys.stdout, flush=True)
