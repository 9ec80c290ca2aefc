"""The gate items: one test per (run, gate), parametrized by the plugin. Collect them by importing
`test_gate` into a test file (this repo's tests/harness/test_gates.py does) or with
`pytest --pyargs nvseg_bench.harness.gate_items`; the plugin alone never adds items to a session.

Items are marked by run (smoke, sanity, user; sanity also gpu), so `pytest -m smoke` picks them.
"""
from __future__ import annotations

import warnings

import pytest

from nvseg_bench.harness.gates import check_gate
from nvseg_bench.harness.plugin import OPTIONS
from nvseg_bench.harness.runs import RunEvidence


class NvsegGateNote(UserWarning):
    """A gate passed with something a person should read (the epoch-0 trap)."""


def test_gate(nvseg_run: RunEvidence, nvseg_gate: str, request: pytest.FixtureRequest) -> None:
    verdict = check_gate(nvseg_gate, nvseg_run, request.config.stash[OPTIONS])
    # straight into user_properties: the JUnit file gets them as with record_property, minus its xunit2 warning
    request.node.user_properties += [("nvseg_out", str(nvseg_run.out)), ("nvseg_source", nvseg_run.source),
                                     ("nvseg_message", verdict.message), *verdict.properties]
    if verdict.note:
        warnings.warn(NvsegGateNote(f"{nvseg_run.name}/{nvseg_gate}: {verdict.message}"), stacklevel=1)
    if verdict.status == "skipped":
        pytest.skip(verdict.message)
    if verdict.status == "failed":
        pytest.fail(f"{nvseg_run.name}/{nvseg_gate}: {verdict.message}", pytrace=False)
