"""The subcommands beside a run: `fetch-weights` and `fetch-bundle` (bring NVIDIA's weights or whole pinned
bundle into the Hugging Face cache ahead of time), `cache` (show and prune the preprocessing cache) and
`predict` (segment new scans with a run's checkpoint: predict.py), `history` and `compare` (saved runs and
two runs side by side: history/), and `save_to` (a run's record into a history store, for --save-to).
Thin entry points over model/, store/ and predict.py; each parses its own arguments and returns an exit code
(cli.main reports a NvsegError they raise, exit 2, as it does for a run).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from nvseg_bench import PROG
from nvseg_bench.errors import NvsegError
from nvseg_bench.inputs.request import positive_float


def fetch_weights(argv: Sequence[str]) -> int:
    """`nvseg-finetune fetch-weights [--model ct|ctmr]`: put the model's checkpoint into the local hub cache."""
    from nvseg_bench.inputs.family import CT, MODELS
    from nvseg_bench.model.weights import HUB_FILE, HUB_REPO, HUB_REVISION, from_hub
    from nvseg_bench.store.files import sha256_file

    parser = argparse.ArgumentParser(prog=f"{PROG} fetch-weights",
                                     description=f"Download {HUB_REPO}@{HUB_REVISION[:12]} {HUB_FILE} (or with --model "
                                                 "ctmr nvidia/NV-Segment-CTMR's, unpinned) into the Hugging Face cache "
                                                 "(HF_HOME), so later runs need no network.")
    parser.add_argument("--model", choices=sorted(MODELS), default=CT, help="which model's weights (default ct)")
    path = from_hub(MODELS[parser.parse_args(argv).model])
    print(f"{PROG}: {path} ({path.stat().st_size / 2**20:.1f} MiB, sha256 {sha256_file(path)})")
    return 0


def fetch_bundle(argv: Sequence[str]) -> int:
    """`nvseg-finetune fetch-bundle [--model ct|ctmr]`: NVIDIA's bundle (configs, scripts, weights) into the hub cache."""
    from nvseg_bench.inputs.family import CT, MODELS
    from nvseg_bench.model import bundle_source, hub_files
    from nvseg_bench.model.weights import HUB_FILE, HUB_REPO, HUB_REVISION

    parser = argparse.ArgumentParser(prog=f"{PROG} fetch-bundle",
                                     description=f"Download {HUB_REPO}@{HUB_REVISION[:12]} (or with --model ctmr "
                                                 "nvidia/NV-Segment-CTMR, unpinned) (configs, scripts and "
                                                 f"{HUB_FILE}) into the Hugging Face cache (HF_HOME), so runs without "
                                                 "--bundle-dir need no network. With HF_HUB_OFFLINE=1 it only "
                                                 "checks the cache. It also keeps the hub's list of the revision's files (path, blob id, size, LFS sha256) "
                                                 "beside the cache, which every run checks the snapshot against.")
    parser.add_argument("--model", choices=sorted(MODELS), default=CT, help="which bundle of the family (default ct)")
    spec = MODELS[parser.parse_args(argv).model]
    snapshot = bundle_source.hub_snapshot(download=True, patterns=bundle_source.fetch_patterns(), spec=spec)
    listed = _keep_file_list(snapshot, spec.hub_repo)
    used = bundle_source.from_hub(download=False, spec=spec)
    check, weights = used.check, snapshot / HUB_FILE
    print(f"{PROG}: {spec.hub_repo}@{snapshot.name[:12]} in {snapshot}\n"
          f"  recipe: {len(used.configs_sha256)} config and script files; upstream check: {check.state}"
          + (f" against {check.file_list}" if check.file_list else ""))
    if listed:
        print(f"  {listed}")
    if check.warning():
        print(f"{PROG}: warning: {check.warning()}")
    if weights.is_file():
        print(f"  weights: {weights} ({weights.stat().st_size / 2**20:.1f} MiB, sha256 {check.weights_sha256})")
    else:
        print(f"  weights: {HUB_FILE} is not in the cache; runs will fetch it, or pass --pretrained-ckpt")
    return 2 if check.state == hub_files.DIFFERS else 0


def _keep_file_list(snapshot: Path, repo: str) -> str | None:
    """Ask the hub for the revision's file list and keep it beside the cache; a line saying why not, when not."""
    from nvseg_bench.model import bundle_source, hub_files

    if bundle_source.offline():
        return "file list: not asked for (HF_HUB_OFFLINE is set); the cache is checked against its own blob names"
    try:
        hub_files.fetch_list(snapshot.parents[1], repo=repo, revision=snapshot.name)
    except Exception as exc:  # the hub raises many types; all mean "no list now"
        return f"file list: the hub did not give it ({type(exc).__name__}); the cache is checked against its own " \
               "blob names"
    return None


