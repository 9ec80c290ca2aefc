"""What a harness feature is: its gates, its options, its items' properties read back by the ledger,
its terminal lines, its report parts and its step at the session's end, as one frozen `Feature`;
and the `Verdict` a gate returns.

Each feature is one module (core_gates, significance, forgetting, trusted_gate, baseline) that
builds one `Feature`; gates.py registers them in one table, and the plugin, the gate items, the
terminal table, the report and the session's end all walk that table. A gate's check gets the run
and the whole HarnessOptions, so an option reaches its gate through the feature that owns both,
never through a branch on the gate's name. Nothing here judges a run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

from nvseg_bench.harness.ledger import Ledger, PropertyReader, RunRecord
from nvseg_bench.harness.options import HarnessOptions
from nvseg_bench.harness.runs import RunEvidence


@dataclass(frozen=True)
class Verdict:
    status: str  # passed | failed | skipped
    message: str
    note: bool = False  # passed, but a person should read the message (the epoch-0 trap)
    properties: tuple[tuple[str, str], ...] = ()  # the item's JUnit properties beyond the common ones


def number(value: Any, spec: str = ".4f") -> str:
    """A figure for a table or a message: '-' when the run did not record it."""
    return "-" if value is None else format(value, spec)


def ok(message: str, note: bool = False, properties: tuple[tuple[str, str], ...] = ()) -> Verdict:
    return Verdict("passed", message, note, properties)


def bad(message: str, properties: tuple[tuple[str, str], ...] = ()) -> Verdict:
    return Verdict("failed", message, properties=properties)


def skip(message: str) -> Verdict:
    return Verdict("skipped", message)


Check = Callable[[RunEvidence, HarnessOptions], Verdict]


@dataclass(frozen=True)
class Gate:
    title: str
    check: Check
    options: tuple[str, ...] = ()  # the options that set it (docs/harness.md's gate table names them)
    trusted_only: bool = False  # an item only under --nvseg-trusted / --nvseg-trusted-only
    opt_in: bool = False  # an item always, but it skips unless its option turns it on
    conditional: bool = False  # skips when the run lacks what it judges (forgetting: a run without the check)


@dataclass(frozen=True)
class Section:
    """A report section of a feature: a heading, a line of text, and a table (empty: none)."""

    title: str
    text: str
    header: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    outcome_col: int | None = None  # the column whose value styles the cell in report.html


Figure = tuple[str, str, Callable[[], "bytes | None"]]  # (key, caption, make the PNG; None: no data for it)


def _none(*_: Any) -> list:
    return []


@dataclass(frozen=True)
class Feature:
    name: str
    gates: dict[str, Gate] = field(default_factory=dict)
    add_options: Callable[[pytest.OptionGroup, pytest.Parser], None] | None = None
    read_options: Callable[[pytest.Config], dict[str, Any]] | None = None  # -> HarnessOptions fields
    path_options: tuple[str, ...] = ()  # its `--nvseg-NAME=DIR` options (the two-word rootdir check)
    column: tuple[str, Callable[[RunRecord], str | None]] | None = None  # (title, a run's cell) in the terminal table
    terminal_lines: Callable[[RunRecord], list[str]] = _none  # under the terminal table, per run
    headline: Callable[[RunRecord], list[tuple[str, str]]] = _none  # rows of the report's headline table
    sections: Callable[[RunRecord], list[Section]] = _none  # the report's sections after the gates table
    figures: Callable[[RunRecord], list[Figure]] = _none  # the report's figures after its own
    read_properties: PropertyReader | None = None  # its items' properties back onto the run's record (ledger)
    finish: Callable[[Ledger, HarnessOptions, Path | None], None] | None = None  # the session's end (controller)
