"""The preprocessing cache's own rules: where it lives, what keys it, what it throws away."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nvseg_bench.stage import preprocess_cache as pc


def test_the_key_follows_preprocessing_values_but_not_run_only_ones(tmp_path):
    config = tmp_path / "train.json"
    config.write_text("{}")
    base = {"resample_to_spacing": [1.5] * 3, "learning_rate": 1e-4, "seed": 0, "ckpt_dir": "/a"}
    key = pc.chain_key([config], base)
    assert pc.chain_key([config], base | {"learning_rate": 5e-5, "seed": 3, "ckpt_dir": "/b"}) == key
    assert pc.chain_key([config], base | {"resample_to_spacing": [1.0] * 3}) != key


def test_an_edited_bundle_config_changes_the_key(tmp_path):
    config = tmp_path / "train.json"
    config.write_text("{}")
    key = pc.chain_key([config], {})
    config.write_text('{"hu_window": [-1000, 1000]}')
    assert pc.chain_key([config], {}) != key


def test_the_scrub_removes_damaged_and_foreign_entries_and_keeps_good_ones(tmp_path):
    torch.save({"image": torch.zeros(2)}, tmp_path / "good.pt")
    torch.save({"image": torch.zeros(2)}, tmp_path / "cut.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "cut.pt").read_bytes()[:100])
    (tmp_path / "garbage.pt").write_bytes(b"not a torch file")
    torch.save({"what": Path("/etc/passwd")}, tmp_path / "foreign.pt")  # a pickled class nobody allowed
    assert pc.scrub([tmp_path]) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.pt"]


def test_the_scrub_keeps_an_entry_numpy_2_pickled_under_its_new_module_names(tmp_path):
    import zipfile

    torch.save({"image": torch.zeros(2), "affine": np.eye(2)}, tmp_path / "np1.pt")
    with zipfile.ZipFile(tmp_path / "np1.pt") as old, zipfile.ZipFile(tmp_path / "np2.pt", "w") as new:
        for info in old.infolist():
            data = old.read(info)
            if info.filename.endswith("data.pkl"):
                assert b"numpy.core.multiarray" in data
                data = data.replace(b"numpy.core.multiarray", b"numpy._core.multiarray")  # numpy 2's spelling
            new.writestr(info, data)
    (tmp_path / "np1.pt").unlink()
    assert pc.scrub([tmp_path]) == 0 and (tmp_path / "np2.pt").is_file()
