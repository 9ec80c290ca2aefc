"""Child processes: start one in its own process group, stream its output lines to a callback (and a
log file), keep the last lines, and stop the whole group on a timeout, Ctrl-C or SIGTERM.

The one implementation behind the bundle phases (phases.py) and the harness's CLI runs
(harness/runs.py). os.wait4 reaps the child so its own peak RSS is known, which Popen.wait is not.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, TextIO


@dataclass
class ChildRun:
    return_code: int | None
    seconds: float
    tail: list[str] = field(default_factory=list)
    peak_rss_mb: float | None = None
    timed_out: bool = False


def _pump(proc: subprocess.Popen, log: TextIO | None, tail: deque, on_line: Callable[[str], None]) -> None:
    assert proc.stdout is not None
    for raw in proc.stdout:
        if log is not None:
            log.write(raw)
        line = raw.rstrip("\n")
        tail.append(line)
        on_line(line)


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait(proc: subprocess.Popen, timeout: float | None) -> tuple[int, float]:
    """(exit code, peak RSS in MiB) of this child, polling so a timeout can stop it."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, round(usage.ru_maxrss / 1024, 1)
        if deadline is not None and time.monotonic() > deadline:
            raise subprocess.TimeoutExpired(proc.args, timeout or 0)
        time.sleep(0.2)


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (a CI job's timeout or cancel, `kill`) as Ctrl-C while inside: the child's group is
    stopped and the run reports itself interrupted. Without this the default action ends only this
    process, and a phase in its own session runs on, holding the GPU (seen on an H100: 77.7 GiB held
    by an orphaned phase made the next run fail with out-of-memory)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_child(command: list[str], *, cwd: Path, env: dict[str, str], on_line: Callable[[str], None] = lambda _: None,
              log: TextIO | None = None, timeout: float | None = None, tail_lines: int = 40) -> ChildRun:
    """Run to the end (or the timeout); Ctrl-C or SIGTERM stops the child's whole group and is raised again
    (as KeyboardInterrupt)."""
    tail: deque[str] = deque(maxlen=tail_lines)
    started = time.monotonic()
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, errors="replace", start_new_session=True)
    reader = threading.Thread(target=_pump, args=(proc, log, tail, on_line))
    reader.start()
    run = ChildRun(return_code=None, seconds=0.0)
    try:
        with sigterm_as_interrupt():
            run.return_code, run.peak_rss_mb = _wait(proc, timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        run.return_code, run.timed_out = proc.returncode, True
    except KeyboardInterrupt:
        kill_group(proc)
        raise
    finally:
        reader.join(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()  # wait4 reaped the child, so Popen never closes its pipe itself
        run.seconds = round(time.monotonic() - started, 2)
        run.tail = list(tail)
    return run
