"""The ledger: every gate item's outcome, gathered from test reports (also those xdist workers
send to the controller), grouped by run. It is registered as a plugin object for its one hook; what
a feature's item carries beyond the outcome (the verifier's verdict, the comparison with the
baseline) each feature reads back onto the run's record itself (`Feature.read_properties`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import pytest

from nvseg_bench.harness.trust import Trust


@dataclass
class GateOutcome:
    outcome: str  # passed | failed | skipped | error
    message: str
    seconds: float


@dataclass
class RunRecord:
    name: str
    out: str | None = None
    sources: set[str] = field(default_factory=set)  # ran / shared / cache, as the items saw it
    skip_reason: str | None = None
    gates: dict[str, GateOutcome] = field(default_factory=dict)
    schema_problems: list[str] = field(default_factory=list)  # of output.json once `gates` is in it
    doc: dict[str, Any] | None = None  # output.json, read once (see output_json)
    trust: Trust | None = None  # the verifier's verdict as the `trusted` item reported it (trusted mode)
    comparison: dict[str, Any] | None = None  # with its saved baseline, as the `baseline` item reported it
    history: list[dict[str, Any]] = field(default_factory=list)  # saved runs of this name (report's trend plot)

    def output_json(self) -> dict[str, Any] | None:
        """The run's output.json, read on first use and kept (also once `gates` is added to it)."""
        path = Path(self.out or "") / "output.json"
        if self.doc is None and self.out and path.is_file():
            self.doc = json.loads(path.read_text())
        return self.doc

    @property
    def source(self) -> str:
        """'ran', 'ran, shared by xdist workers', 'cache', or 'pack' (judged as found)."""
        if "ran" in self.sources:
            return "ran, shared by xdist workers" if "shared" in self.sources else "ran"
        for kind in ("cache", "pack", "shared"):
            if kind in self.sources:
                return kind
        return "?"

    @property
    def failed(self) -> list[str]:
        return [g for g, o in self.gates.items() if o.outcome in ("failed", "error")]

    @property
    def verdict(self) -> str:
        if self.out is None and self.skip_reason:
            return "SKIPPED"
        return "FAIL" if self.failed else "PASS"


def _reason(report: pytest.TestReport) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    text = report.longreprtext.strip().splitlines()
    return text[-1] if text else ""


PropertyReader = Callable[[dict[str, Any], RunRecord], None]  # a feature reading its items' properties


class Ledger:
    def __init__(self, readers: Sequence[PropertyReader] = ()) -> None:
        self.readers = tuple(readers)  # each feature's reader of its items' properties
        self.runs: dict[str, RunRecord] = {}
        self.report_paths: list[str] = []
        self.saved_paths: list[str] = []  # history files this session wrote (--nvseg-autosave)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props: dict[str, Any] = dict(report.user_properties)
        if "nvseg_run" not in props or "nvseg_gate" not in props:
            return
        if report.when != "call" and report.passed:
            return
        run = self.runs.setdefault(props["nvseg_run"], RunRecord(props["nvseg_run"]))
        run.out = props.get("nvseg_out", run.out)
        if "nvseg_source" in props:
            run.sources.add(props["nvseg_source"])
        for read in self.readers:
            read(props, run)
        if report.when == "setup" and report.skipped:
            run.skip_reason = _reason(report)
        outcome = report.outcome if report.when == "call" else "skipped" if report.skipped else "error"
        message = props.get("nvseg_message") if report.when == "call" else None
        run.gates[props["nvseg_gate"]] = GateOutcome(outcome, message or _reason(report), round(report.duration, 3))
