"""The phase runner, driven with small stand-in child processes instead of the bundle."""
from __future__ import annotations

import io
import os
import sys
from pathlib import Path

from nvseg_bench.phases.runner import (ALLOCATOR_ENV, PhaseSpec, allocator_line, bundle_command, bundle_env,
                                       command_prefix, run_phase)

from ...helpers import fake_nvidia_smi

TRAINING_LIKE = """
import sys
print("Epoch[0] Metrics -- val_mean_dice: 0.5000")
print("Epoch: 1/1, Iter: 1/1 -- train_loss: 0.4000")
print("Epoch[1] Metrics -- val_mean_dice: 0.6000")
print('NVSEG_TELEMETRY {"peak_gpu_mb": 123.0}')
sys.exit(int(sys.argv[1]))
"""


def _spec(tmp_path: Path, code: str, *args: str) -> PhaseSpec:
    return PhaseSpec("finetune", 2, 3, [sys.executable, "-c", code, *args], tmp_path / "finetune.log")


def test_a_phase_records_its_trace_log_and_telemetry(tmp_path):
    stream = io.StringIO()
    result = run_phase(_spec(tmp_path, TRAINING_LIKE, "0"), cwd=tmp_path, env=bundle_env(tmp_path), stream=stream)
    assert result.return_code == 0 and result.failure is None
    assert result.facts.val_dice == {0: 0.5, 1: 0.6} and result.peak_gpu_mb == 123.0
    assert result.peak_rss_mb and result.peak_rss_mb > 1
    assert "train_loss: 0.4000" in Path(result.log_path).read_text()
    assert "[2/3 finetune] val Dice 0.6000 at epoch 1 (best)" in stream.getvalue()


def test_an_eval_phase_reports_its_score_as_formal_dice(tmp_path):
    stream = io.StringIO()
    spec = PhaseSpec("eval_finetuned", 3, 3, [sys.executable, "-c", TRAINING_LIKE, "0"], tmp_path / "e.log")
    run_phase(spec, cwd=tmp_path, env=bundle_env(tmp_path), stream=stream)
    assert "[3/3 eval_finetuned] formal Dice 0.6000" in stream.getvalue()


def test_a_crashing_phase_is_classified_as_a_crash(tmp_path):
    result = run_phase(_spec(tmp_path, TRAINING_LIKE, "7"), cwd=tmp_path, env=bundle_env(tmp_path), stream=io.StringIO())
    assert result.return_code == 7 and result.failure == "crash"
    assert result.log_tail[-1].startswith("NVSEG_TELEMETRY")


def test_an_oom_in_the_log_is_classified_as_oom_and_said_once(tmp_path):
    code = "import sys; [print('torch.OutOfMemoryError: CUDA out of memory.') for _ in range(4)]; sys.exit(1)"
    stream = io.StringIO()
    result = run_phase(_spec(tmp_path, code), cwd=tmp_path, env=bundle_env(tmp_path), stream=stream)
    assert result.failure == "oom" and stream.getvalue().count("out of memory reported in the log") == 1


def test_an_oom_message_names_the_patch_that_failed_and_a_smaller_rung(tmp_path):
    from nvseg_bench.output.result import failure_message

    code = "import sys; print('torch.OutOfMemoryError: CUDA out of memory.'); sys.exit(1)"
    result = run_phase(_spec(tmp_path, code), cwd=tmp_path, env=bundle_env(tmp_path), stream=io.StringIO())
    message = failure_message(result, [512, 512, 512])
    assert "ran out of memory at patch_size [512, 512, 512]" in message
    assert "--patch-size '[192,192,128]'" in message and str(tmp_path / "finetune.log") in message
    assert "--patch-size '[96,96,96]'" in failure_message(result, [128, 128, 128])
    assert "--patch-size '[64,64,64]'" in failure_message(result, [64, 64, 64])


def test_a_phase_past_its_timeout_is_stopped(tmp_path):
    code = "import time; print('started', flush=True); time.sleep(60)"
    result = run_phase(_spec(tmp_path, code), cwd=tmp_path, env=bundle_env(tmp_path), timeout=1.0, stream=io.StringIO())
    assert result.failure == "timeout" and result.seconds < 30


def test_bundle_env_puts_the_bundle_first_and_writes_no_bytecode(tmp_path):
    env = bundle_env(tmp_path)
    assert env["PYTHONPATH"].split(":")[0] == str(tmp_path) and env["PYTHONDONTWRITEBYTECODE"] == "1"


