"""Cross-validation run for real: `--folds all` on a 10-case copy of the shipped fixture, one run shared by
every test here (and by both xdist workers: the first to come runs it under a file lock, the other reads it)."""
from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from eval_engine.run_trusted import main as verify
from nvseg_bench.cli import main
from nvseg_bench.output.write import schema_errors

from ..helpers import REPO

sys.path.insert(0, str(REPO / "fixtures"))
import make_cv_copy  # noqa: E402


TESTING = ("spleen_11.nii.gz", "spleen_12.nii.gz")  # held out of every fold, scored once after them


def with_testing(data: Path, target: Path) -> Path:
    """A datalist beside the 12-case copy: its first ten cases in five folds of two, the last two as upstream's
    labelled `testing` list."""
    names = sorted(p.name for p in (data / "imagesTr").glob("*.nii.gz"))
    entry = lambda n: {"image": f"imagesTr/{n}", "label": f"labelsTr/{n}"}  # noqa: E731
    training = [entry(n) | {"fold": i % 5} for i, n in enumerate(n for n in names if n not in TESTING)]
    target.write_text(json.dumps({"training": training, "testing": [entry(n) for n in TESTING]}))
    return target


def mlflow_store(root: Path) -> str:
    """The CV run's MLflow store, beside its output dir."""
    return f"sqlite:///{root / 'cv-mlruns' / 'mlflow.db'}"


@dataclass
class CvRun:
    out: Path
    returncode: int
    console: str

    def doc(self, *parts: str) -> dict:
        return json.loads(self.out.joinpath(*parts).read_text())


@pytest.fixture(scope="session")
def ten_cases(tmp_path_factory) -> Path:
    return make_cv_copy.build(tmp_path_factory.mktemp("cv10") / "data")


