"""Which preset a run takes: a preset flag, the fixture card's choice, an MSD Task06 folder, or a user
finetune; and the default dataset when none is given (the peer skill's invocation)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nvseg_bench.cli import main
from nvseg_bench.errors import ArgumentError
from nvseg_bench.inputs.preset import SHIPPED_FIXTURE, choose_preset, is_task06

from ...helpers import FIXTURE, REPO


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
