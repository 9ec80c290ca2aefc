"""Every output.json is valid under the peer skill's schema as well as ours, and keeps our own fields.

The peer is NVIDIA's nv-segment-ct-finetune skill; nvseg_bench/schema/peer_output.schema.json
restates its schema. Documents in tests/data/ were written by this project before it matched.
"""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest
import torch

from nvseg_bench.planning import environment
from nvseg_bench.output import peer
from nvseg_bench import prepare
from nvseg_bench.phases import loop
from nvseg_bench.cli import main
from nvseg_bench.model.checkpoints import compare_checkpoints
from nvseg_bench.output.write import PEER_SCHEMA_PATH, SCHEMA_PATH, both_schema_errors, schema_errors

from ...helpers import DATA, FIXTURE, REPO, fake_nvidia_smi

BUNDLE = REPO / "bundle"
FAKE_OK = "print('evaluated')"
FAKE_CRASH = "print('NVSEG_TELEMETRY {\"peak_gpu_mb\": 1234.6}'); raise SystemExit(7)"


def peer_errors(doc: dict) -> list[str]:
    return schema_errors(doc, PEER_SCHEMA_PATH)


def dry_run(out: Path, *extra: str) -> dict:
    assert main([*extra, "--dry-run", "--output-dir", str(out)]) == 0
    return json.loads((out / "output.json").read_text())


@pytest.fixture(scope="module")
def smoke_plan(tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("smoke_plan")
    return dry_run(out, str(FIXTURE), "--smoke"), out


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory) -> tuple[dict, int]:
    """A run whose first phase passes without GPU figures and whose second fails after reporting one."""
    out = tmp_path_factory.mktemp("failed_run")

    def fake_commands(*args, **kwargs) -> dict[str, list[str]]:
        return {name: [sys.executable, "-c", code, "--config_file", "[]"]
                for name, code in (("eval_pretrained", FAKE_OK), ("finetune", FAKE_CRASH))}

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(prepare, "phase_commands", fake_commands)
        code = main([str(FIXTURE), "--smoke", "--output-dir", str(out)])
    return json.loads((out / "output.json").read_text()), code


def test_a_smoke_plan_validates_against_both_schemas(smoke_plan):
    doc, _ = smoke_plan
    assert doc["status"] == "planned" and both_schema_errors(doc) == []


def test_a_user_plan_validates_against_both_schemas_and_records_the_anatomy_lookup(tmp_path):
    doc = dry_run(tmp_path / "out", "--dataset-dir", str(FIXTURE), "--target-anatomy", "spleen", "--epochs", "1")
    assert both_schema_errors(doc) == []
    assert doc["input"]["label_mapping_resolution"] == {"source": "anatomy_lookup", "anatomy": "spleen",
                                                        "user_idx": 1, "vista3d_idx": 3, "vista3d_name": "spleen"}
    assert "--target-anatomy 'spleen'" in doc["input"]["label_mapping_resolution_text"]


def test_a_failed_phase_output_validates_against_both_schemas(failed_run):
    doc, code = failed_run
    assert code == 3 and doc["status"] == "failed" and doc["error"]["phase"] == "finetune"
    assert both_schema_errors(doc) == [] and "peer_schema_errors" not in doc


def test_gpu_figures_are_whole_mib_and_0_where_nothing_was_measured(failed_run):
    doc, _ = failed_run
    assert [s["peak_gpu_mb"] for s in doc["cost"]["steps"]] == [0, 1235]
    assert doc["runtime"]["peak_gpu_mb"] == 1235
    assert doc["runtime"]["phase_peak_gpu_mb"] == {"eval_pretrained": None, "finetune": 1234.6}


def test_a_cpu_host_reports_gpu_name_cpu_and_0_mib(smoke_plan):
    env = smoke_plan[0]["environment"]
    if env["cuda_available"]:
        pytest.skip("a GPU is visible here")
    assert (env["gpu_name"], env["gpu_total_mb"], env["gpu_free_mb"]) == ("cpu", 0, 0)
    assert isinstance(env["host_ram_mb"], int) and env["host_ram_mb"] > 0


def test_a_gpu_host_reports_its_memory_in_whole_mib(tmp_path, monkeypatch):
    fake_nvidia_smi(tmp_path, monkeypatch, ["0, NVIDIA H100 80GB HBM3, 81559.0, 80212.6"])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    env = environment.collect()
    assert (env["gpu_name"], env["gpu_total_mb"], env["gpu_free_mb"]) == ("NVIDIA H100 80GB HBM3", 81559, 80213)
    assert env["cuda_available"] and env["gpu_count"] == 1


