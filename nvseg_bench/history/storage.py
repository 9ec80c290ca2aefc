"""The history store: a folder of saved-run records, one JSON file per run.

A file is written through a temporary file and one rename, under a name no other process can pick
(time, run name, random suffix), so concurrent sessions and xdist workers never overwrite or half-
write one another's files. A file that does not read as a record is skipped with a warning that
names it; the others still count.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from nvseg_bench.store.files import write_atomic
from nvseg_bench.history.record import FORMAT

DEFAULT_DIR = ".nvseg-history"
GOOD_VERDICTS = ("PASS", "passed")  # a harness verdict, or a CLI run's status: what `last` may compare with


class HistoryWarning(UserWarning):
    """A store file that could not be read was skipped."""


class UnknownRun(LookupError):
    """No saved run has the id asked for."""


def store_dir(location: str, base: Path) -> Path:
    """DIR (relative to base) or file:///abs/dir -> the store folder; another URL scheme is a ValueError."""
    if "://" in location:
        url = urlparse(location)
        if url.scheme != "file":
            raise ValueError(f"{location!r}: only file:// stores are supported, e.g. file:///srv/nvseg-history or a "
                             "plain folder")
        return Path(unquote(url.netloc + url.path)).expanduser().resolve()
    return (base / Path(location).expanduser()).resolve()


@dataclass(frozen=True)
class FileStorage:
    root: Path

    def save(self, record: dict[str, Any]) -> Path:
        """Write one record as ROOT/<run id>.json; returns the path."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{record['run_id']}.json"
        write_atomic(path, json.dumps(record, indent=2, sort_keys=True) + "\n")
        return path

    def records(self) -> list[dict[str, Any]]:
        """Every readable record, oldest first; a damaged file is skipped with a HistoryWarning naming it."""
        found = []
        for path in sorted(self.root.glob("*.json")) if self.root.is_dir() else []:
            try:
                record = json.loads(path.read_text())
                if not isinstance(record, dict) or record.get("format") != FORMAT or "run_id" not in record:
                    raise ValueError(f"not a {FORMAT} record")
            except (OSError, ValueError) as exc:
                warnings.warn(HistoryWarning(f"skipped the damaged history file {path}: {exc}"), stacklevel=2)
                continue
            found.append(record)
        return sorted(found, key=lambda r: (r.get("time") or 0, r["run_id"]))

    def baseline(self, name: str, which: str = "last") -> dict[str, Any] | None:
        """The saved run to compare a `name` run with: `last` (the newest of that name that passed, None if none) or
        a run id. A failed run (a regression among them) is never `last`, so it cannot become the next baseline.

        A run id that no file has raises UnknownRun; one of another name is returned as it is (the caller says so).
        """
        records = self.records()
        if which == "last":
            same = [r for r in records if r.get("name") == name and r.get("verdict") in GOOD_VERDICTS]
            return same[-1] if same else None
        chosen = [r for r in records if r["run_id"] == which or r["run_id"].startswith(which)]
        if len(chosen) != 1:
            known = ", ".join(r["run_id"] for r in records[-5:]) or "none"
            raise UnknownRun(f"{'no' if not chosen else 'more than one'} saved run matches {which!r} in {self.root} "
                             f"(the newest: {known})")
        return chosen[0]
