"""Runtime telemetry from inside a bundle run: peak GPU memory, host RSS, wall time.

Prints one `NVSEG_TELEMETRY {json}` line when the handler is attached (the engine is built: network,
datasets and caches are ready), after each epoch and when the engine completes, so a wrapper can
read it from the log, and split the phase into start-up, engine and teardown by when the lines
arrive, without importing anything of the bundle's.
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

        self._emit(engine, "attached")
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._emit, "epoch")
        engine.add_event_handler(Events.COMPLETED, self._emit, "completed")

    def _emit(self, engine: Any, event: str) -> None:
        record = snapshot(self.phase, self.started, event=event, epoch=int(engine.state.epoch))
        print(f"{MARKER} {json.dumps(record)}", file=sys.stdout, flush=True)
