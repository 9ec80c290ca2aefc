"""docs/harness.md's gate table is the harness's gate table (harness/gates.py): the same gates, in the
same order, each row naming the options that set its gate, and each of those an option the plugin adds."""
from __future__ import annotations

import re

from nvseg_bench.harness.gates import GATES
from nvseg_bench.harness.plugin import FEATURES

from ..helpers import REPO


def documented_gates() -> dict[str, str]:
    """gate -> its claim cell, from the table under docs/harness.md's `## Gates`."""
    text = (REPO / "docs" / "harness.md").read_text()
    section = text.split("\n## Gates\n", 1)[1].split("\n## ", 1)[0]
    return {m.group(1): m.group(2) for m in re.finditer(r"^\| `([a-z_0-9]+)` \| (.*) \|$", section, flags=re.M)}


class Recorder:
    """Stands in for pytest's option group and parser: keeps the option strings a feature adds."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def addoption(self, *names: str, **_: object) -> None:
        self.names.update(names)

    def addini(self, *_: object, **__: object) -> None:
        pass


def added_options() -> set[str]:
    """Every option string the plugin's features add."""
    recorder = Recorder()
    for feature in FEATURES:
        if feature.add_options is not None:
            feature.add_options(recorder, recorder)
    return recorder.names


def test_every_gate_in_the_table_is_documented_and_every_documented_gate_is_in_the_table():
    assert list(documented_gates()) == list(GATES)


def test_each_gate_row_names_the_options_that_set_its_gate():
    docs = documented_gates()
    missing = {name: option for name, gate in GATES.items() for option in gate.options if f"`{option}" not in docs[name]}
    assert sum(len(gate.options) for gate in GATES.values()) >= 5 and missing == {}


def test_the_options_a_gate_names_are_options_the_plugin_adds():
    named = {option for gate in GATES.values() for option in gate.options}
    assert named <= added_options()
