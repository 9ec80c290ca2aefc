"""store/root.py: where the cache root lives, and which places it refuses or falls back from."""
from __future__ import annotations

from pathlib import Path

import pytest

from nvseg_bench.errors import ArgumentError
from nvseg_bench.store import root


def test_the_default_root_follows_xdg_cache_home_else_home():
    assert root.default_root({"XDG_CACHE_HOME": "/x/cache", "HOME": "/h"}) == Path("/x/cache/nvseg-bench/preprocess")
    assert root.default_root({"HOME": "/h"}) == Path("/h/.cache/nvseg-bench/preprocess")


def test_a_cache_dir_inside_the_dataset_is_refused(tmp_path):
    with pytest.raises(ArgumentError, match="lies inside the dataset dir"):
        root.choose_root(tmp_path / "data" / "cache", False, {"dataset dir": tmp_path / "data"})


def test_an_unwritable_cache_dir_falls_back_to_no_cache_with_a_reason(tmp_path):
    (tmp_path / "a_file").write_text("")
    found, note = root.choose_root(tmp_path / "a_file" / "cache", False, {})
    assert found is None and "cannot be written" in note
