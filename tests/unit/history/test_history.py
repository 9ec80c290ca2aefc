"""The history package on its own: the record, the store, the comparison and the regression rule."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from nvseg_bench.history.compare import compare, describe_differences
from nvseg_bench.history.record import build_record, git_commit, record_from_run_dir
from nvseg_bench.history.regression import Threshold, check_regression, parse_threshold
from nvseg_bench.history.storage import FileStorage, HistoryWarning, UnknownRun, store_dir

from ...helpers import REPO, materialize_pack


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory) -> Path:
    return materialize_pack("smoke", tmp_path_factory.mktemp("packs") / "smoke")


@pytest.fixture()
def record(smoke_dir) -> dict:
    return record_from_run_dir(smoke_dir)


def _with_cases(record: dict, cases: dict[str, float]) -> dict:
    moved = json.loads(json.dumps(record))
    moved["per_case"]["finetuned"] = cases
    moved["figures"]["formal_finetuned_val_dice"] = sum(cases.values()) / len(cases)
    return moved


def test_a_record_holds_the_runs_provenance_figures_and_per_case_dice(record, smoke_dir):
    assert record["name"] == "smoke" and record["out"] == str(smoke_dir.resolve())
    assert record["recipe"]["epochs"] == 4 and "rationale" not in record["recipe"]
    assert record["versions"]["monai"] == "1.4.0" and record["bundle"]["source"] == "builtin"
    assert len(record["dataset"]["digest"]) == 64
    assert record["per_case"]["pretrained"] == {"spleen_03.nii.gz": 0.18780749, "spleen_06.nii.gz": 0.21063474}
    low, high = record["figures"]["formal_finetuned_ci"]
    assert 0.387 <= low < high <= 0.403


def test_the_git_commit_is_that_of_the_root_and_none_outside_git(tmp_path):
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    assert git_commit(REPO) == head
    assert git_commit(tmp_path) is None and git_commit(tmp_path / "gone") is None


def test_the_store_is_a_folder_or_a_file_url_and_nothing_else(tmp_path):
    assert store_dir("runs", tmp_path) == tmp_path / "runs"
    assert store_dir(f"file://{tmp_path}/a%20b", Path("/")) == tmp_path / "a b"
    with pytest.raises(ValueError, match="only file:// stores"):
        store_dir("https://example.org/runs", tmp_path)


def test_the_baseline_is_the_newest_of_the_same_name_or_the_id_asked_for(tmp_path, smoke_dir):
    storage = FileStorage(tmp_path)
    old, new = (record_from_run_dir(smoke_dir, when=t) for t in (1.0e9, 2.0e9))
    other = record_from_run_dir(smoke_dir, name="user", when=3.0e9)
    for saved in (new, old, other):
        storage.save(saved)
    assert storage.baseline("smoke")["run_id"] == new["run_id"]
    assert storage.baseline("smoke", old["run_id"])["run_id"] == old["run_id"]
    assert storage.baseline("smoke", old["run_id"][:16])["run_id"] == old["run_id"]  # a unique prefix will do
    assert storage.baseline("sanity") is None
    with pytest.raises(UnknownRun, match="no saved run matches 'nope'"):
        storage.baseline("smoke", "nope")


def test_a_damaged_file_is_skipped_with_a_warning_that_names_it(tmp_path, record):
    storage = FileStorage(tmp_path)
    storage.save(record)
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "other.json").write_text('{"something": "else"}')
    with pytest.warns(HistoryWarning) as caught:
        assert [r["run_id"] for r in storage.records()] == [record["run_id"]]
    assert sorted(Path(str(w.message).split(": ")[0].split()[-1]).name for w in caught) == ["broken.json", "other.json"]


SAVER = """
import sys
from pathlib import Path
from nvseg_bench.history.record import record_from_run_dir
from nvseg_bench.history.storage import FileStorage
for _ in range(25):  # the same second, the same name: only the random suffix tells them apart
    FileStorage(Path(sys.argv[2])).save(record_from_run_dir(Path(sys.argv[1]), when=1.0e9))
