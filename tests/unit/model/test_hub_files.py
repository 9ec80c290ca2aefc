"""Provenance that says what was checked: the hub cache against the hub's own file list of the pinned revision.

Each test lays out its own cache (fixtures/make_hub_cache.py, with or without the list) and points HF_HOME at
it; nothing reaches the network (the fetch-bundle test stands in for the hub's API)."""
from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub.hf_api import RepoFile, RepoFolder

from nvseg_bench.cli import main
from nvseg_bench.evidence.ranges import NOT_COMPARABLE, comparable
from nvseg_bench.model import bundle_source, hub_files
from nvseg_bench.model.weights import HUB_FILE, HUB_REPO, HUB_REVISION

from ...helpers import REPO

sys.path.insert(0, str(REPO / "fixtures"))
import make_hub_cache  # noqa: E402


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh hub cache with the list fetch-bundle keeps; returns (snapshot, repo folder)."""
    snapshot = make_hub_cache.build(tmp_path / "hf" / "hub")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return snapshot, snapshot.parents[1]


def _relink_edited(snapshot: Path, rel: str) -> None:
    """Edit a cached file the way that fools a blob-name check: new content under a blob named by its own hash."""
    link = snapshot / rel
    data = link.read_bytes().replace(b"{", b"{ ", 1)
    blob = snapshot.parents[1] / "blobs" / hub_files.git_blob_id(data)
    blob.write_bytes(data)
    link.unlink()
    link.symlink_to(os.path.relpath(blob, link.parent))


def test_the_untouched_cache_with_its_list_is_verified_and_records_the_weights_sha256(cache):
    snapshot, folder = cache
    used = bundle_source.from_hub(download=False)
    block = used.to_json()
    assert block["upstream_check"] == {"state": "verified", "file_list": str(hub_files.list_path(folder)),
                                       "missing": [], "added": [], "different": []}
    assert block["matches_pinned_upstream"] is True
    assert block["weights_sha256"] == hashlib.sha256((snapshot / HUB_FILE).read_bytes()).hexdigest()


def test_an_edited_config_relinked_under_a_new_blob_name_differs(cache):
    snapshot, _ = cache
    _relink_edited(snapshot, "configs/train.json")
    used = bundle_source.from_hub(download=False)
    assert (used.check.state, used.check.different) == ("differs", ("configs/train.json",))
    assert not used.matches_pinned_upstream and comparable(used.to_json())[1].startswith(NOT_COMPARABLE)


def test_a_file_added_to_the_snapshot_differs(cache):
    snapshot, folder = cache
    extra = folder / "blobs" / ("0" * 40)
    extra.write_text("print('extra')\n")
    (snapshot / "scripts" / "extra.py").symlink_to(os.path.relpath(extra, snapshot / "scripts"))
    used = bundle_source.from_hub(download=False)
    assert (used.check.state, used.check.added) == ("differs", ("scripts/extra.py",))


def test_a_recipe_file_missing_from_the_snapshot_differs(cache):
    snapshot, _ = cache
    (snapshot / "configs" / "evaluate.json").unlink()
    assert bundle_source.from_hub(download=False).check.missing == ("configs/evaluate.json",)


def test_without_a_list_the_cache_is_only_self_consistent_and_the_reference_still_compares_with_a_warning(cache):
    _, folder = cache
    hub_files.list_path(folder).unlink()
    used = bundle_source.from_hub(download=False)
    assert (used.check.state, used.check.file_list, used.matches_pinned_upstream) == ("self_consistent", None, False)
    fair, why = comparable(used.to_json())
    assert fair and "self-consistent only (warning:" in why and "fetch-bundle" in why
    assert "warning: the hub bundle is only self-consistent" in bundle_source.plan_line(used, Path("/x"))


def test_without_a_list_an_edited_file_that_no_longer_matches_its_blob_differs(cache):
    snapshot, folder = cache
    hub_files.list_path(folder).unlink()
    train = Path(os.path.realpath(snapshot / "configs" / "train.json"))
    train.write_text(train.read_text() + " ")
    assert bundle_source.from_hub(download=False).check.different == ("configs/train.json",)


class _StandInHub:
    """huggingface_hub.HfApi for list_repo_tree only: the fixture's files as the hub would list them."""

    def __init__(self, *_, **__) -> None:
        pass

    def list_repo_tree(self, repo_id, *, recursive, revision, **_):
        assert (repo_id, revision, recursive) == (HUB_REPO, HUB_REVISION, True)
        tree = [RepoFolder(path="configs", oid="1" * 40)]
        for path, data in make_hub_cache.snapshot_files(make_hub_cache.MICRO_WEIGHTS).items():
            lfs = {"size": len(data), "oid": hashlib.sha256(data).hexdigest(), "pointerSize": 134} \
                if path.endswith(".pt") else None
            tree.append(RepoFile(path=path, size=len(data), oid=hub_files.git_blob_id(data), lfs=lfs))
        return iter(tree)