def _age(text: str) -> float:
    """'7d', '12h', '30m' or a number of days -> seconds."""
    units = {"d": 86400.0, "h": 3600.0, "m": 60.0}
    try:
        return float(text[:-1]) * units[text[-1]] if text[-1:] in units else float(text) * units["d"]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an age; use e.g. 7d, 12h or 30m") from None


def cache_command(argv: Sequence[str]) -> int:
    """`nvseg-finetune cache [prune ...]`: what the preprocessing cache holds, and removing it, key by key."""
    from nvseg_bench.store import limits as cache_store
    from nvseg_bench.store.root import root_path

    parser = argparse.ArgumentParser(prog=f"{PROG} cache",
                                     description="Show the preprocessing cache (size and entries per key, least "
                                                 "recently used first), or prune it. A key a running phase holds is "
                                                 "never removed.")
    parser.add_argument("action", nargs="?", choices=["info", "prune"], default="info")
    parser.add_argument("--preprocess-cache", type=Path, metavar="DIR", help="the cache root (default as for runs)")
    parser.add_argument("--json", action="store_true", help="info as JSON")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--older-than", type=_age, metavar="AGE", help="prune keys unused for AGE (7d, 12h, 30m)")
    which.add_argument("--all", action="store_true", help="prune every key")
    which.add_argument("--max-gb", type=positive_float, metavar="GB", help="prune least recently used keys down to GB")
    args = parser.parse_args(argv)
    root = root_path(args.preprocess_cache)
    if args.action == "prune":
        if not (args.older_than or args.all or args.max_gb):
            parser.error("prune needs --older-than AGE, --max-gb GB or --all")
        if args.max_gb:
            gone = cache_store.make_room(root, int(args.max_gb * 2**30), 0)
        else:
            chosen = cache_store.keys(root) if args.all else list(cache_store.older_than(root, args.older_than))
            gone = [info for info in chosen if cache_store.remove(info, root)]
        print(f"{PROG}: removed {len(gone)} keys ({cache_store.gib(sum(i.bytes for i in gone))}) from {root}; "
              f"{cache_store.gib(cache_store.total_bytes(root))} left")
        return 0
    found = cache_store.keys(root)
    total, cap = cache_store.total_bytes(root), cache_store.default_cap(root)
    if args.json:
        print(json.dumps({"root": str(root), "bytes": total, "default_cap_bytes": cap,
                          "keys": [{"key": i.name, "kind": i.kind, "bytes": i.bytes, "files": i.files,
                                    "last_used": i.last_used} for i in found]}, indent=2))
        return 0
    print(f"{PROG}: preprocessing cache {root}: {cache_store.gib(total)} in {len(found)} keys "
          f"(default cap {cache_store.gib(cap)})")
    now = time.time()
    for info in found:
        print(f"  {info.name:<40} {info.kind:<10} {info.files:>6} files {info.bytes / 2**20:>10.1f} MiB  "
              f"used {(now - info.last_used) / 86400:.1f} days ago")
    return 0


def presets_command(argv: Sequence[str]) -> int:
    """`nvseg-finetune presets [--model ct|ctmr] [--bundle-dir DIR]`: the dataset mappings --mapping-preset takes."""
    from nvseg_bench.inputs import family, mapping_presets
    from nvseg_bench.model import bundle_source

    parser = argparse.ArgumentParser(prog=f"{PROG} presets",
                                     description="List the dataset presets of a bundle's configs/label_mappings.json "
                                                 "(NV-Segment-CTMR ships them; NV-Segment-CT ships none).")
    parser.add_argument("--model", choices=sorted(family.MODELS), default=None, help="which bundle (default ct)")
    parser.add_argument("--bundle-dir", type=Path, default=None, help="a bundle folder (wins over --model)")
    args = parser.parse_args(argv)
    if args.bundle_dir is not None:
        bundle = bundle_source.bundle_dir(args.bundle_dir)
    elif (args.model or family.CT) == family.CT:
        bundle = bundle_source.BUILTIN  # NV-Segment-CT's recipe: no presets, as the message then says
    else:
        bundle = bundle_source.hub_snapshot(download=False, spec=family.MODELS[args.model])
    lines = mapping_presets.listing(bundle)
    print(f"{PROG}: {len(lines)} presets in {mapping_presets.presets_file(bundle)} (pass one as --mapping-preset NAME)")
    for line in lines:
        print(f"  {line}")
    return 0


def predict(argv: Sequence[str]) -> int:
    """`nvseg-finetune predict RUN_DIR IMAGE_OR_DIR... --output-dir OUT` (predict.py)."""
    from nvseg_bench import predict as predicting

    return predicting.main(argv)


