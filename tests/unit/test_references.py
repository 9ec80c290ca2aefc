"""Reference ranges as measured distributions: a sweep becomes a reference file with provenance."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nvseg_bench.evidence.ranges import REFERENCE_FILES, bounds, load_card
from nvseg_bench.references import card_from_sweeps, main

from ..helpers import REPO


def _doc(seed: int, finetuned: float) -> dict:
    return {"status": "passed", "version": "0.test", "model": "micro VISTA3D",
            "input": {"dataset_dir": "/data/x", "pretrained_weights": {"sha256": "ab" * 32}},
            "invocation": {"command": "nvseg-finetune x --seeds 0,1,2"},
            "environment": {"python": "3.11.7", "platform": "Linux", "cpu_count": 2, "gpu_name": None,
                            "packages": {"torch": "2.13.0+cpu", "monai": "1.4.0", "numpy": "1.26.4"}},
            "output": {"formal_pretrained_val_dice": 0.2, "formal_finetuned_val_dice": finetuned,
                       "formal_improvement_over_pretrained": finetuned - 0.2, "training_start_val_dice": 0.2,
                       "training_best_val_dice": finetuned, "gain_confidence": "clear",
                       "formal_gain_stats": {"ci_low": 0.1, "ci_high": 0.3}}}


@pytest.fixture
def sweep_dir(tmp_path) -> Path:
    runs = []
    for seed, finetuned in ((0, 0.40), (1, 0.37), (2, 0.43)):
        folder = tmp_path / f"seed-{seed}"
        folder.mkdir()
        (folder / "output.json").write_text(json.dumps(_doc(seed, finetuned)))
        (folder / "manifest.json").write_text(json.dumps(
            {"inputs": {"dataset": {"files": {"imagesTr/a.nii.gz": {"sha256": "11"}}}}}))
        runs.append({"seed": seed, "output_json": str(folder / "output.json")})
    (tmp_path / "sweep.json").write_text(json.dumps({"seeds": [0, 1, 2], "runs": runs, "recommended_seed": 0,
                                                     "finished_at": "2026-11-27T18:00:00+00:00"}))
    return tmp_path


def test_two_sweeps_pool_their_seeds(sweep_dir, tmp_path):
    other = tmp_path / "other"  # seeds 1 and 2 of the fixture's sweep become a second sweep's 11 and 12
    other.mkdir()
    for name in ("seed-1", "seed-2"):
        shutil.move(sweep_dir / name, other / name.replace("seed-", "seed-1"))
    (other / "sweep.json").write_text(json.dumps({"seeds": [11, 12], "runs": [{"seed": 11}, {"seed": 12}]}))
    (sweep_dir / "sweep.json").write_text(json.dumps({"seeds": [0], "runs": [{"seed": 0}]}))
    card = card_from_sweeps([sweep_dir, other], "pooled")
    assert card["provenance"]["seeds"] == [0, 11, 12] and card["measured"]["distribution"]["formal_finetuned_val_dice"]["n"] == 3


def test_a_sweep_gives_a_lower_bound_below_its_lowest_seed(sweep_dir):
    card = card_from_sweeps([sweep_dir], "test")
    assert card["min"]["formal_finetuned_val_dice"] == pytest.approx(0.37 - 4 * 0.03)  # 4 std below the lowest


def test_a_deterministic_pretrained_score_gets_a_window_on_both_sides(sweep_dir):
    card = card_from_sweeps([sweep_dir], "test")
    assert (card["min"]["formal_pretrained_val_dice"], card["max"]["formal_pretrained_val_dice"]) == (0.15, 0.25)


def test_the_reference_records_seeds_versions_machine_data_digest_and_date(sweep_dir):
    prov = card_from_sweeps([sweep_dir], "test")["provenance"]
    assert prov["kind"] == "measured_sweep" and prov["seeds"] == [0, 1, 2]
    assert prov["packages"]["torch"] == "2.13.0+cpu" and prov["machine"]["cpu_count"] == 2
    assert len(prov["data_digest_sha256"]) == 64 and prov["date"].startswith("2026-11-27")


def test_the_command_updates_one_entry_and_keeps_the_others(sweep_dir, tmp_path):
    target = tmp_path / "refs.json"
    target.write_text(json.dumps({"other": {"min": {}}}))
    assert main([str(sweep_dir), "--out", str(target), "--name", "mine"]) == 0
    assert set(json.loads(target.read_text())) == {"other", "mine"}


def test_a_folder_without_a_sweep_is_refused_with_exit_2(tmp_path, capsys):
    assert main([str(tmp_path), "--out", str(tmp_path / "r.json")]) == 2
    assert "has no sweep.json" in capsys.readouterr().err


def test_task06_is_marked_as_one_published_run():
    assert load_card("task06")["provenance"]["kind"] == "published_single_run"
    assert bounds("task06")[0]["formal_pretrained_val_dice"] == 0.65


def test_the_shipped_smoke_reference_is_a_measured_sweep_of_at_least_five_seeds():
    prov = load_card("spleen_micro")["provenance"]
    assert prov["kind"] == "measured_sweep" and len(prov["seeds"]) >= 5


def test_the_verifier_holds_runs_to_the_same_ranges_as_the_gates():
    verifier = json.loads((REPO / "eval_engine" / "reference_ranges.json").read_text())
    for name in REFERENCE_FILES:
        card = load_card(name)
        assert (verifier[name].get("min", {}), verifier[name].get("max", {})) == (card["min"], card.get("max", {}))


def test_sweeps_of_different_data_are_not_pooled(sweep_dir, tmp_path):
    other = tmp_path / "other"
    (other / "seed-9").mkdir(parents=True)
    shutil.copy(sweep_dir / "seed-0" / "output.json", other / "seed-9" / "output.json")
    (other / "seed-9" / "manifest.json").write_text(json.dumps(
        {"inputs": {"dataset": {"files": {"imagesTr/b.nii.gz": {"sha256": "22"}}}}}))
    (other / "sweep.json").write_text(json.dumps({"seeds": [9], "runs": [{"seed": 9}]}))
    with pytest.raises(ValueError, match="different data"):
        card_from_sweeps([sweep_dir, other], "mixed")


@pytest.fixture
def store(tmp_path) -> Path:
    """A history store with three saved smoke runs of one dataset and checkpoint (finetuned 0.40, 0.37, 0.43)."""
    from nvseg_bench.history.record import build_record
    from nvseg_bench.history.storage import FileStorage

    storage = FileStorage(tmp_path / "store")
    manifest = {"inputs": {"dataset": {"files": {"imagesTr/a.nii.gz": {"sha256": "11"}}}}}
    for i, finetuned in enumerate((0.40, 0.37, 0.43)):
        doc = _doc(i, finetuned) | {"input": _doc(i, finetuned)["input"] | {"smoke": True}}
        storage.save(build_record(doc, manifest, when=1.0e9 + i))
    return storage.root


def test_saved_runs_make_a_reference_as_a_sweep_does(store, sweep_dir, tmp_path):
    target = tmp_path / "refs.json"
    assert main([str(store), "--out", str(target), "--name", "ours"]) == 0
    card = json.loads(target.read_text())["ours"]
    assert card["min"] == card_from_sweeps([sweep_dir], "test")["min"]
    assert card["provenance"]["kind"] == "measured_history" and len(card["provenance"]["run_ids"]) == 3
    assert card["provenance"]["data_digest_sha256"] == card_from_sweeps([sweep_dir], "t")["provenance"]["data_digest_sha256"]


def test_saved_runs_of_several_names_need_run_name(store, tmp_path, capsys):
    user = json.loads(next(store.glob("*.json")).read_text()) | {"name": "user", "run_id": "20010909T000000Z-user-1"}
    (store / "user.json").write_text(json.dumps(user))
    assert main([str(store), "--out", str(tmp_path / "r.json")]) == 2
    assert "several names (smoke, user); pick one with --run-name" in capsys.readouterr().err
    assert main([str(store), "--out", str(tmp_path / "r.json"), "--run-name", "smoke"]) == 0


def test_sweeps_and_saved_runs_are_not_mixed(store, sweep_dir, tmp_path, capsys):
    assert main([str(sweep_dir), str(store), "--out", str(tmp_path / "r.json")]) == 2
    assert "sweeps and saved runs cannot be mixed" in capsys.readouterr().err