"""


def test_two_processes_saving_at_once_leave_every_file_valid(tmp_path, smoke_dir):
    store = tmp_path / "store"
    procs = [subprocess.Popen([sys.executable, "-c", SAVER, str(smoke_dir), str(store)], cwd=REPO) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        records = FileStorage(store).records()
    assert len(records) == 50 == len(list(store.iterdir()))
    assert len({r["run_id"] for r in records}) == 50


def test_a_paired_comparison_gives_the_difference_its_interval_and_the_cases(record):
    worse = _with_cases(record, {"spleen_03.nii.gz": 0.37, "spleen_06.nii.gz": 0.36})
    dice = compare(record, worse)["formal_dice"]
    assert dice["paired"] and dice["n_worse"] == 2 and dice["n_better"] == 0
    assert dice["diff"] == pytest.approx(-0.02959650)
    assert dice["ci"][1] < 0


def test_different_cases_are_compared_unpaired_and_say_so(record):
    other = _with_cases(record, {"spleen_01.nii.gz": 0.30, "spleen_06.nii.gz": 0.30})
    dice = compare(record, other)["formal_dice"]
    assert not dice["paired"] and dice["ci"] is None and "different cases (1 shared of 2 and 2)" in dice["note"]


def test_the_comparison_lists_the_recipe_and_versions_that_differ(record):
    other = json.loads(json.dumps(record))
    other["recipe"]["epochs"], other["versions"]["torch"] = 8, "2.5.0"
    said = describe_differences(compare(record, other))
    assert said == "differs: recipe.epochs 4 -> 8, versions.torch 2.13.0+cpu -> 2.5.0"


@pytest.mark.parametrize("text, expected", [
    ("formal_dice:0.01", Threshold("formal_dice", 0.01, False)), ("formal_dice:1%", Threshold("formal_dice", 1.0, True)),
    ("wall:20%", Threshold("wall", 20.0, True))])
def test_thresholds_parse_absolute_and_relative(text, expected):
    assert parse_threshold(text) == expected and str(expected) == text


@pytest.mark.parametrize("text", ["dice:0.01", "formal_dice", "formal_dice:-1", "wall:fast"])
def test_a_threshold_that_does_not_parse_says_the_form(text):
    with pytest.raises(ValueError, match="use formal_dice:0.01"):
        parse_threshold(text)


def test_a_real_drop_fails_a_noisy_one_warns_an_unpaired_one_cannot_fail(record):
    limit = [parse_threshold("formal_dice:0.01")]
    clear = compare(record, _with_cases(record, {"spleen_03.nii.gz": 0.36, "spleen_06.nii.gz": 0.35}))
    noisy = compare(record, _with_cases(record, {"spleen_03.nii.gz": 0.30, "spleen_06.nii.gz": 0.42}))
    unpaired = compare(record, _with_cases(record, {"spleen_01.nii.gz": 0.30, "spleen_06.nii.gz": 0.30}))
    small = compare(record, _with_cases(record, {"spleen_03.nii.gz": 0.399, "spleen_06.nii.gz": 0.384}))
    assert [check_regression(c, limit)[0].status for c in (clear, noisy, unpaired, small)] == ["failed", "warned", "warned", "passed"]
    assert "cannot fail" in check_regression(unpaired, limit)[0].message


def test_wall_time_fails_when_slower_by_more_than_its_share(record):
    slow = json.loads(json.dumps(record))
    slow["figures"]["wall_seconds"] = record["figures"]["wall_seconds"] * 1.3
    assert [j.status for j in check_regression(compare(record, slow), [parse_threshold("wall:20%"), parse_threshold("wall:40%")])] \
        == ["failed", "passed"]


def test_a_document_without_manifest_or_formal_eval_still_makes_a_record():
    record = build_record({"input": {"sanity": True}, "status": "failed"}, None)
    assert record["name"] == "sanity" and record["dataset"]["digest"] is None and record["verdict"] == "failed"
    assert record["figures"]["formal_finetuned_ci"] is None


def test_a_ct_record_as_the_baseline_of_a_ctmr_run_is_said_not_to_be_like_for_like():
    from nvseg_bench.history.compare import describe

    ct = {"run_id": "a", "bundle": {"source": "hub", "revision": "afb5"}, "figures": {"formal_finetuned_val_dice": 0.4}}
    ctmr = {"run_id": "b", "bundle": {"source": "hub", "revision": "c7a5", "model": "ctmr"},
            "figures": {"formal_finetuned_val_dice": 0.5}}
    found = compare(ct, ctmr)
    assert found["models"] == ["ct", "ctmr"] and list(found["differs"])[0] == "model"
    assert describe(found).startswith("NOT LIKE FOR LIKE: a ct baseline for a ctmr run")
    assert describe_differences(found).startswith("differs: model ct -> ctmr")
    assert "NOT LIKE" not in describe(compare(ct, ct))  # a record saved before the model axis is a ct one
