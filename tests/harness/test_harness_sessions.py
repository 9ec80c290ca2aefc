"""The plugin as users meet it: whole pytest sessions of a throwaway project, run with `pytester`.

Sessions that need a finished run take the stored pack (tests/packs) through the project's cache,
so they run nothing; the few that need the real smoke run are marked slow.
"""
from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from nvseg_bench.planning.environment import visible_gpus_from_smi
from nvseg_bench.harness.gates import conditional_gates, gate_names, opt_in_gates
from nvseg_bench.harness import trust as trust_module
from nvseg_bench.harness.options import HarnessOptions
from nvseg_bench.harness.report import FIGURES
from nvseg_bench.harness.trust import Trust
from nvseg_bench.output.write import schema_errors

from ..harness_util import HEADER, cached_entry, copy_entry, make_project, project_with_stored_pack, seed_entry
from ..helpers import FIXTURE, materialize_pack

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="session")
def report_modules() -> None:
    """Import what the report draws with before any pytester is set up: pytester drops the modules
    imported while it was in use, and importing contourpy's C parts twice in one process breaks plots."""
    pytest.importorskip("matplotlib.figure")
    pytest.importorskip("matplotlib.backends.backend_agg")
    pytest.importorskip("matplotlib.contour")
    pytest.importorskip("contourpy")
    import nibabel  # noqa: F401
    import numpy  # noqa: F401

    import nvseg_bench.harness.plots  # noqa: F401
GATES = gate_names(trusted=False)
TRUSTED_GATES = gate_names(trusted=True)
OFF = len(opt_in_gates()) + len(conditional_gates())  # items that skip unless asked for, and those a smoke run lacks
JUDGED = len(GATES) - OFF  # the items a default session judges


def test_an_unrelated_project_sees_a_header_line_and_nothing_else(pytester):
    make_project(pytester, {"test_plain": "def test_plain():\n    assert 1 + 1 == 2\n"})
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([HEADER])
    result.stdout.no_fnmatch_line("*nvseg-bench runs*")
    assert not (pytester.path / ".pytest_cache" / "d" / "nvseg").exists()


def test_the_markers_are_registered_so_strict_markers_accepts_them(pytester):
    make_project(pytester, {"test_marked": "import pytest\n\n@pytest.mark.smoke\n@pytest.mark.gpu\ndef test_marked():\n"
                                           "    pass\n"})
    pytester.runpytest().assert_outcomes(passed=1)
    pytester.runpytest("--markers").stdout.fnmatch_lines(
        ["@pytest.mark.smoke:*", "@pytest.mark.sanity:*", "@pytest.mark.user:*", "@pytest.mark.gpu:*"], consecutive=False)


@pytest.mark.parametrize("args, reason", [
    (("-m", "sanity"), "the sanity run needs a GPU: pass --gpu"),
    (("-m", "sanity", "--gpu"), "no Task06 data: pass --nvseg-task06=DIR"),
    (("-m", "user"), "no user dataset: pass --nvseg-dataset=DIR"),
], ids=["sanity_without_gpu", "sanity_without_task06", "user_without_dataset"])
def test_a_run_that_cannot_happen_skips_every_gate_with_its_reason(pytester, args, reason):
    make_project(pytester)
    result = pytester.runpytest(*args, "-rs")
    result.assert_outcomes(skipped=len(GATES))
    result.stdout.fnmatch_lines([f"SKIPPED * {reason}*"])


@pytest.mark.skipif(bool(visible_gpus_from_smi()), reason="this machine has a GPU")
def test_the_task06_dir_comes_from_the_environment_and_a_missing_gpu_is_named(pytester, monkeypatch, tmp_path):
    make_project(pytester)
    monkeypatch.setenv("NVSEG_TASK06_DIR", str(tmp_path))
    result = pytester.runpytest("-m", "sanity", "--gpu", "-rs")
    result.assert_outcomes(skipped=len(GATES))
    result.stdout.fnmatch_lines(["SKIPPED * nvidia-smi sees no CUDA GPU*"])


def test_ini_keys_are_read_and_checked_like_options(pytester):
    make_project(pytester, ini="nvseg_args = --epoch 3\n")
    result = pytester.runpytest("-m", "smoke")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*Did you mean --epochs?*"])


def test_a_flag_the_wrapper_lacks_is_a_usage_error_with_a_suggestion(pytester):
    make_project(pytester)
    result = pytester.runpytest("-m", "smoke", "--nvseg-args=--epoch 3")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*'--epoch', which is not an nvseg-finetune flag. Did you mean --epochs?*"])
    result.stderr.no_fnmatch_line("*Traceback*")


