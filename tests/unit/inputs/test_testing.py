"""The datalist's `testing` list (inputs/testing.py): read in upstream's format, refused when it leaks into
training or validation, staged as the test phases' datalist. Datalists are written in tmp; the shipped
fixture's files are only read."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nvseg_bench.errors import EXIT_BAD_INPUT, DataContractError
from nvseg_bench.inputs.dataset import GENERATED_SOURCE
from nvseg_bench.inputs.testing import read_testing, refuse_leaks, stage

from ...helpers import REPO

DATA = REPO / "fixtures" / "spleen_micro"


def entry(n: str, **extra) -> dict:
    return {"image": f"imagesTr/spleen_{n}.nii.gz", "label": f"labelsTr/spleen_{n}.nii.gz", **extra}


def write(tmp_path: Path, testing: list, training: list | None = None) -> Path:
    path = tmp_path / "datalist.json"
    training = training if training is not None else [entry("03", fold=0), entry("01", fold=1)]
    path.write_text(json.dumps({"training": training, "testing": testing}))
    return path


def test_labelled_testing_entries_are_read_and_unlabelled_ones_counted_apart(tmp_path):
    path = write(tmp_path, [entry("05"), {"image": "imagesTr/spleen_07.nii.gz"}])
    split = read_testing(path, f"given: {path}", DATA)
    assert split.entries == ({"image": "imagesTr/spleen_05.nii.gz", "label": "labelsTr/spleen_05.nii.gz"},)
    assert split.unlabelled == ("imagesTr/spleen_07.nii.gz",)
    assert split.to_json() == {"n_cases": 1, "cases": ["spleen_05.nii.gz"],
                               "unlabelled_not_scored": ["imagesTr/spleen_07.nii.gz"]}


def test_no_testing_list_and_a_generated_datalist_have_no_test_split(tmp_path):
    path = tmp_path / "plain.json"
    path.write_text(json.dumps({"training": [entry("03", fold=0)]}))
    assert read_testing(path, f"given: {path}", DATA) is None
    assert read_testing(write(tmp_path, [entry("05")]), GENERATED_SOURCE, DATA) is None


@pytest.mark.parametrize("bad, said", [({"label": "labelsTr/spleen_05.nii.gz"}, "has no image path"),
                                       (entry("99"), "does not exist"),
                                       ({"image": "../x.nii.gz", "label": "labelsTr/spleen_05.nii.gz"}, "leaves the dataset dir")])
def test_an_unusable_testing_entry_is_bad_input_naming_it(tmp_path, bad, said):
    path = write(tmp_path, [bad])
    with pytest.raises(DataContractError) as caught:
        read_testing(path, f"given: {path}", DATA)
    assert caught.value.exit_code == EXIT_BAD_INPUT and said in str(caught.value)


def test_a_testing_case_also_used_for_training_or_validation_is_refused_naming_it(tmp_path):
    training = [entry("03", fold=0), entry("05", fold=2)]
    path = write(tmp_path, [entry("03"), entry("05"), entry("07")], training)
    with pytest.raises(DataContractError) as caught:
        refuse_leaks(read_testing(path, f"given: {path}", DATA), training, DATA)
    text = str(caught.value)
    assert caught.value.exit_code == EXIT_BAD_INPUT and "2 testing case(s)" in text
    assert "spleen_03: testing image" in text and "validation (fold 0)" in text and "training (fold 2)" in text
    assert "spleen_07" not in text


def test_held_out_testing_cases_pass_and_are_staged_as_fold_0(tmp_path):
    path = write(tmp_path, [entry("05"), entry("07")])
    split = read_testing(path, f"given: {path}", DATA)
    refuse_leaks(split, [entry("03", fold=0), entry("01", fold=1)], DATA)
    staged = json.loads(stage(split, tmp_path / "configs").read_text())
    assert staged == {"training": [entry("05", fold=0), entry("07", fold=0)]}


def test_the_cli_refuses_a_leaking_testing_list_before_any_phase(tmp_path, capsys):
    from nvseg_bench.cli import main

    shipped = json.loads((DATA / "datalist.json").read_text())  # read only; the leak is written in tmp
    path = tmp_path / "leak.json"
    path.write_text(json.dumps(shipped | {"testing": [entry("06"), entry("02")]}))
    out = tmp_path / "out"
    assert main([str(DATA), "--smoke", "--datalist", str(path), "--output-dir", str(out)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "spleen_06: testing image" in err and "spleen_02: testing image" in err and "Traceback" not in err
    assert not (out / "logs").exists() and not (out / "output.json").exists()
