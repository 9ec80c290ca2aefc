"""Version pins of the interpreter that runs the phases: MONAI 1.4.x and numpy < 2.

The phases run `python -m monai.bundle run` under `phase_python()` (this interpreter, or
$NVSEG_PHASE_PYTHON). That interpreter is asked for its installed versions in a subprocess reading
package metadata, so the CLI never imports monai. The Task06 reference ran on MONAI 1.4.0
(docs/task06-and-results.md); MONAI 1.5's Dice loss fails on boolean targets, which upstream's
trainer passes it (docs/design.md). A GPU machine whose numpy 2 cannot be replaced offline can run
anyway with NVSEG_ALLOW_VERSION_DRIFT=1 (docs/design.md measured monai 1.4.0 on numpy 2.5.2).
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

from nvseg_bench.errors import ArgumentError

PHASE_PYTHON_ENV = "NVSEG_PHASE_PYTHON"  # run the phases under another interpreter (e.g. another venv)
ALLOW_DRIFT_ENV = "NVSEG_ALLOW_VERSION_DRIFT"  # "1": run anyway, recorded in the plan rationale
PIP_ARGS = '-m pip install "monai==1.4.0" "numpy<2"'
_ASK = ("import json\nfrom importlib import metadata\nfound = {}\nfor name in ('monai', 'numpy'):\n"
        "    try:\n        found[name] = metadata.version(name)\n    except metadata.PackageNotFoundError:\n"
        "        found[name] = None\nprint(json.dumps(found))")


def phase_python() -> str:
    """The interpreter every phase runs under."""
    return os.environ.get(PHASE_PYTHON_ENV) or sys.executable


def phase_versions(python: str) -> dict[str, str | None]:
    """monai and numpy versions installed for `python` (None when absent), read from its metadata."""
    try:
        proc = subprocess.run([python, "-c", _ASK], capture_output=True, text=True, timeout=120)
        found = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, json.JSONDecodeError, IndexError):
        found = None
    if not isinstance(found, dict):
        raise ArgumentError(f"the interpreter that runs the phases, {python}, could not report its packages.",
                            evidence=[f"{python} -c '<read monai and numpy versions>' did not print them"],
                            fix=[f"Check that {python} is a working Python, or unset {PHASE_PYTHON_ENV}."])
    return {name: found.get(name) for name in ("monai", "numpy")}


def pin_problems(versions: dict[str, str | None]) -> list[str]:
    """What breaks the pins (MONAI 1.4.x, numpy < 2), in words; empty when they hold."""
    problems = []
    monai, numpy = versions.get("monai"), versions.get("numpy")
    if monai is None:
        problems.append("MONAI is not installed")
    elif monai.split(".")[:2] != ["1", "4"]:
        problems.append(f"MONAI is {monai}, not 1.4.x")
    if numpy is None:
        problems.append("numpy is not installed")
    elif not numpy.split(".")[0].isdigit() or int(numpy.split(".")[0]) >= 2:
        problems.append(f"numpy is {numpy}, not < 2")
    return problems


def check_phase_versions(python: str | None = None) -> str:
    """Refuse an interpreter off the pins; returns the plan-rationale line that records them."""
    python = python or phase_python()
    versions = phase_versions(python)
    problems = pin_problems(versions)
    seen = f"monai {versions['monai']}, numpy {versions['numpy']} in {python}"
    if not problems:
        return f"versions: {seen} (pins: monai 1.4.x, numpy<2)"
    if os.environ.get(ALLOW_DRIFT_ENV) == "1":
        return f"versions: {seen}, off the pins ({'; '.join(problems)}); run anyway because {ALLOW_DRIFT_ENV}=1"
    raise ArgumentError(
        "the interpreter that runs the phases does not have the pinned MONAI and numpy (nothing was run).",
        evidence=[f"{python}: {'; '.join(problems)}.",
                  "The reference Dice were measured on MONAI 1.4.0 with numpy 1.x; MONAI 1.5's Dice loss "
                  "fails on the boolean targets upstream's trainer gives it."],
        fix=[f"{shlex.quote(python)} {PIP_ARGS}",
             f"(or set {ALLOW_DRIFT_ENV}=1 to run anyway; the plan records it and results may not match the references)"])
