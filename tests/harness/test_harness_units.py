"""The harness's parts on their own: the cache key, options, the run store, the report (gates: test_harness_gates.py)."""
from __future__ import annotations

import html
import json
import shutil
import sys
from pathlib import Path

import pytest

from nvseg_bench.harness.cache import DigestMemo, cache_key, changed_parts, fingerprint
from nvseg_bench.harness.ledger import GateOutcome, Ledger, RunRecord
from nvseg_bench.harness.options import HarnessOptions, check_passthrough
from nvseg_bench.harness.report import NO_MATPLOTLIB, write_reports
from nvseg_bench.harness.runs import build_spec, cli_env
from nvseg_bench.harness.trust import Trust

from ..helpers import FIXTURE, REPO, materialize_pack


def _inputs(dataset: Path) -> dict:
    return {"bundle": REPO / "bundle", "dataset": dataset}


def test_the_key_is_stable_and_names_what_changed(tmp_path, pytestconfig):
    dataset = shutil.copytree(FIXTURE, tmp_path / "data")
    memo = DigestMemo(pytestconfig.cache)
    first = fingerprint(["--smoke"], _inputs(dataset), False, memo)
    assert cache_key(fingerprint(["--smoke"], _inputs(dataset), False, memo)) == cache_key(first)
    label = dataset / "labelsTr" / "spleen_01.nii.gz"
    label.write_bytes(label.read_bytes() + b"\0")
    assert changed_parts(first, fingerprint(["--smoke"], _inputs(dataset), False, memo)) == ["dataset"]
    assert changed_parts(first, fingerprint(["--smoke", "--seed", "1"], _inputs(dataset), False, memo)) \
        == ["arguments", "dataset"]


def test_file_digests_are_remembered_by_size_and_mtime(tmp_path, pytestconfig, monkeypatch):
    memo = DigestMemo(pytestconfig.cache)
    data = tmp_path / "blob.bin"
    data.write_bytes(b"x" * 1000)
    first = memo.file(data)
    monkeypatch.setattr("nvseg_bench.harness.cache.sha256_file", lambda path: pytest.fail("hashed again"))
    assert memo.file(data) == first


def test_passthrough_flags_are_checked_against_the_wrapper_parser():
    assert check_passthrough("--seed 1 --phase-timeout 600") == ["--seed", "1", "--phase-timeout", "600"]
    with pytest.raises(pytest.UsageError, match="Did you mean --learning-rate"):
        check_passthrough("--learning-rat 1e-4")
    with pytest.raises(pytest.UsageError, match="which the harness sets itself"):
        check_passthrough("--smoke")
    with pytest.raises(pytest.UsageError, match="check its quotes"):
        check_passthrough("--label-mapping '[[1, 3]]")


