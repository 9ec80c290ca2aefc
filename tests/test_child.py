"""The one child-process runner the phases and the harness share: lines streamed, a tail kept, a timeout."""
from __future__ import annotations

import os
import sys

from nvseg_bench.child import run_child


def test_every_line_reaches_the_callback_and_only_the_last_ones_stay_in_the_tail(tmp_path):
    seen: list[str] = []
    run = run_child([sys.executable, "-c", "for i in range(50): print(i)"], cwd=tmp_path, env=dict(os.environ),
                    on_line=seen.append, tail_lines=5)
    assert (run.return_code, seen, run.tail) == (0, [str(i) for i in range(50)], ["45", "46", "47", "48", "49"])


def test_a_child_past_its_timeout_is_stopped_and_says_so(tmp_path):
    run = run_child([sys.executable, "-c", "import time; time.sleep(30)"], cwd=tmp_path, env=dict(os.environ), timeout=0.5)
    assert run.timed_out and run.return_code != 0 and run.seconds < 20
