"""The trusted verifier on a real smoke pack: the untouched pack passes, every tampering is caught
by the finding that names it, and the CLI's exit codes say so."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from eval_engine.findings import verdict
from eval_engine.pack import sha256_file
from eval_engine.run_trusted import audit, main

from ..helpers import FIXTURE, REPO

pytestmark = pytest.mark.slow


@pytest.fixture
def pack(smoke_run, tmp_path) -> Path:
    assert smoke_run.returncode == 0
    copy = tmp_path / "pack"
    shutil.copytree(smoke_run.out, copy)
    return copy


def statuses(pack_dir: Path) -> dict[str, str]:
    findings = audit(pack_dir)[0]
    return {f.name: f.status for f in findings}


def edit_output(pack_dir: Path, change) -> None:
    path = pack_dir / "output.json"
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def test_the_untouched_pack_passes_every_check(pack):
    found = statuses(pack)
    assert "fail" not in found.values(), found
    for name in ("integrity.manifest", "schema", "checkpoint_claims", "formal_dice.eval_pretrained",
                 "formal_dice.eval_finetuned", "trajectory", "decision", "gain_stats", "reference_ranges", "environment",
                 "per_class.eval_pretrained", "per_class.eval_finetuned", "class_gain_stats"):
        assert found[name] == "pass", (name, found)


def test_a_raised_formal_dice_is_caught_by_the_recomputation(pack):
    edit_output(pack, lambda d: d["output"].update(formal_finetuned_val_dice=d["output"]["formal_finetuned_val_dice"] + 0.05))
    assert statuses(pack)["formal_dice.eval_finetuned"] == "fail"


def test_a_swapped_checkpoint_is_caught_even_with_a_mended_manifest(pack, smoke_run):
    pretrained = Path(smoke_run.doc["output"]["pretrained_ckpt"])
    shutil.copyfile(pretrained, pack / "checkpoints" / "model_finetune.pt")
    manifest = json.loads((pack / "manifest.json").read_text())
    manifest["files"]["checkpoints/model_finetune.pt"]["sha256"] = sha256_file(pack / "checkpoints" / "model_finetune.pt")
    (pack / "manifest.json").write_text(json.dumps(manifest))
    found = statuses(pack)
    assert found["integrity.manifest"] == "pass" and found["checkpoint_claims"] == "fail"


def test_a_deleted_prediction_is_caught(pack):
    (pack / "eval_finetuned" / "spleen_03_seg.nii.gz").unlink()
    found = statuses(pack)
    assert found["formal_dice.eval_finetuned"] == "fail" and found["integrity.manifest"] == "fail"


def test_an_edited_per_epoch_trace_is_caught_against_the_log(pack):
    edit_output(pack, lambda d: d["output"]["val_dice_per_epoch"].__setitem__(1, 0.9))
    assert statuses(pack)["trajectory"] == "fail"


def test_an_edited_file_under_an_unchanged_manifest_is_caught(pack):
    with (pack / "eval_finetuned" / "metrics.csv").open("a") as handle:
        handle.write("val_mean_dice,0.99\n")
    assert statuses(pack)["integrity.manifest"] == "fail"


def test_a_path_that_escapes_the_pack_is_caught(pack):
    edit_output(pack, lambda d: d["output"].update(finetuned_ckpt="/tmp/elsewhere/model_finetune.pt"))
    assert statuses(pack)["integrity.paths"] == "fail"


def test_a_decision_against_the_rule_is_caught(pack):
    edit_output(pack, lambda d: d["output"].update(recommended_ckpt=d["output"]["pretrained_ckpt"]))
    assert statuses(pack)["decision"] == "fail"


def test_pack_mode_writes_the_summaries_and_exits_by_verdict(pack, tmp_path, capsys):
    assert main(["--pack", str(pack), "--out", str(tmp_path / "audit")]) == 0
    summary = json.loads((tmp_path / "audit" / "trust_summary.json").read_text())
    assert summary["verdict"] == "passed" and summary["verifier"]["version"]
    assert str(pack / "output.json") in summary["files_read_sha256"]
    assert (tmp_path / "audit" / "trust_summary.md").read_text().startswith("# Trust summary: passed")
    edit_output(pack, lambda d: d["output"]["val_dice_per_epoch"].__setitem__(0, 0.5))
    assert main(["--pack", str(pack), "--out", str(tmp_path / "audit2")]) == 1


@pytest.mark.parametrize("argv", [["--out", "o"], ["--pack", "/nope", "--out", "o"],
                                  ["--pack", ".", "--fixture", ".", "--out", "o"]])
def test_bad_arguments_exit_2(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2 and "Traceback" not in capsys.readouterr().err


def test_fixture_mode_runs_the_smoke_finetune_and_audits_it(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "eval_engine.run_trusted", ".", "--fixture", str(FIXTURE),
                           "--out", str(tmp_path / "trusted")], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    summary = json.loads((tmp_path / "trusted" / "trust_summary.json").read_text())
    assert summary["verdict"] == "passed" and summary["mode"] == "fixture"
    assert {f["name"]: f["status"] for f in summary["findings"]}["fixture_run"] == "pass"


def test_a_tampered_per_case_dice_is_caught_by_the_gain_statistics(pack):
    def raise_one(doc):
        cases = doc["output"]["formal_finetuned_per_case"]
        first = sorted(cases)[0]
        cases[first] += 0.01
    edit_output(pack, raise_one)
    assert statuses(pack)["gain_stats"] == "fail"


def test_a_narrowed_interval_is_caught_by_the_re_derived_bootstrap(pack):
    edit_output(pack, lambda d: d["output"]["formal_gain_stats"].update(ci_low=d["output"]["formal_gain_stats"]["ci_low"] + 0.01))
    assert statuses(pack)["gain_stats"] == "fail"


def rehash(pack_dir: Path, *rels: str) -> None:
    """Mend the manifest after an edit, as a careful forger would."""
    manifest = json.loads((pack_dir / "manifest.json").read_text())
    for rel in rels:
        manifest["files"][rel] = {"sha256": sha256_file(pack_dir / rel), "bytes": (pack_dir / rel).stat().st_size}
    (pack_dir / "manifest.json").write_text(json.dumps(manifest))


def test_an_edited_metrics_csv_with_a_rehashed_manifest_fails_the_verdict(pack):
    (pack / "eval_finetuned" / "metrics.csv").write_text("val_mean_dice,0.55\n")
    rehash(pack, "eval_finetuned/metrics.csv")
    findings = audit(pack)[0]
    found = {f.name: f for f in findings}
    assert found["integrity.manifest"].status == "pass"  # the manifest alone cannot tell
    assert found["formal_dice.eval_finetuned"].status == "fail" and verdict(findings) == "failed"
    assert "eval_finetuned/metrics.csv val_mean_dice gives 0.55" in found["formal_dice.eval_finetuned"].detail


def test_an_edited_per_case_csv_agreeing_with_output_json_fails_against_the_predictions(pack):
    path = pack / "eval_pretrained" / "val_mean_dice_raw.csv"
    lines = path.read_text().splitlines()
    name, _, _ = lines[1].split(",")
    lines[1] = f"{name},0.9,0.9"  # the first case's Dice, in the bundle's CSV and output.json alike
    path.write_text("\n".join(lines) + "\n")
    edit_output(pack, lambda d: d["output"]["formal_pretrained_per_case"].update({Path(name).name: 0.9}))
    rehash(pack, "eval_pretrained/val_mean_dice_raw.csv")
    found = statuses(pack)
    assert found["integrity.manifest"] == "pass" and found["formal_dice.eval_pretrained"] == "fail"


def test_an_edited_per_case_per_class_claim_is_caught_against_the_predictions(pack):
    edit_output(pack, lambda d: d["output"]["formal_pretrained_per_case_per_class"]["spleen_03.nii.gz"].update(spleen=0.9))
    found = {f.name: f for f in audit(pack)[0]}["per_class.eval_pretrained"]
    assert found.status == "fail" and "gives 0.9 for spleen_03.nii.gz spleen" in found.detail


def test_a_class_regression_the_intervals_do_not_show_is_caught(pack):
    row = {"class": "spleen", "local": 1, "global": 3, "mean_gain": -0.1, "ci_low": -0.2, "ci_high": -0.05, "n_cases": 2}
    edit_output(pack, lambda d: d["output"]["class_regressions"].append(row))
    found = {f.name: f for f in audit(pack)[0]}["class_gain_stats"]
    assert found.status == "fail" and "class_regressions lists ['spleen']" in found.detail
