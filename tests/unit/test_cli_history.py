"""`nvseg-finetune history`, `compare` and `--save-to` on stored packs materialised as run folders."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nvseg_bench.cli import main
from nvseg_bench.history.storage import FileStorage

from ..helpers import FIXTURE, materialize_pack


@pytest.fixture()
def two_runs(tmp_path) -> tuple[Path, Path]:
    """The smoke pack twice; the second's finetuned Dice is lower on both validation cases."""
    a = materialize_pack("smoke", tmp_path / "a")
    b = materialize_pack("smoke", tmp_path / "b")
    doc = json.loads((b / "output.json").read_text())
    doc["output"]["formal_finetuned_per_case"] = {"spleen_03.nii.gz": 0.35216085, "spleen_06.nii.gz": 0.33703215}
    doc["output"]["formal_finetuned_val_dice"] = 0.3445965
    doc["plan"]["epochs"] = 2
    (b / "output.json").write_text(json.dumps(doc))
    return a, b


@pytest.fixture()
def saved(tmp_path, two_runs, monkeypatch, capsys) -> Path:
    """Both runs saved with `nvseg-finetune ... --save-to STORE` (the run itself stood in for: it is already there)."""
    import nvseg_bench.run

    monkeypatch.setattr(nvseg_bench.run, "run", lambda req, console: 0)
    store = tmp_path / "store"
    for run_dir in two_runs:
        assert main([str(FIXTURE), "--smoke", "--output-dir", str(run_dir), "--save-to", str(store)]) == 0
    return store


def test_save_to_stores_a_record_of_the_finished_run(saved, two_runs, capsys):
    records = FileStorage(saved).records()
    assert [r["out"] for r in records] == [str(p.resolve()) for p in two_runs]
    assert capsys.readouterr().out.count("nvseg-finetune: saved ") == 2


def test_save_to_after_a_run_that_wrote_nothing_says_so(tmp_path, monkeypatch, capsys):
    import nvseg_bench.run

    monkeypatch.setattr(nvseg_bench.run, "run", lambda req, console: 2)
    assert main([str(FIXTURE), "--smoke", "--output-dir", str(tmp_path / "out"), "--save-to", str(tmp_path / "s")]) == 2
    assert "has no output.json; nothing was saved" in capsys.readouterr().out


def test_save_to_a_store_url_that_cannot_be_used_is_refused_before_the_run(tmp_path, capsys):
    assert main([str(FIXTURE), "--smoke", "--output-dir", str(tmp_path / "o"), "--save-to", "s3://b/runs"]) == 2
    assert "only file:// stores are supported" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_save_to_a_file_is_refused_before_the_run(tmp_path, capsys):
    (tmp_path / "store.json").write_text("{}")
    assert main([str(FIXTURE), "--smoke", "--output-dir", str(tmp_path / "o"), "--save-to",
                 str(tmp_path / "store.json")]) == 2
    assert "is a file, not a history store folder" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_history_lists_the_saved_runs_as_a_table(saved, two_runs, capsys):
    capsys.readouterr()
    assert main(["history", str(saved)]) == 0
    lines = capsys.readouterr().out.splitlines()
    wall = json.loads((two_runs[0] / "output.json").read_text())["runtime"]["wall_seconds"]
    assert lines[0] == f"nvseg-finetune: 2 saved runs in {saved}"
    assert lines[2] == "smoke" and lines[3].split()[:3] == ["run", "id", "saved"]
    assert lines[4].split()[-6:] == ["0.1992", "->", "0.3946", "+0.1954", f"{wall:.0f}", "passed"]
    assert "0.1992 -> 0.3446" in lines[5]


