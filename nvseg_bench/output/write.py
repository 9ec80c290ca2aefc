"""output.json: assemble the run's result, check it against the project's JSON Schema, write it.

The schema lives in nvseg_bench/schema/output.schema.json and is the contract for every consumer
(the pytest plugin, the trusted verifier, CI). Every result must also pass the peer skill's schema
(peer_output.schema.json beside it), so its graders accept our output.json. A result that fails
either is a bug in this tool: it is still written, beside a note of what failed
(`schema_errors`, `peer_schema_errors`), so the evidence is never lost.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from nvseg_bench.store.files import write_atomic
from nvseg_bench import paths
from nvseg_bench import __version__

SCHEMA_PATH = paths.SCHEMA / "output.schema.json"
PEER_SCHEMA_PATH = SCHEMA_PATH.with_name("peer_output.schema.json")
PEER_PREFIX = "peer schema: "
SKILL = "nv_segment_ct_finetune"
MODEL_REPO = "nvidia/NV-Segment-CT"
DISCLAIMER = ("Research and engineering evidence only. Not for clinical use: a Dice score on a few "
              "validation cases does not establish safety or effectiveness for patient care.")


def load_schema(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    return json.loads(path.read_text())


def schema_errors(result: dict[str, Any], schema: Path = SCHEMA_PATH) -> list[str]:
    """'path: message' for each way `result` breaks the schema (ours unless another is named)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_schema(schema))
    errors = sorted(validator.iter_errors(result), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}" for e in errors]


def both_schema_errors(result: dict[str, Any]) -> list[str]:
    """Ours, then the peer's (prefixed `peer schema:`): empty when both accept `result`."""
    return schema_errors(result) + [PEER_PREFIX + e for e in schema_errors(result, PEER_SCHEMA_PATH)]


def _clean(value: Any) -> Any:
    """JSON has no NaN: a missing or undefined number is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def skeleton(status: str, model: str) -> dict[str, Any]:
    return {"skill": SKILL, "version": __version__, "status": status, "headline": "", "model": model,
            "model_repo": MODEL_REPO}


def write(result: dict[str, Any], out_dir: Path) -> tuple[Path, list[str]]:
    result = _clean(result)
    result["intended_use_disclaimer"] = DISCLAIMER
    errors = schema_errors(result)
    peer_errors = schema_errors(result, PEER_SCHEMA_PATH)
    if errors:
        result["schema_errors"] = errors
    if peer_errors:
        result["peer_schema_errors"] = peer_errors
    path = out_dir / "output.json"
    write_atomic(path, json.dumps(result, indent=2) + "\n")  # the harness and a --resume read it whole or not at all
    return path, errors + [PEER_PREFIX + e for e in peer_errors]
