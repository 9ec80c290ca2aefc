"""Per-class formal Dice: the bundle's class columns read in mapping order, means, statistics, regressions."""
from __future__ import annotations

import pytest

from nvseg_bench.evidence import per_class
from nvseg_bench.evidence.per_class import MappedClass, mapped_classes, read_case_class_dice

CLASSES = (MappedClass("spleen", 1, 3), MappedClass("bile duct", 2, 133))


def write_raw(eval_dir, rows: list[str]) -> None:
    eval_dir.mkdir(parents=True, exist_ok=True)
    (eval_dir / per_class.RAW_CSV).write_text("filename,class0,class1,mean\n" + "\n".join(rows) + "\n")


def test_columns_follow_the_mapping_order_and_an_absent_class_is_none(tmp_path):
    write_raw(tmp_path, ["/data/imagesTr/a.nii.gz,0.5,0.25,0.375", "/data/imagesTr/b.nii.gz,0.75,nan,0.75"])
    table = read_case_class_dice(tmp_path, CLASSES)
    assert table == {"a.nii.gz": {"spleen": 0.5, "bile duct": 0.25}, "b.nii.gz": {"spleen": 0.75, "bile duct": None}}


def test_a_phase_without_the_csv_gives_no_table(tmp_path):
    assert read_case_class_dice(tmp_path, CLASSES) == {}


def test_class_means_skip_the_cases_whose_label_lacks_the_class():
    table = {"a": {"spleen": 0.5, "bile duct": 0.25}, "b": {"spleen": 0.75, "bile duct": None}}
    assert per_class.class_means(table, CLASSES) == {"spleen": 0.625, "bile duct": 0.25}


def test_two_classes_of_the_same_name_get_their_ids_in_the_key():
    keys = [c.name for c in mapped_classes([[1, 3], [2, 140], [3, 141]], {3: "spleen", 140: "duct", 141: "duct"})]
    assert keys == ["spleen", "duct (140)", "duct (141)"]


def test_a_class_without_a_name_is_keyed_by_its_id():
    assert mapped_classes([[4, 200]], {})[0].name == "class 200"


def tables(spleen_gain: float, duct_gain: float, n: int = 8) -> tuple[dict, dict]:
    before = {f"c{i}": {"spleen": 0.5 + 0.01 * i, "bile duct": 0.6 - 0.01 * i} for i in range(n)}
    after = {case: {"spleen": row["spleen"] + spleen_gain + 0.001 * (i % 3),
                    "bile duct": row["bile duct"] + duct_gain + 0.001 * (i % 2)}
             for i, (case, row) in enumerate(before.items())}
    return before, after


def test_a_class_that_got_worse_is_a_regression_while_the_mean_over_classes_rises():
    before, after = tables(spleen_gain=0.2, duct_gain=-0.05)
    fields = per_class.output_fields(before, after, CLASSES)
    assert [row["class"] for row in fields["class_regressions"]] == ["bile duct"]
    assert fields["formal_class_gain_stats"]["spleen"]["confidence"] == "clear"
    assert fields["formal_class_gain_stats"]["bile duct"]["ci_high"] < 0
    assert "class bile duct (label 2, VISTA3D id 133) got worse" in fields["class_warnings"][0]


def test_a_gain_within_noise_is_no_regression():
    before, after = tables(spleen_gain=0.0, duct_gain=0.0)
    after = {case: {"spleen": row["spleen"] + (0.01 if i % 2 else -0.01), "bile duct": row["bile duct"]}
             for i, (case, row) in enumerate(before.items())}
    fields = per_class.output_fields(before, after, CLASSES)
    assert fields["class_regressions"] == [] and fields["class_warnings"] == []
    assert fields["formal_class_gain_stats"]["spleen"]["confidence"] == "within_noise"


def test_without_both_phases_there_are_means_but_no_statistics():
    before, _ = tables(0.0, 0.0)
    fields = per_class.output_fields(before, {}, CLASSES)
    assert fields["formal_class_gain_stats"] is None and fields["class_regressions"] == []
    assert fields["formal_pretrained_per_class"]["spleen"] == pytest.approx(0.535)
    assert fields["formal_finetuned_per_class"] == {}


def test_a_class_no_case_holds_has_no_statistics():
    before = {"a": {"spleen": 0.5, "bile duct": None}, "b": {"spleen": 0.6, "bile duct": None}}
    after = {"a": {"spleen": 0.7, "bile duct": None}, "b": {"spleen": 0.8, "bile duct": None}}
    stats = per_class.output_fields(before, after, CLASSES)["formal_class_gain_stats"]
    assert stats["bile duct"] is None and stats["spleen"]["n_cases"] == 2
