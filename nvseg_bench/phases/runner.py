"""Phases: each step of a run is one `python -m monai.bundle run` child process.

Builds the exact command, runs it (child.run_child, forked from the warm-start server when one is
given: warm.py) with the output dir as working directory (bundle on PYTHONPATH, no bytecode written
beside it), tees its output to a log file, shows progress on the console, and
records return code, wall time, peak memory and a failure class. Ctrl-C stops the whole child
process group. Never imports monai.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, TextIO

from nvseg_bench.phases.child import run_child
from nvseg_bench.phases.gpusampler import GpuSampler
from nvseg_bench.phases.logparse import LogFacts
from nvseg_bench.planning.pins import phase_python
from nvseg_bench.phases.warm import WarmStarter

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
    start: str = "cold"  # or "warm": forked from the warm-start server (warm.py)
    reused_from: str | None = None  # the key of the kept identical evaluation this is (eval_memo.py)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("facts")
        data.pop("arrivals")
        data.pop("start")
        data.pop("reused_from")
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


# glibc gives every freed block above its mmap threshold back to the kernel and trims the heap top as soon
# as it can, so each sliding window and each batch faults fresh zeroed pages in again: on the 2-core CPU a
# fifth of a phase's CPU time went to the kernel. These keep blocks up to 32 MiB (glibc's ceiling for this
# setting) and a freed heap top in the process. Measured with benchmarks/scale_bench.py on NVIDIA's configs
# (docs/measured.md): 0.85x the wall, the same numbers, about 10% more peak RSS. Other C libraries
# ignore the variables.
ALLOCATOR_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(4 << 30),
                 "MALLOC_TOP_PAD_": str(256 << 20)}


def own_allocator(environ: Mapping[str, str]) -> str | None:
    """The user's own allocator settings, which win over ALLOCATOR_ENV: a MALLOC_* variable or an LD_PRELOAD."""
    named = sorted(k for k in environ if k.startswith("MALLOC_")) + (["LD_PRELOAD"] if environ.get("LD_PRELOAD") else [])
    return ", ".join(named) or None


def allocator_line(environ: Mapping[str, str]) -> str:
    """The plan's line on the phases' allocator settings."""
    own = own_allocator(environ)
    if own:
        return f"allocator: yours ({own}); the phases keep it"
    return ("allocator: glibc keeps freed blocks up to 32 MiB in the phases (MALLOC_MMAP_THRESHOLD_ and two more): "
            "fewer page faults, about 0.85x the wall on a CPU; set any MALLOC_* variable to choose your own")


def bundle_env(bundle_dir: Path, staged_dir: Path | None = None, *, allocator: bool = True) -> dict[str, str]:
    """The phases' environment: the bundle importable (its `scripts`), and the run's staged helper modules
    (OUT/configs: resume.py's RNG states) after it; ALLOCATOR_ENV unless `allocator` is off (a by-hand
    baseline) or the user chose their own."""
    env = dict(os.environ)
    if allocator and not own_allocator(env):
        env |= ALLOCATOR_ENV
    paths = [str(bundle_dir), str(staged_dir) if staged_dir else "", env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # nothing may appear inside the bundle dir
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Progress:
    """One console line per event, in the style `[2/3 finetune] epoch 3/5  iter 41/50  loss 0.612`."""

    def __init__(self, spec: PhaseSpec, stream: TextIO, started: float) -> None:
        self.spec, self.stream, self.started = spec, stream, started
        self.tty = stream.isatty()
        self.oom_said = False

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
        elif kind == "oom" and not self.oom_said:  # one traceback repeats the message several times
            self.oom_said = True
            self.stream.write(f"{tag} out of memory reported in the log\n")
        else:
            return
        self.stream.flush()


def _reader(result: PhaseResult, progress: Progress) -> Callable[[str], None]:
    """What each output line of a phase does: feed the log facts, time the telemetry, show progress."""

    def on_line(line: str) -> None:
        kind = result.facts.feed(line)
        if kind == "telemetry":
            event = str(result.facts.telemetry[-1].get("event"))
            # the first engine built, the last completion
            if event == "completed" or event not in result.arrivals:
                result.arrivals[event] = time.monotonic() - progress.started
        progress.show(result.facts, kind)

    return on_line


def run_phase(spec: PhaseSpec, cwd: Path, env: dict[str, str], timeout: float | None = None,
              stream: TextIO = sys.stdout, gpu_interval: float = 1.0, warm: WarmStarter | None = None) -> PhaseResult:
    result = PhaseResult(name=spec.name, command=spec.command, log_path=str(spec.log_path))
    started = time.monotonic()
    stream.write(f"[{spec.index}/{spec.total} {spec.name}] started; log {spec.log_path}\n")
    stream.flush()
    with spec.log_path.open("w") as log:
        log.write("$ " + " ".join(spec.command) + "\n")
        log.flush()
        sampler = GpuSampler(gpu_interval).start()
        try:
            run = run_child(spec.command, cwd=cwd, env=env, on_line=_reader(result, Progress(spec, stream, started)),
                            log=log, timeout=timeout, tail_lines=TAIL_LINES, warm=warm)
        except KeyboardInterrupt:
            result.failure = "interrupted"
            raise
        finally:
            result.gpu = sampler.stop()
        result.return_code, result.peak_rss_mb, result.log_tail = run.return_code, run.peak_rss_mb, run.tail
        result.start = run.start
        result.seconds = round(time.monotonic() - started, 2)
        # torch's peak allocated from inside the run; nvidia-smi's whole-device peak when that is missing
        result.peak_gpu_mb = result.facts.peak("peak_gpu_mb") or result.gpu.get("smi_peak_gpu_mb")
        if run.timed_out:
            result.failure = "timeout"
        elif result.return_code != 0:
            result.failure = "oom" if result.facts.oom else "crash"
    state = "ok" if result.return_code == 0 else f"failed ({result.failure}, exit {result.return_code})"
    stream.write(f"[{spec.index}/{spec.total} {spec.name}] {state} in {result.seconds:.1f} s\n")
    stream.flush()
    return result
