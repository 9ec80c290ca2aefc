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
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from nvseg_bench.history.record import data_digest
from nvseg_bench.sweep import SWEEP_FILE, distribution, seed_dir

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


def write_card(target: Path, name: str, card: dict[str, Any]) -> dict[str, Any]:
    """Set FILE's NAME entry, keeping the file's other entries."""
    existing = json.loads(target.read_text()) if target.is_file() else {}
    existing[name] = card
    target.write_text(json.dumps(existing, indent=2) + "\n")
    return existing


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nvseg_bench.references",
                                     description="Turn a seed sweep (nvseg-finetune --seeds) into reference ranges.")
    parser.add_argument("sweep_dirs", type=Path, nargs="+", metavar="SWEEP_DIR",
                        help="the --output-dir of a --seeds run (several: their seeds are pooled)")
    parser.add_argument("--out", type=Path, required=True, metavar="FILE", help="reference file to write or update")
    parser.add_argument("--name", default="spleen_micro", help="entry name in FILE (default: spleen_micro)")
    parser.add_argument("--about", default="", help="one line on what the reference is for")
    args = parser.parse_args(argv)
    missing = [str(d) for d in args.sweep_dirs if not (d / SWEEP_FILE).is_file()]
    if missing:
        print(f"python -m nvseg_bench.references: {', '.join(missing)} has no {SWEEP_FILE}.\n  Pass the --output-dir "
              "of an `nvseg-finetune ... --seeds 0,1,2,3,4` run.", file=sys.stderr)
        return 2
    try:
        card = card_from_sweeps(args.sweep_dirs, args.about)
    except (ValueError, OSError, KeyError) as exc:
        print(f"python -m nvseg_bench.references: the sweep cannot make a reference: {exc}", file=sys.stderr)
        return 2
    write_card(args.out, args.name, card)
    gain = card["measured"]["distribution"]["formal_improvement_over_pretrained"]
    print(f"{args.out}: {args.name} from {gain['n']} seeds, formal gain mean {gain['mean']:+.4f} "
          f"(min {gain['min']:+.4f}, max {gain['max']:+.4f}); ranges min {card['min']} max {card['max']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
