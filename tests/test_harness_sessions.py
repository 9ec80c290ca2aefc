"""The plugin as users meet it: whole pytest sessions of a throwaway project, in subprocesses."""
from __future__ import annotations

import base64
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from nvseg_bench.environment import visible_gpus_from_smi
from nvseg_bench.harness.gates import GATES
from nvseg_bench.output import schema_errors

from .conftest import FIXTURE
from .harness_util import cached_entry, make_project, run_pytest

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_an_unrelated_project_sees_a_header_line_and_nothing_else(tmp_path):
    project = make_project(tmp_path / "other", {"test_plain.py": "def test_plain():\n    assert 1 + 1 == 2\n"})
    proc = run_pytest(project, "-v")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "nvseg-bench 0.1.0: torch " in proc.stdout and "1 passed" in proc.stdout
    assert "nvseg-bench runs" not in proc.stdout
    assert not (project / ".pytest_cache" / "d" / "nvseg").exists()


def test_the_markers_are_registered_so_strict_markers_accepts_them(tmp_path):
    text = "import pytest\n\n@pytest.mark.smoke\n@pytest.mark.gpu\ndef test_marked():\n    pass\n"
    project = make_project(tmp_path / "marked", {"test_marked.py": text})
    proc = run_pytest(project, "-q")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    markers = run_pytest(project, "--markers").stdout
    assert all(f"@pytest.mark.{m}:" in markers for m in ("smoke", "sanity", "user", "gpu"))


def test_sanity_without_gpu_skips_every_gate_with_its_reason(tmp_path):
    proc = run_pytest(make_project(tmp_path / "p"), "-m", "sanity", "-rs")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(GATES)} skipped" in proc.stdout
    assert "the sanity run needs a GPU: pass --gpu" in proc.stdout


def test_sanity_with_gpu_but_no_task06_dir_asks_for_one(tmp_path):
    proc = run_pytest(make_project(tmp_path / "p"), "-m", "sanity", "--gpu", "-rs")
    assert f"{len(GATES)} skipped" in proc.stdout and "no Task06 data: pass --nvseg-task06=DIR" in proc.stdout


@pytest.mark.skipif(bool(visible_gpus_from_smi()), reason="this machine has a GPU")
def test_the_task06_dir_comes_from_the_environment_and_a_missing_gpu_is_named(tmp_path):
    proc = run_pytest(make_project(tmp_path / "p"), "-m", "sanity", "--gpu", "-rs",
                      env={"NVSEG_TASK06_DIR": str(tmp_path)})
    assert f"{len(GATES)} skipped" in proc.stdout, proc.stdout
    assert "nvidia-smi sees no CUDA GPU" in proc.stdout


def test_ini_keys_are_read_and_checked_like_options(tmp_path):
    project = make_project(tmp_path / "p")
    (project / "pytest.ini").write_text("[pytest]\nnvseg_args = --epoch 3\n")
    proc = run_pytest(project, "-m", "smoke")
    assert proc.returncode == 4 and "Did you mean --epochs?" in proc.stderr


def test_the_user_run_skips_without_a_dataset(tmp_path):
    proc = run_pytest(make_project(tmp_path / "p"), "-m", "user", "-rs")
    assert proc.returncode == 0 and f"{len(GATES)} skipped" in proc.stdout
    assert "pass --nvseg-dataset=DIR" in proc.stdout


def test_a_flag_the_wrapper_lacks_is_a_usage_error_with_a_suggestion(tmp_path):
    proc = run_pytest(make_project(tmp_path / "p"), "-m", "smoke", "--nvseg-args=--epoch 3")
    assert proc.returncode == 4
    assert "'--epoch', which is not an nvseg-finetune flag. Did you mean --epochs?" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_two_word_path_option_that_moved_the_rootdir_is_refused(tmp_path):
    project = make_project(tmp_path / "p")
    proc = run_pytest(project, "-m", "user", "--nvseg-dataset", str(FIXTURE))
    assert proc.returncode == 4
    assert f"--nvseg-dataset {FIXTURE} was given as two words" in proc.stderr
    assert f"Write --nvseg-dataset={FIXTURE} as one word" in proc.stderr
    assert not (FIXTURE / ".pytest_cache").exists()


def test_a_flag_the_harness_owns_is_refused(tmp_path):
    proc = run_pytest(make_project(tmp_path / "p"), "--nvseg-args=--output-dir /tmp/x")
    assert proc.returncode == 4 and "which the harness sets itself" in proc.stderr


@pytest.fixture()
def project_with_cached_smoke(tmp_path, smoke_run, nvseg_runs) -> Path:
    """A project whose cache already holds this session's smoke run (copied), as a second session would."""
    project = make_project(tmp_path / "p")
    entry = dict(nvseg_runs.store.load("smoke"), session="an earlier session")
    run_dir = project / ".pytest_cache" / "d" / "nvseg" / "runs" / Path(entry["out"]).name
    shutil.copytree(smoke_run.out, run_dir)
    entry["out"] = str(run_dir)
    value = project / ".pytest_cache" / "v" / "nvseg" / "runs" / "smoke"
    value.parent.mkdir(parents=True)
    value.write_text(json.dumps(entry))
    return project


