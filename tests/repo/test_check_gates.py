""".ci/check_gates.py: every gate item of a run passed, opt-in ones skipped, conditional ones either."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from nvseg_bench.harness.gates import conditional_gates, gate_names, opt_in_gates

from ..helpers import REPO

spec = importlib.util.spec_from_file_location("check_gates", REPO / ".ci" / "check_gates.py")
check_gates = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_gates)


def junit(tmp_path: Path, outcomes: dict[str, str]) -> Path:
    cases = "".join(f'<testcase name="test_gate[smoke-{gate}]">' + ("" if kind == "passed" else f"<{kind}/>")
                    + "</testcase>" for gate, kind in outcomes.items())
    path = tmp_path / "junit.xml"
    path.write_text(f"<testsuites><testsuite>{cases}</testsuite></testsuites>")
    return path


def session(**changed: str) -> dict[str, str]:
    found = {g: "skipped" if g in opt_in_gates() or g in conditional_gates() else "passed" for g in gate_names(False)}
    return found | changed


def test_a_smoke_session_without_a_forgetting_check_passes(tmp_path):
    assert check_gates.main([str(junit(tmp_path, session())), "smoke"]) == 0


@pytest.mark.parametrize("changed", [{"forgetting": "failure"}, {"reference": "skipped"}, {"decision": "error"}])
def test_a_failed_conditional_gate_or_a_skipped_required_one_fails(tmp_path, changed):
    assert check_gates.main([str(junit(tmp_path, session(**changed))), "smoke"]) == 1
