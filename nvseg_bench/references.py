"""Reference ranges as measured distributions: turn a seed sweep into a reference-range file.

`python -m nvseg_bench.references SWEEP_DIR... --out FILE [--name NAME]` reads each SWEEP_DIR/sweep.json
and each finished seed's output.json and manifest.json (several sweeps of the same dataset and
checkpoint pool their seeds), and writes (or updates the NAME entry of) FILE with:
the per-seed numbers, their distribution (mean, min, max, std), the ranges the `reference` gate
applies, and the provenance (seeds, command, package versions, machine, dataset and checkpoint
digests, date). nvseg_bench/data/smoke_reference.json is made this way.

A range is the measured spread widened by a margin: below the lowest seed (and, for the
pretrained score, which no seed changes, above the highest) by the larger of MARGIN_STD standard
deviations and MARGIN_MIN, so another CPU or torch build is not failed for noise. Only the
pretrained score gets an upper bound: a better finetune than measured is no fault.

Saved runs work the same way (`python -m nvseg_bench.references STORE_OR_FILE... --out FILE`): the
records in a history store (--nvseg-autosave, --save-to) or single record files, of one run name,
dataset and checkpoint, so a team's reference ranges come from its own history.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from nvseg_bench.evidence.pool import distribution
from nvseg_bench.history.record import data_digest
from nvseg_bench.history.storage import FORMAT, FileStorage
from nvseg_bench.paths import SWEEP_FILE, seed_dir

MARGIN_STD = 4.0
MARGIN_MIN = 0.05
FIELDS = ("formal_pretrained_val_dice", "formal_finetuned_val_dice", "formal_improvement_over_pretrained",
          "training_start_val_dice", "training_best_val_dice", "training_improvement")
BOUNDED_BELOW = ("formal_pretrained_val_dice", "formal_finetuned_val_dice", "formal_improvement_over_pretrained",
                 "training_improvement")
BOUNDED_ABOVE = ("formal_pretrained_val_dice",)
ROUND = 4


def seed_numbers(doc: dict[str, Any]) -> dict[str, float | None]:
    out = doc.get("output") or {}
    values = {name: out.get(name) for name in FIELDS if name != "training_improvement"}
    start, best = out.get("training_start_val_dice"), out.get("training_best_val_dice")
    values["training_improvement"] = None if start is None or best is None else best - start
    stats = out.get("formal_gain_stats") or {}
    return values | {"gain_ci_low": stats.get("ci_low"), "gain_ci_high": stats.get("ci_high"),
                     "gain_confidence": out.get("gain_confidence")}


def margin(spread: dict[str, Any]) -> float:
    return max(MARGIN_STD * (spread["std"] or 0.0), MARGIN_MIN)


def ranges(spreads: dict[str, dict[str, Any]]) -> tuple[dict[str, float], dict[str, float]]:
    """(min, max) bounds from each field's measured distribution."""
    low = {f: round(spreads[f]["min"] - margin(spreads[f]), ROUND) for f in BOUNDED_BELOW if spreads[f]["n"]}
    high = {f: round(spreads[f]["max"] + margin(spreads[f]), ROUND) for f in BOUNDED_ABOVE if spreads[f]["n"]}
    return low, high


def provenance(sweeps: list[dict[str, Any]], seeds: list[int], docs: list[dict[str, Any]], digest: str) -> dict[str, Any]:
    first = docs[0]
    env = first.get("environment") or {}
    return {
        "kind": "measured_sweep",
        "seeds": seeds,
        "sweeps": [s["out_dir"] for s in sweeps],
        "command": (first.get("invocation") or {}).get("command"),
        "date": max(s.get("finished_at") or "" for s in sweeps),
        "nvseg_bench": first.get("version"),
        "packages": {k: (env.get("packages") or {}).get(k) for k in ("torch", "monai", "numpy")} | {"python": env.get("python")},
        "machine": {k: env.get(k) for k in ("platform", "cpu_count", "gpu_name", "gpu_count", "cuda_available")},
        "dataset_dir": (first.get("input") or {}).get("dataset_dir"),
        "data_digest_sha256": digest,
        "pretrained_ckpt_sha256": ((first.get("input") or {}).get("pretrained_weights") or {}).get("sha256"),
        "model": first.get("model"),
        "margin_rule": (f"min = lowest seed - max({MARGIN_STD} std, {MARGIN_MIN}); max (pretrained only) = highest "
                        f"seed + the same margin"),
    }


