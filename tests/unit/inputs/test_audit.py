"""The audit reads each dataset file once, and a case already audited not at all.

Its sha256 comes from the bytes it decodes (the manifest, the preprocessing cache and a later run
reuse it); with a memo dir, a case whose files are known by (path, size, mtime) is recalled."""
from __future__ import annotations

import gzip
import json
import subprocess
import sys
import zlib
from pathlib import Path

import nibabel
import numpy as np
import pytest

from nvseg_bench.inputs import audit
from nvseg_bench.inputs.audit import audit_dataset
from nvseg_bench.errors import DataContractError
from nvseg_bench.store.digests import known_digests, remember_digests
from nvseg_bench.store.files import sha256_file

from ...helpers import FIXTURE, REPO


def _case(root: Path, name: str, value: int = 1, image_class=nibabel.Nifti1Image) -> dict:
    image = np.full((10, 10, 6), -1000, np.int16)
    image[4:7, 4:7, 2:4] = 40
    label = np.zeros(image.shape, np.uint8)
    label[4:7, 4:7, 2:4] = value
    for folder, array in (("imagesTr", image), ("labelsTr", label)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        nibabel.save(image_class(array, np.diag([0.8, 0.8, 2.5, 1.0])), str(root / folder / f"{name}.nii.gz"))
    return {"image": f"imagesTr/{name}.nii.gz", "label": f"labelsTr/{name}.nii.gz", "fold": 0}


def _files(root: Path, entries: list[dict]) -> list[Path]:
    return [root / e[k] for e in entries for k in ("image", "label")]


def test_the_audit_hashes_the_bytes_it_decodes_and_opens_no_file_twice(tmp_path, monkeypatch):
    entries = [_case(tmp_path, f"c{i}") for i in range(3)]
    opened: list[str] = []
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: opened.append(str(self)) or real(self))
    monkeypatch.setattr(nibabel, "load", lambda *a, **k: pytest.fail("the audit opened a file a second time"))
    digests: dict[str, str] = {}
    findings = audit_dataset(entries, tmp_path, [1], digests=digests, workers=1)
    files = _files(tmp_path, entries)
    assert sorted(opened) == sorted(map(str, files)) and findings["files_read"] == 6
    assert digests == {str(p): sha256_file(p) for p in files}


def test_a_case_known_by_its_digests_is_recalled_without_a_read(tmp_path, monkeypatch):
    entries = [_case(tmp_path, f"c{i}") for i in range(3)]
    memo_dir, memo = tmp_path / "cache" / "audit", tmp_path / "cache" / "digests.json"
    first_digests: dict[str, str] = {}
    first = audit_dataset(entries, tmp_path, [1], digests=first_digests, memo_dir=memo_dir)
    remember_digests(first_digests, memo)
    monkeypatch.setattr(audit, "load_hashed", lambda path: pytest.fail(f"re-read {path}"))
    known = known_digests(_files(tmp_path, entries), memo)
    second = audit_dataset(entries, tmp_path, [1], digests=known, memo_dir=memo_dir)
    assert second["samples"] == first["samples"] and second["summary"] == first["summary"]
    assert (second["files_read"], second["memo_hits"]) == (0, 3)


def test_an_edited_file_or_other_mapped_values_are_audited_again(tmp_path):
    entries = [_case(tmp_path, "c0")]
    memo_dir, memo = tmp_path / "cache" / "audit", tmp_path / "cache" / "digests.json"
    digests: dict[str, str] = {}
    audit_dataset(entries, tmp_path, [1], digests=digests, memo_dir=memo_dir)
    remember_digests(digests, memo)
    other_values = audit_dataset(entries, tmp_path, [1, 2], digests=known_digests(_files(tmp_path, entries), memo),
                                 memo_dir=memo_dir)
    assert other_values["memo_hits"] == 0
    _case(tmp_path, "c0", value=2)  # rewritten: new size or mtime, so no remembered digest
    again = audit_dataset(entries, tmp_path, [1, 2], digests=known_digests(_files(tmp_path, entries), memo),
                          memo_dir=memo_dir)
    assert again["memo_hits"] == 0 and again["samples"][0]["label_values"] == [0, 2]


