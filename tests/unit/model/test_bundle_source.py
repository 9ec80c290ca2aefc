"""Which bundle a run drives: NVIDIA's from the hub cache by default, the builtin stand-in for smoke,
--bundle-dir when given; its provenance in output.json, and the Task06 reference only for the pinned recipe.

tests/conftest.py lays out an HF cache at the pinned revision (fixtures/make_hub_cache.py) and sets
HF_HUB_OFFLINE=1, so nothing here reaches the network."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nvseg_bench.model import bundle_source
from nvseg_bench.cli import main
from nvseg_bench.errors import ArgumentError
from nvseg_bench.harness.gates import reference_ranges
from nvseg_bench.harness.runs import RunEvidence
from nvseg_bench.evidence.ranges import NOT_COMPARABLE, comparable
from nvseg_bench.model.weights import HUB_REPO, HUB_REVISION

from ...helpers import FIXTURE, REPO, tree_digest

sys.path.insert(0, str(REPO / "fixtures"))
import make_hub_cache  # noqa: E402

MICRO = REPO / "fixtures" / "micro_model"
MICRO_ARGS = ["--pretrained-ckpt", str(MICRO / "model.pt"), "--network-config", str(MICRO / "network.json")]


@pytest.fixture(scope="module")
def user_data(tmp_path_factory) -> Path:
    """The shipped fixture without its card, so no preset is implied: a user dataset."""
    data = tmp_path_factory.mktemp("user") / "data"
    shutil.copytree(FIXTURE, data)
    (data / "fixture.json").unlink()
    return data


def plan(out: Path, *args: str) -> dict:
    assert main([*args, "--dry-run", "--output-dir", str(out)]) == 0
    return json.loads((out / "output.json").read_text())


def test_a_user_run_without_bundle_dir_uses_nvidias_pinned_bundle_from_the_cache(user_data, tmp_path):
    doc = plan(tmp_path / "out", str(user_data), "--target-anatomy", "spleen", *MICRO_ARGS)
    bundle = doc["input"]["bundle"]
    snapshot = Path(os.environ["HF_HOME"]) / "hub" / f"models--{HUB_REPO.replace('/', '--')}" / "snapshots" / HUB_REVISION
    assert (bundle["source"], bundle["repo"], bundle["revision"]) == ("hub", HUB_REPO, HUB_REVISION)
    assert bundle["path"] == str(snapshot) and bundle["matches_pinned_upstream"] is True
    assert {"configs/train.json", "configs/train_continual.json", "configs/evaluate.json",
            "scripts/__init__.py"} <= set(bundle["configs_sha256"])
    assert doc["invocation"]["bundle_dir"] == str(snapshot)


def test_the_hub_snapshot_lacks_a_class_list_so_the_builtin_one_stands_in(user_data, tmp_path):
    doc = plan(tmp_path / "out", str(user_data), "--target-anatomy", "spleen", *MICRO_ARGS)
    assert doc["input"]["label_dict_path"] == str(REPO / "bundle" / "configs" / "label_dict.json")


def test_the_smoke_preset_keeps_the_builtin_stand_in(tmp_path):
    bundle = plan(tmp_path / "out", str(FIXTURE), "--smoke")["input"]["bundle"]
    assert (bundle["source"], bundle["path"], bundle["matches_pinned_upstream"]) == ("builtin", str(REPO / "bundle"), False)


def test_bundle_dir_wins_and_is_recorded_as_a_dir(user_data, tmp_path):
    snapshot = bundle_source.hub_snapshot(download=False)
    copy = shutil.copytree(snapshot, tmp_path / "NV-Segment-CT", symlinks=False)
    bundle = plan(tmp_path / "out", str(user_data), "--target-anatomy", "spleen", "--bundle-dir", str(copy),
                  *MICRO_ARGS)["input"]["bundle"]
    assert (bundle["source"], bundle["path"], bundle["matches_pinned_upstream"]) == ("dir", str(copy), False)
    assert bundle["configs_sha256"] == bundle_source.recipe_digests(snapshot)


def test_no_cache_offline_is_exit_2_naming_repo_revision_fetch_bundle_and_bundle_dir(user_data, tmp_path, monkeypatch,
                                                                                      capsys):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    code = main([str(user_data), "--target-anatomy", "spleen", *MICRO_ARGS, "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    for phrase in (HUB_REPO, HUB_REVISION[:12], "nvseg-finetune fetch-bundle", "--bundle-dir", "HF_HUB_OFFLINE"):
        assert phrase in err


def test_a_file_edited_in_the_cache_no_longer_matches_the_pinned_upstream(tmp_path, monkeypatch):
    snapshot = make_hub_cache.build(tmp_path / "hf" / "hub")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert bundle_source.from_hub(download=False).matches_pinned_upstream
    train = Path(os.path.realpath(snapshot / "configs" / "train.json"))
    train.write_text(train.read_text().replace('"num_workers"', '"num_workers" ', 1))
    used = bundle_source.from_hub(download=False)
    assert not used.matches_pinned_upstream and used.check.different == ("configs/train.json",)
    assert comparable(used.to_json())[1].startswith(f"{NOT_COMPARABLE} (hub bundle {snapshot}: configs/train.json")


def test_differing_files_name_each_config_that_differs_from_the_pinned_one(tmp_path):
    copy = shutil.copytree(bundle_source.hub_snapshot(download=False), tmp_path / "b", symlinks=False)
    (copy / "configs" / "evaluate.json").write_text("{}")
    (copy / "configs" / "inference.json").unlink()
    (copy / "configs" / "mine.json").write_text("{}")
    assert bundle_source.differing_files(bundle_source.from_dir(copy)) == [
        "configs/evaluate.json (changed)", "configs/inference.json (missing)", "configs/mine.json (extra)"]


def task06_run(tmp_path: Path, bundle: dict) -> RunEvidence:
    (tmp_path / "output.json").write_text(json.dumps({"input": {"bundle": bundle},
                                                     "output": {"formal_pretrained_val_dice": 0.9}}))
    return RunEvidence(name="sanity", out=tmp_path, returncode=0, wall_seconds=1.0, console_tail=[], source="pack",
                       key="k", finished_at="", inputs_unchanged=None, reference="task06")


@pytest.mark.parametrize("bundle", [{"source": "builtin", "path": "/b", "matches_pinned_upstream": False},
                                    None], ids=["builtin", "no provenance"])
def test_the_reference_gate_skips_a_run_of_another_recipe_instead_of_passing_it(bundle, tmp_path):
    verdict = reference_ranges(task06_run(tmp_path, bundle))
    assert verdict.status == "skipped" and verdict.message.startswith(NOT_COMPARABLE)


def test_the_reference_gate_judges_a_run_of_the_pinned_recipe(tmp_path):
    verdict = reference_ranges(task06_run(tmp_path, {"source": "hub", "matches_pinned_upstream": True}))
    assert verdict.status == "failed"  # judged: the made-up run lacks most figures


def test_fetch_bundle_offline_reports_the_cached_snapshot_and_its_weights(capsys):
    assert main(["fetch-bundle"]) == 0
    out = capsys.readouterr().out
    assert f"{HUB_REPO}@{HUB_REVISION[:12]}" in out and "upstream check: verified against" in out and "sha256" in out


def test_choosing_the_bundle_never_imports_torch_or_monai(user_data, tmp_path):
    code = ("import sys; from nvseg_bench.model import bundle_source\n"
            "b = bundle_source.choose(None, 'finetune', download=False)\n"
            "print(b.source, b.matches_pinned_upstream, 'torch' in sys.modules, 'monai' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ).stdout
    assert out.strip() == "hub True False False"


def test_the_snapshot_is_not_written_to_by_a_run(user_data, tmp_path):
    snapshot = bundle_source.hub_snapshot(download=False)
    before = tree_digest(snapshot.parents[1])
    plan(tmp_path / "out", str(user_data), "--target-anatomy", "spleen", *MICRO_ARGS)
    assert tree_digest(snapshot.parents[1]) == before


def test_an_unknown_bundle_dir_is_refused_before_anything_else(tmp_path, capsys):
    with pytest.raises(ArgumentError, match="not a MONAI bundle"):
        bundle_source.from_dir(tmp_path)


def provenance_of(out: Path):
    from eval_engine.pack import load_pack
    from eval_engine.provenance import check_bundle

    return check_bundle(load_pack(out))


def test_the_verifier_re_derives_that_a_hub_run_used_the_pinned_bundle(user_data, tmp_path):
    plan(tmp_path / "out", str(user_data), "--target-anatomy", "spleen", *MICRO_ARGS)
    found = provenance_of(tmp_path / "out")
    assert found.status == "pass" and found.numbers["pinned_derived"] is True


def test_the_verifier_fails_a_builtin_run_that_claims_the_pinned_bundle(tmp_path):
    doc = plan(tmp_path / "out", str(FIXTURE), "--smoke")
    doc["input"]["bundle"]["matches_pinned_upstream"] = True
    (tmp_path / "out" / "output.json").write_text(json.dumps(doc))
    found = provenance_of(tmp_path / "out")
    assert found.status == "fail" and "the verifier finds not_hub" in found.detail


def test_the_verifier_fails_a_recipe_file_changed_since_the_run(user_data, tmp_path):
    copy = shutil.copytree(bundle_source.hub_snapshot(download=False), tmp_path / "b", symlinks=False)
    plan(tmp_path / "out", str(user_data), "--target-anatomy", "spleen", "--bundle-dir", str(copy), *MICRO_ARGS)
    (copy / "configs" / "train.json").write_text("{}")
    found = provenance_of(tmp_path / "out")
    assert found.status == "fail" and "configs/train.json" in found.detail


@pytest.mark.slow
def test_a_user_finetune_without_bundle_dir_runs_nvidias_bundle_from_the_cache_and_leaves_it_untouched(user_data,
                                                                                                      tmp_path):
    snapshot = bundle_source.hub_snapshot(download=False)
    before = tree_digest(snapshot.parents[1])
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "nvseg_bench", str(user_data), "--target-anatomy", "spleen", *MICRO_ARGS,
                           "--epochs", "1", "--auto-seg", "--skip-formal-eval", "--output-dir", str(out)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((out / "output.json").read_text())
    assert doc["status"] == "passed" and doc["output"]["finetuned_ckpt_exists"]
    bundle = doc["input"]["bundle"]
    assert (bundle["source"], bundle["path"], bundle["matches_pinned_upstream"]) == ("hub", str(snapshot), True)
    assert doc["invocation"]["config_stack_paths"][0] == str(snapshot / "configs" / "train.json")
    assert tree_digest(snapshot.parents[1]) == before and not list(snapshot.parents[1].rglob("__pycache__"))
    assert provenance_of(out).status == "pass"


def _hub_bundle(state: str) -> dict:
    return {"source": "hub", "path": "/s", "matches_pinned_upstream": state == "verified",
            "upstream_check": {"state": state, "file_list": None, "missing": [], "added": [],
                               "different": ["configs/train.json"] if state == "differs" else []}}


def test_the_reference_gate_judges_a_self_consistent_hub_run_and_says_why_it_is_not_verified(tmp_path):
    verdict = reference_ranges(task06_run(tmp_path, _hub_bundle("self_consistent")))
    assert verdict.status == "failed"  # judged (the made-up run lacks most figures), not skipped


def test_the_reference_gate_skips_a_hub_run_that_differs_naming_the_file(tmp_path):
    verdict = reference_ranges(task06_run(tmp_path, _hub_bundle("differs")))
    assert verdict.status == "skipped" and "configs/train.json (different)" in verdict.message