def test_a_min_agreement_outside_0_to_1_is_a_usage_error(pytester):
    make_project(pytester)
    result = pytester.runpytest("-m", "smoke", "--nvseg-min-agreement=80")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--nvseg-min-agreement '80' must be a fraction between 0 and 1, e.g. 0.8*"])


def test_a_two_word_path_option_that_moved_the_rootdir_is_refused(pytester):
    make_project(pytester)
    result = pytester.runpytest_subprocess("-m", "user", "--nvseg-dataset", str(FIXTURE))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--nvseg-dataset {FIXTURE} was given as two words*"
                                 f"Write --nvseg-dataset={FIXTURE} as one word*"])
    assert not (FIXTURE / ".pytest_cache").exists()


def test_a_flag_the_harness_owns_is_refused(pytester):
    make_project(pytester)
    result = pytester.runpytest("--nvseg-args=--output-dir /tmp/x")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*which the harness sets itself*"])


def test_a_report_asked_for_without_gate_items_says_why_none_was_written(pytester):
    make_project(pytester, {"test_plain": "def test_plain():\n    pass\n"})
    result = pytester.runpytest("--nvseg-report=report")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*no gate item ran, so no report was written*"])
    assert not (pytester.path / "report").exists()


def test_trusted_only_needs_a_dir_with_output_json(pytester, tmp_path):
    make_project(pytester)
    result = pytester.runpytest(f"--nvseg-trusted-only={tmp_path}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--nvseg-trusted-only={tmp_path} has no output.json*"])


# Without the cache provider. A user run on an empty dataset dir is refused by the CLI in seconds:
# enough to show a run is made, judged and its entry kept, without a finetune.

def _refused_user_run(pytester, *args: str):
    (pytester.path / "empty").mkdir(exist_ok=True)
    return pytester.runpytest("-p", "no:cacheprovider", "-m", "user", "--nvseg-dataset=empty", *args)


def test_without_the_cache_provider_and_out_dir_the_header_says_nothing_is_cached(pytester):
    make_project(pytester)
    result = _refused_user_run(pytester)
    result.stdout.fnmatch_lines(["nvseg: pytest's cache provider is off (-p no:cacheprovider) and no --nvseg-out "
                                 "was given, so nothing is cached: every session runs its finetunes again*",
                                 "nvseg: running user (nothing cached)*"], consecutive=False)
    outcomes = result.parseoutcomes()
    assert "errors" not in outcomes and outcomes.get("failed") == len(GATES)
    _refused_user_run(pytester).stdout.fnmatch_lines(["nvseg: running user (nothing cached)*"])


def test_without_the_cache_provider_the_entries_live_under_the_out_dir(pytester):
    make_project(pytester)
    result = _refused_user_run(pytester, "--nvseg-out=evidence")
    result.stdout.fnmatch_lines(["nvseg: pytest's cache provider is off*; run entries are kept under *evidence*"])
    assert "errors" not in result.parseoutcomes()
    entry = cached_entry(pytester.path / "evidence" / ".nvseg-cache", "user")
    assert entry is not None and Path(entry["out"]).parent == pytester.path / "evidence"
    assert not (pytester.path / ".pytest_cache").exists()
    again = _refused_user_run(pytester, "--nvseg-out=evidence")
    again.stdout.fnmatch_lines(["nvseg: running user (the cached run exited 2)*"])


# Trusted mode on the stored pack: the real verifier runs, no finetune does.

def test_a_pack_tampered_after_its_run_fails_the_trusted_gate_though_the_run_is_cached(pytester, tmp_path):
    run_dir = project_with_stored_pack(pytester, tmp_path)
    doc = json.loads((run_dir / "output.json").read_text())
    doc["output"]["formal_finetuned_val_dice"] += 0.01
    (run_dir / "output.json").write_text(json.dumps(doc))
    result = pytester.runpytest("-m", "smoke", "--nvseg-trusted")
    result.assert_outcomes(passed=len(TRUSTED_GATES) - OFF - 1, failed=1, skipped=OFF)
    result.stdout.fnmatch_lines(["smoke  cache *", "*smoke/trusted FAILED: the pack changed after its run: "
                                 "output.json changed*"], consecutive=False)
    result.stdout.no_fnmatch_line("nvseg: running*")
    summary = Path(cached_entry(pytester.path / ".pytest_cache", "smoke")["trust"]["summary"])
    assert summary.is_file() and run_dir not in summary.parents and not (run_dir / "trust_summary.json").exists()