@pytest.mark.slow
def test_a_second_session_is_served_from_the_cache_and_reports(project_with_cached_smoke):
    project = project_with_cached_smoke
    executions = cached_entry(project, "smoke")["executions"]
    proc = run_pytest(project, "-m", "smoke", "--junitxml", "junit.xml", "--nvseg-report", "report")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "nvseg: running" not in proc.stdout
    assert "smoke  cache" in proc.stdout and "11/11 passed  PASS" in proc.stdout
    assert cached_entry(project, "smoke")["executions"] == executions


@pytest.mark.slow
def test_each_gate_is_its_own_junit_case_with_its_message(project_with_cached_smoke):
    project = project_with_cached_smoke
    run_pytest(project, "-m", "smoke", "--junitxml", "junit.xml")
    cases = ET.parse(project / "junit.xml").getroot().iter("testcase")
    names = {case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")} for case in cases}
    assert len(names) == len(GATES)
    assert "formal_finetuned_val_dice 0.39" in names["test_gate[smoke-reference]"]["nvseg_message"]


@pytest.mark.slow
def test_output_json_gains_a_schema_valid_gates_section(project_with_cached_smoke):
    project = project_with_cached_smoke
    run_pytest(project, "-m", "smoke")
    doc = json.loads((Path(cached_entry(project, "smoke")["out"]) / "output.json").read_text())
    assert doc["gates"]["passed"] == 11 and doc["gates"]["failed"] == 0
    assert doc["gates"]["items"]["ckpt_changed"]["outcome"] == "passed"
    assert schema_errors(doc) == []


@pytest.mark.slow
def test_the_report_embeds_both_plots_and_names_the_verdict(project_with_cached_smoke):
    project = project_with_cached_smoke
    run_pytest(project, "-m", "smoke", "--nvseg-report", "report")
    page = (project / "report" / "report.html").read_text()
    images = [chunk.split("'", 1)[0] for chunk in page.split("data:image/png;base64,")[1:]]
    assert len(images) == 2 and all(base64.b64decode(i).startswith(PNG_SIGNATURE) for i in images)
    assert "smoke: PASS" in page and "<td class='passed'>passed</td>" in page
    markdown = (project / "report" / "report.md").read_text()
    assert "![Validation Dice per epoch](smoke_dice.png)" in markdown
    assert (project / "report" / "smoke_overlay.png").read_bytes().startswith(PNG_SIGNATURE)


USER_ARGS = ("-m", "user", f"--nvseg-dataset={FIXTURE}", "--nvseg-args=--epochs 1 --skip-formal-eval")


@pytest.fixture(scope="module")
def user_project(tmp_path_factory) -> tuple[Path, object]:
    """A project whose first session ran the (short) user run with two xdist workers."""
    project = make_project(tmp_path_factory.mktemp("user") / "p")
    return project, run_pytest(project, *USER_ARGS, "-n", "2", "-v")


@pytest.mark.slow
def test_two_workers_run_the_finetune_once_and_share_it(user_project):
    project, proc = user_project
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert cached_entry(project, "user")["executions"] == 1
    assert "[gw0]" in proc.stdout and "[gw1]" in proc.stdout
    assert "user   ran, shared by xdist workers" in proc.stdout or "user  ran, shared by xdist workers" in proc.stdout
    assert "9 passed, 2 skipped" in proc.stdout


@pytest.mark.slow
def test_the_next_session_reuses_the_run_and_rerun_runs_it_once_more(user_project):
    project, _ = user_project
    again = run_pytest(project, *USER_ARGS)
    assert "user   cache" in again.stdout or "user  cache" in again.stdout, again.stdout
    assert cached_entry(project, "user")["executions"] == 1
    rerun = run_pytest(project, *USER_ARGS, "-n", "2", "--nvseg-rerun")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert cached_entry(project, "user")["executions"] == 2


@pytest.mark.slow
def test_cache_clear_empties_the_run_cache(user_project):
    project, _ = user_project
    run_dir = Path(cached_entry(project, "user")["out"])
    run_pytest(project, "--cache-clear", "--collect-only", "-q")
    assert cached_entry(project, "user") is None and not run_dir.exists()


def test_a_report_asked_for_without_gate_items_says_why_none_was_written(tmp_path):
    project = make_project(tmp_path / "p", {"test_plain.py": "def test_plain():\n    pass\n"})
    proc = run_pytest(project, "--nvseg-report=report")
    assert proc.returncode == 0 and "no gate item ran, so no report was written" in proc.stdout
    assert not (project / "report").exists()