def finished_seeds(sweep_dir: Path) -> tuple[dict[str, Any], list[tuple[int, dict[str, Any], str]]]:
    """The sweep and its passed seeds as (seed, output.json, data digest)."""
    sweep = json.loads((sweep_dir / SWEEP_FILE).read_text()) | {"out_dir": str(sweep_dir.resolve())}
    found = []
    for run in sweep["runs"]:
        folder = seed_dir(sweep_dir, run["seed"])
        doc = json.loads((folder / "output.json").read_text())
        if doc.get("status") == "passed":
            found.append((run["seed"], doc, data_digest(json.loads((folder / "manifest.json").read_text()))))
    return sweep, found


def card_from_sweeps(sweep_dirs: list[Path], about: str) -> dict[str, Any]:
    sweeps, passed = [], []
    for sweep_dir in sweep_dirs:
        sweep, found = finished_seeds(sweep_dir)
        sweeps.append(sweep)
        passed += found
    passed.sort(key=lambda found: found[0])
    seeds = [seed for seed, _, _ in passed]
    if len(passed) < 2 or len(set(seeds)) != len(seeds):
        raise ValueError(f"the sweeps hold finished seeds {seeds}; a distribution needs at least 2, each seed once")
    digests = {digest for _, _, digest in passed}
    checkpoints = {((d.get("input") or {}).get("pretrained_weights") or {}).get("sha256") for _, d, _ in passed}
    if len(digests) > 1 or len(checkpoints) > 1:
        raise ValueError("the sweeps used different data or pretrained checkpoints; pool only sweeps of the same run")
    runs = [{"seed": seed} | seed_numbers(doc) for seed, doc, _ in passed]
    spreads = {f: distribution([r[f] for r in runs if r[f] is not None]) for f in FIELDS}
    low, high = ranges(spreads)
    return {"about": about, "provenance": provenance(sweeps, seeds, [d for _, d, _ in passed], digests.pop()),
            "measured": {"runs": runs, "distribution": spreads,
                         "recommended_seed": {s["out_dir"]: s.get("recommended_seed") for s in sweeps}},
            "min": low, "max": high}


def record_numbers(record: dict[str, Any]) -> dict[str, Any]:
    """A saved run's figures as seed_numbers gives them for a seed's output.json."""
    figures = record.get("figures") or {}
    values = {name: figures.get(name) for name in FIELDS if name != "training_improvement"}
    start, best = figures.get("training_start_val_dice"), figures.get("training_best_val_dice")
    values["training_improvement"] = None if start is None or best is None else best - start
    low, high = figures.get("gain_ci") or [None, None]
    return values | {"gain_ci_low": low, "gain_ci_high": high, "gain_confidence": figures.get("gain_confidence")}


def saved_records(paths: list[Path], name: str | None) -> list[dict[str, Any]]:
    """The records in each store folder or record file, of run name `name` (or the one name they share)."""
    found = []
    for path in paths:
        found += [json.loads(path.read_text())] if path.is_file() else FileStorage(path).records()
    found = [r for r in found if r.get("format") == FORMAT and name in (None, r.get("name"))]
    names = sorted({str(r.get("name")) for r in found})
    if len(names) > 1:
        raise ValueError(f"the saved runs are of several names ({', '.join(names)}); pick one with --run-name")
    return sorted(found, key=lambda r: r.get("time") or 0)


