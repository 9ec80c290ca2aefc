"""The verifier's own copies of the output schema and the anatomy table: shipped beside it (it runs without the
repository and never reads the package it audits) and held equal to the package's, so they cannot drift."""
from __future__ import annotations

import json

import pytest

from eval_engine import claims, plausibility
from nvseg_bench import paths


@pytest.mark.parametrize("copy, original", [(claims.SCHEMA, paths.SCHEMA / "output.schema.json"),
                                            (plausibility.TABLE, paths.DATA / "anatomy_ranges.json")])
def test_the_verifier_ships_the_same_file_as_the_package(copy, original):
    assert copy.parent.name == "eval_engine" and "nvseg_bench" not in copy.parts
    assert json.loads(copy.read_text()) == json.loads(original.read_text())
