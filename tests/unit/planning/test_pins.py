"""The phase interpreter's version pins: MONAI 1.4 and numpy < 2, asked in a child process."""
from __future__ import annotations

import subprocess
import sys

import pytest

from nvseg_bench.errors import ArgumentError
from nvseg_bench.planning import pins


@pytest.mark.parametrize("versions, problems", [
    ({"monai": "1.4.0", "numpy": "1.26.4"}, []),
    ({"monai": "1.4.2", "numpy": "1.24.0"}, []),
    ({"monai": "1.5.0", "numpy": "1.26.4"}, ["MONAI is 1.5.0, not 1.4.x"]),
    ({"monai": "1.3.2", "numpy": "2.0.0"}, ["MONAI is 1.3.2, not 1.4.x", "numpy is 2.0.0, not < 2"]),
    ({"monai": None, "numpy": "1.26.4"}, ["MONAI is not installed"]),
])
def test_pins_accept_monai_1_4_and_numpy_1_only(versions, problems):
    assert pins.pin_problems(versions) == problems


def test_this_interpreter_reports_its_installed_versions():
    from importlib import metadata

    assert pins.phase_versions(sys.executable) == {"monai": metadata.version("monai"), "numpy": metadata.version("numpy")}


def test_the_version_question_is_asked_in_a_child_process():
    code = ("import sys; from nvseg_bench.planning import pins\n"
            "pins.check_phase_versions(sys.executable)\nprint('MONAI', 'monai' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "MONAI False" in out


def test_drift_is_run_anyway_and_recorded_when_allowed(tmp_path, monkeypatch):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho '{\"monai\": \"1.4.0\", \"numpy\": \"2.5.2\"}'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("NVSEG_ALLOW_VERSION_DRIFT", "1")
    line = pins.check_phase_versions(str(fake))
    assert "numpy is 2.5.2, not < 2" in line and "NVSEG_ALLOW_VERSION_DRIFT=1" in line


def test_an_interpreter_that_cannot_answer_is_refused(tmp_path):
    with pytest.raises(ArgumentError, match="could not report its packages"):
        pins.check_phase_versions(str(tmp_path / "no-python"))


def test_the_phases_run_under_the_phase_interpreter(tmp_path, monkeypatch):
    from nvseg_bench.phases.runner import command_prefix

    monkeypatch.setenv("NVSEG_PHASE_PYTHON", "/opt/venv/bin/python")
    assert command_prefix(1)[0] == "/opt/venv/bin/python"
