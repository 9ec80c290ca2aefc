"""What `nvseg-finetune history` and `compare` read, as the user named it: a store folder, a run folder (its
output.json), or a saved record file. Anything that is not one of those is refused as bad input (an
NvsegError, exit 2) that names the input and the fix; a store's damaged files become warning lines. Reads
only: nothing is ever written into or beside what it is given.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from nvseg_bench import PROG
from nvseg_bench.errors import NvsegError
from nvseg_bench.history.record import FORMAT, record_from_run_dir
from nvseg_bench.history.storage import FileStorage, HistoryWarning, store_dir

RUN_FIX = "Pass the --output-dir of a finished run (the folder with output.json) or a file from the history store."
SAVE_FIX = (f"Runs are saved by `python -m pytest --nvseg-autosave` (into ./.nvseg-history) or `{PROG} ... --save-to "
            f"STORE`; then `{PROG} history STORE` lists them.")


def store_path(location: str) -> Path:
    """A store location (a folder, or file:///abs/dir) as a folder; another URL scheme is refused."""
    try:
        return store_dir(location, Path.cwd())
    except ValueError as exc:
        raise NvsegError(f"the history store {location!r} cannot be used", [str(exc)]) from None


def existing_store(location: str) -> FileStorage:
    """A store to read from: a folder that exists (an empty one holds no runs yet)."""
    root = store_path(location)
    if root.is_dir():
        return FileStorage(root)
    what = "is a file, not a store folder" if root.exists() else "does not exist, so no run was saved there"
    raise NvsegError(f"the history store {location} {what}; nothing was listed.", [f"looked for the folder {root}"],
                     [SAVE_FIX])


def readable_records(storage: FileStorage) -> tuple[list[dict[str, Any]], list[str]]:
    """The store's records and one line per damaged file; a store whose every file is damaged is refused."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", HistoryWarning)
        records = storage.records()
    damaged = [str(w.message) for w in caught if issubclass(w.category, HistoryWarning)]
    if damaged and not records:
        raise NvsegError(f"no file in the history store {storage.root} is a saved-run record ({len(damaged)} damaged); "
                         "nothing was listed.", damaged[:5],
                         ["Point at the folder --nvseg-autosave or --save-to wrote, or remove the damaged files."])
    return records, damaged


def run_record(given: Path, role: str) -> dict[str, Any]:
    """RUN_A or RUN_B of a compare as a record: a run folder (or its output.json), or a saved record file."""
    where = given.parent if given.name == "output.json" and given.is_file() else given
    if where.is_dir():
        if not (where / "output.json").is_file():
            raise _not_a_run(given, role, f"the folder {where} has no output.json (a run that never started, or "
                                          "not a run folder)")
        try:
            record = record_from_run_dir(where)
        except (OSError, ValueError) as exc:
            raise _not_a_run(given, role, str(exc) if where.name in str(exc) else f"{where / 'output.json'}: {exc}") from None
    elif where.is_file():
        try:
            record = json.loads(where.read_text())
        except (OSError, ValueError) as exc:
            raise _not_a_run(given, role, f"{type(exc).__name__}: {exc}") from None
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise _not_a_run(given, role, f"the file is JSON but not a saved-run record (no \"format\": \"{FORMAT}\")")
    else:
        raise _not_a_run(given, role, f"{given} does not exist")
    if (record.get("figures") or {}).get("formal_finetuned_val_dice") is None:
        raise NvsegError(f"{role} {given} has no formal Dice of a finetuned checkpoint to compare (status "
                         f"{record.get('status')!r}); nothing was compared.", [f"headline: {record.get('headline')}"],
                         ["Compare runs that finished their formal evaluation (not --dry-run, --skip-formal-eval, "
                          "or a failed run)."])
    return record


def refuse_same_run(run_a: Path, run_b: Path, records: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """A run compared with itself (the same folder or file, or two copies of one saved record) says nothing.
    A record made from a run folder gets a new random id, so equal ids mean one saved run."""
    folders = [_folder_of(given).resolve() for given in (run_a, run_b)]
    if folders[0] == folders[1] or records[0].get("run_id") == records[1].get("run_id"):
        said = f"both name {folders[0]}" if folders[0] == folders[1] else f"both hold the saved run {records[0]['run_id']}"
        raise NvsegError(f"RUN_A {run_a} and RUN_B {run_b} are the same run; a comparison with itself says nothing.",
                         [said], [f"Compare two different runs, e.g. `{PROG} compare runs/before runs/after`."])


def _folder_of(given: Path) -> Path:
    return given.parent if given.name == "output.json" and given.is_file() else given


def _not_a_run(given: Path, role: str, why: str) -> NvsegError:
    return NvsegError(f"{role} {given} is not a run to compare; nothing was compared.", [why], [RUN_FIX])
