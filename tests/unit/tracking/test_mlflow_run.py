"""The MLflow run the tool completes from a run's evidence, on a stored pack and a local SQLite store (no
finetune): what a teammate finds in it, read back with the MLflow client."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nvseg_bench.harness.ledger import RunRecord
from nvseg_bench.harness.report import RunPage, track_pages
from nvseg_bench.tracking import mlflow_run, session

from ...helpers import PreparedStandIn, materialize_pack

mlflow = pytest.importorskip("mlflow")


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """The smoke pack's output.json logged into a fresh run, as `finish` does after a real run."""
    root = tmp_path_factory.mktemp("mlflow")
    pack = materialize_pack("smoke", root / "smoke")
    run = mlflow_run.open_run(f"sqlite:///{root / 'mlruns' / 'mlflow.db'}", "nvseg-bench", "smoke-test")
    doc = json.loads((pack / "output.json").read_text())
    tracker = session.Tracker(session.Tracking(mlflow=True), pack, uri=run.uri, run=run)
    warnings = session.finish(tracker, doc, session.evidence_files(pack))
    return run, doc, pack, warnings


def _client(run):
    return mlflow.tracking.MlflowClient(tracking_uri=run.uri)


def test_completing_a_run_warns_of_nothing_and_ends_it_finished(logged):
    run, _, _, warnings = logged
    assert warnings == [] and _client(run).get_run(run.run_id).info.status == "FINISHED"


def test_the_recipe_is_logged_as_params(logged):
    run, doc, _, _ = logged
    params = _client(run).get_run(run.run_id).data.params
    assert params["recipe.learning_rate"] == str(doc["plan"]["learning_rate"])
    assert params["input.label_mappings"] == json.dumps(doc["input"]["label_mappings"])


def test_the_gain_statistics_and_each_class_are_logged_as_metrics(logged):
    run, doc, _, _ = logged
    metrics = _client(run).get_run(run.run_id).data.metrics
    stats = doc["output"]["formal_gain_stats"]
    assert metrics["gain.mean_gain"] == pytest.approx(stats["mean_gain"])
    assert metrics["gain.n_better"] == stats["n_better"]
    for name, block in doc["output"]["formal_class_gain_stats"].items():
        assert metrics[f"class.{name}.mean_gain"] == pytest.approx(block["mean_gain"])


def test_the_per_class_table_holds_each_class_before_and_after(logged, tmp_path):
    run, doc, _, _ = logged
    path = Path(_client(run).download_artifacts(run.run_id, "tables/per_class.csv", str(tmp_path)))
    rows = path.read_text().splitlines()
    out = doc["output"]
    assert rows[0] == "class,pretrained,finetuned,gain,ci_low,ci_high"
    assert len(rows) == 1 + len(out["formal_finetuned_per_class"])


def test_the_harness_report_adds_its_figures_to_the_tracked_run(logged):
    run, doc, pack, _ = logged
    page = RunPage(RunRecord("smoke", out=str(pack)), doc | {"tracking": {"mlflow": run.to_json()}},
                   images={"slope": b"\x89PNG fake"})
    track_pages([page])
    names = {a.path for a in _client(run).list_artifacts(run.run_id, "plots")}
    assert "plots/report_slope.png" in names and page.notes == []


def test_a_member_run_opens_its_parent_first_and_logs_as_its_child(tmp_path):
    from types import SimpleNamespace

    out = tmp_path / "sweep"
    parent = session.parent([["mlflow"]], out)
    items = session.member_items([["mlflow"]], parent)
    assert items == [[f"mlflow={parent.uri}"]] and parent.uri == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    staged = tmp_path / "dfw_tracking.json"
    staged.write_text(json.dumps({"tracking_uri": parent.uri, "experiment_name": "nvseg-bench", "run_name": "seed-0"}))
    member = PreparedStandIn(SimpleNamespace(tracking=items, dry_run=False), SimpleNamespace(tracking=staged),
                    {"finetune": ["python", "--tracking", "mlflow"]}, out / "seed-0")
    started, tracker = session.start(member, parent)
    assert parent.run is not None and tracker.run.parent_run_id == parent.run.run_id
    child = _client(tracker.run).get_run(tracker.run.run_id)
    assert child.data.tags["mlflow.parentRunId"] == parent.run.run_id
    assert started.commands["finetune"] == ["python", "--tracking", "mlflow"]
    assert tracker.block()["mlflow"]["parent_run_id"] == parent.run.run_id


def test_a_sweeps_parent_run_keeps_sweep_json_and_the_spread_of_the_gains(tmp_path):
    parent = session.parent([["mlflow"]], tmp_path / "sweep")
    session._opened(parent)
    (tmp_path / "sweep").mkdir()
    sweep = tmp_path / "sweep" / "sweep.json"
    sweep.write_text("{}\n")
    doc = {"status": "passed", "headline": "sweep of 2 seeds: formal gain mean +0.0100", "invocation": {"command": "x"}}
    warnings = session.finish(parent, doc, {"sweep.json": sweep}, {"sweep.formal_gain.mean": 0.01})
    run = _client(parent.run).get_run(parent.run.run_id)
    assert warnings == [] and run.data.metrics["sweep.formal_gain.mean"] == 0.01
    assert {a.path for a in _client(parent.run).list_artifacts(parent.run.run_id)} == {"sweep.json"}
    assert run.data.tags["mlflow.note.content"] == doc["headline"]
