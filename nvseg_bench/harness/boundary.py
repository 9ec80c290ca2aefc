"""The boundary feature: the opt-in `nsd_gain` gate (the mean normalised surface Dice gain over the validation
cases is at least a bound) and its option, --nvseg-min-nsd-gain (ini `nvseg_min_nsd_gain`, off by default);
the report's per-case table of Dice, NSD and HD95 before and after, and its boundary chart. The figures are
output.json's (`output.boundary`, evidence/boundary.py); this feature only reads them.
"""
from __future__ import annotations

from typing import Any

import pytest

from nvseg_bench.harness.feature import Feature, Figure, Gate, Section, Verdict, bad, number, ok, skip
from nvseg_bench.harness.ledger import RunRecord
from nvseg_bench.harness.options import HarnessOptions, add_value_option, option_value
from nvseg_bench.harness.plots import boundary_plot
from nvseg_bench.harness.runs import RunEvidence

OPTION = "min-nsd-gain"
SPLIT = "validation"  # the split the gate judges: the one every run with formal evaluation has
CASE_HEADER = ("case", "Dice pretrained", "Dice finetuned", "NSD pretrained", "NSD finetuned", "HD95 mm pretrained",
               "HD95 mm finetuned")


def add_options(group: pytest.OptionGroup, parser: pytest.Parser) -> None:
    add_value_option(group, parser, OPTION, "turn on the nsd_gain gate: fail a run whose mean normalised surface "
                     "Dice gain over its validation cases is below this (e.g. 0: the borders must not get worse)",
                     "GAIN")


def read_options(config: pytest.Config) -> dict[str, Any]:
    """--nvseg-min-nsd-gain (else the ini key): a number between -1 and 1; anything else is a usage error."""
    given = option_value(config, OPTION)[0]
    if not given:
        return {"min_nsd_gain": None}
    try:
        value = float(given)
    except ValueError:
        value = float("nan")
    if not -1.0 <= value <= 1.0:
        raise pytest.UsageError(f"--nvseg-min-nsd-gain {given!r} must be a gain between -1 and 1, e.g. 0 or 0.01")
    return {"min_nsd_gain": value}


def _split(doc: dict[str, Any] | None) -> dict[str, Any]:
    return (((doc or {}).get("output") or {}).get("boundary") or {}).get(SPLIT) or {}


def nsd_gain(run: RunEvidence, opts: HarnessOptions) -> Verdict:
    """Opt-in (--nvseg-min-nsd-gain): the validation cases' mean NSD gain is at least the bound."""
    block = _split(run.doc)
    stats = block.get("nsd_gain_stats") or {}
    tolerance = ((run.doc or {}).get("output") or {}).get("boundary", {}) or {}
    said = ("no paired boundary metrics (the run has no formal evaluation of both checkpoints)"
            if stats.get("mean_gain") is None else
            f"NSD at {tolerance.get('tolerance_mm')} mm {number(block['pretrained']['mean_nsd'])} -> "
            f"{number(block['finetuned']['mean_nsd'])}, gain {stats['mean_gain']:+.4f} over {stats['n_cases']} cases"
            + ("" if stats.get("ci_low") is None else f", 95% CI {stats['ci_low']:+.4f}..{stats['ci_high']:+.4f}"))
    if opts.min_nsd_gain is None:
        return skip(f"off (--nvseg-min-nsd-gain turns it on); {said}")
    if stats.get("mean_gain") is None:
        return bad(said)
    if stats["mean_gain"] >= opts.min_nsd_gain:
        return ok(f"{said}; at least {opts.min_nsd_gain}")
    return bad(f"{said}, below {opts.min_nsd_gain}: the finetuned borders moved away from the labels; compare the "
               "report's boundary chart, lower --learning-rate or --epochs")


def case_rows(doc: dict[str, Any] | None) -> tuple[tuple[str, ...], ...]:
    """One row per validation case: Dice, NSD and HD95 of each checkpoint."""
    out, block = (doc or {}).get("output") or {}, _split(doc)
    pre, post = (((block.get(side) or {}).get("per_case") or {}) for side in ("pretrained", "finetuned"))
    dice_pre, dice_post = out.get("formal_pretrained_per_case") or {}, out.get("formal_finetuned_per_case") or {}
    return tuple((case, number(dice_pre.get(case)), number(dice_post.get(case)),
                  number((pre.get(case) or {}).get("nsd")), number((post.get(case) or {}).get("nsd")),
                  number((pre.get(case) or {}).get("hd95_mm"), ".2f"), number((post.get(case) or {}).get("hd95_mm"), ".2f"))
                 for case in sorted(pre.keys() | post.keys()))


def sections(record: RunRecord) -> list[Section]:
    doc = record.output_json()
    rows = case_rows(doc)
    if not rows:
        return []
    boundary = doc["output"]["boundary"]
    text = (f"Per validation case, formal Dice beside the normalised surface Dice at {boundary['tolerance_mm']} mm "
            "and the 95th-percentile Hausdorff distance, each at the original spacing (docs/results.md#boundary-metrics).")
    return [Section("Cases", text, CASE_HEADER, rows)]


def figures(record: RunRecord) -> list[Figure]:
    doc = record.output_json()
    if not _split(doc):
        return []
    return [("boundary", "Boundary metrics per case, pretrained -> finetuned", lambda: boundary_plot(doc, SPLIT))]


FEATURE = Feature("boundary", gates={
    "nsd_gain": Gate("the borders did not get worse (opt-in)", nsd_gain, options=(f"--nvseg-{OPTION}",), opt_in=True),
}, add_options=add_options, read_options=read_options, sections=sections, figures=figures)
