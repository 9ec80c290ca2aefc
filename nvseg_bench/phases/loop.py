"""The phases of a run, in order: each one run (warm-started when it can be), kept from an earlier identical
run (any pretrained pass: eval_memo.py), or kept from the stopped run a --resume continues (phases/resumed.py,
stage/resume.py).

Stops at the first failure and at Ctrl-C/SIGTERM. Holds the preprocessing cache's key while the phases
read it (no other run evicts it) and trims the cache to its cap afterwards. Returns a frozen `PhaseRun`;
the Prepared it reads is not changed.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from nvseg_bench.phase_names import FINETUNE
from nvseg_bench.phases import eval_memo, warm
from nvseg_bench.paths import phase_log
from nvseg_bench.phases import resumed
from nvseg_bench.phases.runner import PhaseResult, PhaseSpec, bundle_env, run_phase
from nvseg_bench.planning import pins
from nvseg_bench.prepared import Prepared
from nvseg_bench.stage import resume
from nvseg_bench.stage.preprocess_cache import CacheStart
from nvseg_bench.store import limits


@dataclass(frozen=True)
class PhaseRun:
    """What the phases did: each phase's result (in run order), whether Ctrl-C or SIGTERM ended them, why
    phases started cold when they did, and the preprocessing cache's state when they began."""

    results: dict[str, PhaseResult] = field(default_factory=dict)
    interrupted: bool = False
    warm_note: str | None = None
    cache_start: CacheStart | None = None


def _say(index: int, total: int, name: str, text: str) -> None:
    print(f"[{index}/{total} {name}] {text}")


def run_phases(p: Prepared, started_wall: float, starter: warm.WarmStarter | None = None,
               skip: frozenset[str] = frozenset(), shared_starter: bool = False) -> PhaseRun:
    """Run p.commands in order but those in `skip` (a sweep's shared evaluation). `starter` is a warm-start
    server started early; it is used when warm start applies, and closed unless `shared_starter` (a
    campaign's one server, kept open for its next member: campaign/members.py)."""
    results: dict[str, PhaseResult] = {}
    env = bundle_env(p.bundle_dir, p.staged.config_dir)
    hold, cache_start = None, None
    if p.cache is not None:
        cache_start = p.cache.begin()
        hold = limits.Hold(p.cache.key_dir)  # no other run removes this key while the phases read it
        env |= p.cache.env_vars()
    (p.out_dir / "logs").mkdir(exist_ok=True)
    warm_note = warm.choose(p.plan.device, p.plan.nproc_per_node, p.plan.multi_gpu, os.environ)
    if warm_note and starter is not None:
        if not shared_starter:
            starter.close()
        starter = None
    elif not warm_note and starter is None:
        starter = warm.WarmStarter(pins.phase_python(), p.out_dir, env)
    names = [name for name in p.commands if name not in skip]
    memo_keys = {name: eval_memo.key(p, name) for name in names if p.cache is not None}
    interrupted = False
    try:
        for index, name in enumerate(names, start=1):
            spec = PhaseSpec(name, index, len(names), p.commands[name], phase_log(p.out_dir, name))
            memo_key = memo_keys.get(name)
            kept = eval_memo.recall(p.cache.root, memo_key, p, name) if memo_key and p.cache is not None else None
            if kept is not None:
                results[name] = kept[0]
                _say(index, len(names), name, f"reused: the run in {kept[1]} ran the same checkpoint on the same "
                     "cases with the same prompts, configs and versions; its outputs and log are copied")
                continue
            if (earlier := resumed.before_phase(p, name, spec.command)) is not None:
                results[name] = earlier
                _say(index, len(names), name, "kept: it finished before the run stopped")
                continue
            try:
                results[name] = run_phase(spec, cwd=p.out_dir, env=env, timeout=p.request.phase_timeout, warm=starter)
            except KeyboardInterrupt:
                results[name] = PhaseResult(name=name, command=spec.command, log_path=str(spec.log_path),
                                            failure="interrupted", seconds=round(time.time() - started_wall, 2))
                interrupted = True
                break
            if memo_key and p.cache is not None:
                eval_memo.keep(p.cache.root, memo_key, results[name], p)
            if results[name].return_code != 0:
                break
            if name == FINETUNE:
                resume.discard(p.out_dir)  # a finished finetune needs no epoch checkpoint
    finally:
        if starter is not None:
            if not shared_starter:
                starter.close(p.out_dir / "logs" / "warm_start.log")
            warm_note = starter.note
        if hold is not None and p.cache is not None:
            hold.close()
            if p.cache.cap is not None:  # what the phases wrote may have passed the cap: trim the others
                limits.make_room(p.cache.root, p.cache.cap, 0, keep=frozenset({p.cache.key_dir}))
    return PhaseRun(resumed.with_trace(p, results), interrupted, warm_note, cache_start)
