"""A finding: one named check with its status and the numbers behind it."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Finding:
    name: str
    status: str  # pass | fail | warn | skipped
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


def verdict(findings: list[Finding]) -> str:
    statuses = {f.status for f in findings}
    return "failed" if "fail" in statuses else "warn" if "warn" in statuses else "passed"
