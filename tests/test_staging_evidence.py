"""Staged configs, checkpoint comparison, formal Dice reading, weights and the output schema."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nvseg_bench.errors import ArgumentError
from nvseg_bench.evidence.collect import compare_checkpoints, dataset_inputs, formal_dice, write_manifest
from nvseg_bench.output.write import schema_errors
from nvseg_bench.planning.plan import make_plan
from nvseg_bench.inputs.request import Request
from nvseg_bench.inputs.resolve import resolve
from nvseg_bench.stage.configs import override_values, stage
from nvseg_bench.model.weights import resolve_weights, sha256_file

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundle"


def _plan(multi_gpu: bool = False):
    env = {"cuda_available": multi_gpu, "gpu_count": 2 if multi_gpu else 0, "gpu_free_mb": 40000,
           "host_ram_mb": 24000, "cpu_count": 2}
    return make_plan(resolve(Request(Path("out")), {}, "smoke"), env, dataset_mb=1, nproc_env="2" if multi_gpu else None)


def _stage(tmp_path: Path, multi_gpu: bool = False, network: Path | None = None):
    plan = _plan(multi_gpu)
    values = override_values(plan, bundle_dir=BUNDLE, dataset_dir=tmp_path / "data", datalist=tmp_path / "dl.json",
                             out_dir=tmp_path / "out", pretrained=tmp_path / "m.pt", pairs=[[1, 3]], auto_seg=True)
    return stage(plan, bundle_dir=BUNDLE, out_dir=tmp_path / "out", override=values, network_config=network)


def test_staged_configs_go_under_out_configs_only(tmp_path):
    staged = _stage(tmp_path)
    assert sorted(p.name for p in staged.config_dir.iterdir()) == ["auto_override.json", "dfw_no_logging.json"]
    assert json.loads(staged.no_logging.read_text()) == {"use_mlflow": False, "use_tensorboard": False}


def test_auto_seg_never_drops_the_class_prompt_and_always_drops_points(tmp_path):
    override = json.loads(_stage(tmp_path).override.read_text())
    assert (override["drop_label_prob"], override["drop_point_prob"]) == (0.0, 1.0)
    assert override["label_mappings"] == {"default": [[1, 3]]} and override["val_at_start"] is True


def test_the_override_comes_after_evaluate_json_in_the_eval_stack(tmp_path):
    stack = [Path(p).name for p in _stage(tmp_path, network=REPO / "fixtures/micro_model/network.json").eval_stack]
    assert stack == ["train.json", "train_continual.json", "evaluate.json", "network.json", "auto_override.json",
                     "dfw_no_logging.json"]


def test_multi_gpu_adds_the_bundles_distributed_configs(tmp_path):
    staged = _stage(tmp_path, multi_gpu=True)
    assert "multi_gpu_train.json" in staged.train_stack[2] and "mgpu_evaluate.json" in staged.eval_stack[3]


def _save(path: Path, **tensors: torch.Tensor) -> Path:
    torch.save(tensors, path)
    return path


def test_a_resaved_identical_state_compares_as_identical(tmp_path):
    weights = {"a": torch.ones(3), "b": torch.arange(4.0)}
    first, second = _save(tmp_path / "1.pt", **weights), _save(tmp_path / "2.pt", **weights)
    result = compare_checkpoints(first, second)
    assert result["identical"] and result["n_changed"] == 0 and result["n_tensors"] == 2


def test_one_changed_tensor_is_counted_with_its_size(tmp_path):
    old = _save(tmp_path / "old.pt", a=torch.ones(3), b=torch.zeros(2))
    new = _save(tmp_path / "new.pt", a=torch.ones(3), b=torch.tensor([0.0, 0.5]))
    result = compare_checkpoints(new, old)
    assert not result["identical"] and result["n_changed"] == 1 and result["max_abs_diff"] == pytest.approx(0.5)


def test_the_comparison_sums_every_difference_and_says_whether_the_keys_match(tmp_path):
    old = _save(tmp_path / "old.pt", a=torch.zeros(3), b=torch.zeros(2))
    new = _save(tmp_path / "new.pt", a=torch.tensor([0.25, 0.0, -0.5]), b=torch.zeros(2), c=torch.ones(1))
    result = compare_checkpoints(new, old)
    assert result["total_abs_diff"] == pytest.approx(0.75) and result["max_abs_diff"] == pytest.approx(0.5)
    assert result["same_keys"] is False and compare_checkpoints(old, old)["same_keys"] is True


def test_a_model_wrapped_checkpoint_and_ddp_prefixes_compare_by_tensor(tmp_path):
    torch.save({"model": {"module.a": torch.ones(2)}}, tmp_path / "wrapped.pt")
    plain = _save(tmp_path / "plain.pt", a=torch.ones(2))
    assert compare_checkpoints(tmp_path / "wrapped.pt", plain)["identical"]


def test_formal_dice_is_read_from_metrics_csv(tmp_path):
    (tmp_path / "metrics.csv").write_text("val_mean_dice,0.6836\n")
    assert formal_dice(tmp_path) == 0.6836
    assert formal_dice(tmp_path / "missing") is None


def test_the_manifest_hashes_every_file_but_output_json(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.txt").write_text("x")
    (tmp_path / "output.json").write_text("{}")
    manifest = write_manifest(tmp_path, {})
    assert list(manifest["files"]) == ["sub/x.txt"]
    assert manifest["files"]["sub/x.txt"]["sha256"] == sha256_file(tmp_path / "sub" / "x.txt")


def test_a_missing_pretrained_checkpoint_is_refused(tmp_path):
    with pytest.raises(ArgumentError, match="does not exist"):
        resolve_weights(str(tmp_path / "nope.pt"), "--pretrained-ckpt", None, BUNDLE)


def test_the_fixture_card_model_is_used_and_hashed():
    model = REPO / "fixtures" / "micro_model" / "model.pt"
    resolved = resolve(Request(Path("out")), {"pretrained_ckpt": str(model), "model_name": "micro"}, "smoke")
    weights = resolve_weights(resolved["pretrained_ckpt"], resolved.source("pretrained_ckpt"), resolved["model_name"], BUNDLE)
    assert weights.source == "fixture.json" and weights.sha256 == sha256_file(model)


def test_the_schema_refuses_a_result_without_its_required_blocks():
    errors = schema_errors({"skill": "nv_segment_ct_finetune", "status": "passed"})
    assert any("'output' is a required property" in e for e in errors)


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


def test_a_change_in_one_of_several_tensors_is_found_and_measured(tmp_path):
    weights = {f"t{i}": torch.full((4,), float(i)) for i in range(5)}
    old = _save(tmp_path / "old.pt", **weights)
    new = _save(tmp_path / "new.pt", **(weights | {"t3": torch.full((4,), 9.0)}))
    result = compare_checkpoints(new, old)
    assert result["changed_examples"] == ["t3"] and result["n_equal"] == 4 and result["max_abs_diff"] == 6.0


def test_a_legacy_non_zip_checkpoint_is_compared_without_a_memory_map(tmp_path):
    torch.save({"a": torch.ones(2)}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    new = _save(tmp_path / "new.pt", a=torch.zeros(2))
    assert compare_checkpoints(new, tmp_path / "legacy.pt")["n_changed"] == 1


def test_dataset_inputs_reuse_digests_taken_earlier_in_the_run(tmp_path, monkeypatch):
    (tmp_path / "img.nii.gz").write_bytes(b"img")
    (tmp_path / "lab.nii.gz").write_bytes(b"lab")
    monkeypatch.setattr("nvseg_bench.evidence.collect.sha256_file", lambda path: pytest.fail(f"read {path} again"))
    known = {str(tmp_path / "img.nii.gz"): "a" * 64, str(tmp_path / "lab.nii.gz"): "b" * 64}
    found = dataset_inputs([{"image": "img.nii.gz", "label": "lab.nii.gz"}], tmp_path, known)
    assert found["files"]["img.nii.gz"] == {"sha256": "a" * 64, "bytes": 3}
