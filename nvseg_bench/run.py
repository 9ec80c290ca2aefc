"""One run, as a plain sequence over frozen values:

    prepare (prepare.py) -> phases (phases/loop.py) -> evidence (evidence/collect.py)
    -> decision and run status (evidence/decision.py) -> output.json (output/result.py, output/write.py)

`run` owns the whole flow for a single run or a dry run: it always writes output.json, also when a
phase fails or Ctrl-C lands, and returns the exit code. What the user sees is cli.py's: it passes a
`Show` that prints the plan before the phases and the outcome after them. Not here: runs made of runs
(`--seeds`, `--folds`: campaign/, whose members each end in `conclude`), `nvseg-finetune predict`
(predict.py) and saved runs (`history`, `compare`, `--save-to`: history/, called from commands.py).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from nvseg_bench.errors import EXIT_INTERRUPTED, EXIT_SCHEMA_BUG, DiskFullError
from nvseg_bench.evidence import collect, decision, test_split
from nvseg_bench.inputs.request import Request
from nvseg_bench.model import bundle_source
from nvseg_bench.output import result, write
from nvseg_bench.phases import warm
from nvseg_bench.phases.loop import PhaseRun, run_phases
from nvseg_bench.phases.runner import bundle_env
from nvseg_bench.planning import pins
from nvseg_bench.prepare import prepare
from nvseg_bench.prepared import Prepared
from nvseg_bench.tracking import session


@dataclass(frozen=True)
class Outcome:
    doc: dict[str, Any]
    path: Path
    code: int
    schema_errors: list[str]


class Show(Protocol):
    def plan(self, p: Prepared) -> None: ...

    def outcome(self, outcome: Outcome) -> None: ...

    def tracked(self, tracker: session.Tracker, warnings: list[str]) -> None: ...


def conclude(p: Prepared, phases: PhaseRun, *, started: float, started_epoch: float,
             tracking: dict[str, Any] | None = None) -> Outcome:
    """Evidence, decision, run status and output.json (with the evidence manifest) for a run that got this far;
    `tracking` is what was tracked (tracking/session.py), recorded as output.json's `tracking`."""
    ev = collect.gather(p, phases.results, started_epoch)
    test = test_split.gather(p, phases.results)  # the held-out testing cases, when the datalist lists any
    verdict = decision.decide_on(ev, p.weights.path, test)
    out = result.output_block(p, ev, verdict)
    # its gain warning speaks of the verdict, so only when the verdict rests on these cases
    on_test = verdict["recommended_is_finetuned"] and verdict["verdict_split"] == "test"
    out["test"] = test_split.output_fields(test, on_test, p)
    bundle = result.bundle_block(p)  # a sanity run's differing files are digested here, once
    status = decision.run_status(phases.results, interrupted=phases.interrupted, planned=p.request.dry_run,
                                 preset=p.resolved.preset, bundle=bundle, out=out)
    doc = result.build(p, phases, out, status, bundle=bundle, wall=time.monotonic() - started, started=ev.started)
    if tracking:
        doc["tracking"] = tracking
    try:
        tested = list(p.test_split.entries) if p.test_split else []  # their files are inputs too
        collect.write_manifest(p.out_dir, {"pretrained_ckpt": p.weights.to_json(),
                                           "dataset": collect.dataset_inputs([*p.entries, *tested], p.dataset_dir,
                                                                             p.digests)})
    except DiskFullError as full:  # output.json says so where it still fits, then exit 3 naming the folder
        write.write(doc | {"status": "failed", "headline": f"failed: {full.headline}"}, p.out_dir)
        raise
    path, errors = write.write(doc, p.out_dir)
    code = max(status.code, EXIT_SCHEMA_BUG) if errors else status.code
    return Outcome(doc, path, EXIT_INTERRUPTED if phases.interrupted else code, errors)


def start_warm(req: Request) -> warm.WarmStarter | None:
    """The warm-start server, started before the run prepares so its imports overlap that work."""
    if req.dry_run:
        return None
    return warm.start_early(pins.phase_python(), bundle_env(req.bundle_dir or bundle_source.BUILTIN))


def run(req: Request, show: Show) -> int:
    """The whole flow for one request; returns the exit code. Bad input raises NvsegError before any phase."""
    started, started_epoch = time.monotonic(), time.time()
    starter = start_warm(req)
    try:
        prepared = prepare(req)
    except BaseException:
        if starter is not None:
            starter.close()
        raise
    show.plan(prepared)
    prepared, tracker = session.start(prepared)
    phases = PhaseRun() if req.dry_run else run_phases(prepared, started_epoch, starter)
    outcome = conclude(prepared, phases, started=started, started_epoch=started_epoch, tracking=tracker.block())
    show.outcome(outcome)
    show.tracked(tracker, session.finish(tracker, outcome.doc, session.evidence_files(prepared.out_dir)))
    return outcome.code
