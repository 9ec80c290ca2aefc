"""Shared files: written whole with the mode an ordinary file gets, and a full disk is the user's exit 3."""
from __future__ import annotations

import errno
import io
import json
import os

import pytest

from nvseg_bench.cli import main
from nvseg_bench.errors import EXIT_PHASE_FAILED, DiskFullError
from nvseg_bench.store import files

from ...helpers import FIXTURE


def _mode(path) -> int:
    return path.stat().st_mode & 0o777


def _usual_mode() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def test_an_atomic_write_gets_the_mode_open_would_give_not_mkstemps_0600(tmp_path):
    files.write_atomic(tmp_path / "output.json", "{}\n")
    assert _mode(tmp_path / "output.json") == _usual_mode() != 0o600


class _FullDisk(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def _fill_disk_for(monkeypatch, name: str) -> None:
    """os.fdopen in files.py hands out a file whose write fails as on a full disk, for temp files of `name`."""
    real = os.fdopen

    def fdopen(handle, *args, **kwargs):
        target = os.readlink(f"/proc/self/fd/{handle}")
        return _FullDisk() if os.path.basename(target).startswith(f".{name}.") else real(handle, *args, **kwargs)

    monkeypatch.setattr(files.os, "fdopen", fdopen)


def test_a_full_disk_while_writing_is_exit_3_naming_the_folder_and_the_old_file_stays_whole(tmp_path, monkeypatch):
    target = tmp_path / "cv.json"
    files.write_atomic(target, '{"old": true}\n')
    _fill_disk_for(monkeypatch, "cv.json")
    with pytest.raises(DiskFullError) as caught:
        files.write_atomic(target, '{"new": true}\n')
    assert caught.value.exit_code == EXIT_PHASE_FAILED == 3 and f"the disk holding {tmp_path} is full" in str(caught.value)
    assert target.read_text() == '{"old": true}\n' and [p.name for p in tmp_path.iterdir()] == ["cv.json"]


def test_a_run_whose_disk_fills_while_writing_the_manifest_says_failed_in_output_json_and_exits_3(tmp_path, capsys,
                                                                                                   monkeypatch):
    out = tmp_path / "run"
    _fill_disk_for(monkeypatch, "manifest.json")
    assert main([str(FIXTURE), "--smoke", "--dry-run", "--output-dir", str(out)]) == 3
    err = capsys.readouterr().err
    assert f"the disk holding {out} is full: manifest.json could not be written" in err and "Traceback" not in err
    doc = json.loads((out / "output.json").read_text())
    assert doc["status"] == "failed" and "is full" in doc["headline"] and not (out / "manifest.json").exists()


def test_a_dry_runs_output_json_and_manifest_are_readable_by_others(tmp_path):
    out = tmp_path / "run"
    assert main([str(FIXTURE), "--smoke", "--dry-run", "--output-dir", str(out)]) == 0
    assert _mode(out / "output.json") == _mode(out / "manifest.json") == _usual_mode()