def test_a_damaged_memo_entry_is_audited_again_not_trusted(tmp_path):
    entries = [_case(tmp_path, "c0")]
    memo_dir, digests = tmp_path / "audit", {}
    first = audit_dataset(entries, tmp_path, [1], digests=digests, memo_dir=memo_dir)
    for row in memo_dir.glob("*.json"):
        row.write_text("{ not json")
    again = audit_dataset(entries, tmp_path, [1], digests=dict(digests), memo_dir=memo_dir)
    assert again["memo_hits"] == 0 and again["samples"] == first["samples"]


def test_a_nifti2_file_is_read_like_a_nifti1_file(tmp_path):
    one = audit_dataset([_case(tmp_path / "a", "c0")], tmp_path / "a", [1])["samples"][0]
    two = audit_dataset([_case(tmp_path / "b", "c0", image_class=nibabel.Nifti2Image)], tmp_path / "b", [1])["samples"][0]
    assert one == two


def test_a_second_dry_run_reads_no_dataset_file_and_the_manifest_has_the_same_digests(tmp_path):
    def dry(out: str) -> dict:
        cmd = [sys.executable, "-m", "nvseg_bench", str(FIXTURE), "--smoke", "--dry-run", "--output-dir",
               str(tmp_path / out), "--preprocess-cache", str(tmp_path / "cache")]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads((tmp_path / out / "output.json").read_text())

    first, second = dry("one"), dry("two")
    n = first["input"]["dataset_audit"]["n_pairs"]
    assert first["input"]["dataset_audit"]["files_read"] == 2 * n
    assert (second["input"]["dataset_audit"]["files_read"], second["input"]["dataset_audit"]["memo_hits"]) == (0, n)
    assert second["input"]["dataset_audit"]["samples"] == first["input"]["dataset_audit"]["samples"]
    manifests = [json.loads((tmp_path / out / "manifest.json").read_text())["inputs"]["dataset"]["files"]
                 for out in ("one", "two")]
    assert manifests[0] == manifests[1]
    assert all(v["sha256"] == sha256_file(FIXTURE / k) for k, v in manifests[0].items())


@pytest.mark.parametrize("inflater", ["isal", "zlib"])  # zlib: a platform without the isal wheel
def test_inflating_takes_several_gzip_members_and_reports_a_damaged_file_as_unreadable(tmp_path, monkeypatch,
                                                                                       inflater):
    if inflater == "zlib":
        monkeypatch.setattr(audit, "_FAST_ZLIB", zlib)
    assert audit.gunzip(gzip.compress(b"abc" * 1000) + gzip.compress(b"xyz")) == b"abc" * 1000 + b"xyz"
    entry = _case(tmp_path, "case_a")
    image = tmp_path / entry["image"]
    whole = image.read_bytes()
    for damaged in (whole[:40] + bytes(b ^ 0xFF for b in whole[40:60]) + whole[60:], whole[:-12]):  # flipped, cut
        image.write_bytes(damaged)
        with pytest.raises(DataContractError, match=str(image)):
            audit_dataset([entry], tmp_path, [1])
    image.write_bytes(whole)
    assert audit_dataset([entry], tmp_path, [1])["samples"][0]["label_values"] == [0, 1]


def test_label_counts_over_chunks_equal_one_count_of_the_whole_volume(tmp_path):
    labels = np.random.default_rng(0).integers(0, 7, size=(3 * audit.COUNT_CHUNK + 5,), dtype=np.uint8)
    expected = {int(v): int(n) for v, n in zip(*np.unique(labels, return_counts=True))}
    assert audit._label_counts(labels, tmp_path / "l.nii.gz") == expected
