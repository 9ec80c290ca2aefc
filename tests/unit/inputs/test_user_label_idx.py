"""--user-label-idx: the local label value --target-anatomy means, checked and recorded with its presence."""
from __future__ import annotations

import json

import pytest

from nvseg_bench.cli import main
from nvseg_bench.inputs.labels import find_label_dict, load_label_dict, resolve_mapping

from ...helpers import FIXTURE, REPO, asked


LABEL_DICT = load_label_dict(find_label_dict(REPO / "bundle"))


def test_user_label_idx_is_the_local_value_the_target_anatomy_means():
    mapping = resolve_mapping(asked(anatomy="lung tumor", local=2), LABEL_DICT)
    assert mapping.pairs == [[2, 23]] and "(local value 2)" in mapping.resolution


def test_target_anatomy_means_local_value_1_by_default():
    assert resolve_mapping(asked(anatomy="spleen"), LABEL_DICT).pairs == [[1, 3]]


def test_user_label_idx_0_is_refused_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([str(FIXTURE), "--output-dir", str(tmp_path / "o"), "--user-label-idx", "0"])
    assert exc.value.code == 2 and "at least 1" in capsys.readouterr().err


def test_user_label_idx_is_recorded_with_its_presence(tmp_path):
    code = main([str(FIXTURE), "--dry-run", "--target-anatomy", "spleen", "--user-label-idx", "1",
                 "--output-dir", str(tmp_path / "out")])
    audit = json.loads((tmp_path / "out" / "output.json").read_text())["input"]["dataset_audit"]
    assert code == 0 and audit["user_label_idx"] == 1 and audit["user_label_idx_present_in_sample"] is True
