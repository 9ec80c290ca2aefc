"""A finding: one named check with its status and the numbers behind it, and the verdict over them.

`unverified` is a headline claim the verifier could not re-derive (HEADLINE names them): it never
passes. `skipped` is a check that does not apply to this run.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Finding:
    name: str
    status: str  # pass | fail | unverified | warn | skipped
    detail: str
    numbers: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def passed(name: str, detail: str, **numbers: Any) -> Finding:
    return Finding(name, "pass", detail, numbers)


def failed(name: str, detail: str, **numbers: Any) -> Finding:
    return Finding(name, "fail", detail, numbers)


def warned(name: str, detail: str, **numbers: Any) -> Finding:
    return Finding(name, "warn", detail, numbers)


def skipped(name: str, detail: str, **numbers: Any) -> Finding:
    return Finding(name, "skipped", detail, numbers)


def unverified(name: str, detail: str, **numbers: Any) -> Finding:
    return Finding(name, "unverified", detail, numbers)


# the claims a run is judged by: when one of them cannot be re-derived, the verdict is `unverified`
HEADLINE = ("formal_dice.eval_pretrained", "formal_dice.eval_finetuned", "gain_stats", "checkpoint_claims", "decision")
STATUSES = ("pass", "fail", "unverified", "warn", "skipped")


def verdict(findings: list[Finding]) -> str:
    statuses = {f.status for f in findings}
    for status, said in (("fail", "failed"), ("unverified", "unverified"), ("warn", "warn")):
        if status in statuses:
            return said
    return "passed"
