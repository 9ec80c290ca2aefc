"""The gate table: every harness feature that owns gates, in the order its items run and its lines
show, and the questions asked of the table (which gates a session judges, which are opt-in or
conditional, a gate's title, a gate's verdict on a run).

A new gate feature is one module that builds a `Feature` (feature.py) and one line in FEATURES;
docs/harness.md's gate table is held to this table (tests/repo/test_docs.py). The report
(report.py) is the one feature without gates: it draws on these and the plugin registers it last.
"""
from __future__ import annotations

from nvseg_bench.harness import baseline, boundary, forgetting, significance, trusted_gate
from nvseg_bench.harness.core_gates import OUTCOME, RUNTIME
from nvseg_bench.harness.core_gates import reference_bounds, reference_ranges  # noqa: F401  (kept importable here)
from nvseg_bench.harness.feature import Feature, Gate, Verdict, bad
from nvseg_bench.harness.options import HarnessOptions
from nvseg_bench.harness.runs import RunEvidence

FEATURES: tuple[Feature, ...] = (OUTCOME, significance.FEATURE, boundary.FEATURE, forgetting.FEATURE, RUNTIME,
                                 trusted_gate.FEATURE, baseline.FEATURE)
GATES: dict[str, Gate] = {name: gate for feature in FEATURES for name, gate in feature.gates.items()}


def opt_in_gates() -> list[str]:
    """Gates that skip unless asked for (--nvseg-require-significant, --nvseg-compare): a session's default skips."""
    return [name for name, gate in GATES.items() if gate.opt_in]


def conditional_gates() -> list[str]:
    """Gates that skip when the run did not do what they judge; a skip there is no fault."""
    return [name for name, gate in GATES.items() if gate.conditional]


def gate_names(trusted: bool) -> list[str]:
    """The gates a session judges: every gate, less the trusted-mode ones when that mode is off."""
    return [name for name, gate in GATES.items() if trusted or not gate.trusted_only]


def gate_title(gate: str) -> str:
    return GATES[gate].title if gate in GATES else gate


def check_gate(gate: str, run: RunEvidence, opts: HarnessOptions | None = None) -> Verdict:
    """The gate's verdict on the run under the session's options (the defaults when none are given)."""
    if run.doc is None:
        return bad(f"the run wrote no output.json (exit {run.returncode}): " + " ".join(run.console_tail[-6:]))
    return GATES[gate].check(run, opts or HarnessOptions())
