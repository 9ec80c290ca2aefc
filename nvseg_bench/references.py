"""Reference ranges as measured distributions: turn a seed sweep into a reference-range file.

`python -m nvseg_bench.references SWEEP_DIR --out FILE [--name NAME]` reads SWEEP_DIR/sweep.json and
each seed's output.json and manifest.json, and writes (or updates the NAME entry of) FILE with:
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
import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from .sweep import SWEEP_FILE, distribution, seed_dir

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


def data_digest(manifest: dict[str, Any]) -> str:
    """sha256 over the dataset files' names and sha256 as the run's manifest recorded them."""
    files = ((manifest.get("inputs") or {}).get("dataset") or {}).get("files") or {}
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{files[name]['sha256']}\n".encode())
    return digest.hexdigest()


def provenance(sweep: dict[str, Any], docs: list[dict[str, Any]], manifest: dict[str, Any]) -> dict[str, Any]:
    first = docs[0]
    env = first.get("environment") or {}
    return {
        "kind": "measured_sweep",
        "seeds": sweep["seeds"],
        "command": (first.get("invocation") or {}).get("command"),
        "date": sweep.get("finished_at"),
        "nvseg_bench": first.get("version"),
        "packages": {k: (env.get("packages") or {}).get(k) for k in ("torch", "monai", "numpy")} | {"python": env.get("python")},
        "machine": {k: env.get(k) for k in ("platform", "cpu_count", "gpu_name", "gpu_count", "cuda_available")},
        "dataset_dir": (first.get("input") or {}).get("dataset_dir"),
        "data_digest_sha256": data_digest(manifest),
        "pretrained_ckpt_sha256": ((first.get("input") or {}).get("pretrained_weights") or {}).get("sha256"),
        "model": first.get("model"),
        "margin_rule": (f"min = lowest seed - max({MARGIN_STD} std, {MARGIN_MIN}); max (pretrained only) = highest "
                        f"seed + the same margin"),
    }


def card_from_sweep(sweep_dir: Path, about: str) -> dict[str, Any]:
    sweep = json.loads((sweep_dir / SWEEP_FILE).read_text())
    docs = [json.loads((seed_dir(sweep_dir, run["seed"]) / "output.json").read_text()) for run in sweep["runs"]]
    passed = [(run["seed"], doc) for run, doc in zip(sweep["runs"], docs) if doc.get("status") == "passed"]
    if len(passed) < 2:
        raise ValueError(f"{sweep_dir / SWEEP_FILE}: {len(passed)} finished seeds; a distribution needs at least 2")
    manifest = json.loads((seed_dir(sweep_dir, passed[0][0]) / "manifest.json").read_text())
    runs = [{"seed": seed} | seed_numbers(doc) for seed, doc in passed]
    spreads = {f: distribution([r[f] for r in runs if r[f] is not None]) for f in FIELDS}
    low, high = ranges(spreads)
    return {"about": about, "provenance": provenance(sweep, [d for _, d in passed], manifest),
            "measured": {"runs": runs, "distribution": spreads, "recommended_seed": sweep.get("recommended_seed"),
                         "recommendation_reason": sweep.get("recommendation_reason")},
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
    parser.add_argument("sweep_dir", type=Path, metavar="SWEEP_DIR", help="the --output-dir of a --seeds run")
    parser.add_argument("--out", type=Path, required=True, metavar="FILE", help="reference file to write or update")
    parser.add_argument("--name", default="spleen_micro", help="entry name in FILE (default: spleen_micro)")
    parser.add_argument("--about", default="", help="one line on what the reference is for")
    args = parser.parse_args(argv)
    if not (args.sweep_dir / SWEEP_FILE).is_file():
        print(f"python -m nvseg_bench.references: {args.sweep_dir} has no {SWEEP_FILE}.\n  Pass the --output-dir "
              "of an `nvseg-finetune ... --seeds 0,1,2,3,4` run.", file=sys.stderr)
        return 2
    try:
        card = card_from_sweep(args.sweep_dir, args.about)
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
