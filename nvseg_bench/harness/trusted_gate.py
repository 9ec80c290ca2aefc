"""The trusted feature: --nvseg-trusted (the CPU verifier judges each run's pack) and
--nvseg-trusted-only=DIR (judge a copied-back run dir as found, run nothing), the `trusted` gate that
holds the verifier's verdict, its JUnit properties, its lines under the terminal table and the
report's Verifier section. Running the verifier and keeping its verdicts is trust.py's; the broker
calls it after each run.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nvseg_bench.harness.feature import Feature, Gate, Section, Verdict, bad, ok
from nvseg_bench.harness.ledger import RunRecord
from nvseg_bench.harness.options import HarnessOptions, add_switch, add_value_option, option_path, switch_on
from nvseg_bench.harness.runs import RunEvidence
from nvseg_bench.harness.trust import Trust

SWITCH, AS_FOUND = "trusted", "trusted-only"


def add_options(group: pytest.OptionGroup, parser: pytest.Parser) -> None:
    add_switch(group, parser, SWITCH, "after each run, judge its pack with the CPU verifier "
                                      "(python -m eval_engine.run_trusted) and add a `trusted` gate")
    add_value_option(group, parser, AS_FOUND, "judge the existing run dir DIR (its output.json) with the gate items "
                                              "and the verifier; run nothing", "DIR")


def check_pack(pack: Path | None) -> None:
    """--nvseg-trusted-only must name a run dir: one with a readable output.json."""
    if pack is None:
        return
    doc = pack / "output.json"
    if not doc.is_file():
        raise pytest.UsageError(f"--nvseg-trusted-only={pack} has no output.json. Pass the --output-dir of one "
                                "nvseg-finetune run (the folder that holds output.json and manifest.json).")
    try:
        json.loads(doc.read_text())
    except ValueError as exc:
        raise pytest.UsageError(f"{doc} is not valid JSON ({exc}); copy the run dir again from where it ran.") from None


def read_options(config: pytest.Config) -> dict[str, Any]:
    pack = option_path(config, AS_FOUND)
    check_pack(pack)
    return {"trusted_only": pack, "trusted": switch_on(config, SWITCH) or pack is not None}


def trusted(run: RunEvidence, _opts: HarnessOptions) -> Verdict:
    """The verifier's verdict on the pack (trusted mode): failed and unverified fail, warn passes with its warnings."""
    trust = run.trust
    if trust is None:
        return bad("trusted mode is on, but the verifier's verdict is missing for this run")
    props = tuple(trust.properties())
    where = f" ({trust.summary})" if trust.summary else ""
    if trust.changed:
        return bad(f"the pack changed after its run: {', '.join(trust.changed[:6])}; the verifier says "
                   f"{trust.verdict}{where}" + "".join(f"; {f}" for f in trust.failed[:3]), props)
    if trust.verdict in ("failed", "unverified", "error"):
        return bad(f"verifier verdict {trust.verdict}{where}: " + "; ".join(trust.failed[:5]), props)
    if trust.verdict == "warn":
        return ok(f"verifier verdict warn{where}: " + "; ".join(trust.warnings[:5]), note=True, properties=props)
    return ok(f"verifier verdict {trust.verdict}{where}", properties=props)


def read_verdict(props: dict[str, Any], record: RunRecord) -> None:
    """The ledger's side: the verifier's verdict, from the `trusted` item's properties, onto the run's record."""
    record.trust = Trust.from_properties(props) or record.trust


def verifier_lines(record: RunRecord) -> list[str]:
    """Under the terminal table: the verifier's failed findings for a run."""
    if not (record.trust and record.trust.failed):
        return []
    return [f"  {record.name} verifier: {finding}" for finding in record.trust.failed[:8]]


def verifier_sections(record: RunRecord) -> list[Section]:
    """The report's Verifier section: the verdict, then each failed and warned finding."""
    trust = record.trust
    if trust is None:
        return []
    rows = tuple(("failed", f) for f in trust.failed) + tuple(("warn", w) for w in trust.warnings)
    return [Section("Verifier", f"verdict {trust.verdict} ({trust.summary})", ("status", "finding"), rows, 0)]


FEATURE = Feature("trusted", gates={
    "trusted": Gate("the CPU verifier trusts the pack", trusted, options=(f"--nvseg-{SWITCH}", f"--nvseg-{AS_FOUND}"),
                    trusted_only=True),
}, add_options=add_options, read_options=read_options, path_options=(AS_FOUND,), terminal_lines=verifier_lines,
    sections=verifier_sections, read_properties=read_verdict,
    column=("verifier", lambda record: record.trust.verdict if record.trust else None))
