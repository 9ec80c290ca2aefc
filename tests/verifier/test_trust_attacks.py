"""Attacks on the verifier's trust, each on a copy of the stored smoke pack whose manifest.json is
re-hashed after the edit (so the manifest check alone cannot catch it): every one ends in `failed`,
`unverified` or a refusal, never `passed` or `warn`; the untouched pack passes. docs/trust.md lists
them with the test that holds each."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import nibabel
import numpy as np
import pytest

from eval_engine.gain_check import percentile
from eval_engine.pack import sha256_file
from eval_engine.run_trusted import main

from ..helpers import FIXTURE, PACKS, materialize_pack, tree_digest

PRETRAINED = PACKS / "smoke" / "pretrained.pt"  # the stored pack's own pretrained weights, outside the copy
VALIDATION = ("spleen_03", "spleen_06")


@pytest.fixture
def pack(tmp_path) -> Path:
    return materialize_pack("smoke", tmp_path / "pack")


def rehash(pack_dir: Path) -> None:
    """Mend every file's entry in the manifest after an edit, as a careful forger would."""
    manifest = json.loads((pack_dir / "manifest.json").read_text())
    for rel in manifest["files"]:
        path = pack_dir / rel
        manifest["files"][rel] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    (pack_dir / "manifest.json").write_text(json.dumps(manifest))


def edit_output(pack_dir: Path, change: Callable[[dict[str, Any]], None]) -> None:
    doc = json.loads((pack_dir / "output.json").read_text())
    change(doc)
    (pack_dir / "output.json").write_text(json.dumps(doc))
    rehash(pack_dir)


def verify(pack_dir: Path, out: Path, *trusted: str) -> tuple[int, dict[str, Any]]:
    code = main(["--pack", str(pack_dir), "--out", str(out), *trusted])
    summary = out / "trust_summary.json"
    return code, json.loads(summary.read_text()) if summary.is_file() else {}


def statuses(summary: dict[str, Any]) -> dict[str, str]:
    return {f["name"]: f["status"] for f in summary["findings"]}


def detail(summary: dict[str, Any], name: str) -> str:
    return next(f["detail"] for f in summary["findings"] if f["name"] == name)


TRUSTED = ("--dataset-dir", str(FIXTURE), "--pretrained-ckpt", str(PRETRAINED))


def test_the_untouched_pack_passes_with_the_callers_inputs(pack, tmp_path):
    code, summary = verify(pack, tmp_path / "out", *TRUSTED)
    assert code == 0 and summary["verdict"] == "passed", summary.get("verdict_line")
    assert summary["inputs"]["labels"] == "trusted" and "as the pack names them" not in summary["verdict_line"]


def test_the_untouched_pack_passes_on_the_labels_it_names_and_says_so(pack, tmp_path):
    code, summary = verify(pack, tmp_path / "out")
    assert code == 0 and summary["verdict"] == "passed"
    assert "labels as the pack names them" in summary["verdict_line"]
    assert "labels as the pack names them" in detail(summary, "formal_dice.eval_finetuned")


def test_unreachable_labels_leave_the_formal_dice_unverified_not_skipped(pack, tmp_path):
    def hide_labels(doc):
        doc["output"]["formal_finetuned_val_dice"] += 0.05
        doc["input"].update(dataset_dir="/nonexistent/data", datalist="/nonexistent/data/datalist.json")
    edit_output(pack, hide_labels)
    code, summary = verify(pack, tmp_path / "out")
    found = statuses(summary)
    assert code == 1 and summary["verdict"] in ("failed", "unverified")
    assert found["formal_dice.eval_pretrained"] == found["formal_dice.eval_finetuned"] == "unverified"
    assert found["decision"] == "unverified"


def test_unreachable_labels_alone_make_the_verdict_unverified(pack, tmp_path):
    edit_output(pack, lambda d: d["input"].update(dataset_dir="/nonexistent/data",
                                                  datalist="/nonexistent/data/datalist.json"))
    code, summary = verify(pack, tmp_path / "out")
    assert code == 1 and summary["verdict"] == "unverified"
    assert "not re-derived: formal_dice.eval_pretrained" in summary["verdict_line"]