@pytest.fixture(scope="session")
def cv_run(tmp_path_factory, worker_id) -> CvRun:
    """`nvseg-finetune COPY --smoke --epochs 1 --folds all --datalist WITH_TESTING --tracking mlflow=STORE` once
    per session, whichever worker asks first (tracking changes no result; the MLflow test reads its parent and
    child runs). The copy has 12 cases: 10 in the folds, 2 in the datalist's testing list."""
    root = tmp_path_factory.getbasetemp()
    root = root.parent if worker_id != "master" else root
    out, record = root / "cv-run", root / "cv-run.json"
    with (root / "cv-run.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not record.is_file():
            data = make_cv_copy.build(root / "cv-data", cases=12)
            datalist = with_testing(data, root / "cv-datalist.json")
            run = subprocess.run([sys.executable, "-m", "nvseg_bench", str(data), "--smoke", "--epochs", "1",
                                  "--folds", "all", "--datalist", str(datalist), "--output-dir", str(out),
                                  "--tracking", f"mlflow={mlflow_store(root)}"],
                                 capture_output=True, text=True, cwd=REPO, timeout=1800)
            record.write_text(json.dumps({"returncode": run.returncode, "console": run.stdout[-3000:] + run.stderr[-3000:]}))
    saved = json.loads(record.read_text())
    return CvRun(out, saved["returncode"], saved["console"])


@pytest.mark.slow
def test_a_five_fold_cross_validation_runs_in_one_command(cv_run):
    assert cv_run.returncode == 0, cv_run.console
    cv = cv_run.doc("cv.json")
    assert cv["folds"] == [0, 1, 2, 3, 4] and [r["status"] for r in cv["runs"]] == ["passed"] * 5
    assert cv["n_cases"] == 10 and cv["pooled"]["n_cases"] == 10 and cv["pooled"]["same_cases"] is True


@pytest.mark.slow
def test_the_cv_is_one_mlflow_parent_run_with_a_child_run_per_fold(cv_run):
    mlflow = pytest.importorskip("mlflow")
    top = cv_run.doc("output.json")["tracking"]["mlflow"]
    client = mlflow.tracking.MlflowClient(tracking_uri=top["uri"])
    folds = {k: cv_run.doc(f"fold-{k}", "output.json")["tracking"]["mlflow"] for k in range(5)}
    assert all(block["parent_run_id"] == top["run_id"] for block in folds.values())
    children = client.search_runs([top["experiment_id"]], f"tags.mlflow.parentRunId = '{top['run_id']}'")
    assert sorted(r.info.run_id for r in children) == sorted(block["run_id"] for block in folds.values())
    parent = client.get_run(top["run_id"])
    assert parent.data.metrics["gain.n_cases"] == cv_run.doc("output.json")["output"]["formal_gain_stats"]["n_cases"]
    assert {a.path for a in client.list_artifacts(top["run_id"])} >= {"cv.json", "output.json"}
    assert all(client.get_metric_history(r.info.run_id, "val_mean_dice") for r in children)


@pytest.mark.slow
def test_every_case_is_scored_once_by_the_fold_that_held_it_out(cv_run):
    cases = cv_run.doc("cv.json")["cases"]
    for fold in range(5):
        doc = cv_run.doc(f"fold-{fold}", "output.json")
        held_out = set(doc["output"]["formal_finetuned_per_case"])
        assert len(held_out) == 2 and all(cases[name]["fold"] == fold for name in held_out)
        assert doc["input"]["n_val_cases"] == 2 and doc["input"]["n_train_fold_cases"] == 8


@pytest.mark.slow
def test_the_pretrained_checkpoint_is_evaluated_once_and_shared(cv_run):
    everyone = cv_run.doc("output.json")["output"]["formal_pretrained_per_case"]
    assert len(everyone) == 10
    for fold in range(5):
        doc = cv_run.doc(f"fold-{fold}", "output.json")
        assert doc["output"]["formal_pretrained_per_case"].items() <= everyone.items()
        assert sorted(p.name for p in (cv_run.out / f"fold-{fold}" / "eval_pretrained").glob("*_seg.nii.gz")) == \
            sorted(n.replace(".nii.gz", "_seg.nii.gz") for n in doc["output"]["formal_pretrained_per_case"])
    shared_log = (cv_run.out / "logs" / "eval_pretrained.log").read_text()
    assert all((cv_run.out / f"fold-{k}" / "logs" / "eval_pretrained.log").read_text() == shared_log for k in range(5))
    seconds = {cv_run.doc(f"fold-{k}", "output.json")["runtime"]["phase_seconds"]["eval_pretrained"] for k in range(5)}
    assert len(seconds) == 1  # the one evaluation's time, in every fold


@pytest.mark.slow
def test_the_top_level_output_json_carries_the_pooled_verdict(cv_run):
    doc, cv = cv_run.doc("output.json"), cv_run.doc("cv.json")
    assert schema_errors(doc) == []
    assert doc["headline"].startswith("5-fold CV over 10 cases (each fold's last epoch): formal Dice ")
    assert doc["output"]["formal_gain_stats"] == cv["pooled"] and doc["output"]["gain_confidence"] == cv["gain_confidence"]
    assert cv["gain_confidence"] in ("clear", "within_noise", "clear_loss")  # 10 cases are enough for a verdict
    assert doc["output"]["recommended_ckpt"] == cv["recommended_ckpt"]
    if cv["recommended_is_finetuned"]:
        assert cv["recommended_ckpt"].endswith(f"fold-{cv['representative_fold']}/checkpoints/model_last.pt")


@pytest.mark.slow
def test_the_pooled_score_is_each_folds_last_epoch_and_the_best_epochs_optimism_is_reported(cv_run):
    cv, doc = cv_run.doc("cv.json"), cv_run.doc("output.json")
    assert cv["cv_checkpoint"] == "last" and doc["output"]["verdict_split"] == "cv"
    for fold in range(5):
        root = cv_run.out / f"fold-{fold}"
        assert (root / "checkpoints" / "model_last.pt").is_file() and (root / "checkpoints" / "model_finetune.pt").is_file()
        assert not list((root / "checkpoints" / "resume").glob("*.pt"))  # the optimizer-bearing epoch file is gone
        last = cv_run.doc(f"fold-{fold}", "output.json")["invocation"]["phase_return_codes"]
        assert last["eval_last"] == 0 and (root / "eval_last" / "val_mean_dice_raw.csv").is_file()
    cases = cv["cases"]
    assert all(c["finetuned"] == c["last"] and c["best"] is not None for c in cases.values())
    selection = cv["selection"]
    assert selection["best_epoch"]["selected_on_scored_cases"] is True and selection["last_epoch"]["pooled"] == cv["pooled"]
    optimism = selection["optimism"]
    assert optimism["n_cases"] == 10 and optimism["ci_low"] is not None
    assert optimism["mean_gain"] == pytest.approx(sum(c["best"] - c["last"] for c in cases.values()) / 10)
    assert doc["output"]["cv"]["optimism"] == optimism


@pytest.mark.slow
def test_the_testing_cases_are_never_folded_in_and_scored_once_with_the_scored_checkpoint(cv_run):
    cv, doc = cv_run.doc("cv.json"), cv_run.doc("output.json")
    assert not set(TESTING) & set(cv["cases"])
    assert all(not set(TESTING) & {e["image"].split("/")[-1] for e in cv_run.doc(f"fold-{k}", "datalist.json")["training"]}
               for k in range(5))
    test = doc["output"]["test"]
    assert test["cases"] == list(TESTING) and set(test["formal_finetuned_per_case"]) == set(TESTING)
    assert test["formal_gain_stats"]["n_cases"] == 2 and doc["output"]["verdict_split"] == "cv"
    log = (cv_run.out / "logs" / "eval_test_finetuned.log").read_text()
    assert cv["scored_checkpoint"]["path"] in log.splitlines()[0]
    for phase in ("eval_test_pretrained", "eval_test_finetuned"):
        assert sorted(p.name for p in (cv_run.out / phase).glob("*_seg.nii.gz")) == \
            sorted(n.replace(".nii.gz", "_seg.nii.gz") for n in TESTING)


@pytest.mark.slow
@pytest.mark.parametrize("pack", [".", "fold-3"])
def test_the_verifier_passes_the_cv_pack_and_a_fold_pack(cv_run, pack, tmp_path):
    code = verify(["--pack", str(cv_run.out / pack), "--out", str(tmp_path / "trust")])
    summary = json.loads((tmp_path / "trust" / "trust_summary.json").read_text())
    failed = [f for f in summary["findings"] if f["status"] == "fail"]
    assert code == 0 and failed == []
    cv_finding = next(f for f in summary["findings"] if f["name"] == "cv_pooled")
    assert cv_finding["status"] == ("pass" if pack == "." else "skipped")
    test_finding = next(f for f in summary["findings"] if f["name"] == "test_split")
    assert test_finding["status"] == ("pass" if pack == "." else "skipped")


@pytest.mark.slow
def test_the_verifier_fails_a_copy_whose_cv_json_flatters_the_gain(cv_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(cv_run.out, copy)
    cv = json.loads((copy / "cv.json").read_text())
    cv["pooled"]["mean_gain"] += 0.05
    (copy / "cv.json").write_text(json.dumps(cv))
    assert verify(["--pack", str(copy), "--out", str(tmp_path / "trust")]) == 1
    summary = json.loads((tmp_path / "trust" / "trust_summary.json").read_text())
    finding = next(f for f in summary["findings"] if f["name"] == "cv_pooled")
    assert finding["status"] == "fail" and "pooled: mean gain" in finding["detail"]


def test_a_fold_with_no_case_is_refused_before_any_phase(ten_cases, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(ten_cases), "--smoke", "--folds", "0,7", "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "asks for fold(s) [7]" in err and "Traceback" not in err
    assert not list(out.glob("fold-*"))


def test_folds_with_seeds_are_refused_before_any_phase(ten_cases, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(ten_cases), "--smoke", "--folds", "all", "--seeds", "0,1", "--output-dir", str(out)]) == 2
    assert "cannot be combined with --seeds" in capsys.readouterr().err and not out.exists()


def test_a_case_in_two_folds_is_refused_before_any_phase(ten_cases, tmp_path, capsys):
    datalist = json.loads((ten_cases / "datalist.json").read_text())
    datalist["training"].append(dict(datalist["training"][0], fold=3))
    path = tmp_path / "two.json"
    path.write_text(json.dumps(datalist))
    assert main([str(ten_cases), "--smoke", "--datalist", str(path), "--folds", "all",
                 "--output-dir", str(tmp_path / "out")]) == 2
    assert "listed more than once" in capsys.readouterr().err
    assert not (tmp_path / "out" / "logs").exists()