def test_without_gpu_a_run_sees_no_gpu_and_with_it_runs_take_the_gpu_lock(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert cli_env(uses_gpu=False)["CUDA_VISIBLE_DEVICES"] == ""
    assert cli_env(uses_gpu=True)["CUDA_VISIBLE_DEVICES"] == "0"
    assert build_spec("smoke", HarnessOptions(gpu=True)).uses_gpu
    assert not build_spec("smoke", HarnessOptions()).uses_gpu


def test_the_user_run_passes_its_options_as_wrapper_flags(tmp_path):
    opts = HarnessOptions(dataset=tmp_path, target_anatomy="lung tumor", args=["--epochs", "2"])
    spec = build_spec("user", opts)
    assert spec.args == ["--dataset-dir", str(tmp_path), "--target-anatomy", "lung tumor", "--epochs", "2"]
    assert spec.reference is None


def test_without_matplotlib_the_report_says_so_and_keeps_the_tables(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    pack = materialize_pack("smoke", tmp_path / "run")
    ledger = Ledger()
    ledger.runs["smoke"] = RunRecord("smoke", str(pack), {"cache"},
                                     gates={"schema": GateOutcome("passed", "output.json validates", 0.01)})
    write_reports(ledger, tmp_path / "report")
    page = (tmp_path / "report" / "report.html").read_text()
    assert html.escape(NO_MATPLOTLIB) in page and "data:image/png" not in page and "output.json validates" in page


def test_the_report_shows_the_verifier_verdict_and_its_failed_findings(tmp_path):
    pack = materialize_pack("smoke", tmp_path / "run")
    ledger = Ledger()
    trust = Trust("failed", ["integrity.manifest: 1 changed since the run"], summary=str(pack / "trust_summary.json"))
    ledger.runs["smoke"] = RunRecord("smoke", str(pack), {"cache"}, trust=trust,
                                     gates={"trusted": GateOutcome("failed", "verifier verdict failed", 0.01)})
    write_reports(ledger, tmp_path / "report")
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "### Verifier" in markdown and "verdict failed" in markdown
    assert "| failed | integrity.manifest: 1 changed since the run |" in markdown
    assert "<td class='failed'>failed</td><td class=''>integrity.manifest" in (tmp_path / "report" / "report.html").read_text()


def test_the_report_shows_each_class_and_the_forgetting_check(tmp_path):
    pack = materialize_pack("smoke", tmp_path / "run")
    doc = json.loads((pack / "output.json").read_text())
    doc["output"]["forgetting"] = {"classes": {"liver": 0.97, "aorta": 0.71}, "min_agreement": 0.71,
                                   "min_class": "aorta", "class_ids": {"liver": 1, "aorta": 6},
                                   "per_case": {"a.nii.gz": {"liver": 0.97, "aorta": 0.71}}, "headline_below": 0.9,
                                   "pretrained_foreground_ml": {"liver": 1500.0, "aorta": 80.0},
                                   "finetuned_foreground_ml": {"liver": 1490.0, "aorta": 60.5}}
    (pack / "output.json").write_text(json.dumps(doc))
    ledger = Ledger()
    ledger.runs["smoke"] = RunRecord("smoke", str(pack), {"cache"})
    write_reports(ledger, tmp_path / "report")
    markdown = (tmp_path / "report" / "report.md").read_text()
    spleen = doc["output"]["formal_finetuned_per_class"]["spleen"]
    assert "### Classes" in markdown and "| spleen | 1 -> 3 | " in markdown and f"{spleen:.4f}" in markdown
    assert "| aorta | 6 | 0.710 | 80.0 | 60.5 |" in markdown and "| lowest agreement on other classes | 0.710 (aorta) |" in markdown
    assert (tmp_path / "report" / "smoke_classes.png").is_file() and (tmp_path / "report" / "smoke_forgetting.png").is_file()


def test_a_write_under_an_input_shows_in_the_stat_listing_even_in_pycache(tmp_path):
    from nvseg_bench.harness.cache import stat_listing

    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "train.json").write_text("{}")
    before = stat_listing([tmp_path])
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert stat_listing([tmp_path]) != before


def test_an_evidence_root_of_the_users_is_never_written_over_nor_deleted(tmp_path, pytestconfig):
    from nvseg_bench.harness.cache import RunStore

    store = RunStore(pytestconfig.cache, tmp_path / "evidence")
    first = store.fresh_dir("user", "ab" * 32)
    first.mkdir(parents=True)
    assert first.name == "user-abababababab"
    assert store.fresh_dir("user", "ab" * 32).name == "user-abababababab-2"
    store.forget_dir(first)
    assert first.is_dir()


def test_the_harness_takes_digests_the_cli_remembered_and_leaves_its_own_for_the_cli(tmp_path, monkeypatch):
    from nvseg_bench.harness.cache import DirCache, shared_digest_memo
    from nvseg_bench.store.digests import known_digests, remember_digests

    shared = shared_digest_memo(["--preprocess-cache", str(tmp_path / "pc")])
    assert shared == (tmp_path / "pc").resolve() / "digests.json"
    seen_by_cli, fresh = tmp_path / "a.bin", tmp_path / "b.bin"
    seen_by_cli.write_bytes(b"a" * 100)
    fresh.write_bytes(b"b" * 100)
    shared.parent.mkdir(parents=True)
    remember_digests({str(seen_by_cli): "digest-the-cli-took"}, shared)
    memo = DigestMemo(DirCache(tmp_path / "pytest-cache"), shared)
    assert memo.file(seen_by_cli) == "digest-the-cli-took"  # not read: the CLI's audit already hashed it
    taken = memo.file(fresh)
    memo.save()
    assert known_digests([fresh], shared) == {str(fresh): taken}  # the next CLI run will not hash it
    assert shared_digest_memo(["--no-preprocess-cache"]) is None


def test_the_bundle_dir_help_names_the_hub_bundle_as_the_default_of_sanity_and_user_runs():
    from nvseg_bench.harness.options import PATH_OPTIONS

    said = dict(PATH_OPTIONS)["bundle-dir"]
    assert "sanity and user runs NVIDIA's nvidia/NV-Segment-CT" in said and "default: this project's bundle/" not in said


def test_nvseg_model_and_modality_become_each_runs_flags_and_a_typo_is_a_usage_error():
    from nvseg_bench.harness.options import MODALITIES, MODEL_NAMES, _choice_args

    assert _choice_args("ctmr", "model", MODEL_NAMES) == ["--model", "ctmr"]
    assert _choice_args("MRI_BODY", "modality", MODALITIES) == ["--modality", "MRI_BODY"]
    assert _choice_args(None, "model", MODEL_NAMES) == []
    with pytest.raises(pytest.UsageError, match="--nvseg-model: 'mr' must be one of ct, ctmr"):
        _choice_args("mr", "model", MODEL_NAMES)