def history_store(location: str) -> Path:
    """--save-to STORE as a folder (made when the record is saved); a file there is refused before the run."""
    from nvseg_bench.history.load import store_path

    root = store_path(location)
    if root.exists() and not root.is_dir():
        raise NvsegError(f"--save-to {location} is a file, not a history store folder; nothing was run.",
                         [f"{root} is a file"], ["Pass a folder (it is created when missing) or file:///abs/dir."])
    return root


def history_command(argv: Sequence[str]) -> int:
    """`nvseg-finetune history [STORE]`: the saved runs, oldest first (a table, or --json)."""
    from nvseg_bench.history.load import existing_store, readable_records
    from nvseg_bench.history.show import history_table
    from nvseg_bench.history.storage import DEFAULT_DIR

    parser = argparse.ArgumentParser(prog=f"{PROG} history",
                                     description="List the runs saved by --nvseg-autosave or --save-to, oldest first.")
    parser.add_argument("store", nargs="?", default=DEFAULT_DIR, metavar="STORE",
                        help=f"a store folder or file:///abs/dir (default: ./{DEFAULT_DIR})")
    parser.add_argument("--name", help="only runs of this name (smoke, sanity, user)")
    parser.add_argument("--json", action="store_true", help="the records as a JSON list")
    args = parser.parse_args(argv)
    storage = existing_store(args.store)
    found, damaged = readable_records(storage)
    for line in damaged:
        print(f"{PROG}: warning: {line}", file=sys.stderr)
    records = [r for r in found if args.name in (None, r.get("name"))]
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    if not records:
        print(f"{PROG}: no saved runs in {storage.root}")
        return 0
    print(f"{PROG}: {len(records)} saved run{'s' if len(records) != 1 else ''} in {storage.root}")
    for name in sorted({r.get("name") for r in records}):
        print(f"\n{name}")
        print("\n".join("  " + line for line in history_table([r for r in records if r.get("name") == name])))
    return 0


def compare_command(argv: Sequence[str]) -> int:
    """`nvseg-finetune compare RUN_A RUN_B`: RUN_B beside RUN_A, paired per case when they scored the same cases."""
    from nvseg_bench.history.compare import compare
    from nvseg_bench.history.load import refuse_same_run, run_record
    from nvseg_bench.history.regression import check_regression, parse_threshold
    from nvseg_bench.history.show import comparison_lines

    parser = argparse.ArgumentParser(prog=f"{PROG} compare",
                                     description="Compare two finished runs: RUN_B's formal Dice minus RUN_A's, paired "
                                                 "per case (mean, 95% bootstrap interval, cases better and worse), and "
                                                 "the recipe values, versions, bundle and data that differ.")
    parser.add_argument("run_a", type=Path, metavar="RUN_A",
                        help="the baseline: a run folder (or its output.json) or a saved record file")
    parser.add_argument("run_b", type=Path, metavar="RUN_B", help="the run compared with it")
    parser.add_argument("--fail", action="append", default=[], metavar="METRIC:AMOUNT",
                        help="exit 1 on a regression, as --nvseg-compare-fail: formal_dice:0.01, formal_dice:1%%, wall:20%%")
    parser.add_argument("--json", action="store_true", help="the comparison as JSON")
    args = parser.parse_args(argv)
    try:
        thresholds = [parse_threshold(t) for t in args.fail]
    except ValueError as exc:
        raise NvsegError(f"--fail: {exc}") from None
    records = (run_record(args.run_a, "RUN_A"), run_record(args.run_b, "RUN_B"))
    refuse_same_run(args.run_a, args.run_b, records)
    comparison = compare(*records)
    checks = check_regression(comparison, thresholds)
    if args.json:
        print(json.dumps(comparison | {"judgements": [vars(j) for j in checks]}, indent=2))
    else:
        print("\n".join(comparison_lines(comparison, str(args.run_a), str(args.run_b))))
        print("\n".join(f"  {j.status}: {j.message}" for j in checks))
    return 1 if any(j.status == "failed" for j in checks) else 0


def save_to(location: str, out_dir: Path) -> list[Path]:
    """--save-to STORE: a record of the finished run in out_dir (each seed of a sweep) saved in the store."""
    from nvseg_bench.history.record import record_from_run_dir
    from nvseg_bench.history.storage import FileStorage

    storage = FileStorage(history_store(location))
    runs = [out_dir] if (out_dir / "output.json").is_file() else sorted(p.parent for p in out_dir.glob("seed-*/output.json"))
    return [storage.save(record_from_run_dir(run, root=Path.cwd())) for run in runs]


SUBCOMMANDS = {"fetch-weights": fetch_weights, "fetch-bundle": fetch_bundle, "cache": cache_command, "predict": predict,
               "history": history_command, "compare": compare_command, "presets": presets_command}
