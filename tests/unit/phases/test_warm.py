"""Warm start: a phase forked from the pre-imported server behaves like the same command started cold
(argv, working directory, environment, session, output, exit code, stopping), and anything the
server cannot do falls back to a cold start with the reason."""
from __future__ import annotations

import io
import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nvseg_bench.phases import warm
from nvseg_bench.phases.child import run_child

PROBE = textwrap.dedent("""
    import json, os, sys, time
    if __name__ == "__main__":
        what = sys.argv[1]
        if what == "facts":
            print(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "marker": os.environ.get("PROBE_MARKER"),
                              "zygote_only": os.environ.get("ZYGOTE_ONLY"), "sid_is_pid": os.getsid(0) == os.getpid(),
                              "main": __name__, "path0": sys.path[0]}), flush=True)
        elif what == "exit":
            print("leaving", flush=True)
            sys.exit(int(sys.argv[2]))
        elif what == "raise":
            raise RuntimeError("probe failed on purpose")
        elif what == "finish":
            import atexit, threading
            atexit.register(lambda: print("exit handler ran", flush=True))
            threading.Thread(target=lambda: (time.sleep(0.5), print("thread finished", flush=True))).start()
            print("work done", flush=True)
        elif what == "sleep":
            print("sleeping", flush=True)
            time.sleep(600)
""")


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("probe")
    (root / "probe_mod").mkdir()
    (root / "probe_mod" / "__init__.py").write_text("")
    (root / "probe_mod" / "__main__.py").write_text(PROBE)
    return root


def _env(probe_dir: Path, **extra: str) -> dict[str, str]:
    return dict(os.environ) | {"PYTHONPATH": str(probe_dir), "PYTHONUNBUFFERED": "1"} | extra


@pytest.fixture(scope="module")
def starter(probe_dir, tmp_path_factory):
    """One server for the module: its imports of torch and MONAI take seconds."""
    home = tmp_path_factory.mktemp("zygote")
    found = warm.WarmStarter(sys.executable, home, _env(probe_dir, ZYGOTE_ONLY="yes"))
    yield found
    found.close()


def _run(starter, probe_dir: Path, cwd: Path, *args: str, timeout: float | None = None):
    lines: list[str] = []
    command = [sys.executable, "-m", "probe_mod", *args]
    run = run_child(command, cwd=cwd, env=_env(probe_dir, PROBE_MARKER="phase"), on_line=lines.append,
                    log=io.StringIO(), timeout=timeout, warm=starter)
    return run, lines


def test_a_warm_child_gets_the_commands_argv_cwd_env_and_its_own_session(starter, probe_dir, tmp_path):
    run, lines = _run(starter, probe_dir, tmp_path, "facts", "--flag", "value with spaces")
    assert run.start == "warm" and run.return_code == 0, (run, lines, starter.note)
    facts = json.loads(lines[-1])
    assert facts["argv"] == ["facts", "--flag", "value with spaces"]
    assert Path(facts["cwd"]) == tmp_path and Path(facts["path0"]) == tmp_path
    assert facts["marker"] == "phase" and facts["zygote_only"] is None  # the request's env, not the server's
    assert facts["sid_is_pid"] and facts["main"] == "__main__"
    assert run.peak_rss_mb and run.peak_rss_mb > 50  # the forked child carries torch and MONAI


def test_exit_codes_and_tracebacks_come_back_as_from_a_cold_start(starter, probe_dir, tmp_path):
    run, lines = _run(starter, probe_dir, tmp_path, "exit", "3")
    assert (run.start, run.return_code, lines) == ("warm", 3, ["leaving"])
    run, lines = _run(starter, probe_dir, tmp_path, "raise")
    assert run.return_code == 1 and "RuntimeError: probe failed on purpose" in lines
    assert any(line.startswith("Traceback") for line in lines)


def test_a_finished_child_still_joins_its_threads_and_runs_its_exit_handlers(starter, probe_dir, tmp_path):
    run, lines = _run(starter, probe_dir, tmp_path, "finish")
    assert (run.start, run.return_code) == ("warm", 0)
    assert lines == ["work done", "thread finished", "exit handler ran"]


