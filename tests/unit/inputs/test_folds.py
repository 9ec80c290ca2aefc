"""Cross-validation folds: --folds parsing, the refusals before any phase, and each fold's datalist."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from nvseg_bench.errors import DataContractError
from nvseg_bench.inputs.dataset import GENERATED_SOURCE
from nvseg_bench.inputs.folds import chosen_folds, fold_datalist, source_entries, validation_datalist
from nvseg_bench.inputs.request import parse_folds


def _dataset(root: Path, folds: list[int]) -> tuple[list[dict], Path]:
    """Empty files are enough: the fold checks never read voxels."""
    entries = []
    for i, fold in enumerate(folds):
        for sub in ("imagesTr", "labelsTr"):
            (root / sub).mkdir(parents=True, exist_ok=True)
            (root / sub / f"c{i}.nii.gz").write_bytes(b"")
        entries.append({"image": f"imagesTr/c{i}.nii.gz", "label": f"labelsTr/c{i}.nii.gz", "fold": fold})
    path = root / "datalist.json"
    path.write_text(json.dumps({"training": entries}))
    return entries, path


def test_folds_all_and_a_list_parse_to_their_canonical_spelling():
    assert parse_folds("ALL") == "all" and parse_folds("0, 1,3") == "0,1,3" and parse_folds("-1,2") == "-1,2"


@pytest.mark.parametrize("text", ["0", "0,0,1", "a,b", ""])
def test_folds_that_name_fewer_than_two_distinct_integers_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match="--folds|at least two|fold values"):
        parse_folds(text)


def test_all_takes_every_fold_value_of_the_datalist_sorted(tmp_path):
    entries, path = _dataset(tmp_path, [7, 3, 3, 7, -2])
    assert chosen_folds(entries, path, tmp_path, "all") == [-2, 3, 7]


def test_a_fold_without_a_case_is_refused_with_the_folds_present(tmp_path):
    entries, path = _dataset(tmp_path, [0, 1, 2, 0, 1])
    with pytest.raises(DataContractError, match=r"asks for fold\(s\) \[4\]") as caught:
        chosen_folds(entries, path, tmp_path, "0,4")
    assert "folds present: [0, 1, 2]" in str(caught.value) and "--folds all" in str(caught.value)


def test_a_case_listed_in_two_folds_is_refused_and_named(tmp_path):
    entries, path = _dataset(tmp_path, [0, 1, 2])
    entries.append(dict(entries[0], fold=2))
    with pytest.raises(DataContractError, match="c0: fold 0 as 'imagesTr/c0.nii.gz', fold 2"):
        chosen_folds(entries, path, tmp_path, "all")


def test_a_datalist_with_one_fold_value_cannot_be_cross_validated(tmp_path):
    entries, path = _dataset(tmp_path, [3, 3, 3])
    with pytest.raises(DataContractError, match="every entry of .* has fold 3"):
        chosen_folds(entries, path, tmp_path, "all")


def test_a_fold_datalist_validates_that_fold_and_trains_on_every_other_case():
    entries = [{"image": f"i{k}", "label": f"l{k}", "fold": f} for k, f in enumerate([4, 0, 4, 2])]
    assert [e["fold"] for e in fold_datalist(entries, 4)["training"]] == [0, 1, 0, 1]
    assert [e["fold"] for e in fold_datalist(entries, 0)["training"]] == [1, 0, 1, 1]


def test_the_shared_evaluation_scores_the_chosen_folds_cases_only():
    entries = [{"image": f"i{k}", "label": f"l{k}", "fold": f} for k, f in enumerate([0, 1, 2, 1])]
    assert [e["image"] for e in validation_datalist(entries, [1, 2])["training"]] == ["i1", "i2", "i3"]
    assert {e["fold"] for e in validation_datalist(entries, [1, 2])["training"]} == {0}


def test_without_a_datalist_the_seeded_five_fold_split_is_written_and_used(tmp_path):
    data = tmp_path / "data"
    _dataset(data, [0] * 10)
    (data / "datalist.json").unlink()
    entries, path, source = source_entries(data, None, tmp_path / "out")
    assert source == GENERATED_SOURCE and path == (tmp_path / "out" / "datalist.json").resolve()
    assert sorted(e["fold"] for e in entries) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_a_given_datalist_needs_no_fold_0_for_cross_validation(tmp_path):
    data = tmp_path / "data"
    _, path = _dataset(data, [1, 2, 1, 2])
    entries, _, source = source_entries(data, path, tmp_path / "out")
    assert source.startswith("given:") and chosen_folds(entries, path, data, "all") == [1, 2]
