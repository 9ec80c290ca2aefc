"""The forgetting check's plan: on by default for --sanity and GPU runs, and the classes it prompts."""
from __future__ import annotations

import pytest

from nvseg_bench.errors import ArgumentError, MappingError
from nvseg_bench.inputs.labels import load_label_dict
from nvseg_bench.planning.forgetting import DEFAULT_COUNT, NOT_EVERYTHING, OFF, plan_forgetting

from ...helpers import REPO

LABELS = load_label_dict(REPO / "bundle" / "configs" / "label_dict.json")
SPLEEN, LIVER = LABELS["spleen"], LABELS["liver"]


def plan(ask=None, preset="finetune", cuda=True, mapped=frozenset({SPLEEN})):
    return plan_forgetting(ask, preset=preset, cuda=cuda, label_dict=LABELS, mapped=set(mapped))


@pytest.mark.parametrize("preset, cuda, on", [("smoke", True, False), ("finetune", False, False),
                                               ("finetune", True, True), ("sanity", True, True), ("sanity", False, True)])
def test_it_is_on_by_default_for_sanity_and_for_user_runs_with_a_gpu(preset, cuda, on):
    assert plan(preset=preset, cuda=cuda).enabled is on


def test_the_default_scores_five_of_every_automatic_class_but_the_finetuned_ones():
    found = plan()
    assert found.count == DEFAULT_COUNT and SPLEEN not in found.prompts and LIVER in found.prompts
    assert not set(found.prompts) & NOT_EVERYTHING and found.names[LIVER] == "liver"
    assert "the 5 of" in found.reason and "(default)" in found.reason


def test_the_flag_turns_it_on_for_smoke_and_off_anywhere():
    assert plan("3", preset="smoke", cuda=False).count == 3
    assert plan(OFF, preset="sanity").enabled is False


def test_named_classes_are_prompted_alone_in_the_order_given():
    found = plan("liver, aorta,liver")
    assert found.named == (LIVER, LABELS["aorta"]) == found.prompts and found.count is None


def test_a_misspelt_class_gets_a_did_you_mean_naming_the_flag():
    with pytest.raises(MappingError, match="--forgetting-check 'livr' is not a VISTA3D class") as caught:
        plan("livr")
    assert "'liver'" in " ".join(caught.value.evidence)


def test_the_class_being_finetuned_cannot_be_scored_for_forgetting():
    with pytest.raises(ArgumentError, match="a class this run finetunes"):
        plan("spleen")


@pytest.mark.parametrize("count", ["0", "500"])
def test_a_count_beyond_the_classes_left_is_refused(count):
    with pytest.raises(ArgumentError, match="choose between 1 and"):
        plan(count)