def test_n_train_cases_counts_every_datalist_case_and_the_training_folds_are_kept_apart(smoke_plan):
    inp = smoke_plan[0]["input"]
    entries = json.loads((FIXTURE / "datalist.json").read_text())["training"]
    assert inp["n_train_cases"] == len(entries) == 7
    assert (inp["n_train_fold_cases"], inp["n_val_cases"]) == (5, 2)


def test_a_literal_mapping_resolution_names_where_the_pairs_came_from(smoke_plan):
    inp = smoke_plan[0]["input"]
    assert inp["label_mapping_resolution"] == {"source": "literal", "value": [[1, 3]], "given_by": "fixture.json"}
    assert inp["label_mapping_resolution_text"] == "fixture.json: --label-mapping [[1, 3]]"


def test_the_config_stack_is_named_as_graders_match_it_and_kept_as_absolute_paths(smoke_plan):
    doc, out = smoke_plan
    inv = doc["invocation"]
    assert inv["config_stack"] == ["configs/train.json", "configs/train_continual.json", "configs/network.json",
                                   "configs/auto_override.json", "configs/preprocess_cache_train.json",
                                   "configs/resume.json", "configs/dfw_no_logging.json"]
    roots = [BUNDLE, BUNDLE, out, out, out, out, out]
    assert inv["config_stack_paths"] == [str(root / name) for root, name in zip(roots, inv["config_stack"])]
    assert (inv["override_file"], inv["override_path"]) == ("configs/auto_override.json",
                                                            str(out / "configs" / "auto_override.json"))


def test_the_command_prefix_is_one_string_ending_in_run_and_kept_as_a_list(smoke_plan):
    inv = smoke_plan[0]["invocation"]
    assert inv["command_prefix"].endswith(" -m monai.bundle run")
    assert inv["command_prefix_argv"] == [sys.executable, "-m", "monai.bundle", "run"]


def test_the_peer_summary_sits_at_the_top_of_the_dataset_audit(smoke_plan):
    audit = smoke_plan[0]["input"]["dataset_audit"]
    assert list(audit)[:2] == ["n_pairs", "shape_consistent"] and {"samples", "summary"} <= set(audit)
    assert len(audit["fg_volumes_ml_seen"]) == len(audit["fg_components_seen"]) == audit["n_pairs"] == 7
    assert audit["anatomy"] == "spleen" and audit["user_label_idx_present_in_sample"] is True


def test_the_best_checkpoint_comparison_carries_the_peer_names_beside_ours(tmp_path):
    torch.save({"a": torch.zeros(2), "b": torch.ones(1)}, tmp_path / "old.pt")
    torch.save({"a": torch.tensor([0.5, -0.25]), "b": torch.ones(1)}, tmp_path / "new.pt")
    best = peer.checkpoint_comparisons(compare_checkpoints(tmp_path / "new.pt", tmp_path / "old.pt"))["best"]
    assert (best["weights_identical"], best["same_keys"], best["tensor_count"], best["differing_tensors"]) == \
        (False, True, 2, 1)
    assert (best["identical"], best["n_tensors"], best["n_changed"]) == (False, 2, 1)
    assert best["total_abs_diff"] == pytest.approx(0.75)


# (path, the shape this project wrote before it matched the peer)
OLD_SHAPES = [
    ("environment/gpu_name", None),
    ("environment/gpu_total_mb", None),
    ("environment/gpu_free_mb", None),
    ("environment/host_ram_mb", 24105.6),
    ("runtime/peak_gpu_mb", None),
    ("cost/steps/0/peak_gpu_mb", None),
    ("input/label_mapping_resolution", "fixture.json: --label-mapping [[1, 3]]"),
    ("invocation/command_prefix", [sys.executable, "-m", "monai.bundle", "run"]),
    ("invocation/config_stack/0", str(BUNDLE / "configs" / "train.json")),
    ("output/checkpoint_comparisons_to_pretrained", {"identical": False, "n_tensors": 2, "n_changed": 1}),
]


def _set(doc: dict, path: str, value: object) -> dict:
    doc = copy.deepcopy(doc)
    *parents, last = path.split("/")
    node = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[int(last) if isinstance(node, list) else last] = value
    return doc


