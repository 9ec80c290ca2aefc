"""Evidence collected from a run's files: checkpoint comparison, formal Dice reading, the manifest and
the dataset's input digests."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nvseg_bench.evidence.collect import dataset_inputs, formal_dice, write_manifest
from nvseg_bench.model.checkpoints import compare_checkpoints
from nvseg_bench.model.weights import sha256_file


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
