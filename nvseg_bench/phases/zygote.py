"""Warm start, the server side: one interpreter imports torch and MONAI once, then forks each phase.

A cold `python -m monai.bundle run` spends nearly all of its start-up importing torch and MONAI
(about 7 s of each phase's 7.5 s on a 2-core CPU). This script runs under the phase interpreter,
imports them once, and forks one child per request. The child is the same command: it takes the
request's argv, working directory and environment, starts its own session, and runs `monai.bundle`'s
own `__main__` through runpy, as `python -m` does. It is a script with only the standard library at
the top, so it works under any phase interpreter, whether or not nvseg_bench is installed there.

Protocol, over the AF_UNIX SOCK_SEQPACKET socket whose fd is argv[1] (one JSON object per message):
  request  {"module": "monai.bundle", "argv": [...], "cwd": "...", "env": {...}}
           with one fd attached: the child's stdout and stderr
  replies  {"pid": N} once forked; {"pid": N, "status": S, "maxrss_kb": K} once reaped (S as from wait);
           {"unavailable": "..."} when the imports failed (the caller then starts phases cold)
The server exits when the socket closes, stopping any phase it still runs.
"""
from __future__ import annotations

import atexit
import json
import os
import runpy
import select
import signal
import socket
import sys
import threading

PRELOAD = ("torch", "monai", "monai.bundle.scripts", "ignite.engine", "fire", "nibabel")


def preload() -> str | None:
    """Import what every phase imports first; the reason when that fails."""
    for name in PRELOAD:
        try:
            __import__(name)
        except BaseException as exc:  # noqa: BLE001 - any failure means: start phases cold
            return f"import {name} failed: {type(exc).__name__}: {exc}"
    return None


def _send(sock: socket.socket, message: dict) -> None:
    try:
        sock.send(json.dumps(message).encode())
    except OSError:
        pass  # the caller is gone; its phases are stopped below


def _reap(sock: socket.socket, live: set[int]) -> None:
    for pid in list(live):
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            live.discard(pid)
            _send(sock, {"pid": pid, "status": status, "maxrss_kb": usage.ru_maxrss})


def _stop(live: set[int]) -> None:
    for pid in live:
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def serve(sock: socket.socket, unavailable: str | None) -> dict | None:
    """The request loop. Returns a job only in a forked child; None in the server once the socket closes."""
    live: set[int] = set()
    while True:
        ready, _, _ = select.select([sock], [], [], 0.1)
        _reap(sock, live)
        if not ready:
            continue
        data, fds, _, _ = socket.recv_fds(sock, 1 << 20, 1)
        if not data:
            _stop(live)
            return None
        if unavailable is not None or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            _send(sock, {"unavailable": unavailable or "a request came without its output fd"})
            continue
        job = json.loads(data) | {"fd": fds[0]}
        pid = os.fork()
        if pid == 0:
            sock.close()
            return job
        os.close(fds[0])
        live.add(pid)
        _send(sock, {"pid": pid})


def become(job: dict) -> None:
    """Turn this forked child into the requested command's process (before runpy runs it)."""
    os.setsid()  # its own group, so the caller can stop it and its workers together
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in any fresh interpreter
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.dup2(job["fd"], 1)
    os.dup2(job["fd"], 2)
    os.close(job["fd"])
    stdin = os.open(os.devnull, os.O_RDONLY)
    os.dup2(stdin, 0)
    os.close(stdin)
    os.chdir(job["cwd"])
    os.environ.clear()
    os.environ.update(job["env"])
    sys.path[0] = os.getcwd()  # where `python -m` puts the working directory
    wanted = [entry for entry in job["env"].get("PYTHONPATH", "").split(os.pathsep) if entry]
    sys.path[1:1] = [entry for entry in wanted if entry not in sys.path]  # read at start-up by a cold one
    sys.dont_write_bytecode = bool(job["env"].get("PYTHONDONTWRITEBYTECODE"))
    sys.argv = [sys.argv[0], *job["argv"]]


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
    sys.path[0] = os.getcwd()  # not this file's folder: nvseg_bench's modules must not shadow anything
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle
    job = serve(sock, preload())
    if job is None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # nothing to save; finalising torch and MONAI would only keep the caller waiting
    become(job)
    try:
        runpy.run_module(job["module"], run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise
    exit_finished()


def exit_finished() -> None:
    """A phase that succeeded exits without finalising every module, which takes about 1.2 s with torch
    and MONAI loaded. What a normal exit does first still happens: non-daemon threads are joined and the
    exit handlers run (logging's flush, multiprocessing's stop of DataLoader workers). A failing phase
    exits the normal way, traceback and all."""
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()  # noqa: SLF001 - the same call a normal interpreter exit makes
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
