"""store/digests.py: a file's sha256 remembered under its (path, size, mtime), taken again when it changes."""
from __future__ import annotations

import pytest

from nvseg_bench.store import digests


def test_digests_are_remembered_by_path_size_and_mtime(tmp_path, monkeypatch):
    data = tmp_path / "case.nii.gz"
    data.write_bytes(b"voxels")
    memo = tmp_path / "digests.json"
    first = digests.file_digests([data], memo)
    monkeypatch.setattr(digests, "sha256_file", lambda path: pytest.fail("re-read a file whose stamp is unchanged"))
    assert digests.file_digests([data], memo) == first


def test_an_edited_file_gets_a_new_digest(tmp_path):
    data, memo = tmp_path / "case.nii.gz", tmp_path / "digests.json"
    data.write_bytes(b"voxels")
    first = digests.file_digests([data], memo)[str(data)]
    data.write_bytes(b"other voxels")
    assert digests.file_digests([data], memo)[str(data)] != first
