"""The verifier's own checkpoint comparison: bounded memory must not hide a change or a missing key."""
from __future__ import annotations

from pathlib import Path

import torch

from eval_engine.recompute import compare_state_files


def _save(path: Path, tensors: dict[str, torch.Tensor], **kwargs) -> Path:
    torch.save(tensors, path, **kwargs)
    return path


def test_the_verifier_finds_a_change_among_tensors_mapped_in_several_runs(tmp_path, monkeypatch):
    monkeypatch.setattr("eval_engine.recompute.MAPPED_BYTES", 32)
    weights = {f"t{i}": torch.full((4,), float(i)) for i in range(6)}
    old = _save(tmp_path / "old.pt", weights)
    new = _save(tmp_path / "new.pt", weights | {"t5": torch.zeros(4)})
    found = compare_state_files(new, old)
    assert found["changed"] == ["t5"] and found["n_tensors"] == 6 and not found["identical"]


def test_the_verifier_calls_a_missing_key_not_identical(tmp_path):
    old = _save(tmp_path / "old.pt", {"a": torch.ones(2), "b": torch.ones(2)})
    new = _save(tmp_path / "new.pt", {"a": torch.ones(2)})
    found = compare_state_files(new, old)
    assert found["n_changed"] == 0 and not found["same_keys"] and not found["identical"]


def test_the_verifier_reads_a_legacy_checkpoint_and_a_ddp_wrapped_one_alike(tmp_path):
    legacy = _save(tmp_path / "legacy.pt", {"a": torch.ones(2)}, _use_new_zipfile_serialization=False)
    wrapped = _save(tmp_path / "wrapped.pt", {"state_dict": {"module.a": torch.ones(2)}})
    assert compare_state_files(wrapped, legacy)["identical"]
