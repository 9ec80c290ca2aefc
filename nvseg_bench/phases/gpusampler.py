"""Sample GPU memory and utilisation with nvidia-smi while a phase runs.

torch's own peak (reported from inside the bundle) misses memory held outside its allocator and
whatever an upstream bundle does not report; nvidia-smi sees the whole device. No-op without
nvidia-smi on PATH.
"""
from __future__ import annotations

import shutil
import subprocess
import threading
from typing import Any

QUERY = "--query-gpu=memory.used,utilization.gpu"


class GpuSampler:
    """Polls every `interval` seconds in a daemon thread between start() and stop()."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.smi = shutil.which("nvidia-smi")
        self.peak_mb: float | None = None
        self.util: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        assert self.smi is not None
        try:
            out = subprocess.run([self.smi, QUERY, "--format=csv,noheader,nounits"], capture_output=True,
                                 text=True, timeout=10).stdout
        except (subprocess.SubprocessError, OSError):
            return
        for line in out.strip().splitlines():
            parts = [p.strip() for p in line.split(",")]
            try:
                used, util = float(parts[0]), float(parts[1])
            except (ValueError, IndexError):
                continue
            self.peak_mb = used if self.peak_mb is None else max(self.peak_mb, used)
            self.util.append(util)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def start(self) -> "GpuSampler":
        if self.smi:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        busy = [u for u in self.util if u > 0]
        return {
            "smi_peak_gpu_mb": self.peak_mb,
            "gpu_util_mean": round(sum(self.util) / len(self.util), 1) if self.util else None,
            "gpu_busy_share": round(len(busy) / len(self.util), 3) if self.util else None,
            "gpu_samples": len(self.util),
        }