def test_an_untouched_cached_pack_keeps_its_verdict_and_the_gates_write_does_not_count_as_a_change(
        pytester, tmp_path, monkeypatch):
    run_dir = project_with_stored_pack(pytester, tmp_path)
    calls = []

    def verify(pack: Path, out: Path, given) -> Trust:  # the real verifier's verdict on this pack: see the test above
        calls.append(pack)
        out.mkdir(parents=True, exist_ok=True)
        (out / "trust_summary.json").write_text("{}")
        return Trust("passed", summary=str(out / "trust_summary.json"))
    monkeypatch.setattr(trust_module, "run_verifier", verify)
    pytester.runpytest("-m", "smoke", "--nvseg-trusted").assert_outcomes(passed=len(TRUSTED_GATES) - OFF, skipped=OFF)
    assert "gates" in json.loads((run_dir / "output.json").read_text())
    pytester.runpytest("-m", "smoke", "--nvseg-trusted").assert_outcomes(passed=len(TRUSTED_GATES) - OFF, skipped=OFF)
    assert calls == [run_dir] and cached_entry(pytester.path / ".pytest_cache", "smoke")["trust"]["source"] == "cache"


def test_trusted_only_judges_a_copied_pack_and_reports_the_verdict(pytester, tmp_path, report_modules):
    make_project(pytester)
    pack = materialize_pack("smoke", tmp_path / "copied-back")
    result = pytester.runpytest("-m", "smoke", f"--nvseg-trusted-only={pack}", "--nvseg-report=report",
                                "--junitxml=gates.xml")
    result.assert_outcomes(passed=len(TRUSTED_GATES) - OFF - 1, skipped=OFF + 1)  # + inputs_untouched
    result.stdout.fnmatch_lines(["run * verifier", "smoke  pack *PASS *passed"], consecutive=False)
    result.stdout.no_fnmatch_line("nvseg: running*")
    assert not (pack / "trust_summary.json").exists() and "gates" not in json.loads((pack / "output.json").read_text())
    assert "### Verifier" in (pytester.path / "report" / "report.md").read_text()
    cases = {c.get("name"): {p.get("name"): p.get("value") for p in c.iter("property")}
             for c in ET.parse(pytester.path / "gates.xml").getroot().iter("testcase")}
    assert cases["test_gate[smoke-trusted]"]["nvseg_trust_verdict"] == "passed"


# The real smoke run (slow): sessions served from this session's cached run.

@pytest.fixture()
def cached_smoke(pytester, smoke_run, nvseg_runs) -> Path:
    """A project whose cache holds this session's smoke run (copied), as a second session would."""
    make_project(pytester)
    return copy_entry(pytester.path, nvseg_runs.store.load("smoke"), smoke_run.out)


def test_a_second_session_is_served_from_the_cache_and_reports(pytester, cached_smoke, report_modules):
    executions = cached_entry(pytester.path / ".pytest_cache", "smoke")["executions"]
    result = pytester.runpytest("-m", "smoke", "--nvseg-report", "report")
    result.assert_outcomes(passed=JUDGED, skipped=OFF)
    result.stdout.fnmatch_lines([f"smoke  cache  * {JUDGED}/{JUDGED} passed  PASS"])
    result.stdout.no_fnmatch_line("nvseg: running*")
    assert cached_entry(pytester.path / ".pytest_cache", "smoke")["executions"] == executions


