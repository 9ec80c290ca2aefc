"""Check a JUnit XML file for a run's gate items: each gate the session should judge is there and passed.

    python .ci/check_gates.py JUNIT_XML RUN [--trusted]

pytest's exit code says whether something failed; this says whether the gates ran at all (a
deselected or skipped gate item passes silently otherwise). Exit 0 when every gate item of RUN
passed (opt-in gates, off in CI, skipped; a conditional gate such as `forgetting` passed or skipped
when the run had nothing for it to judge), 1 when one failed, was skipped or is missing, 2 when
the file is not there.
"""
from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from nvseg_bench.harness.gates import conditional_gates, gate_names, opt_in_gates


def outcomes(junit: Path, run: str) -> dict[str, str]:
    found = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "")
        if not name.startswith(f"test_gate[{run}-"):
            continue
        gate = name.removeprefix(f"test_gate[{run}-").removesuffix("]")
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        found[gate] = kinds[0] if kinds else "passed"
    return found


def main(argv: list[str]) -> int:
    if len(argv) < 2 or not Path(argv[0]).is_file():
        print(__doc__, file=sys.stderr)
        return 2
    junit, run = Path(argv[0]), argv[1]
    found = outcomes(junit, run)
    wanted = {gate: {"skipped"} if gate in opt_in_gates() else {"passed", "skipped"} if gate in conditional_gates()
              else {"passed"} for gate in gate_names("--trusted" in argv)}
    problems = [f"{gate}: {found.get(gate, 'missing')}" for gate, outcomes in wanted.items()
                if found.get(gate) not in outcomes]
    if problems:
        print(f"check_gates: {run} gates not passed in {junit}: " + "; ".join(problems), file=sys.stderr)
        return 1
    print(f"check_gates: {run}: every gate passed ({', '.join(opt_in_gates())} off) in {junit}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