def _forge_labels(pack_dir: Path, where: Path) -> None:
    """A copy of the dataset whose validation labels are the run's own finetuned predictions."""
    shutil.copytree(FIXTURE, where)
    for case in VALIDATION:
        pred = nibabel.load(pack_dir / "eval_finetuned" / f"{case}_seg.nii.gz")
        label = (np.asanyarray(pred.dataobj) == 3).astype(np.uint8)  # VISTA3D spleen id back to the local 1
        nibabel.save(nibabel.Nifti1Image(label, pred.affine), str(where / "labelsTr" / f"{case}.nii.gz"))
    manifest = json.loads((pack_dir / "manifest.json").read_text())
    for rel, meta in manifest["inputs"]["dataset"]["files"].items():
        meta["sha256"] = sha256_file(where / rel)
    manifest["inputs"]["dataset"]["dataset_dir"] = str(where)
    (pack_dir / "manifest.json").write_text(json.dumps(manifest))
    edit_output(pack_dir, lambda d: d["input"].update(dataset_dir=str(where), datalist=str(where / "datalist.json")))


def test_labels_swapped_for_the_runs_own_predictions_fail_against_the_callers_dataset(pack, tmp_path):
    _forge_labels(pack, tmp_path / "forged")
    code, summary = verify(pack, tmp_path / "out", *TRUSTED)
    assert code == 1 and summary["verdict"] == "failed"
    said = detail(summary, "integrity.dataset")
    assert statuses(summary)["integrity.dataset"] == "fail"
    assert "labelsTr/spleen_03.nii.gz" in said and "labelsTr/spleen_06.nii.gz" in said


def test_another_copy_of_the_same_data_passes(pack, tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "copy")
    code, summary = verify(pack, tmp_path / "out", "--dataset-dir", str(tmp_path / "copy"),
                           "--pretrained-ckpt", str(PRETRAINED))
    assert code == 0 and summary["verdict"] == "passed", summary.get("verdict_line")
    assert statuses(summary)["integrity.dataset"] == "pass"


def test_other_pretrained_weights_than_the_runs_fail_by_content(pack, tmp_path):
    other = tmp_path / "other.pt"
    shutil.copyfile(pack / "checkpoints" / "model_finetune.pt", other)
    code, summary = verify(pack, tmp_path / "out", "--dataset-dir", str(FIXTURE), "--pretrained-ckpt", str(other))
    assert code == 1 and statuses(summary)["integrity.pretrained_ckpt"] == "fail"


def _interval(block: dict[str, Any], level: float, resamples: int) -> tuple[float, float]:
    """The bootstrap interval of the pack's gains drawn by the pack's own rule, as a forger would write it."""
    gains = np.array([block["case_gains"][k] for k in sorted(block["case_gains"])])
    draws = np.random.default_rng(0).integers(0, len(gains), size=(resamples, len(gains)))
    means = np.sort(gains[draws].mean(axis=1))
    tail = (1 - level) / 2 * 100
    return percentile(means, tail), percentile(means, 100 - tail)


def _own_level(block: dict[str, Any]) -> None:
    block["ci_level"] = 0.5
    block["ci_low"], block["ci_high"] = _interval(block, 0.5, block["bootstrap"]["resamples"])


def _own_resamples(block: dict[str, Any]) -> None:
    block["bootstrap"]["resamples"] = 20
    block["ci_low"], block["ci_high"] = _interval(block, block["ci_level"], 20)


def _own_tolerance(block: dict[str, Any]) -> None:  # every gain (about 0.2) now counts as unchanged
    block.update(unchanged_tolerance=0.5, n_better=0, n_worse=0, n_unchanged=block["n_cases"])


@pytest.mark.parametrize("forge, said", [(_own_level, "ci_level 0.5"), (_own_resamples, "resamples 20"),
                                         (_own_tolerance, "unchanged_tolerance 0.5")],
                         ids=["interval level", "resamples", "tolerance"])
def test_the_packs_own_statistical_rule_fails_naming_its_value(pack, tmp_path, forge, said):
    """Each claim is re-drawn by the pack's own rule, so a verifier that used that rule would confirm it."""
    edit_output(pack, lambda doc: forge(doc["output"]["formal_gain_stats"]))
    code, summary = verify(pack, tmp_path / "out", *TRUSTED)
    assert code == 1 and statuses(summary)["gain_stats"] == "fail" and said in detail(summary, "gain_stats")


