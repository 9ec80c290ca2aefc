"""The headline says which split the verdict rests on (output/result.headline)."""
from __future__ import annotations

from nvseg_bench.output.result import headline


def _out(split: str, test: dict | None) -> dict:
    return {"formal_pretrained_val_dice": 0.50, "formal_finetuned_val_dice": 0.60, "recommended_is_finetuned": True,
            "formal_gain_stats": None, "verdict_split": split, "test": test, "forgetting": None}


def _test(n: int) -> dict:
    return {"n_cases": n, "formal_pretrained_val_dice": 0.40, "formal_finetuned_val_dice": 0.45,
            "formal_gain_stats": None}


def test_a_verdict_on_the_test_split_leads_with_the_test_dice_and_keeps_validation_beside_it():
    line = headline(_out("test", _test(8)), "passed")
    assert line.startswith("test Dice 0.4000 -> 0.4500 (+0.0500) on 8 held-out cases; keep the finetuned checkpoint")
    assert line.endswith("; validation 0.5000 -> 0.6000")


def test_a_verdict_on_validation_says_those_cases_also_chose_the_epoch():
    line = headline(_out("validation", None), "passed")
    assert line == ("formal Dice 0.5000 -> 0.6000 (+0.1000); keep the finetuned checkpoint; on the validation cases, "
                    "which also chose the epoch")
    assert "(the 2 testing case(s) are too few for a verdict)" in headline(_out("validation", _test(2)), "passed")
