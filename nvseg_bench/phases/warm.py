"""Warm start, the caller's side: phases forked from an interpreter that has already imported torch and
MONAI (zygote.py), instead of each paying those imports again.

Each phase is still its own process running `monai.bundle`'s `__main__` with the same argv, working
directory and environment, in its own session; the log's first line is still the command a user can
paste. Only single-process phases on the CPU start warm by default: a forked CUDA process is only
safe if the parent never touched CUDA, which has not been checked on a GPU yet
(NVSEG_WARM_START=1 allows it there, 0 turns warm start off). Anything the server cannot do (its
imports fail, it does not answer, it exits) makes that phase and the rest start cold, with the reason
in output.json's runtime.warm_start.
"""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import shutil
import subprocess
import threading
from collections import deque
from pathlib import Path
from typing import Any, Mapping, TextIO

ZYGOTE = Path(__file__).with_name("zygote.py")
ENV = "NVSEG_WARM_START"
READY_LIMIT_S = 180.0  # the server's imports; a cold phase pays the same before its first line


def choose(device: str, nproc: int, multi_gpu: bool, environ: Mapping[str, str]) -> str | None:
    """None when phases may start warm, else why not (said in output.json)."""
    asked = environ.get(ENV, "").strip()
    if asked == "0":
        return f"off ({ENV}=0)"
    if nproc > 1 or multi_gpu:
        return "off: torchrun starts the phase processes"
    if device != "cpu" and asked != "1":
        return f"off on a GPU until checked there ({ENV}=1 turns it on)"
    return None


class WarmChild:
    """A forked phase: the same face as child.ColdChild (pid, stdout, poll)."""

    start = "warm"

    def __init__(self, starter: WarmStarter, pid: int, stdout: TextIO) -> None:
        self.starter, self.pid, self.stdout = starter, pid, stdout

    def poll(self) -> tuple[int, float | None] | None:
        """(exit code, peak RSS in MiB) once the server has reaped it."""
        reply = self.starter.receive(0.0)
        if reply is None:
            return None
        if reply.get("pid") == self.pid and "status" in reply:
            return os.waitstatus_to_exitcode(reply["status"]), round(reply["maxrss_kb"] / 1024, 1)
        if reply.get("gone"):
            self.starter.note = "the warm-start server exited during a phase; its outcome is unknown"
            return 1, None
        return None


class WarmStarter:
    """Starts zygote.py under the phase interpreter; `spawn` forks a phase or returns None (start it cold)."""

    def __init__(self, python: str, cwd: Path, env: dict[str, str]) -> None:
        self.python, self.note, self.requests = python, None, 0
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.proc = subprocess.Popen([python, str(ZYGOTE), str(theirs.fileno())], cwd=cwd, env=env,
                                     pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True)
        theirs.close()
        # its own output (import warnings, a crash) is kept for logs/warm_start.log: it may start before OUT exists
        self.output: deque[str] = deque(maxlen=200)
        threading.Thread(target=self.output.extend, args=(self.proc.stdout,), daemon=True).start()

    def receive(self, timeout: float) -> dict[str, Any] | None:
        """The server's next message; {"gone": True} once it has exited, None when nothing came in time."""
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return None
        data = self.sock.recv(1 << 16)
        return json.loads(data) if data else {"gone": True}

    def spawn(self, command: list[str], cwd: Path, env: dict[str, str]) -> WarmChild | None:
        if self.note is not None or command[:2] != [self.python, "-m"] or len(command) < 3:
            return None
        read_end, write_end = os.pipe()
        request = {"module": command[2], "argv": command[3:], "cwd": str(cwd), "env": env}
        try:
            self.requests += 1
            socket.send_fds(self.sock, [json.dumps(request).encode()], [write_end])
        except OSError as exc:
            self.note = f"the warm-start server did not take a request ({exc})"
        finally:
            os.close(write_end)
        reply = None if self.note else self.receive(READY_LIMIT_S)
        if reply is None or "pid" not in reply:
            os.close(read_end)
            self.note = self.note or (reply or {}).get("unavailable") or (
                "the warm-start server exited (its output: logs/warm_start.log)" if reply else
                f"the warm-start server did not answer in {READY_LIMIT_S:.0f} s")
            self.close()
            return None
        return WarmChild(self, reply["pid"], os.fdopen(read_end, "r", errors="replace"))

    def close(self, log_path: Path | None = None) -> None:
        """End the server (it stops any phase it still runs), wait for it, and keep what it printed. One that was
        never asked for a phase may still be importing, so it is killed at once: a refused run answers fast."""
        self.sock.close()
        try:
            self.proc.wait(timeout=10 if self.requests else 0)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if log_path is not None and self.output and log_path.parent.is_dir():
            log_path.write_text("".join(self.output))


def start_early(python: str, env: dict[str, str]) -> WarmStarter | None:
    """A server started before the run prepares (audit, plan, staging), so its imports overlap that work;
    `env` is the phases' environment (phases.bundle_env). Only where warm start is likely to be used: not
    turned off, and no NVIDIA GPU in sight unless asked."""
    asked = env.get(ENV, "").strip()
    if asked == "0" or (asked != "1" and (shutil.which("nvidia-smi") or env.get("CUDA_VISIBLE_DEVICES"))):
        return None
    return WarmStarter(python, Path.cwd(), env)
