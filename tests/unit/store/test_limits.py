"""The preprocessing cache's cap: least recently used keys go first, a key a run holds never goes, and
`nvseg-finetune cache` shows and prunes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nvseg_bench.store import limits as cache_store
from nvseg_bench.cli import main

from ...helpers import FIXTURE

MIB = 2**20


def fake_key(root: Path, name: str, mib: int, days_ago: float, kind: str = "preprocess") -> Path:
    """A key folder holding `mib` MiB, last used `days_ago` days ago."""
    folder = root / name if kind == "preprocess" else root / cache_store.EVALUATIONS / name
    (folder / "train").mkdir(parents=True)
    with (folder / "train" / "entry.pt").open("wb") as handle:
        handle.truncate(mib * MIB)  # sparse: the size counts, the disk is spared
    when = time.time() - days_ago * 86400
    (folder / cache_store.USED).touch()
    os.utime(folder / cache_store.USED, (when, when))
    return folder


@pytest.fixture
def root(tmp_path) -> Path:
    root = tmp_path / "cache"
    fake_key(root, "a" * 20, 3, days_ago=1)
    fake_key(root, "b" * 20, 2, days_ago=9)
    fake_key(root, "c" * 24, 1, days_ago=5, kind="evaluation")
    (root / "audit").mkdir()
    (root / "digests.json").write_text("{}")
    return root


def test_keys_are_listed_least_recently_used_first_with_their_size(root):
    found = cache_store.keys(root)
    assert [i.name for i in found] == ["b" * 20, f"evaluations/{'c' * 24}", "a" * 20]
    assert [i.bytes // MIB for i in found] == [2, 1, 3] and all(i.files == 1 for i in found)


def test_making_room_removes_the_least_recently_used_until_it_fits(root):
    removed = cache_store.make_room(root, cap=5 * MIB + 1024, incoming=1 * MIB)
    assert [i.name for i in removed] == ["b" * 20]  # 6 MiB held + 1 incoming: removing 2 MiB fits under 5
    assert not (root / ("b" * 20)).exists() and (root / ("a" * 20)).is_dir()
    assert not list((root / "tmp").iterdir())  # renamed away, then deleted


def test_a_kept_key_is_passed_over(root):
    removed = cache_store.make_room(root, cap=4 * MIB, incoming=0, keep=frozenset({root / ("b" * 20)}))
    assert [i.name for i in removed] == [f"evaluations/{'c' * 24}", "a" * 20]


def test_a_dry_run_names_what_it_would_remove_and_removes_nothing(root):
    removed = cache_store.make_room(root, cap=1 * MIB, incoming=0, dry_run=True)
    assert len(removed) == 3 and len(cache_store.keys(root)) == 3


def test_a_key_another_process_holds_is_never_removed(root):
    held = root / ("b" * 20)
    code = ("import sys, time; from pathlib import Path; from nvseg_bench.store.limits import Hold\n"
            f"h = Hold(Path({str(held)!r})); print('held', flush=True); sys.stdin.readline()")
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        removed = cache_store.make_room(root, cap=0, incoming=0)
        assert held.is_dir() and "b" * 20 not in [i.name for i in removed] and len(removed) == 2
    finally:
        holder.communicate("\n", timeout=30)
    assert [i.name for i in cache_store.make_room(root, cap=0, incoming=0)] == ["b" * 20]


def test_the_estimate_counts_every_chain_a_run_writes():
    row = {"shape": [100, 100, 30], "spacing": [1.5, 1.5, 3.0], "fold": 0}  # 100 x 100 x 60 at 1.5 mm
    resampled = 100 * 100 * 60
    assert cache_store.estimate_bytes([row], formal_eval=False) == resampled * 5
    assert cache_store.estimate_bytes([row], formal_eval=True) == resampled * 5 + resampled * 4 + 100 * 100 * 30
    assert cache_store.estimate_bytes([dict(row, fold=1)], formal_eval=True) == resampled * 5


def test_cache_info_lists_every_key(root, capsys):
    assert main(["cache", "--preprocess-cache", str(root), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["bytes"] == 6 * MIB + 2 and [k["key"] for k in info["keys"]][0] == "b" * 20


@pytest.mark.parametrize("args, left", [
    (["--older-than", "7d"], {"a" * 20, f"evaluations/{'c' * 24}"}),
    (["--older-than", "2"], {"a" * 20}),
    (["--max-gb", str(4 / 1024)], {"a" * 20}),
    (["--all"], set()),
])
def test_cache_prune(root, args, left, capsys):
    assert main(["cache", "prune", "--preprocess-cache", str(root), *args]) == 0
    assert {i.name for i in cache_store.keys(root)} == left
    assert "removed" in capsys.readouterr().out
    assert (root / "digests.json").is_file() and (root / "audit").is_dir()  # not keys: never pruned


def test_prune_without_a_choice_is_a_usage_error(root, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["cache", "prune", "--preprocess-cache", str(root)])
    assert stopped.value.code == 2 and "--older-than AGE, --max-gb GB or --all" in capsys.readouterr().err


def plan_with_cache(root: Path, out: Path, *extra: str) -> dict:
    assert main([str(FIXTURE), "--smoke", "--dry-run", "--preprocess-cache", str(root), "--output-dir", str(out),
                 *extra]) == 0
    return json.loads((out / "output.json").read_text())


def test_a_cap_that_cannot_hold_the_run_means_no_cache_and_the_plan_says_so(tmp_path):
    doc = plan_with_cache(tmp_path / "cache", tmp_path / "out", "--preprocess-cache-max-gb", "0.001")
    block = doc["runtime"]["preprocess_cache"]
    assert block["enabled"] is False and "cannot hold this run's entries" in block["note"]
    assert any(line.startswith("preprocess_cache: off, the preprocess cache's cap 0.00 GiB")
               for line in doc["plan"]["rationale"])
    assert "configs/preprocess_cache_train.json" not in doc["invocation"]["config_stack"]


def test_a_dry_run_names_the_keys_a_run_would_remove_and_keeps_them(tmp_path):
    root = tmp_path / "cache"
    fake_key(root, "d" * 20, 60, days_ago=3)
    fake_key(root, "e" * 20, 60, days_ago=2)
    doc = plan_with_cache(root, tmp_path / "out", "--preprocess-cache-max-gb", str(100 / 1024))
    block = doc["runtime"]["preprocess_cache"]
    assert block["removed_keys"] == ["d" * 20] and block["cap_bytes"] == 100 * MIB
    assert any("would remove 1 least recently used keys" in line for line in doc["plan"]["rationale"])
    assert (root / ("d" * 20)).is_dir()
