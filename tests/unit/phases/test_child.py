"""The one child-process runner the phases and the harness share: lines streamed, a tail kept, a timeout."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from nvseg_bench.phases.child import run_child


def test_every_line_reaches_the_callback_and_only_the_last_ones_stay_in_the_tail(tmp_path):
    seen: list[str] = []
    run = run_child([sys.executable, "-c", "for i in range(50): print(i)"], cwd=tmp_path, env=dict(os.environ),
                    on_line=seen.append, tail_lines=5)
    assert (run.return_code, seen, run.tail) == (0, [str(i) for i in range(50)], ["45", "46", "47", "48", "49"])


def test_a_child_past_its_timeout_is_stopped_and_says_so(tmp_path):
    run = run_child([sys.executable, "-c", "import time; time.sleep(30)"], cwd=tmp_path, env=dict(os.environ), timeout=0.5)
    assert run.timed_out and run.return_code != 0 and run.seconds < 20


DRIVER = """
import os, sys
from pathlib import Path
from nvseg_bench.phases.child import run_child
try:
    run_child([sys.executable, "-c", "import os, time; open(os.environ['PIDFILE'], 'w').write(str(os.getpid())); time.sleep(120)"],
              cwd=Path('.'), env=dict(os.environ))
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""


def test_sigterm_stops_the_child_group_like_ctrl_c_instead_of_orphaning_it(tmp_path):
    import signal
    import subprocess
    import time

    pidfile = tmp_path / "child.pid"
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], cwd=tmp_path, stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PIDFILE=str(pidfile), PYTHONPATH=os.pathsep.join(sys.path)))
    deadline = time.monotonic() + 30
    while not pidfile.is_file() or not pidfile.read_text():
        assert time.monotonic() < deadline, "the child never started"
        time.sleep(0.1)
    child = int(pidfile.read_text())
    driver.send_signal(signal.SIGTERM)
    out, _ = driver.communicate(timeout=30)
    assert driver.returncode == 130 and "interrupted" in out
    time.sleep(0.5)
    try:
        os.kill(child, 0)
        alive = Path(f"/proc/{child}/status").read_text().find("State:\tZ") < 0  # a zombie is gone in all but name
    except ProcessLookupError:
        alive = False
    assert not alive, "the child of a SIGTERMed runner kept running"
