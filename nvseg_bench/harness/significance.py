"""The significance feature: the opt-in `significance` gate (the formal gain's 95% interval lies above
0) and its switch, --nvseg-require-significant (ini `nvseg_require_significant`). The interval itself
is output.json's (evidence/gain_stats.py); this gate only reads it.
"""
from __future__ import annotations

from typing import Any

import pytest

from nvseg_bench.harness.feature import Feature, Gate, Verdict, bad, ok, skip
from nvseg_bench.harness.options import HarnessOptions, add_switch, switch_on
from nvseg_bench.harness.runs import RunEvidence

SWITCH = "require-significant"


def add_options(group: pytest.OptionGroup, parser: pytest.Parser) -> None:
    add_switch(group, parser, SWITCH,
               "turn on the significance gate: fail a run whose formal gain's 95%% interval is not above 0")


def read_options(config: pytest.Config) -> dict[str, Any]:
    return {"require_significant": switch_on(config, SWITCH)}


def significance(run: RunEvidence, opts: HarnessOptions) -> Verdict:
    """Opt-in (--nvseg-require-significant): the formal gain's 95% interval must lie above 0."""
    out = (run.doc or {}).get("output") or {}
    out = (out.get("test") or {}) if out.get("verdict_split") == "test" else out  # the split the verdict rests on
    stats, confidence = out.get("formal_gain_stats") or {}, out.get("gain_confidence")
    if stats.get("ci_low") is None:
        said = f"no interval ({stats.get('interval_note') or 'no paired formal evaluation'})"
    else:
        said = (f"gain {stats['mean_gain']:+.4f}, 95% CI {stats['ci_low']:+.4f}..{stats['ci_high']:+.4f} over "
                f"{stats['n_cases']} cases: {confidence}")
    if not opts.require_significant:
        return skip(f"off (--nvseg-require-significant turns it on); {said}")
    if confidence == "clear":
        return ok(said)
    if confidence == "too_few_cases":
        return bad(f"{said}; too few validation cases for a verdict: cross-validate to score every case "
                   "(--nvseg-folds=all)")
    return bad(f"{said}; the gain is not clear of noise: add validation cases, cross-validate (--nvseg-folds=all) "
               "or run a seed sweep (--nvseg-seeds)")


FEATURE = Feature("significance", gates={
    "significance": Gate("formal gain clear of noise (opt-in)", significance, options=(f"--nvseg-{SWITCH}",),
                         opt_in=True),
}, add_options=add_options, read_options=read_options)
