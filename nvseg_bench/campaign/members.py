"""What every campaign does with its member runs: the parent tracking run, the shared pretrained evaluation
linked into a member's folder, and one member run that stands on it.

The pretrained evaluation does not depend on the seed or the fold, so a campaign runs it once
(SHARED_PHASE) and each member's folder gets its share: the evaluation folder linked (seeds) or cut to
its cases (folds, evidence/pool.merge_eval), and the phase log copied. A member then runs the other
phases and writes its own output.json through run.conclude, as a single run does. Never decides which
members run or pools their figures.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path

from nvseg_bench.inputs.request import Request
from nvseg_bench.paths import phase_log
from nvseg_bench.phase_names import EVAL_PRETRAINED
from nvseg_bench.phases import warm
from nvseg_bench.phases.loop import run_phases
from nvseg_bench.phases.runner import PhaseResult
from nvseg_bench.prepared import Prepared
from nvseg_bench.run import Outcome, conclude, start_warm
from nvseg_bench.store.files import link_tree
from nvseg_bench.tracking import session

SHARED_PHASE = EVAL_PRETRAINED  # run once per campaign, shared by every member


def with_parent(req: Request) -> tuple[Request, session.Tracker]:
    """The campaign's parent tracking run for OUT, and the request its members run under (each a child run)."""
    parent = session.parent(req.tracking, req.output_dir)
    return replace(req, tracking=session.member_items(req.tracking, parent)), parent


def with_values(command: list[str], values: dict[str, str]) -> list[str]:
    """The bundle command with `--key value` set: replaced where it is given, appended where not."""
    command = list(command)
    for key, value in values.items():
        flag = f"--{key}"
        if flag in command:
            command[len(command) - 1 - command[::-1].index(flag) + 1] = value
        else:
            command += [flag, value]
    return command


def share(first: Path, target: Path) -> None:
    """The whole shared evaluation of the member in `first` linked into the member in `target`."""
    link_tree(first / SHARED_PHASE, target / SHARED_PHASE)
    share_log(first, target)


def share_log(first: Path, target: Path) -> None:
    """The shared evaluation's log, copied into a member run's logs/ (a copy: the member's manifest hashes it)."""
    (target / "logs").mkdir(parents=True, exist_ok=True)
    log = phase_log(first, SHARED_PHASE)
    if log.is_file():
        shutil.copy2(log, target / "logs" / log.name)


def run_member(prepared: Prepared, shared: PhaseResult | None, parent: session.Tracker | None = None,
               started: tuple[float, float] | None = None,
               starter: warm.WarmStarter | None = None) -> tuple[Outcome, PhaseResult | None]:
    """The phases and output.json of one member run (a sweep's seed, a CV fold); with `shared`, the
    pretrained evaluation already in its folder stands for the phase, which is not run again. With
    `parent`, the member is tracked as its child run; its warnings join the parent's. `started`:
    (monotonic, epoch) when the member began, else now. `starter`: the campaign's warm-start server, which
    stays open for the next member (a server per member made each member's first phase wait for its
    imports: the per-fold finetune slowdown of issue 38)."""
    started_mono, started_epoch = started or (time.monotonic(), time.time())
    prepared, tracker = session.start(prepared, parent)
    phases = run_phases(prepared, started_epoch, starter, skip=frozenset({SHARED_PHASE}) if shared else frozenset(),
                        shared_starter=starter is not None)
    if shared is not None:  # evaluated once for all members; its figures are that evaluation's
        log = str(phase_log(prepared.out_dir, SHARED_PHASE))
        phases = replace(phases, results={SHARED_PHASE: replace(shared, log_path=log)} | phases.results)
    outcome = conclude(prepared, phases, started=started_mono, started_epoch=started_epoch, tracking=tracker.block())
    warnings = session.finish(tracker, outcome.doc, session.evidence_files(prepared.out_dir))
    if parent is not None:
        parent.warnings.extend(w for w in warnings if w not in parent.warnings)
    return outcome, phases.results.get(SHARED_PHASE)


class CampaignStarter:
    """One warm-start server for a whole campaign, started before its members prepare (as a single run's
    is: run.start_warm) and closed when the campaign ends: `with CampaignStarter(req) as starter`."""

    def __init__(self, req: Request) -> None:
        self.starter = start_warm(req)

    def __enter__(self) -> warm.WarmStarter | None:
        return self.starter

    def __exit__(self, *exc: object) -> None:
        if self.starter is not None:
            self.starter.close()
