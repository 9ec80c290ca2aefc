"""Files the store writes and reads: atomic writes (a reader sees the whole file or the old one, never
part of it) with the mode an ordinary file gets, a full disk as the user's error, and sha256 digests
read in blocks. Every file people share (output.json, manifest.json, cv.json, sweep.json, history
records, predictions.json) is written here, so the rule lives in one place. A campaign's member runs share
files through `link_file` (a hard link, else a copy), so no member's folder points into another's."""
from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from nvseg_bench.errors import DiskFullError

FULL = (errno.ENOSPC, errno.EDQUOT)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# a mkstemp file is 0600; a shared file gets what open() would give it (0644 under the usual umask 022)
SHARED_MODE = 0o666 & ~_umask()


def is_disk_full(exc: OSError) -> bool:
    return exc.errno in FULL


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file beside it and one rename; mode as open() would give.

    A full disk (or quota) is DiskFullError naming the folder (exit 3); the old file, if any, stays whole."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.chmod(tmp, SHARED_MODE)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if is_disk_full(exc):
            raise DiskFullError.writing(path) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def link_file(src: str | Path, dst: str | Path) -> None:
    """A hard link where the file system allows (no extra disk), a copy elsewhere."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def link_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, copy_function=link_file, dirs_exist_ok=True)
