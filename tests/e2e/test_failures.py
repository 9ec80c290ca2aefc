"""Failed phases: each failure class is named in output.json with its phase, and the exit code is 3."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..helpers import FIXTURE, REPO

pytestmark = pytest.mark.slow

RAISE = "$(_ for _ in ()).throw({error})"
OOM = "torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 20.00 GiB (simulated)')"
CRASH = "RuntimeError('simulated crash inside the finetune phase')"


def broken_bundle(tmp_path: Path, error: str) -> Path:
    """A copy of the bundle whose training run raises `error` (evaluate.json keeps its own run)."""
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "bundle", bundle)
    path = bundle / "configs" / "train_continual.json"
    config = json.loads(path.read_text())
    config["run"] = [RAISE.format(error=error)]
    path.write_text(json.dumps(config))
    return bundle


def run(tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "nvseg_bench", str(FIXTURE), "--smoke", "--skip-formal-eval",
                           "--output-dir", str(out), *extra], cwd=REPO, capture_output=True, text=True, timeout=600)
    return proc, json.loads((out / "output.json").read_text())


def test_an_out_of_memory_phase_is_reported_with_the_fix(tmp_path):
    proc, doc = run(tmp_path, "--bundle-dir", str(broken_bundle(tmp_path, OOM)))
    assert proc.returncode == 3 and doc["status"] == "failed"
    assert doc["error"]["kind"] == "oom" and doc["error"]["phase"] == "finetune"
    assert "at patch_size [64, 64, 64]" in doc["error"]["message"] and "--patch-size '[64,64,64]'" in doc["error"]["message"]
    assert "--cache-rate" in doc["error"]["message"]
    assert doc["runtime"]["oom"] is True and doc["output"]["oom"] is True
    assert "schema_errors" not in doc and "peer_schema_errors" not in doc


def test_a_crashing_phase_is_reported_with_its_log_tail(tmp_path):
    proc, doc = run(tmp_path, "--bundle-dir", str(broken_bundle(tmp_path, CRASH)))
    assert proc.returncode == 3 and doc["error"]["kind"] == "crash" and doc["error"]["phase"] == "finetune"
    assert any("simulated crash" in line for line in doc["runtime"]["log_tail"])
    assert doc["output"]["recommended_ckpt"] == doc["output"]["pretrained_ckpt"]
    assert "Traceback" not in proc.stderr


def test_a_phase_past_the_timeout_is_stopped_and_reported(tmp_path):
    proc, doc = run(tmp_path, "--phase-timeout", "2")
    assert proc.returncode == 3 and doc["error"]["kind"] == "timeout"
    assert doc["runtime"]["phase_seconds"]["finetune"] < 30


def _children_of(pgid: int) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pgid=,pid="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.split()[0] == str(pgid)]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_stops_the_phase_group_and_still_writes_output_json(tmp_path, signum):
    out = tmp_path / "run"
    # a private cache, so no earlier run's kept evaluation stands in for this phase; and Ctrl-C as a terminal
    # sends it even where this test runs in the background, whose SIGINT the child would inherit ignored
    proc = subprocess.Popen([sys.executable, "-m", "nvseg_bench", str(FIXTURE), "--smoke", "--output-dir", str(out),
                             "--preprocess-cache", str(tmp_path / "cache")],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout is not None
    for line in proc.stdout:
        if "[1/3 eval_pretrained] started" in line:
            break
    else:
        pytest.fail("eval_pretrained never started")
    time.sleep(3)  # let the child get going
    child_pgids = {int(l.split()[0]) for l in subprocess.run(["ps", "-eo", "pgid=,ppid="], capture_output=True,
                   text=True).stdout.splitlines() if int(l.split()[1]) == proc.pid}
    proc.send_signal(signum)
    proc.communicate(timeout=120)
    assert proc.returncode == 130
    doc = json.loads((out / "output.json").read_text())
    assert doc["status"] == "interrupted" and doc["error"]["kind"] == "interrupted"
    assert doc["error"]["phase"] == "eval_pretrained"
    assert child_pgids and all(not _children_of(pgid) for pgid in child_pgids)
