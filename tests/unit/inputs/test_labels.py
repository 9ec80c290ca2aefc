"""Label mapping: what resolves, and what is refused with a message the user can act on."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from nvseg_bench.errors import MappingError
from nvseg_bench.inputs.request import Request, parse_new_class
from nvseg_bench.inputs.resolve import MappingAsk, resolve
from nvseg_bench.inputs.labels import (ResolvedMapping, load_label_dict, local_values, parse_label_mapping,
                                       resolve_mapping, resolve_target_anatomy)

from ...helpers import REPO, asked


LABEL_DICT = REPO / "bundle" / "configs" / "label_dict.json"


@pytest.fixture(scope="module")
def label_dict() -> dict[str, int]:
    return load_label_dict(LABEL_DICT)


def test_label_dict_maps_the_reference_classes(label_dict):
    assert len(label_dict) == 124
    assert label_dict["spleen"] == 3
    assert label_dict["lung tumor"] == 23


def test_label_dict_that_is_not_json_names_the_file(tmp_path):
    broken = tmp_path / "label_dict.json"
    broken.write_text("{not json")
    with pytest.raises(MappingError, match="label_dict.json is not valid JSON"):
        load_label_dict(broken)


def test_label_dict_with_a_non_integer_id_is_refused(tmp_path):
    bad = tmp_path / "label_dict.json"
    bad.write_text(json.dumps({"spleen": "3"}))
    with pytest.raises(MappingError, match="'spleen': '3'"):
        load_label_dict(bad)


def test_mapping_parses_a_list_of_pairs():
    assert parse_label_mapping("[[1,3],[2,1]]") == [(1, 3), (2, 1)]


@pytest.mark.parametrize(
    "text, problem",
    [
        ("1:23", "not JSON"),
        ("[]", "non-empty list"),
        ('{"1": 23}', "non-empty list"),
        ("[[1, 23, 4]]", "is not a \\[local, global\\] pair"),
        ("[1, 23]", "is not a \\[local, global\\] pair"),
        ('[[1, "23"]]', "non-integer"),
        ("[[1.5, 23]]", "non-integer"),
        ("[[true, 23]]", "non-integer"),
        ("[[-1, 23]]", "negative"),
    ],
)
def test_mapping_that_does_not_parse_says_why(text, problem):
    with pytest.raises(MappingError, match=problem):
        parse_label_mapping(text)


def test_mapping_refuses_background_as_a_local_value():
    with pytest.raises(MappingError, match="local value 0") as caught:
        parse_label_mapping("[[0, 3]]")
    assert "background" in str(caught.value)


def test_mapping_refuses_a_local_value_used_twice():
    with pytest.raises(MappingError, match="uses local value 1 more than once"):
        parse_label_mapping("[[1, 3], [1, 23]]")


def test_mapping_refuses_two_local_values_on_one_global_id():
    with pytest.raises(MappingError, match="uses VISTA3D id 3 more than once") as caught:
        parse_label_mapping("[[1, 3], [2, 3]]")
    assert "[[1, 3], [2, 3]]" in str(caught.value)


def test_mapping_refuses_an_invented_class(label_dict):
    with pytest.raises(MappingError, match="cannot add a new class") as caught:
        resolve_mapping(asked("[[1, 200]]"), label_dict)
    assert "id 200" in str(caught.value)


def test_mapping_refuses_an_unused_id_inside_the_range(label_dict):
    assert 18 not in label_dict.values()  # 2, 20, 21 are absent too, but as super-classes (test_model_family.py)
    with pytest.raises(MappingError, match="cannot add a new class"):
        resolve_mapping(asked("[[1, 18]]"), label_dict)


def test_anatomy_name_ignores_case_and_whitespace(label_dict):
    assert resolve_target_anatomy("  Lung   Tumor ", label_dict) == 23


def test_anatomy_name_matches_mixed_case_classes(label_dict):
    assert resolve_target_anatomy("VERTEBRAE l5", label_dict) == label_dict["vertebrae L5"]


def test_misspelt_anatomy_gets_a_did_you_mean_with_ids(label_dict):
    with pytest.raises(MappingError) as caught:
        resolve_target_anatomy("spleeen", label_dict)
    text = str(caught.value)
    assert text.startswith("--target-anatomy 'spleeen' is not a VISTA3D class.")
    assert "Closest: 'spleen' (id 3)" in text
    assert "only a structure VISTA3D lacks is a new class: --new-class VALUE=NAME" in text


def test_unrelated_anatomy_says_no_name_is_close(label_dict):
    with pytest.raises(MappingError, match="No class name is close"):
        resolve_target_anatomy("zzzzqqq", label_dict)


def test_target_anatomy_maps_local_value_one(label_dict):
    mapping = resolve_mapping(asked(anatomy="lung tumor"), label_dict)
    assert mapping == ResolvedMapping(
        pairs=[[1, 23]],
        resolution="--target-anatomy 'lung tumor' -> id 23 (local value 1)",
        names={23: "lung tumor"},
    )


def test_label_mapping_wins_over_target_anatomy(label_dict):
    mapping = resolve_mapping(asked("[[1, 3]]", "lung tumor"), label_dict)
    assert mapping.pairs == [[1, 3]]
    assert mapping.names == {3: "spleen"}
    assert "wins over --target-anatomy 'lung tumor'" in mapping.resolution


def test_label_mapping_wins_even_over_an_unknown_anatomy(label_dict):
    assert resolve_mapping(asked("[[1, 23]]", "spleeen"), label_dict).pairs == [[1, 23]]


def test_label_mapping_resolution_echoes_the_pairs(label_dict):
    assert resolve_mapping(asked("[[1,23]]"), label_dict).resolution == "--label-mapping [[1, 23]]"


def test_no_mapping_and_no_anatomy_asks_for_one(label_dict):
    with pytest.raises(MappingError, match="no label mapping was given") as caught:
        resolve_mapping(asked(), label_dict)
    assert "--target-anatomy" in str(caught.value) and "--label-mapping" in str(caught.value)


def test_resolved_mapping_is_frozen(label_dict):
    mapping = resolve_mapping(asked("[[1, 3]]"), label_dict)
    with pytest.raises(AttributeError):
        mapping.resolution = "changed"  # type: ignore[misc]


def test_local_values_follow_mapping_order(label_dict):
    assert local_values(resolve_mapping(asked("[[2, 3], [1, 23]]"), label_dict)) == [2, 1]


def test_a_partial_anatomy_name_suggests_classes_that_contain_it(label_dict):
    with pytest.raises(MappingError, match=r"Closest: .*'lung tumor' \(id 23\)"):
        resolve_target_anatomy("lung", label_dict)


def _new(*classes: tuple[int, str], label_mapping: str | None = None) -> MappingAsk:
    req = Request(output_dir=Path("out"), label_mapping=label_mapping, new_classes=list(classes))
    return resolve(req, {}, "finetune").mapping


def test_a_new_class_takes_the_lowest_free_id_above_vistas_and_keeps_its_name(label_dict):
    mapping = resolve_mapping(_new((1, "bile duct"), (2, "hepatic artery")), label_dict)
    assert mapping.pairs == [[1, 133], [2, 134]] and mapping.names == {133: "bile duct", 134: "hepatic artery"}
    assert [dict(c) for c in mapping.new_classes] == [{"local": 1, "global": 133, "name": "bile duct"},
                                                      {"local": 2, "global": 134, "name": "hepatic artery"}]


def test_a_new_class_joins_a_label_mapping_and_keeps_the_free_id_it_names(label_dict):
    mapping = resolve_mapping(_new((2, "bile duct"), label_mapping="[[1, 3], [2, 140]]"), label_dict)
    assert mapping.pairs == [[1, 3], [2, 140]] and mapping.names[140] == "bile duct"
    with pytest.raises(MappingError, match="VISTA3D's 'spleen'"):
        resolve_mapping(_new((1, "bile duct"), label_mapping="[[1, 3]]"), label_dict)


def test_an_id_vista3d_lacks_without_new_class_names_the_new_class_fix(label_dict):
    with pytest.raises(MappingError, match="cannot add a new class") as caught:
        resolve_mapping(asked("[[1, 200]]"), label_dict)
    assert "--new-class VALUE=NAME" in str(caught.value) and "133..254" in str(caught.value)


@pytest.mark.parametrize("text, ok", [("2=bile duct", (2, "bile duct")), ("0=x", None), ("x=y", None), ("3=", None)])
def test_new_class_values_parse_or_are_refused(text, ok):
    if ok is None:
        with pytest.raises(argparse.ArgumentTypeError, match="VALUE=NAME"):
            parse_new_class(text)
    else:
        assert parse_new_class(text) == ok
