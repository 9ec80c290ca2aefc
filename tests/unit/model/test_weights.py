"""The pretrained weights a run uses: a given file, the fixture card's model, or the pinned hub file
from the local cache offline."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nvseg_bench.errors import ArgumentError
from nvseg_bench.inputs.request import Request
from nvseg_bench.inputs.resolve import resolve
from nvseg_bench.model.weights import resolve_weights
from nvseg_bench.store.files import sha256_file

from ...helpers import REPO

BUNDLE = REPO / "bundle"


def test_a_missing_pretrained_checkpoint_is_refused(tmp_path):
    with pytest.raises(ArgumentError, match="does not exist"):
        resolve_weights(str(tmp_path / "nope.pt"), "--pretrained-ckpt", None, BUNDLE)


def test_the_fixture_card_model_is_used_and_hashed():
    model = REPO / "fixtures" / "micro_model" / "model.pt"
    resolved = resolve(Request(Path("out")), {"pretrained_ckpt": str(model), "model_name": "micro"}, "smoke")
    weights = resolve_weights(resolved["pretrained_ckpt"], resolved.source("pretrained_ckpt"), resolved["model_name"], BUNDLE)
    assert weights.source == "fixture.json" and weights.sha256 == sha256_file(model)


def _no_bundle_model(tmp_path: Path) -> Path:
    bundle = tmp_path / "bundle"
    (bundle / "configs").mkdir(parents=True)
    return bundle


def test_offline_without_a_cached_hub_file_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ArgumentError, match="offline .* not in the local cache"):
        resolve_weights(None, "default", None, _no_bundle_model(tmp_path))


def test_the_pinned_hub_file_resolves_from_the_local_cache_offline(tmp_path, monkeypatch):
    from nvseg_bench.model.weights import HUB_FILE, HUB_REPO, HUB_REVISION

    snapshot = tmp_path / "hf" / "hub" / f"models--{HUB_REPO.replace('/', '--')}" / "snapshots" / HUB_REVISION
    (snapshot / HUB_FILE).parent.mkdir(parents=True)
    torch.save({"a": torch.ones(2)}, snapshot / HUB_FILE)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    weights = resolve_weights(None, "default", None, _no_bundle_model(tmp_path))
    assert Path(weights.path) == (snapshot / HUB_FILE).resolve() and weights.source.startswith("hub nvidia/NV-Segment-CT@")


def test_fetch_weights_reports_the_cached_file_offline(tmp_path, monkeypatch, capsys):
    from nvseg_bench.cli import main
    from nvseg_bench.model.weights import HUB_FILE, HUB_REPO, HUB_REVISION

    snapshot = tmp_path / "hf" / "hub" / f"models--{HUB_REPO.replace('/', '--')}" / "snapshots" / HUB_REVISION
    (snapshot / HUB_FILE).parent.mkdir(parents=True)
    torch.save({"a": torch.ones(2)}, snapshot / HUB_FILE)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["fetch-weights"]) == 0
    assert f"sha256 {sha256_file(snapshot / HUB_FILE)}" in capsys.readouterr().out
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    assert main(["fetch-weights"]) == 2 and "HF_HUB_OFFLINE" in capsys.readouterr().err


def test_uncached_weights_with_no_hub_to_reach_are_refused_without_a_download_attempt(tmp_path, monkeypatch):
    import socket

    from nvseg_bench.model import weights

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(weights, "HUB_PROBE_SECONDS", 1.0)
    with pytest.raises(ArgumentError, match="the hub cannot be reached") as caught:
        resolve_weights(None, "default", None, tmp_path)
    assert f"127.0.0.1:{port}" in str(caught.value) and not (tmp_path / "empty").exists()
