"""The peer skill's invocation and flags: the preset a dataset names, default datasets,
--user-label-idx, anatomy plausibility and the phase interpreter's version pins."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nvseg_bench.inputs import anatomy
from nvseg_bench.planning import pins
from nvseg_bench.cli import main
from nvseg_bench.errors import ArgumentError
from nvseg_bench.inputs.labels import find_label_dict, load_label_dict, resolve_mapping
from nvseg_bench.inputs.preset import SHIPPED_FIXTURE, choose_preset, is_task06

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "fixtures" / "spleen_micro"
LABEL_DICT = load_label_dict(find_label_dict(REPO / "bundle"))


# --- which preset ---------------------------------------------------------------------------

def test_a_fixture_card_that_names_a_preset_picks_it_and_says_why(tmp_path):
    preset, why = choose_preset(False, False, tmp_path, {"preset": "smoke"})
    assert preset == "smoke" and why == f"named by {tmp_path / 'fixture.json'}; no --smoke or --sanity was given"


def test_a_preset_flag_wins_over_the_fixture_card(tmp_path):
    assert choose_preset(False, True, tmp_path, {"preset": "smoke"}) == ("sanity", "--sanity")


def test_a_fixture_card_naming_an_unknown_preset_is_refused(tmp_path):
    with pytest.raises(ArgumentError, match="names the preset 'quick', which does not exist"):
        choose_preset(False, False, tmp_path, {"preset": "quick"})


@pytest.mark.parametrize("name, has_json, expected", [
    ("Task06_Lung", False, True),
    ("Task06_Lung_copy", True, True),
    ("Task06_Lung_copy", False, False),
    ("Task09_Spleen", True, False),
])
def test_an_msd_task06_folder_is_recognised_by_name_and_dataset_json(tmp_path, name, has_json, expected):
    folder = tmp_path / name
    folder.mkdir()
    if has_json:
        (folder / "dataset.json").write_text("{}")
    assert is_task06(folder) is expected


def test_a_plain_dataset_without_a_preset_flag_is_a_user_finetune(tmp_path):
    assert choose_preset(False, False, tmp_path, {})[0] == "finetune"


def test_the_grader_style_call_on_the_shipped_fixture_plans_the_smoke_preset(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "run_finetune.py"), str(FIXTURE), "--output-dir",
                           str(out), "--dry-run"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "output.json").read_text())
    assert doc["plan"]["preset"] == "smoke" and doc["input"]["smoke"] is True
    assert doc["plan"]["rationale"][0] == f"preset: smoke (named by {FIXTURE / 'fixture.json'}; no --smoke or --sanity was given)"


def test_smoke_without_a_dataset_runs_the_shipped_fixture(tmp_path, capsys):
    code = main(["--smoke", "--dry-run", "--output-dir", str(tmp_path / "out")])
    doc = json.loads((tmp_path / "out" / "output.json").read_text())
    assert code == 0 and doc["input"]["dataset_dir"] == str(SHIPPED_FIXTURE) == str(FIXTURE)


def test_no_dataset_and_no_preset_flag_is_refused(tmp_path, capsys):
    code = main(["--output-dir", str(tmp_path / "out")])
    assert code == 2 and "no dataset was given" in capsys.readouterr().err


# --- --user-label-idx -----------------------------------------------------------------------

def test_user_label_idx_is_the_local_value_the_target_anatomy_means():
    mapping = resolve_mapping(None, "lung tumor", LABEL_DICT, user_label_idx=2)
    assert mapping.pairs == [[2, 23]] and "(local value 2)" in mapping.resolution


def test_target_anatomy_means_local_value_1_by_default():
    assert resolve_mapping(None, "spleen", LABEL_DICT).pairs == [[1, 3]]


def test_user_label_idx_0_is_refused_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([str(FIXTURE), "--output-dir", str(tmp_path / "o"), "--user-label-idx", "0"])
    assert exc.value.code == 2 and "at least 1" in capsys.readouterr().err


def test_user_label_idx_is_recorded_with_its_presence(tmp_path):
    code = main([str(FIXTURE), "--dry-run", "--target-anatomy", "spleen", "--user-label-idx", "1",
                 "--output-dir", str(tmp_path / "out")])
    audit = json.loads((tmp_path / "out" / "output.json").read_text())["input"]["dataset_audit"]
    assert code == 0 and audit["user_label_idx"] == 1 and audit["user_label_idx_present_in_sample"] is True


# --- anatomy plausibility -------------------------------------------------------------------

def row(name: str, ml: float, parts: int) -> dict:
    return {"name": name, "foreground_ml": {"1": ml}, "components": {"1": parts}}


def test_every_table_class_is_a_vista3d_class_with_sane_ranges():
    for class_id, entry in anatomy.load_table().items():
        assert LABEL_DICT[entry["name"]] == class_id
        low, high = entry["volume_ml"]
        assert 0 < low < high and entry["components"][0] >= 1 and entry["basis"]


def test_a_spleen_of_plausible_size_in_one_piece_passes():
    found = anatomy.assess([row("a", 180.0, 1)], [[1, 3]], {3: "spleen"})
    assert found["anatomy_volume_all_in_range"] is True and found["anatomy_components_all_match"] is True
    assert found["anatomy_warnings"] == []


def test_a_spleen_measured_in_the_wrong_units_is_a_warning_naming_the_case():
    found = anatomy.assess([row("a", 180.0, 1), row("b", 0.18, 1)], [[1, 3]], {3: "spleen"})
    assert found["anatomy_volume_all_in_range"] is False
    assert found["anatomy"]["1"]["cases_volume_out_of_range"] == ["b"]
    assert found["anatomy_warnings"] == ["b: label 1 (spleen) is 0.18 mL, outside the plausible 40-1500 mL"]


def test_a_split_spleen_is_a_component_warning():
    found = anatomy.assess([row("a", 180.0, 3)], [[1, 3]], {3: "spleen"})
    assert found["anatomy_components_all_match"] is False
    assert found["anatomy_warnings"] == ["a: label 1 (spleen) has 3 connected components, expected 1"]


def test_several_lung_tumours_in_one_case_are_plausible():
    found = anatomy.assess([row("a", 12.0, 4)], [[1, 23]], {23: "lung tumor"})
    assert found["anatomy_components_all_match"] is True


def test_an_empty_label_is_out_of_range():
    found = anatomy.assess([{"name": "a", "foreground_ml": {}, "components": {}}], [[1, 3]], {3: "spleen"})
    assert found["anatomy"]["1"]["cases_volume_out_of_range"] == ["a"]
    assert found["anatomy"]["1"]["cases_components_mismatch"] == ["a"]


def test_a_class_without_a_range_gives_no_verdict():
    found = anatomy.assess([row("a", 5.0, 1)], [[1, 6]], {6: "aorta"})
    assert found["anatomy"]["1"]["in_table"] is False
    assert found["anatomy_volume_all_in_range"] is None and found["anatomy_warnings"] == []


def test_anatomy_warnings_reach_the_console_and_output_json_without_refusing(tmp_path, capsys):
    code = main([str(FIXTURE), "--dry-run", "--output-dir", str(tmp_path / "out")])
    printed = capsys.readouterr().out
    audit = json.loads((tmp_path / "out" / "output.json").read_text())["input"]["dataset_audit"]
    assert code == 0  # spleen_05's spleen is drawn in two pieces: a warning, not a refusal
    assert "  warning spleen_05: label 1 (spleen) has 2 connected components, expected 1" in printed
    assert audit["anatomy_warnings"] == ["spleen_05: label 1 (spleen) has 2 connected components, expected 1"]
    assert (audit["anatomy_volume_all_in_range"], audit["anatomy_components_all_match"]) == (True, False)


# --- version pins of the phase interpreter --------------------------------------------------

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


# --- the trusted verifier re-derives the verdicts --------------------------------------------

@pytest.fixture(scope="module")
def planned_pack(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pack") / "out"
    assert main([str(FIXTURE), "--dry-run", "--output-dir", str(out)]) == 0
    return out


def verify_anatomy(pack_dir: Path, change=None):
    from eval_engine.pack import load_pack
    from eval_engine.plausibility import check_anatomy

    pack = load_pack(pack_dir)
    if change:
        change(pack.output["input"]["dataset_audit"])
    return check_anatomy(pack)


def test_the_verifier_agrees_with_the_recorded_anatomy_verdicts(planned_pack):
    found = verify_anatomy(planned_pack)
    assert found.status == "pass", found.detail
    assert found.numbers["rederived"]["outside"] == {"1": {"volume": [], "components": ["spleen_05"]}}


def test_the_verifier_catches_a_verdict_that_hides_a_split_label(planned_pack):
    found = verify_anatomy(planned_pack, lambda a: a.update(anatomy_components_all_match=True))
    assert found.status == "fail" and "anatomy_components_all_match is True, the table gives False" in found.detail


def test_the_verifier_catches_a_volume_edited_out_of_range(planned_pack):
    found = verify_anatomy(planned_pack, lambda a: a["samples"][0]["foreground_ml"].update({"1": 0.05}))
    assert found.status == "fail" and "anatomy_volume_all_in_range is True, the table gives False" in found.detail