def test_history_json_is_the_records(saved, capsys):
    capsys.readouterr()
    assert main(["history", f"file://{saved}", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["recipe"]["epochs"] for r in records] == [4, 2]


def test_history_of_an_empty_store_says_so(tmp_path, capsys):
    assert main(["history", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == f"nvseg-finetune: no saved runs in {tmp_path}"


def test_compare_two_run_folders_is_paired_per_case_and_names_what_differs(two_runs, capsys):
    a, b = two_runs
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "formal Dice 0.3946 -> 0.3446 (-0.0500, 95% CI -0.0500..-0.0500, paired over 2 cases: 0 better, 2 worse)" in out
    assert "differs: recipe.epochs 4 -> 2" in out


def test_compare_fail_exits_1_on_a_real_regression(two_runs, capsys):
    a, b = two_runs
    assert main(["compare", str(a), str(b), "--fail", "formal_dice:0.01", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["formal_dice"]["paired"] and doc["judgements"][0]["status"] == "failed"
    assert main(["compare", str(b), str(a), "--fail", "formal_dice:0.01"]) == 0


def test_compare_a_folder_without_output_json_is_an_error_that_says_what_to_pass(tmp_path, two_runs, capsys):
    assert main(["compare", str(tmp_path / "nowhere"), str(two_runs[0])]) == 2
    err = capsys.readouterr().err
    assert f"nvseg-finetune: RUN_A {tmp_path / 'nowhere'} is not a run to compare" in err
    assert "--output-dir of a finished run" in err


def test_compare_help_prints_one_percent_sign(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    out = capsys.readouterr().out
    assert "95% bootstrap interval" in out and "%%" not in out


def test_history_of_a_store_that_does_not_exist_is_refused_and_says_how_runs_are_saved(tmp_path, capsys):
    assert main(["history", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert f"the history store {tmp_path / 'nowhere'} does not exist" in err and "--save-to STORE" in err
    assert not (tmp_path / "nowhere").exists()


def test_history_of_a_file_is_refused_as_not_a_store_folder(tmp_path, capsys):
    (tmp_path / "runs.json").write_text("{}")
    assert main(["history", str(tmp_path / "runs.json")]) == 2
    assert "is a file, not a store folder" in capsys.readouterr().err


def test_history_of_a_store_with_only_damaged_files_is_refused_naming_them(tmp_path, capsys):
    (tmp_path / "x.json").write_text("{bad")
    assert main(["history", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no file in the history store" in err and str(tmp_path / "x.json") in err and "Traceback" not in err


def test_history_warns_in_one_line_about_a_damaged_file_and_lists_the_rest(saved, capsys):
    (saved / "damaged.json").write_text("[]")
    capsys.readouterr()
    assert main(["history", str(saved)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"nvseg-finetune: 2 saved runs in {saved}")
    assert captured.err.startswith(f"nvseg-finetune: warning: skipped the damaged history file {saved / 'damaged.json'}")
    assert len(captured.err.splitlines()) == 1


def test_compare_a_run_with_itself_is_refused(two_runs, capsys):
    assert main(["compare", str(two_runs[0]), str(two_runs[0] / "output.json")]) == 2
    assert "are the same run" in capsys.readouterr().err


def test_compare_two_copies_of_one_saved_record_is_refused(saved, tmp_path, capsys):
    record = sorted(saved.glob("*.json"))[0]
    copy = tmp_path / "copy.json"
    copy.write_text(record.read_text())
    assert main(["compare", str(record), str(copy)]) == 2
    assert f"both hold the saved run {record.stem}" in capsys.readouterr().err


@pytest.mark.parametrize("content", ["[1, 2]", '{"a": 1}', "not json"])
def test_compare_a_file_that_is_not_a_saved_record_is_refused(tmp_path, two_runs, content, capsys):
    (tmp_path / "other.json").write_text(content)
    assert main(["compare", str(tmp_path / "other.json"), str(two_runs[0])]) == 2
    err = capsys.readouterr().err
    assert f"RUN_A {tmp_path / 'other.json'} is not a run to compare" in err and "Traceback" not in err


@pytest.mark.parametrize("content", ["[1]", '{"output": 3}'])
def test_compare_a_run_folder_whose_output_json_is_not_a_run_document_is_refused(tmp_path, two_runs, content, capsys):
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "output.json").write_text(content)
    assert main(["compare", str(two_runs[0]), str(tmp_path / "odd")]) == 2
    assert "not the output.json of an nvseg-finetune run" in capsys.readouterr().err


def test_compare_takes_a_runs_output_json_for_its_folder(two_runs, capsys):
    a, b = two_runs
    assert main(["compare", str(a / "output.json"), str(b / "output.json")]) == 0
    assert "formal Dice 0.3946 -> 0.3446" in capsys.readouterr().out


def test_compare_a_run_without_formal_dice_is_refused(two_runs, capsys):
    doc = json.loads((two_runs[1] / "output.json").read_text())
    doc["output"]["formal_finetuned_val_dice"], doc["status"] = None, "failed"
    (two_runs[1] / "output.json").write_text(json.dumps(doc))
    assert main(["compare", str(two_runs[0]), str(two_runs[1])]) == 2
    assert "has no formal Dice of a finetuned checkpoint to compare (status 'failed')" in capsys.readouterr().err


def test_compare_and_history_write_nothing_into_or_beside_their_inputs(tmp_path, two_runs, saved, capsys):
    before = sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    assert main(["compare", str(two_runs[0]), str(two_runs[1])]) == 0
    assert main(["history", str(saved)]) == 0
    assert sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*")) == before