@pytest.mark.parametrize("name", ["trust_summary.json", "trust_summary.md"])
def test_a_link_at_a_summary_path_is_refused_and_its_target_untouched(pack, tmp_path, name, capsys):
    target = tmp_path / "victim.txt"
    target.write_text("keep me\n")
    (pack / name).symlink_to(target)
    assert main(["--pack", str(pack), "--out", str(pack), *TRUSTED]) == 2
    assert target.read_text() == "keep me\n" and "symbolic link" in capsys.readouterr().err


def test_an_out_that_is_a_link_is_refused_and_its_target_untouched(pack, tmp_path, capsys):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "out").symlink_to(target)
    assert main(["--pack", str(pack), "--out", str(tmp_path / "out"), *TRUSTED]) == 2
    assert list(target.iterdir()) == [] and "symbolic link" in capsys.readouterr().err


def test_a_pack_path_leaving_by_dotdot_fails(pack, tmp_path):
    edit_output(pack, lambda d: d["output"].update(finetuned_ckpt="../elsewhere/model_finetune.pt"))
    code, summary = verify(pack, tmp_path / "out", *TRUSTED)
    assert code == 1 and statuses(summary)["integrity.paths"] == "fail"
    assert "../elsewhere" in detail(summary, "integrity.paths")


def test_a_relative_pack_path_resolves_against_the_pack_not_the_working_directory(pack, tmp_path, monkeypatch):
    decoy = tmp_path / "cwd" / "checkpoints"
    decoy.mkdir(parents=True)
    shutil.copyfile(PRETRAINED, decoy / "model_finetune.pt")  # would read as "unchanged" if the cwd counted
    monkeypatch.chdir(tmp_path / "cwd")

    def relative(doc):
        doc["output"].update(finetuned_ckpt="checkpoints/model_finetune.pt", recommended_ckpt="checkpoints/model_finetune.pt")
    edit_output(pack, relative)
    _, summary = verify(pack, tmp_path / "out", *TRUSTED)
    assert statuses(summary)["checkpoint_claims"] == "pass" and statuses(summary)["integrity.paths"] == "pass"


def test_a_pack_file_that_is_a_link_out_of_the_pack_fails(pack, tmp_path):
    outside = tmp_path / "metrics.csv"
    shutil.copyfile(pack / "eval_finetuned" / "metrics.csv", outside)
    (pack / "eval_finetuned" / "metrics.csv").unlink()
    os.symlink(outside, pack / "eval_finetuned" / "metrics.csv")
    rehash(pack)
    code, summary = verify(pack, tmp_path / "out", *TRUSTED)
    assert code == 1 and statuses(summary)["integrity.links"] == "fail"
    assert statuses(summary)["integrity.manifest"] == "pass"  # the same bytes: only the link tells


def test_pack_strings_cannot_forge_rows_or_links_in_the_markdown(pack, tmp_path):
    edit_output(pack, lambda d: d["output"].update(finetuned_ckpt="/x|pass|\n| decision | pass | [ok](http://e.x) |"))
    code, summary = verify(pack, tmp_path / "out", *TRUSTED)
    lines = (tmp_path / "out" / "trust_summary.md").read_text().splitlines()
    rows = [line for line in lines if line.startswith("| ")]
    assert code == 1 and len(rows) == len(summary["findings"]) + 2  # header, separator, one row per finding
    assert "](http" not in "\n".join(lines)


def test_the_summaries_are_written_whole_and_nothing_else_is_left_in_out(pack, tmp_path):
    before = tree_digest(pack)
    verify(pack, tmp_path / "out", *TRUSTED)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["trust_summary.json", "trust_summary.md"]
    assert tree_digest(pack) == before


def test_fixture_mode_refuses_a_link_where_its_run_would_write(tmp_path, capsys):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "pack").symlink_to(target)
    assert main([str(FIXTURE.parents[1]), "--fixture", str(FIXTURE), "--out", str(tmp_path / "out")]) == 2
    assert list(target.iterdir()) == [] and "symbolic link" in capsys.readouterr().err
