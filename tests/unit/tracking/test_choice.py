"""--tracking parsing, the store it picks, and the refusal when the tracker's package is missing."""
from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from nvseg_bench.errors import ArgumentError
from nvseg_bench.tracking import choice

from ...helpers import FIXTURE, REPO


def test_comma_separated_and_repeated_values_mean_the_same_trackers():
    together = choice.from_items([choice.parse_tracking("mlflow,tensorboard")])
    apart = choice.from_items([choice.parse_tracking("tensorboard"), choice.parse_tracking("mlflow")])
    assert together == apart == choice.Tracking(mlflow=True, tensorboard=True)


def test_a_comma_inside_a_uri_stays_with_the_uri():
    assert choice.parse_tracking("mlflow=http://h:5000/a,b,tensorboard") == ["mlflow=http://h:5000/a,b", "tensorboard"]


def test_an_unknown_tracker_is_an_argument_error_naming_it():
    with pytest.raises(argparse.ArgumentTypeError, match="wandb"):
        choice.parse_tracking("wandb")


def test_two_different_mlflow_stores_are_refused():
    with pytest.raises(ArgumentError, match="two MLflow stores"):
        choice.from_items([["mlflow=http://a:5000"], ["mlflow=http://b:5000"]])


def test_the_default_store_is_an_sqlite_database_in_mlruns_beside_the_output_dir(tmp_path, monkeypatch):
    monkeypatch.delenv(choice.URI_ENV, raising=False)
    uri = choice.store_uri(choice.Tracking(mlflow=True), tmp_path / "runs" / "one")
    assert uri == f"sqlite:///{tmp_path / 'runs' / 'mlruns' / 'mlflow.db'}"
    assert choice.artifact_root(uri) == (tmp_path / "runs" / "mlruns" / "artifacts").as_uri()


def test_mlflow_tracking_uri_is_honoured_when_no_uri_is_given(tmp_path, monkeypatch):
    monkeypatch.setenv(choice.URI_ENV, "http://tracker.example:5000")
    assert choice.store_uri(choice.Tracking(mlflow=True), tmp_path / "out") == "http://tracker.example:5000"
    given = choice.Tracking(mlflow=True, mlflow_uri="http://other:5000")
    assert choice.store_uri(given, tmp_path / "out") == "http://other:5000"


def test_a_plain_folder_given_as_the_store_becomes_an_absolute_file_uri(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert choice.local_uri("store") == (tmp_path / "store").as_uri()


def test_tracking_mlflow_without_mlflow_installed_is_refused_before_any_phase_naming_the_extra(tmp_path):
    out = tmp_path / "out"
    code = ("import sys; sys.modules['mlflow'] = None\n"  # what a missing package looks like to find_spec
            "from nvseg_bench.cli import main\n"
            f"sys.exit(main([{str(FIXTURE)!r}, '--smoke', '--tracking', 'mlflow', '--output-dir', {str(out)!r}]))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 2, run.stderr
    assert "nvseg-bench[mlflow]" in run.stderr and "Traceback" not in run.stderr
    assert not out.exists()
