"""The forgetting feature: the `forgetting` gate (every class the run's forgetting check scored agrees
with the pretrained model to at least a bound) and its option, --nvseg-min-agreement (ini
`nvseg_min_agreement`, default options.MIN_AGREEMENT). The agreements are output.json's; the check
itself runs in the CLI's forget_pretrained and forget_finetuned phases.
"""
from __future__ import annotations

from typing import Any

import pytest

from nvseg_bench.harness.feature import Feature, Gate, Verdict, bad, ok, skip
from nvseg_bench.harness.options import MIN_AGREEMENT, HarnessOptions, add_value_option, option_value
from nvseg_bench.harness.runs import RunEvidence

OPTION = "min-agreement"


def add_options(group: pytest.OptionGroup, parser: pytest.Parser) -> None:
    add_value_option(group, parser, OPTION, "the forgetting gate fails a class whose agreement with the pretrained "
                     f"model is below this (default {MIN_AGREEMENT})", "FRACTION")


def read_options(config: pytest.Config) -> dict[str, Any]:
    """--nvseg-min-agreement (else the ini key, else MIN_AGREEMENT): a fraction; anything else is a usage error."""
    given = option_value(config, OPTION)[0] or str(MIN_AGREEMENT)
    try:
        value = float(given)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise pytest.UsageError(f"--nvseg-min-agreement {given!r} must be a fraction between 0 and 1, e.g. 0.8")
    return {"min_agreement": value}


def forgetting(run: RunEvidence, opts: HarnessOptions) -> Verdict:
    """Every class the forgetting check scored agrees with the pretrained model to at least opts.min_agreement."""
    block = ((run.doc or {}).get("output") or {}).get("forgetting")
    if not block:
        return skip("no forgetting check in this run (on by default for --sanity and GPU runs; "
                    "--nvseg-args=--forgetting-check turns it on)")
    bound = opts.min_agreement
    scored = {k: v for k, v in block["classes"].items() if v is not None}
    said = ", ".join(f"{k} {v:.3f}" for k, v in scored.items()) or "no class found by either checkpoint"
    below = [k for k, v in scored.items() if v < bound]
    if below:
        return bad(f"agreement with the pretrained model below {bound} for {', '.join(below)} ({said}): the "
                   "finetune changed what the model says about classes it was not trained on; lower --learning-rate "
                   "or --epochs, or add those classes' labels to the mapping")
    return ok(f"agreement with the pretrained model at least {bound}: {said}")


FEATURE = Feature("forgetting", gates={
    "forgetting": Gate("other classes agree with the pretrained model", forgetting, options=(f"--nvseg-{OPTION}",),
                       conditional=True),
}, add_options=add_options, read_options=read_options)
