"""The output schema output.json is written against."""
from __future__ import annotations

from nvseg_bench.output.write import schema_errors


def test_the_schema_refuses_a_result_without_its_required_blocks():
    errors = schema_errors({"skill": "nv_segment_ct_finetune", "status": "passed"})
    assert any("'output' is a required property" in e for e in errors)
