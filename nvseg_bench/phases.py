"""Phases: each step of a run is one `python -m monai.bundle run` child process.

Builds the exact command, runs it with the output dir as working directory (bundle on PYTHONPATH,
no bytecode written beside it), tees its output to a log file, shows progress on the console, and
records return code, wall time, peak memory and a failure class. Ctrl-C stops the whole child
process group. Never imports monai.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .gpusampler import GpuSampler
from .logparse import LogFacts
from .pins import phase_python

TAIL_LINES = 40


@dataclass(frozen=True)
class PhaseSpec:
    name: str
    index: int
    total: int
    command: list[str]
    log_path: Path


@dataclass
class PhaseResult:
    name: str
    command: list[str]
    log_path: str
    return_code: int | None = None
    seconds: float = 0.0
    peak_gpu_mb: float | None = None
    peak_rss_mb: float | None = None
    failure: str | None = None  # None | oom | crash | timeout | interrupted
    gpu: dict[str, Any] = field(default_factory=dict)  # nvidia-smi samples, when it exists
    log_tail: list[str] = field(default_factory=list)
    facts: LogFacts = field(default_factory=LogFacts)
    arrivals: dict[str, float] = field(default_factory=dict)  # telemetry event -> seconds after start, first/last

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("facts")
        data.pop("arrivals")
        return data

    def timing(self) -> dict[str, float | None]:
        """Start-up (process start to the engine built: imports, network, dataset caching), engine (to its
        last completion) and teardown (to process exit), from when the telemetry lines arrived."""
        ready, done = self.arrivals.get("attached"), self.arrivals.get("completed")
        if ready is None or done is None:
            return {"startup_s": None, "engine_s": None, "teardown_s": None}
        return {"startup_s": round(ready, 2), "engine_s": round(done - ready, 2),
                "teardown_s": round(self.seconds - done, 2)}


def command_prefix(nproc: int, torchrun_args: list[str] | None = None) -> list[str]:
    """`python -m monai.bundle run`, or torchrun around it for several processes or nodes."""
    python = phase_python()
    if nproc >= 2 or torchrun_args:
        return [python, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
                *(torchrun_args or []), "-m", "monai.bundle", "run"]
    return [python, "-m", "monai.bundle", "run"]


def bundle_command(prefix: list[str], stack: list[str], bundle_dir: Path, extra: dict[str, str] | None = None) -> list[str]:
    cmd = [*prefix, "--config_file", json.dumps([str(p) for p in stack]), "--bundle_root", str(bundle_dir)]
    logging_conf = bundle_dir / "configs" / "logging.conf"
    if logging_conf.is_file():
        cmd += ["--logging_file", str(logging_conf)]
    for key, value in (extra or {}).items():
        cmd += [f"--{key}", value]
    return cmd


def child_env(bundle_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(bundle_dir), env.get("PYTHONPATH", "")] if p)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # nothing may appear inside the bundle dir
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Progress:
    """One console line per event, in the style `[2/3 finetune] epoch 3/5  iter 41/50  loss 0.612`."""

    def __init__(self, spec: PhaseSpec, stream: TextIO, started: float) -> None:
        self.spec, self.stream, self.started = spec, stream, started
        self.tty = stream.isatty()

    def _elapsed(self) -> str:
        seconds = int(time.monotonic() - self.started)
        return f"{seconds // 60:02d}:{seconds % 60:02d} elapsed"

    def show(self, facts: LogFacts, kind: str | None) -> None:
        tag = f"[{self.spec.index}/{self.spec.total} {self.spec.name}]"
        if kind == "iter" and facts.last_iter:
            e, n_e, i, n_i = facts.last_iter
            text = f"{tag} epoch {e}/{n_e}  iter {i}/{n_i}  loss {facts.train_loss[-1]:.3f}  {self._elapsed()}"
            if self.tty:
                self.stream.write("\r" + text.ljust(100))
            elif i == n_i:
                self.stream.write(text + "\n")
        elif kind == "val" and self.spec.name.startswith("eval"):
            score = facts.val_dice[max(facts.val_dice)]
            self.stream.write(("\r" if self.tty else "") + f"{tag} formal Dice {score:.4f}  {self._elapsed()}\n")
        elif kind == "val":
            epoch = max(facts.val_dice)
            best_epoch = max(facts.val_dice, key=lambda k: facts.val_dice[k])
            best = " (best)" if best_epoch == epoch else f" (best {facts.val_dice[best_epoch]:.4f}, epoch {best_epoch})"
            self.stream.write(("\r" if self.tty else "") + f"{tag} val Dice {facts.val_dice[epoch]:.4f} at epoch {epoch}{best}  {self._elapsed()}\n")
        elif kind == "oom":
            self.stream.write(f"{tag} out of memory reported in the log\n")
        else:
            return
        self.stream.flush()


def _pump(proc: subprocess.Popen, log: TextIO, result: PhaseResult, tail: deque, progress: Progress) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        log.write(line)
        line = line.rstrip("\n")
        tail.append(line)
        kind = result.facts.feed(line)
        if kind == "telemetry":
            event = str(result.facts.telemetry[-1].get("event"))
            # the first engine built, the last completion
            if event == "completed" or event not in result.arrivals:
                result.arrivals[event] = time.monotonic() - progress.started
        progress.show(result.facts, kind)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def run_phase(spec: PhaseSpec, cwd: Path, env: dict[str, str], timeout: float | None = None,
              stream: TextIO = sys.stdout, gpu_interval: float = 1.0) -> PhaseResult:
    result = PhaseResult(name=spec.name, command=spec.command, log_path=str(spec.log_path))
    started = time.monotonic()
    stream.write(f"[{spec.index}/{spec.total} {spec.name}] started; log {spec.log_path}\n")
    stream.flush()
    tail: deque = deque(maxlen=TAIL_LINES)
    with spec.log_path.open("w") as log:
        log.write("$ " + " ".join(spec.command) + "\n")
        log.flush()
        proc = subprocess.Popen(spec.command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, errors="replace", start_new_session=True)
        reader = threading.Thread(target=_pump, args=(proc, log, result, tail, Progress(spec, stream, started)))
        reader.start()
        sampler = GpuSampler(gpu_interval).start()
        try:
            _, status, usage = _wait(proc, timeout)
            result.return_code = os.waitstatus_to_exitcode(status)
            result.peak_rss_mb = round(usage.ru_maxrss / 1024, 1)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            result.failure, result.return_code = "timeout", proc.returncode
        except KeyboardInterrupt:
            _kill_group(proc)
            result.failure, result.return_code = "interrupted", proc.returncode
            raise
        finally:
            reader.join(timeout=30)
            if proc.stdout is not None:
                proc.stdout.close()  # wait4 reaped the child, so Popen never closes its pipe itself
            result.gpu = sampler.stop()
            result.seconds = round(time.monotonic() - started, 2)
            result.log_tail = list(tail)
            # torch's peak allocated from inside the run; nvidia-smi's whole-device peak when that is missing
            result.peak_gpu_mb = result.facts.peak("peak_gpu_mb") or result.gpu.get("smi_peak_gpu_mb")
            if result.failure is None and result.return_code != 0:
                result.failure = "oom" if result.facts.oom else "crash"
    state = "ok" if result.return_code == 0 else f"failed ({result.failure}, exit {result.return_code})"
    stream.write(f"[{spec.index}/{spec.total} {spec.name}] {state} in {result.seconds:.1f} s\n")
    stream.flush()
    return result


def _wait(proc: subprocess.Popen, timeout: float | None) -> tuple[int, int, Any]:
    """os.wait4 gives this child's own peak RSS, which Popen.wait does not."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return pid, status, usage
        if deadline is not None and time.monotonic() > deadline:
            raise subprocess.TimeoutExpired(proc.args, timeout or 0)
        time.sleep(0.2)
