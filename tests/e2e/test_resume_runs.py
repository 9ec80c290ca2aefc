"""--resume on real smoke runs: one stopped by SIGTERM after epoch 1 resumes to the uninterrupted run's
result, and keeping epochs for resume does not change what the finetune computes."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nvseg_bench.cli import main
from nvseg_bench.phases.logparse import parse_lines
from nvseg_bench.stage import resume

from ..helpers import FIXTURE, REPO


def _start(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nvseg_bench", str(FIXTURE), "--smoke", "--epochs", "3",
                             "--output-dir", str(out), *extra], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_a_run_stopped_by_sigterm_after_epoch_1_resumes_to_the_uninterrupted_runs_result(tmp_path):
    reference = _start(tmp_path / "whole", "--no-preprocess-cache")
    stopped = _start(tmp_path / "stopped", "--no-preprocess-cache")  # no kept evaluation: the resume keeps its own
    checkpoint = tmp_path / "stopped" / "checkpoints" / "resume" / "resume_checkpoint_epoch=1.pt"
    deadline = time.monotonic() + 900
    while not resume.complete(checkpoint) and stopped.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)  # MONAI writes the checkpoint in place: stop once it is whole, as the test intends
    assert resume.complete(checkpoint), "epoch 1 never completed"
    stopped.send_signal(signal.SIGTERM)
    assert stopped.wait(timeout=120) == 130
    assert json.loads((tmp_path / "stopped" / "output.json").read_text())["status"] == "interrupted"
    resumed = subprocess.run([sys.executable, "-m", "nvseg_bench", "--resume", str(tmp_path / "stopped")], cwd=tmp_path,
                             capture_output=True, text=True, timeout=1200)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    reference.communicate(timeout=1200)
    assert reference.returncode == 0
    whole = json.loads((tmp_path / "whole" / "output.json").read_text())
    doc = json.loads((tmp_path / "stopped" / "output.json").read_text())
    got, want = doc["output"], whole["output"]
    assert doc["runtime"]["resumed"]["from_epoch"] == 1 and doc["runtime"]["resumed"]["times"] == 1
    assert doc["output"]["val_dice_epochs"] == [0, 1, 2, 3]  # every epoch once
    assert got["val_dice_per_epoch"][:2] == want["val_dice_per_epoch"][:2]  # up to the resume point
    assert got["train_iterations"] == want["train_iterations"] == 15
    # the RNG states are kept too, so on the CPU the epochs after the resume repeat exactly
    assert got["val_dice_per_epoch"] == want["val_dice_per_epoch"]
    assert got["formal_finetuned_val_dice"] == want["formal_finetuned_val_dice"]
    assert got["recommended_ckpt"] == str(tmp_path / "stopped" / "checkpoints" / "model_finetune.pt")
    assert doc["runtime"]["reused_phases"] == {"eval_pretrained": "the stopped run (--resume)"}
    assert "[1/3 eval_pretrained] kept: it finished before the run stopped" in resumed.stdout
    assert not list((tmp_path / "stopped" / "checkpoints" / "resume").glob("*.pt"))  # finished: discarded
    from eval_engine.run_trusted import audit

    findings = audit(tmp_path / "stopped")[0]
    assert {f.name: f.status for f in findings}["trajectory"] == "pass"


def _losses(command: list[str], cwd: Path, env: dict[str, str]) -> list[float]:
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    facts = parse_lines((proc.stdout + proc.stderr).splitlines())
    assert facts.train_loss
    return facts.train_loss + [facts.val_dice[e] for e in sorted(facts.val_dice)]


@pytest.mark.slow
def test_keeping_epochs_for_resume_does_not_change_what_the_finetune_computes(tmp_path):
    # building the saver's objects in another order once drew other seeds for the random crops
    from nvseg_bench.phases.runner import bundle_env

    out = tmp_path / "out"
    assert main([str(FIXTURE), "--smoke", "--epochs", "1", "--skip-formal-eval", "--no-preprocess-cache", "--dry-run",
                 "--output-dir", str(out)]) == 0
    doc = json.loads((out / "output.json").read_text())
    command = doc["invocation"]["commands"]["finetune"]
    env = bundle_env(REPO / "bundle", out / "configs")
    at = command.index("--config_file") + 1
    stack = json.loads(command[at])
    assert any(path.endswith("/resume.json") for path in stack)
    without = [*command[:at], json.dumps([p for p in stack if not p.endswith("/resume.json")]), *command[at + 1:]]
    assert _losses(command, out, env) == _losses(without, out, env)
