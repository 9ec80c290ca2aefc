"""--tracking for real: one smoke run logged to a local MLflow store (and TensorBoard), read back with the MLflow
client; and a store that cannot be reached, which warns and loses nothing."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from nvseg_bench.tracking import session

from ..helpers import FIXTURE, REPO, PreparedStandIn

mlflow = pytest.importorskip("mlflow")


@dataclass
class TrackedRun:
    out: Path
    returncode: int
    console: str
    doc: dict = field(default_factory=dict)

    def client(self):
        return mlflow.tracking.MlflowClient(tracking_uri=self.doc["tracking"]["mlflow"]["uri"])

    @property
    def run_id(self) -> str:
        return self.doc["tracking"]["mlflow"]["run_id"]


@pytest.fixture(scope="module")
def tracked(tmp_path_factory) -> TrackedRun:
    """`nvseg-finetune --smoke --tracking mlflow,tensorboard` once for this module, into the default store."""
    out = tmp_path_factory.mktemp("tracked") / "smoke"
    run = subprocess.run([sys.executable, "-m", "nvseg_bench", str(FIXTURE), "--smoke", "--tracking", "mlflow,tensorboard",
                          "--output-dir", str(out)], capture_output=True, text=True, cwd=REPO, timeout=1800,
                         env={k: v for k, v in __import__("os").environ.items() if k != "MLFLOW_TRACKING_URI"})
    doc = json.loads((out / "output.json").read_text()) if (out / "output.json").is_file() else {}
    return TrackedRun(out, run.returncode, run.stdout[-3000:] + run.stderr[-3000:], doc)


@pytest.mark.slow
def test_a_tracked_run_records_its_mlflow_run_and_tensorboard_dir_in_output_json(tracked):
    assert tracked.returncode == 0, tracked.console
    block = tracked.doc["tracking"]
    assert block["mlflow"]["uri"] == f"sqlite:///{tracked.out.parent / 'mlruns' / 'mlflow.db'}"
    assert block["tensorboard"]["dir"] == str(tracked.out / "train")
    assert list((tracked.out / "train").glob("events.out.tfevents.*"))
    assert "mlflow ui --backend-store-uri" in tracked.console


@pytest.mark.slow
def test_the_mlflow_run_holds_the_recipe_the_figures_and_the_verdict(tracked):
    run = tracked.client().get_run(tracked.run_id)
    out, plan = tracked.doc["output"], tracked.doc["plan"]
    assert run.info.status == "FINISHED"
    assert run.data.params["recipe.epochs"] == str(plan["epochs"])
    assert run.data.params["recipe.patch_size"] == json.dumps(plan["patch_size"])
    assert run.data.metrics["formal_finetuned_val_dice"] == pytest.approx(out["formal_finetuned_val_dice"])
    assert run.data.metrics["gain.ci_low"] == pytest.approx(out["formal_gain_stats"]["ci_low"])
    assert run.data.tags["nvseg.gain_confidence"] == out["gain_confidence"]
    assert run.data.tags["mlflow.note.content"] == tracked.doc["headline"]
    assert run.data.tags["nvseg.bundle.source"] == tracked.doc["input"]["bundle"]["source"]
    assert "nvseg.git_commit" in run.data.tags or "nvseg.version" in run.data.tags


@pytest.mark.slow
def test_the_bundle_handlers_log_validation_dice_per_epoch_into_the_same_run(tracked):
    history = tracked.client().get_metric_history(tracked.run_id, "val_mean_dice")
    by_epoch = {m.step: m.value for m in history}
    out = tracked.doc["output"]
    assert sorted(by_epoch) == out["val_dice_epochs"]
    assert [round(by_epoch[e], 4) for e in out["val_dice_epochs"]] == [round(v, 4) for v in out["val_dice_per_epoch"]]
    assert tracked.client().get_metric_history(tracked.run_id, "train_loss")


@pytest.mark.slow
def test_the_mlflow_run_keeps_output_json_the_tables_and_the_plot(tracked):
    client = tracked.client()
    names = {a.path for folder in (None, "tables", "plots") for a in client.list_artifacts(tracked.run_id, folder)}
    assert {"output.json", "tables/per_case.csv", "tables/per_class.csv", "plots/dice_per_epoch.png"} <= names
    local = Path(client.download_artifacts(tracked.run_id, "tables/per_case.csv", str(tracked.out.parent)))
    rows = local.read_text().splitlines()
    assert rows[0] == "case,pretrained,finetuned,gain" and len(rows) == 1 + len(tracked.doc["output"]["formal_finetuned_per_case"])


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the socket goes


def test_an_unreachable_store_warns_and_the_finetune_runs_untracked(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    uri = f"http://127.0.0.1:{_closed_port()}"
    staged = tmp_path / "dfw_tracking.json"
    staged.write_text(json.dumps({"tracking_uri": uri, "experiment_name": "x", "run_name": "r"}))
    command = ["python", "-m", "monai.bundle", "run", "--config_file", "[]", "--tracking", "mlflow"]
    p = PreparedStandIn(SimpleNamespace(tracking=[["mlflow=" + uri]], dry_run=False), SimpleNamespace(tracking=staged),
                  {"finetune": command}, tmp_path)
    started, tracker = session.start(p)
    assert "--tracking" not in started.commands["finetune"] and started.commands["finetune"][:4] == command[:4]
    assert tracker.run is None and uri in tracker.error
    assert tracker.block()["mlflow"] == {"uri": uri, "error": tracker.error}
    warnings = session.finish(tracker, {"status": "passed"}, {})
    assert len(warnings) == 1 and "without MLflow tracking" in warnings[0]

