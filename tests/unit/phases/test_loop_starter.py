"""The phase loop and a campaign's one warm-start server: a member's phases leave it open for the next member."""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from nvseg_bench.phases.loop import run_phases

from .test_eval_memo import _prepared


class _Starter:
    """A warm-start server's face as the phase loop uses it: note, close."""

    def __init__(self) -> None:
        self.note, self.closed = None, 0

    def close(self, log_path: Path | None = None) -> None:
        self.closed += 1


def test_a_campaigns_shared_server_outlives_a_members_phases_and_a_runs_own_does_not(tmp_path):
    """A server per member made each member's first phase wait for its imports (issue 38's per-fold slowdown)."""
    p = replace(_prepared(tmp_path, "a"), commands={})
    shared, own = _Starter(), _Starter()
    run_phases(p, time.time(), shared, shared_starter=True)  # type: ignore[arg-type]
    run_phases(p, time.time(), own)  # type: ignore[arg-type]
    assert (shared.closed, own.closed) == (0, 1)