def test_each_gate_is_its_own_junit_case_with_its_message(pytester, cached_smoke):
    pytester.runpytest("-m", "smoke", "--junitxml", "junit.xml")
    cases = ET.parse(pytester.path / "junit.xml").getroot().iter("testcase")
    names = {case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")} for case in cases}
    assert set(names) == {f"test_gate[smoke-{gate}]" for gate in GATES}
    assert "formal_finetuned_val_dice 0.3" in names["test_gate[smoke-reference]"]["nvseg_message"]


def test_output_json_gains_a_schema_valid_gates_section(pytester, cached_smoke):
    pytester.runpytest("-m", "smoke")
    doc = json.loads((cached_smoke / "output.json").read_text())
    assert doc["gates"]["passed"] == JUDGED and doc["gates"]["failed"] == 0
    assert doc["gates"]["items"]["ckpt_changed"]["outcome"] == "passed"
    assert schema_errors(doc) == []


def test_the_report_embeds_both_plots_and_names_the_verdict(pytester, cached_smoke, report_modules):
    pytester.runpytest("-m", "smoke", "--nvseg-report", "report")
    page = (pytester.path / "report" / "report.html").read_text()
    images = [chunk.split("'", 1)[0] for chunk in page.split("data:image/png;base64,")[1:]]
    # one image per figure the report draws (Dice trace, per-case and per-class slope charts, overlay) and per
    # feature figure (the boundary chart); a smoke run has no forgetting check, so no agreement chart
    assert len(images) == len(FIGURES) - 1 + 1 and all(base64.b64decode(i).startswith(PNG_SIGNATURE) for i in images)
    assert "Boundary metrics per case" in page
    assert "smoke: PASS" in page and "<td class='passed'>passed</td>" in page
    markdown = (pytester.path / "report" / "report.md").read_text()
    assert "![Validation Dice per epoch](smoke_dice.png)" in markdown
    assert (pytester.path / "report" / "smoke_overlay.png").read_bytes().startswith(PNG_SIGNATURE)


def test_the_real_smoke_pack_passes_trusted_mode(pytester, smoke_run, nvseg_runs):
    make_project(pytester)
    # without the outer session's kept verdict (CI runs it with --nvseg-trusted), so the verifier really runs here
    entry = {key: value for key, value in nvseg_runs.store.load("smoke").items() if key != "trust"}
    cached_smoke = copy_entry(pytester.path, entry, smoke_run.out)
    result = pytester.runpytest("-m", "smoke", "--nvseg-trusted")
    result.stdout.fnmatch_lines(["nvseg: the verifier judged smoke: passed*"])
    result.assert_outcomes(passed=len(TRUSTED_GATES) - OFF, skipped=OFF)
    summary = pytester.path / ".pytest_cache" / "d" / "nvseg" / "trust" / "smoke" / "trust_summary.json"
    assert json.loads(summary.read_text())["verdict"] in ("passed", "warn")  # the harness's folder, never the pack
    assert not (cached_smoke / "trust_summary.json").exists()


def test_without_the_cache_provider_a_run_kept_under_the_out_dir_is_reused(pytester, smoke_run, nvseg_runs):
    make_project(pytester)
    copy_entry(pytester.path, nvseg_runs.store.load("smoke"), smoke_run.out,
               cache=pytester.path / "evidence" / ".nvseg-cache")
    result = pytester.runpytest("-p", "no:cacheprovider", "-m", "smoke", "--nvseg-out=evidence")
    result.assert_outcomes(passed=JUDGED, skipped=OFF)
    result.stdout.fnmatch_lines(["smoke  cache *"])


USER_ARGS = ("-m", "user", f"--nvseg-dataset={FIXTURE}", "--nvseg-args=--epochs 1 --skip-formal-eval")
USER_OPTS = HarnessOptions(dataset=FIXTURE, args=["--epochs", "1", "--skip-formal-eval"])


@pytest.mark.slow
def test_two_workers_run_the_finetune_once_and_share_it(pytester):
    make_project(pytester)
    result = pytester.runpytest_subprocess(*USER_ARGS, "-n", "2", "-v")
    result.assert_outcomes(passed=JUDGED - 2, skipped=OFF + 2)  # formal_fields and reference: no formal eval, no range
    assert cached_entry(pytester.path / ".pytest_cache", "user")["executions"] == 1
    for line in ("*[[]gw0[]]*", "*[[]gw1[]]*", "user * ran, shared by xdist workers *"):  # in any order
        result.stdout.fnmatch_lines([line])


def test_the_next_session_reuses_a_cached_run(pytester, tmp_path):
    make_project(pytester)
    seed_entry(pytester.path, materialize_pack("smoke", tmp_path / "run"), tmp_path, "user", USER_OPTS)
    result = pytester.runpytest(*USER_ARGS)
    result.stdout.fnmatch_lines(["user * cache *"])
    result.stdout.no_fnmatch_line("nvseg: running*")


@pytest.mark.slow
def test_rerun_runs_a_cached_run_once_more_with_two_workers(pytester, tmp_path):
    make_project(pytester)
    entry = seed_entry(pytester.path, materialize_pack("smoke", tmp_path / "run"), tmp_path, "user", USER_OPTS)
    result = pytester.runpytest_subprocess(*USER_ARGS, "-n", "2", "--nvseg-rerun")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert cached_entry(pytester.path / ".pytest_cache", "user")["executions"] == entry["executions"] + 1


def test_cache_clear_empties_the_run_cache(pytester, tmp_path):
    make_project(pytester)
    run_dir = materialize_pack("smoke", pytester.path / ".pytest_cache" / "d" / "nvseg" / "runs" / "user-0123")
    seed_entry(pytester.path, run_dir, tmp_path, "user", USER_OPTS)
    pytester.runpytest("--cache-clear", "--collect-only", "-q")
    assert cached_entry(pytester.path / ".pytest_cache", "user") is None and not run_dir.exists()
