"""The forgetting check's plan: whether it runs, and which VISTA3D classes its two inference phases prompt.

Finetuning a 127-class model on a few classes can damage the others. The check segments the
validation cases twice with the bundle's inference config, once with the pretrained and once with
the finetuned checkpoint, prompted with the same other classes, and evidence/forgetting.py scores how
well the two agree per class. `--forgetting-check N` (default 5) prompts every class of the
automatic ("everything") set but the mapped ones and keeps the N the pretrained model finds with the
most foreground; `--forgetting-check 'liver,aorta'` prompts and keeps those. On by default for
--sanity and for a user run with a CUDA GPU; off for --smoke and on the CPU, where the two extra
sliding-window passes with ~100 classes prompted cost more than the finetune. Pure functions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nvseg_bench.errors import ArgumentError
from nvseg_bench.inputs.labels import LABEL_DICT_SOURCE, resolve_target_anatomy

DEFAULT_COUNT = 5
OFF = "off"
# NVIDIA's inference.json segments "everything" as ids 1..132 but these: super-classes and lesions whose
# voxels other classes already cover (its `everything_labels`; docs/design.md, Forgetting check).
NOT_EVERYTHING = frozenset({2, 16, 18, 20, 21, 23, 24, 25, 26, 27, 128, 129, 130, 131, 132})


@dataclass(frozen=True)
class ForgettingPlan:
    enabled: bool
    reason: str  # the plan's line
    count: int | None = None  # keep the N most-foreground classes; None: the named ones
    named: tuple[int, ...] = ()  # ids the user named
    prompts: tuple[int, ...] = ()  # what both phases prompt
    names: dict[int, str] = field(default_factory=dict)  # id -> class name, for every prompt

    def to_json(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "count": self.count, "named": list(self.named), "prompts": list(self.prompts)}


def candidates(label_dict: dict[str, int], mapped: set[int], everything: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """The automatic-segmentation classes of the class list, without the classes the run finetunes. `everything`:
    the modality's own set (NV-Segment-CTMR's MRI_BODY, MRI_BRAIN: model/axis.py); None: the CT set below."""
    pool = set(everything) if everything is not None else {i for i in label_dict.values() if 0 < i <= 132} - NOT_EVERYTHING
    return tuple(sorted(pool - mapped))


def _named(text: str, label_dict: dict[str, int], mapped: set[int], source: str) -> tuple[int, ...]:
    ids = []
    for name in (part.strip() for part in text.split(",")):
        if not name:
            continue
        glob = resolve_target_anatomy(name, label_dict, source, flag="--forgetting-check",
                                      fix="Name VISTA3D classes, comma-separated, or give a count, e.g. 5.")
        if glob in mapped:
            raise ArgumentError(f"--forgetting-check names {name!r} (id {glob}), a class this run finetunes.",
                                fix=["Name classes the finetune should leave alone; its own classes are scored by "
                                     "the formal evaluation."])
        if glob not in ids:
            ids.append(glob)
    return tuple(ids)


def plan_forgetting(ask: str | None, *, preset: str, cuda: bool, label_dict: dict[str, int], mapped: set[int],
                    source: str = LABEL_DICT_SOURCE, everything: tuple[int, ...] | None = None) -> ForgettingPlan:
    """The check for --forgetting-check's value (None: not given, OFF: --no-forgetting-check)."""
    if ask == OFF:
        return ForgettingPlan(False, "forgetting_check: off (--no-forgetting-check)")
    if ask is None and not (preset == "sanity" or (preset == "finetune" and cuda)):
        where = "--smoke" if preset == "smoke" else "a run on the CPU"
        return ForgettingPlan(False, f"forgetting_check: off by default for {where} (two more inference passes "
                                     "with ~100 classes prompted); --forgetting-check turns it on")
    given = ask or str(DEFAULT_COUNT)
    pool = candidates(label_dict, mapped, everything)
    names = {v: k for k, v in label_dict.items()}
    if given.strip().isdigit():
        count = int(given)
        if not 1 <= count <= len(pool):
            raise ArgumentError(f"--forgetting-check {given}: choose between 1 and {len(pool)} classes.",
                                evidence=[f"{len(pool)} VISTA3D classes are left besides the {len(mapped)} this run "
                                          "finetunes."],
                                fix=[f"Give a count such as {DEFAULT_COUNT}, or name classes: --forgetting-check "
                                     "'liver,aorta'."])
        why = "default" if ask is None else "--forgetting-check"
        return ForgettingPlan(True, f"forgetting_check: the {count} of {len(pool)} other classes the pretrained model "
                                    f"finds most of on the validation cases ({why})", count=count, prompts=pool,
                              names={i: names[i] for i in pool})
    named = _named(given, label_dict, mapped, source)
    if not named:
        raise ArgumentError(f"--forgetting-check {given!r} names no class.",
                            fix=["Give a count (e.g. 5) or VISTA3D class names, comma-separated."])
    return ForgettingPlan(True, f"forgetting_check: {', '.join(names[i] for i in named)} (--forgetting-check)",
                          named=named, prompts=named, names={i: names[i] for i in named})
