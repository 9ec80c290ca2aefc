"""Child processes: start one in its own process group, stream its output lines to a callback (and a
log file), keep the last lines, and stop the whole group on a timeout, Ctrl-C or SIGTERM.

The one implementation behind the bundle phases (phases.py) and the harness's CLI runs
(harness/runs.py). os.wait4 reaps the child so its own peak RSS is known, which Popen.wait is not.
A bundle phase may instead be forked by the warm-start server (warm.py), which reaps it the same way.
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
from typing import TYPE_CHECKING, Callable, Iterator, Protocol, TextIO

if TYPE_CHECKING:
    from nvseg_bench.phases.warm import WarmStarter


@dataclass
class ChildRun:
    return_code: int | None
    seconds: float
    tail: list[str] = field(default_factory=list)
    peak_rss_mb: float | None = None
    timed_out: bool = False
    start: str = "cold"  # or "warm": forked from the warm-start server


class Child(Protocol):
    """A started child: a Popen one (ColdChild) or one forked by the warm-start server (warm.WarmChild)."""

    start: str
    pid: int
    stdout: TextIO | None

    def poll(self) -> tuple[int, float | None] | None: ...


class ColdChild:
    """A fresh process in its own session, reaped with os.wait4 so its own peak RSS is known."""

    start = "cold"

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, text=True, errors="replace", start_new_session=True)
        self.pid, self.stdout = self.proc.pid, self.proc.stdout

    def poll(self) -> tuple[int, float | None] | None:
        pid, status, usage = os.wait4(self.pid, os.WNOHANG)
        if pid != self.pid:
            return None
        self.proc.returncode = os.waitstatus_to_exitcode(status)  # so Popen never waits for it again
        return self.proc.returncode, round(usage.ru_maxrss / 1024, 1)


def _pump(child: Child, log: TextIO | None, tail: deque, on_line: Callable[[str], None]) -> None:
    assert child.stdout is not None
    for raw in child.stdout:
        if log is not None:
            log.write(raw)
        line = raw.rstrip("\n")
        tail.append(line)
        on_line(line)


def _wait(child: Child, timeout: float | None) -> tuple[int, float | None]:
    """(exit code, peak RSS in MiB), polling so a timeout can stop it."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        done = child.poll()
        if done is not None:
            return done
        if deadline is not None and time.monotonic() > deadline:
            raise subprocess.TimeoutExpired(str(child.pid), timeout or 0)
        time.sleep(0.2)


def kill_group(child: Child) -> int | None:
    """SIGTERM to the child's group, SIGKILL after 10 s; its exit code when it was reaped."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(child.pid, sig)
            return _wait(child, 10)[0]
        except ProcessLookupError:
            return None
        except subprocess.TimeoutExpired:
            continue
    return None


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
              log: TextIO | None = None, timeout: float | None = None, tail_lines: int = 40,
              warm: WarmStarter | None = None) -> ChildRun:
    """Run to the end (or the timeout); Ctrl-C or SIGTERM stops the child's whole group and is raised again
    (as KeyboardInterrupt). With `warm`, the child is forked from its server when it can be."""
    tail: deque[str] = deque(maxlen=tail_lines)
    started = time.monotonic()
    run = ChildRun(return_code=None, seconds=0.0)
    with sigterm_as_interrupt():
        child: Child = (warm.spawn(command, cwd, env) if warm else None) or ColdChild(command, cwd, env)
        run.start = child.start
        reader = threading.Thread(target=_pump, args=(child, log, tail, on_line))
        reader.start()
        try:
            run.return_code, run.peak_rss_mb = _wait(child, timeout)
        except subprocess.TimeoutExpired:
            run.return_code, run.timed_out = kill_group(child), True
        except KeyboardInterrupt:
            kill_group(child)
            raise
        finally:
            reader.join(timeout=30)
            if child.stdout is not None:
                child.stdout.close()  # the child was reaped by wait4, so nothing else closes its pipe
            run.seconds = round(time.monotonic() - started, 2)
            run.tail = list(tail)
    return run
