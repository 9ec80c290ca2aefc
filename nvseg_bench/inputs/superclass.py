"""Super-classes: kidney (2), lung (20) and bone (21), handled on purpose.

VISTA3D does not segment these ids as such: NVIDIA's inference.json carries a `subclass` entry that
turns a prompt for one into prompts for its parts (2 = left kidney 14 + right kidney 5, 20 = the five
lung lobes 28..32, 21 = the bones), and its docs (README, "remove the subclass dictionary if you ever
mapped local index to [2,20,21]") say a model finetuned onto one of them must run without that entry.
NV-Segment-CT's class list leaves the three out; NV-Segment-CTMR's holds them. A label on a
super-class id has two honest routes: map onto the parts when the label separates them, or train
the super-class id itself, with the `subclass` entry dropped for predict and both forgetting phases
(stage/inference.py). This tool takes the second when a mapping names the id, and says so. Pure.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SuperClass:
    id: int
    name: str
    parts: str  # what VISTA3D turns a prompt for it into, in words
    split_example: str  # the mapping onto the parts, for a label that separates them


SUPER_CLASSES: dict[int, SuperClass] = {
    2: SuperClass(2, "kidney", "left kidney (14) + right kidney (5)", "[[1, 14], [2, 5]]"),
    20: SuperClass(20, "lung", "the five lobes (28..32)", "[[1, 28], [2, 29], [3, 30], [4, 31], [5, 32]]"),
    21: SuperClass(21, "bone", "the individual bones (33..56, 63..97, 114, 120, 122)", "one pair per bone id"),
}


def trained(ids: set[int] | list[int]) -> tuple[int, ...]:
    """The super-class ids among a run's mapped ids, which it trains as themselves."""
    return tuple(sorted(i for i in set(ids) if i in SUPER_CLASSES))


def names(ids: tuple[int, ...]) -> dict[int, str]:
    return {i: SUPER_CLASSES[i].name for i in ids}


def route_line(ids: tuple[int, ...]) -> str | None:
    """The plan's line for a run that trains super-class ids; None when it trains none."""
    if not ids:
        return None
    said = "; ".join(f"id {i} '{SUPER_CLASSES[i].name}' is a super-class (VISTA3D turns a prompt for it into "
                     f"{SUPER_CLASSES[i].parts}); if your label separates them, map onto the parts instead, e.g. "
                     f"--label-mapping '{SUPER_CLASSES[i].split_example}'" for i in ids)
    return (f"super_classes: this run trains id {', '.join(map(str, ids))} as such and drops its entry from the inference "
            f"config's `subclass` for predict and both forgetting phases; {said}")


def without(subclass: object, ids: tuple[int, ...]) -> object:
    """A `subclass` config value without the entries of the trained super-class ids (keys are id strings)."""
    if not isinstance(subclass, dict):
        return subclass
    return {key: value for key, value in subclass.items() if str(key) not in {str(i) for i in ids}}
