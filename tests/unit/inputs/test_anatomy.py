"""Anatomy plausibility: each mapped class's volume and connected components against the table's ranges."""
from __future__ import annotations

import json

from nvseg_bench.cli import main
from nvseg_bench.inputs import anatomy
from nvseg_bench.inputs.labels import find_label_dict, load_label_dict

from ...helpers import FIXTURE, REPO

LABEL_DICT = load_label_dict(find_label_dict(REPO / "bundle"))


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