def test_a_timeout_stops_the_warm_childs_group_and_the_server_serves_the_next(starter, probe_dir, tmp_path):
    started = time.monotonic()
    run, lines = _run(starter, probe_dir, tmp_path, "sleep", timeout=3)
    assert run.timed_out and run.return_code == -15 and lines == ["sleeping"]
    assert time.monotonic() - started < 30
    run, _ = _run(starter, probe_dir, tmp_path, "exit", "0")
    assert (run.start, run.return_code) == ("warm", 0)


def test_other_commands_start_cold(starter, probe_dir, tmp_path):
    lines: list[str] = []
    run = run_child([sys.executable, "-c", "print('plain')"], cwd=tmp_path, env=_env(probe_dir), on_line=lines.append,
                    warm=starter)
    assert (run.start, run.return_code, lines) == ("cold", 0, ["plain"])


def test_failed_imports_in_the_server_mean_cold_starts_with_the_reason(probe_dir, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "torch.py").write_text("raise ImportError('no torch in this interpreter')\n")
    env = _env(probe_dir) | {"PYTHONPATH": os.pathsep.join([str(broken), str(probe_dir)])}
    starter = warm.WarmStarter(sys.executable, tmp_path, env)
    try:
        lines: list[str] = []
        run = run_child([sys.executable, "-m", "probe_mod", "exit", "0"], cwd=tmp_path, env=_env(probe_dir),
                        on_line=lines.append, warm=starter)
        assert (run.start, run.return_code, lines) == ("cold", 0, ["leaving"])
        assert "import torch failed" in starter.note and "no torch in this interpreter" in starter.note
    finally:
        starter.close(tmp_path / "warm_start.log")
    assert starter.proc.returncode is not None  # the server ended with its socket


def test_closing_the_server_stops_a_phase_it_still_runs(probe_dir, tmp_path):
    starter = warm.WarmStarter(sys.executable, tmp_path, _env(probe_dir))
    child = starter.spawn([sys.executable, "-m", "probe_mod", "sleep"], tmp_path, _env(probe_dir))
    assert child is not None and child.stdout.readline() == "sleeping\n"
    starter.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(child.pid):
        time.sleep(0.1)
    assert not _alive(child.pid)
    child.stdout.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


@pytest.mark.parametrize(("device", "nproc", "multi", "env", "expected"), [
    ("cpu", 1, False, {}, None),
    ("cpu", 1, False, {"NVSEG_WARM_START": "0"}, "NVSEG_WARM_START=0"),
    ("cpu", 2, False, {}, "torchrun"),
    ("cuda", 1, True, {}, "torchrun"),
    ("cuda", 1, False, {}, "until checked there"),
    ("cuda", 1, False, {"NVSEG_WARM_START": "1"}, None),
])
def test_warm_start_is_on_for_single_process_cpu_phases_unless_asked(device, nproc, multi, env, expected):
    note = warm.choose(device, nproc, multi, env)
    assert note is None if expected is None else expected in note


def test_a_server_never_asked_for_a_phase_is_stopped_at_once(probe_dir, tmp_path):
    starter = warm.WarmStarter(sys.executable, tmp_path, _env(probe_dir))
    started = time.monotonic()
    starter.close(tmp_path / "warm_start.log")
    assert time.monotonic() - started < 2 and starter.proc.returncode is not None


@pytest.mark.parametrize(("environ", "started"), [({}, True), ({"NVSEG_WARM_START": "0"}, False),
                                                   ({"CUDA_VISIBLE_DEVICES": "0"}, False),
                                                   ({"CUDA_VISIBLE_DEVICES": "0", "NVSEG_WARM_START": "1"}, True)])
def test_the_early_server_starts_only_where_warm_start_is_likely(environ, started, monkeypatch):
    monkeypatch.setattr(warm.shutil, "which", lambda _: None)
    base = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "NVSEG_WARM_START")}
    starter = warm.start_early(sys.executable, base | environ)
    assert (starter is not None) == started
    if starter is not None:
        starter.close()
