"""`--parallel N`: up to N members of a campaign (folds, seeds) at once on this machine.

Each member runs in its own worker process (forked, so nothing is pickled but the member's arguments and
its Outcome) with its own share of the machine, set in the worker's environment before the member
prepares, so its plan sees only its share and its phases inherit it (phases/runner.bundle_env copies
the environment): on GPUs a disjoint set of the visible devices (CUDA_VISIBLE_DEVICES), on the CPU a
share of the cores (OMP_NUM_THREADS and MKL_NUM_THREADS, which torch's intra-op pool reads). A member
is the same computation as in a sequential campaign, so the pooled figures are the same. A member that
fails, or whose process dies, is reported by its name; the others finish and are kept.
"""
from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import Any, Callable, Mapping

from nvseg_bench.errors import ArgumentError, NvsegError
from nvseg_bench.run import Outcome

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
_slots: Any = None  # the parent's queue of shares, inherited by the forked workers


def visible_gpus(environ: Mapping[str, str]) -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them: its value when set, else
    nvidia-smi's indices, else none."""
    given = environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return [g.strip() for g in given.split(",") if g.strip() and g.strip() != "-1"]
    if not shutil.which("nvidia-smi"):
        return []
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False).stdout
    return [str(i) for i, line in enumerate(listed.splitlines()) if line.startswith("GPU ")]


def shares(n: int, environ: Mapping[str, str], cores: int | None) -> list[dict[str, str]]:
    """n environment changes, one per worker: disjoint GPU sets when there are GPUs, else core shares."""
    gpus = visible_gpus(environ)
    if gpus:
        if len(gpus) < n:
            raise ArgumentError(f"--parallel {n} needs a GPU per member, but {len(gpus)} are visible "
                                f"({', '.join(gpus)}).",
                                fix=[f"Use --parallel {len(gpus)} or fewer, or run the members as a SLURM job array "
                                     "(--slurm-array)."])
        per = len(gpus) // n
        return [{"CUDA_VISIBLE_DEVICES": ",".join(gpus[i * per:(i + 1) * per])} for i in range(n)]
    threads = str(max(1, (cores or 1) // n))
    return [{var: threads for var in THREAD_VARS} for _ in range(n)]


def _take_share() -> None:
    """A worker's initializer: its share, once, for every member it runs."""
    os.environ.update(_slots.get())


def _member(job: Callable[..., Outcome], args: tuple) -> Outcome | str:
    """One member in a worker: its Outcome, or what stopped it (a bad input, a crash) as one line."""
    try:
        return job(*args)
    except NvsegError as exc:
        return exc.render("nvseg-finetune").strip().splitlines()[0]
    except Exception as exc:  # noqa: BLE001 - a member's bug is that member's failure, not the campaign's
        return f"{type(exc).__name__}: {exc}"


def run_members(jobs: dict[Any, tuple[Callable[..., Outcome], tuple]], n: int, on_done: Callable[[Any, Outcome | str], None],
                environ: Mapping[str, str] | None = None) -> dict[Any, Outcome | str]:
    """Run each job (a module-level function and its arguments) in up to n worker processes, each with its
    share; `on_done(name, result)` as each finishes. Returns name -> Outcome, or the failure's line."""
    global _slots
    context = multiprocessing.get_context("fork")
    workers = min(n, len(jobs))
    _slots = context.Queue()
    for share in shares(workers, environ if environ is not None else os.environ, os.cpu_count()):
        _slots.put(share)
    results: dict[Any, Outcome | str] = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_take_share) as pool:
        futures: dict[Future, Any] = {pool.submit(_member, job, args): name for name, (job, args) in jobs.items()}
        for future in as_completed(futures):
            name = futures[future]
            try:
                results[name] = future.result()
            except Exception as exc:  # noqa: BLE001 - the worker process died (killed, out of memory)
                results[name] = f"its worker process ended ({type(exc).__name__}: {exc})"
            on_done(name, results[name])
    return {name: results[name] for name in jobs}