def card_from_history(paths: list[Path], about: str, name: str | None = None) -> dict[str, Any]:
    """A reference card from saved runs of one name, dataset and pretrained checkpoint (at least 2)."""
    records = [r for r in saved_records(paths, name) if r.get("status") == "passed"]
    if len(records) < 2:
        raise ValueError(f"{len(records)} passed saved runs found; a distribution needs at least 2")
    if len({(r.get("dataset") or {}).get("digest") for r in records}) > 1 or \
            len({r.get("pretrained_sha256") for r in records}) > 1:
        raise ValueError("the saved runs used different data or pretrained checkpoints; pass only runs of the same "
                         "dataset and checkpoint")
    runs = [{"run_id": r["run_id"], "seed": (r.get("recipe") or {}).get("seed")} | record_numbers(r) for r in records]
    spreads = {f: distribution([r[f] for r in runs if r[f] is not None]) for f in FIELDS}
    low, high = ranges(spreads)
    last = records[-1]
    provenance = {"kind": "measured_history", "run_ids": [r["run_id"] for r in records],
                  "stores": [str(p.resolve()) for p in paths], "name": last.get("name"),
                  "date": last.get("saved_at"), "git_commits": sorted({r.get("git_commit") or "-" for r in records}),
                  "packages": last.get("versions"), "machine": last.get("machine"),
                  "dataset_dir": (last.get("dataset") or {}).get("dir"),
                  "data_digest_sha256": (last.get("dataset") or {}).get("digest"),
                  "pretrained_ckpt_sha256": last.get("pretrained_sha256"),
                  "margin_rule": f"min = lowest run - max({MARGIN_STD} std, {MARGIN_MIN}); max (pretrained only) = "
                                 "highest run + the same margin"}
    return {"about": about, "provenance": provenance, "measured": {"runs": runs, "distribution": spreads},
            "min": low, "max": high}


def _is_history(path: Path) -> bool:
    if path.is_file():
        return path.suffix == ".json"
    return path.is_dir() and not (path / SWEEP_FILE).is_file() and any(path.glob("*.json"))


def write_card(target: Path, name: str, card: dict[str, Any]) -> dict[str, Any]:
    """Set FILE's NAME entry, keeping the file's other entries."""
    existing = json.loads(target.read_text()) if target.is_file() else {}
    existing[name] = card
    target.write_text(json.dumps(existing, indent=2) + "\n")
    return existing


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nvseg_bench.references",
                                     description="Turn a seed sweep (nvseg-finetune --seeds), or saved runs (a history "
                                                 "store or its files), into reference ranges.")
    parser.add_argument("sweep_dirs", type=Path, nargs="+", metavar="SWEEP_DIR|STORE",
                        help="the --output-dir of a --seeds run (several: their seeds are pooled), or a history store "
                             "folder (--nvseg-autosave, --save-to) or saved run files")
    parser.add_argument("--run-name", help="with saved runs: only those of this name (smoke, sanity, user)")
    parser.add_argument("--out", type=Path, required=True, metavar="FILE", help="reference file to write or update")
    parser.add_argument("--name", default="spleen_micro", help="entry name in FILE (default: spleen_micro)")
    parser.add_argument("--about", default="", help="one line on what the reference is for")
    args = parser.parse_args(argv)
    history = [d for d in args.sweep_dirs if _is_history(d)]
    missing = [str(d) for d in args.sweep_dirs if not (d / SWEEP_FILE).is_file() and d not in history]
    if missing or (history and len(history) != len(args.sweep_dirs)):
        said = f"{', '.join(missing)} has no {SWEEP_FILE} and no saved runs" if missing else \
            "sweeps and saved runs cannot be mixed"
        print(f"python -m nvseg_bench.references: {said}.\n  Pass the --output-dir of an `nvseg-finetune ... --seeds "
              "0,1,2,3,4` run, or a history store (--nvseg-autosave, --save-to).", file=sys.stderr)
        return 2
    try:
        card = card_from_history(history, args.about, args.run_name) if history else \
            card_from_sweeps(args.sweep_dirs, args.about)
    except (ValueError, OSError, KeyError) as exc:
        print(f"python -m nvseg_bench.references: the sweep cannot make a reference: {exc}", file=sys.stderr)
        return 2
    write_card(args.out, args.name, card)
    gain = card["measured"]["distribution"]["formal_improvement_over_pretrained"]
    print(f"{args.out}: {args.name} from {gain['n']} {'saved runs' if history else 'seeds'}, formal gain mean {gain['mean']:+.4f} "
          f"(min {gain['min']:+.4f}, max {gain['max']:+.4f}); ranges min {card['min']} max {card['max']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