def test_fetch_bundle_keeps_the_hubs_file_list_and_the_run_is_verified_against_it(tmp_path, monkeypatch, capsys):
    snapshot = make_hub_cache.build(tmp_path / "hf" / "hub", file_list=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub, "HfApi", _StandInHub)
    assert main(["fetch-bundle"]) == 0
    kept = json.loads(hub_files.list_path(snapshot.parents[1]).read_text())
    assert (kept["repo"], kept["revision"]) == (HUB_REPO, HUB_REVISION) and "configs" not in kept["files"]
    weights = kept["files"][HUB_FILE]
    assert weights["lfs_sha256"] == hashlib.sha256((snapshot / HUB_FILE).read_bytes()).hexdigest()
    assert kept["files"]["configs/train.json"]["blob_id"] == Path(os.path.realpath(snapshot / "configs" /
                                                                                    "train.json")).name
    assert "upstream check: verified against" in capsys.readouterr().out
    assert bundle_source.from_hub(download=False).matches_pinned_upstream


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the block ends: nothing listens there


def test_no_cache_and_no_hub_ends_in_seconds_with_the_exit_2_message(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env |= {"HF_HOME": str(tmp_path / "empty"), "HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}"}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "nvseg_bench", "fetch-bundle"], env=env, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    seconds = time.monotonic() - started
    assert proc.returncode == 2 and "cannot be reached" in proc.stderr and "Traceback" not in proc.stderr
    assert seconds < 15, seconds  # the download's retries took about 23 s; a probe plus start-up is a few


MICRO = REPO / "fixtures" / "micro_model"


def _planned_hub_run(out: Path, data: Path) -> dict:
    """A dry run of a user dataset on the hub bundle: its output.json records the upstream check."""
    assert main([str(data), "--target-anatomy", "spleen", "--pretrained-ckpt", str(MICRO / "model.pt"),
                 "--network-config", str(MICRO / "network.json"), "--dry-run", "--output-dir", str(out)]) == 0
    return json.loads((out / "output.json").read_text())


@pytest.fixture
def user_data(tmp_path) -> Path:
    import shutil

    from ...helpers import FIXTURE

    data = shutil.copytree(FIXTURE, tmp_path / "data")
    (data / "fixture.json").unlink()
    return data


def _verifier_finding(out: Path):
    from eval_engine.pack import load_pack
    from eval_engine.provenance import check_bundle

    return check_bundle(load_pack(out))


def test_the_verifier_fails_a_pack_claiming_verified_where_it_finds_only_self_consistent(cache, user_data, tmp_path):
    _, folder = cache
    doc = _planned_hub_run(tmp_path / "out", user_data)
    assert doc["input"]["bundle"]["upstream_check"]["state"] == "verified"
    hub_files.list_path(folder).unlink()
    found = _verifier_finding(tmp_path / "out")
    assert found.status == "fail" and "claims upstream state verified" in found.detail
    assert found.numbers["state_derived"] == "self_consistent"


def test_the_verifier_passes_a_pack_whose_claim_is_no_stronger_than_what_it_finds(cache, user_data, tmp_path):
    _, folder = cache
    hub_files.list_path(folder).unlink()
    doc = _planned_hub_run(tmp_path / "out", user_data)
    assert (doc["input"]["bundle"]["upstream_check"]["state"], doc["input"]["bundle"]["matches_pinned_upstream"]) == \
        ("self_consistent", False)
    found = _verifier_finding(tmp_path / "out")
    assert found.status == "pass" and found.numbers["state_derived"] == "self_consistent"


def test_the_verifier_fails_a_pack_claiming_verified_over_a_relinked_edit(cache, user_data, tmp_path):
    snapshot, _ = cache
    _planned_hub_run(tmp_path / "out", user_data)
    _relink_edited(snapshot, "metadata.json")  # not among the digested configs and scripts: only the list sees it
    found = _verifier_finding(tmp_path / "out")
    assert found.status == "fail" and "metadata.json (different)" in found.detail