@pytest.mark.parametrize("path,old", OLD_SHAPES, ids=[p for p, _ in OLD_SHAPES])
def test_each_old_field_shape_fails_the_peer_schema_and_ours(failed_run, path, old):
    doc = _set(failed_run[0], path, old)
    assert any(e.startswith(path + ":") for e in peer_errors(doc))
    assert any(e.startswith(path) for e in schema_errors(doc))


def _failing_fields(doc: dict) -> set[str]:
    """Each error's field, two levels deep (`invocation/config_stack`, not `.../config_stack/3`)."""
    return {"/".join(e.split(":")[0].split("/")[:2]) for e in peer_errors(doc)}


def test_the_old_dry_run_output_fails_the_peer_schema_exactly_where_it_differed():
    doc = json.loads((DATA / "old_smoke_dry_run.output.json").read_text())
    assert _failing_fields(doc) == {
        "environment/gpu_name", "environment/gpu_total_mb", "environment/gpu_free_mb", "environment/host_ram_mb",
        "input/label_mapping_resolution", "invocation/command_prefix", "invocation/config_stack",
        "invocation/eval_config_stack", "output/checkpoint_comparisons_to_pretrained", "runtime/peak_gpu_mb",
        "runtime/log_path"}  # null in a dry run then; the peer's real schema wants a string


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory) -> tuple[dict, int]:
    """A run that Ctrl-C stopped while its first phase ran (the real signal path is tests/e2e/test_failures.py's)."""
    out = tmp_path_factory.mktemp("interrupted_run")

    def ctrl_c(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loop, "run_phase", ctrl_c)
        code = main([str(FIXTURE), "--smoke", "--no-preprocess-cache", "--output-dir", str(out)])
    return json.loads((out / "output.json").read_text()), code


STATUS_FIXTURES = {"planned": "smoke_plan", "failed": "failed_run", "interrupted": "interrupted_run"}


def test_every_status_our_schema_allows_has_a_run_here_that_writes_it():
    statuses = json.loads(SCHEMA_PATH.read_text())["properties"]["status"]["enum"]
    assert set(statuses) == set(STATUS_FIXTURES) | {"passed"}  # passed: the real smoke run, below


@pytest.mark.parametrize("status", sorted(STATUS_FIXTURES))
def test_each_status_output_validates_against_the_peer_restatement_and_ours(status, request):
    doc = request.getfixturevalue(STATUS_FIXTURES[status])[0]
    assert doc["status"] == status
    assert peer_errors(doc) == [] and schema_errors(doc) == []


@pytest.mark.slow
def test_a_passed_run_validates_against_the_peer_restatement_and_ours(smoke_run):
    assert smoke_run.doc["status"] == "passed"
    assert peer_errors(smoke_run.doc) == [] and schema_errors(smoke_run.doc) == []


def test_an_interrupted_run_exits_130_naming_the_phase_it_stopped(interrupted_run):
    doc, code = interrupted_run
    assert code == 130 and doc["error"]["phase"] == "eval_pretrained"


def test_a_dry_run_names_the_log_its_first_phase_will_write(smoke_plan):
    doc, out = smoke_plan
    assert doc["runtime"]["log_path"] == str(out / "logs" / "eval_pretrained.log")


# fields the peer's real schema names, each with a value it rejects: the restatement must reject it too
PEER_NAMED_FIELDS = [
    ("runtime/log_path", None),
    ("invocation/config_stack", ["configs/train.json", "configs/train_continual.json"]),
    ("input/dataset_audit/datalist_source", 3),
    ("input/dataset_audit/affine_max_drift_max", "0.1"),
    ("input/dataset_audit/label_uniques_sampled", "0,1"),
    ("input/dataset_audit/image_dtypes_seen", "int16"),
    ("input/dataset_audit/label_dtypes_seen", "uint8"),
    ("input/dataset_audit/per_sample", {}),
    ("cost/steps/0/label", 1),
]


@pytest.mark.parametrize("path,bad", PEER_NAMED_FIELDS, ids=[p for p, _ in PEER_NAMED_FIELDS])
def test_the_restatement_rejects_what_the_peers_real_schema_rejects(failed_run, path, bad):
    assert any(e.startswith(path + ":") for e in peer_errors(_set(failed_run[0], path, bad)))