def test_commands_use_monai_bundle_run_or_torchrun():
    assert command_prefix(1)[1:] == ["-m", "monai.bundle", "run"]
    multi = command_prefix(2)
    assert multi[1:3] == ["-m", "torch.distributed.run"] and "--nproc_per_node=2" in multi


def test_bundle_command_passes_the_config_stack_in_order(tmp_path):
    cmd = bundle_command(["python"], ["/b/configs/train.json", "/o/configs/x.json"], tmp_path, {"ckpt_path": "/m.pt"})
    assert cmd[cmd.index("--config_file") + 1] == '["/b/configs/train.json", "/o/configs/x.json"]'
    assert cmd[-2:] == ["--ckpt_path", "/m.pt"]


def test_nvidia_smi_samples_give_peak_memory_when_the_run_reports_none(tmp_path, monkeypatch):
    fake_nvidia_smi(tmp_path, monkeypatch, ["1234, 80", "2048, 40"])
    code = "import time; time.sleep(1.5); print('done')"
    result = run_phase(_spec(tmp_path, code), cwd=tmp_path, env=bundle_env(tmp_path), stream=io.StringIO(),
                       gpu_interval=0.2)
    assert result.gpu["smi_peak_gpu_mb"] == 2048 and result.peak_gpu_mb == 2048
    assert result.gpu["gpu_util_mean"] == 60 and result.gpu["gpu_samples"] >= 4


TIMED = """
import time
time.sleep(0.6)
print('NVSEG_TELEMETRY {"event": "attached"}', flush=True)
time.sleep(0.4)
print('NVSEG_TELEMETRY {"event": "epoch"}', flush=True)
print('NVSEG_TELEMETRY {"event": "completed"}', flush=True)
time.sleep(0.8)
"""


def test_a_phase_is_split_into_startup_engine_and_teardown_by_its_telemetry(tmp_path):
    result = run_phase(_spec(tmp_path, TIMED), cwd=tmp_path, env=bundle_env(tmp_path), stream=io.StringIO())
    timing = result.timing()
    # Bounds a loaded machine still meets. The sleeps bound how early each line can arrive, but the runner
    # times a line when it reads it, and a reader held up by the load reads it late: a late "attached"
    # shortens engine_s, a late "completed" teardown_s, and no upper bound on any part holds under load.
    assert timing["startup_s"] >= 0.6  # "attached" cannot arrive before the child's first sleep ends
    assert timing["startup_s"] + timing["engine_s"] >= 0.6 + 0.4 - 0.02  # nor "completed" before both (rounding)
    assert timing["engine_s"] >= 0 and timing["teardown_s"] >= -0.01  # in order: attached, completed, exit
    assert result.seconds >= 0.6 + 0.4 + 0.8  # the phase ran through all three sleeps
    assert abs(sum(timing.values()) - result.seconds) < 0.05  # the three parts split the phase's seconds


def test_a_phase_without_telemetry_has_no_split(tmp_path):
    result = run_phase(_spec(tmp_path, "print('hello')"), cwd=tmp_path, env=bundle_env(tmp_path), stream=io.StringIO())
    assert result.timing() == {"startup_s": None, "engine_s": None, "teardown_s": None}


def test_phases_get_the_allocator_settings_unless_the_user_chose_their_own(tmp_path, monkeypatch):
    for name in [k for k in os.environ if k.startswith("MALLOC_")] + ["LD_PRELOAD"]:
        monkeypatch.delenv(name, raising=False)
    shows = "import os; print('threshold', os.environ.get('MALLOC_MMAP_THRESHOLD_'))"
    run_phase(_spec(tmp_path, shows), cwd=tmp_path, env=bundle_env(tmp_path), stream=io.StringIO())
    assert f"threshold {ALLOCATOR_ENV['MALLOC_MMAP_THRESHOLD_']}" in (tmp_path / "finetune.log").read_text()
    assert not set(ALLOCATOR_ENV) & set(bundle_env(tmp_path, allocator=False))  # a by-hand baseline: untouched
    assert "glibc keeps freed blocks" in allocator_line({})
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    assert not set(ALLOCATOR_ENV) & set(bundle_env(tmp_path))
    assert allocator_line({"MALLOC_ARENA_MAX": "2"}) == "allocator: yours (MALLOC_ARENA_MAX); the phases keep it"
