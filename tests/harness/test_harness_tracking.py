"""--nvseg-tracking: the harness passes --tracking to the CLI it starts, and leaves it out of the cache key
(tracking changes where a run is logged, never what it computes)."""
from __future__ import annotations

import pytest

from nvseg_bench.harness import runs
from nvseg_bench.harness.cache import DigestMemo, cache_key, fingerprint
from nvseg_bench.harness.options import HarnessOptions, _tracking_args
from nvseg_bench.harness.runs import build_spec


def test_nvseg_tracking_becomes_the_cli_tracking_flag():
    assert _tracking_args("mlflow,tensorboard") == ["--tracking", "mlflow,tensorboard"]
    assert _tracking_args(None) == []


def test_an_unknown_tracker_is_a_usage_error_naming_the_option():
    with pytest.raises(pytest.UsageError, match="--nvseg-tracking"):
        _tracking_args("wandb")


def test_a_missing_tracker_package_is_a_usage_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "mlflow", None)
    with pytest.raises(pytest.UsageError, match=r"nvseg-bench\[mlflow\]"):
        _tracking_args("mlflow")


def test_tracking_is_passed_to_the_cli_and_kept_out_of_the_cache_key(monkeypatch, tmp_path, pytestconfig):
    plain, tracked = build_spec("smoke", HarnessOptions()), build_spec("smoke", HarnessOptions(tracking=_tracking_args("mlflow")))
    memo = DigestMemo(pytestconfig.cache)
    assert cache_key(fingerprint(plain.args, plain.inputs, False, memo)) == \
        cache_key(fingerprint(tracked.args, tracked.inputs, False, memo))
    seen = {}

    def fake_child(command, **kwargs):
        seen["command"] = command
        return type("Run", (), {"return_code": 0, "seconds": 0.0, "tail": []})()

    monkeypatch.setattr(runs, "run_child", fake_child)
    runs.run_cli(tracked, tmp_path / "out", lambda line: None)
    assert seen["command"][-4:] == ["--tracking", "mlflow", "--output-dir", str(tmp_path / "out")]
