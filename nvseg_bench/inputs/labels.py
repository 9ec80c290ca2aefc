"""Label mapping: local label values -> VISTA3D global class ids.

Finds a bundle's class list (label_dict.json: `configs/` as upstream NV-Segment-CT keeps it,
else the bundle root), resolves --label-mapping and --target-anatomy against it, and refuses what
the model cannot learn: an unknown name, an id VISTA3D does not have, a mapping that contradicts
itself. Messages name the class list file actually used. Pure functions; never reads label voxels
(the dataset audit does), no torch, no monai.
"""
from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nvseg_bench.errors import MappingError
from nvseg_bench.inputs import superclass
from nvseg_bench.inputs.family import CT, MODELS, is_annotated_class_list
from nvseg_bench.inputs.resolve import MappingAsk

NEW_IDS = MODELS[CT].new_ids  # NV-Segment-CT's --new-class ids, the default; each model's range is in family.py

LABEL_DICT_NAME = "label_dict.json"
# where bundles keep the class list, first match wins: upstream NV-Segment-CT (and this project's
# bundle/) use configs/; a root copy is accepted for bundles laid out the older way
LABEL_DICT_PLACES = (f"configs/{LABEL_DICT_NAME}", LABEL_DICT_NAME)
LABEL_DICT_SOURCE = f"bundle/{LABEL_DICT_PLACES[0]}"
MAPPING_EXAMPLE = "--label-mapping '[[1, 23]]' (local value 1 -> VISTA3D 23 'lung tumor')"
NO_NEW_CLASS = ("Map the label onto the VISTA3D class it is (a name above); only a structure VISTA3D lacks is a new "
                "class: --new-class VALUE=NAME teaches it, starting from nothing.")


@dataclass(frozen=True)
class ResolvedMapping:
    """A checked mapping, ready for the bundle's `label_mappings: {"default": pairs}`.

    pairs: [[local value, global id], ...] in the order given.
    resolution: one line that says where the pairs came from, for output.json and the console.
    names: global id -> VISTA3D class name.
    """

    pairs: list[list[int]]
    resolution: str
    names: dict[int, str] = field(default_factory=dict)
    new_classes: tuple[dict[str, Any], ...] = ()  # [{local, global, name}] for --new-class


def find_label_dict(bundle_dir: Path, fallback: Path | None = None) -> Path:
    """The bundle's class list: configs/label_dict.json, else label_dict.json at the bundle root, else
    `fallback` (for a bundle known to ship none, as NVIDIA's hub snapshot does)."""
    candidates = [Path(bundle_dir) / place for place in LABEL_DICT_PLACES]
    for path in [*candidates, *([fallback] if fallback is not None else [])]:
        if path.is_file():
            return path
    raise MappingError(
        f"the bundle {bundle_dir} has no VISTA3D class list (nothing was run)",
        [f"looked for {candidates[0]} and {candidates[1]}; neither is a file."],
        [
            f"Point --bundle-dir at a VISTA3D bundle with {LABEL_DICT_PLACES[0]} (name -> id), as",
            "NV-Segment-CT ships it, or leave --bundle-dir out for NVIDIA's bundle.",
        ],
    )


def load_label_dict(path: Path) -> dict[str, int]:
    """Read label_dict.json (class name -> global id) and check that it is one. Both of NVIDIA's formats:
    NV-Segment-CT's name -> id, NV-Segment-CTMR's name -> {index, datasets, CT, MRI} (family.py)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise MappingError(
            f"cannot read the VISTA3D class list {path}",
            [f"{type(exc).__name__}: {exc}"],
            [f"Point --bundle-dir at a bundle that has {LABEL_DICT_PLACES[0]} (name -> id)."],
        ) from exc
    except json.JSONDecodeError as exc:
        raise MappingError(
            f"the VISTA3D class list {path} is not valid JSON",
            [f"line {exc.lineno}, column {exc.colno}: {exc.msg}"],
            [f"Restore {path} from the bundle's release (a JSON object of name -> id)."],
        ) from exc
    if is_annotated_class_list(data):
        data = {name: entry["index"] for name, entry in data.items()}
    bad = _non_int_values(data)
    if not isinstance(data, dict) or not data or bad:
        raise MappingError(
            f"the VISTA3D class list {path} is not a JSON object of name -> integer id",
            [f"offending entries: {', '.join(bad[:5])}"] if bad else [],
            [f"Restore {path} from the bundle's release (e.g. {{\"spleen\": 3, ...}})."],
        )
    return {str(name): int(value) for name, value in data.items()}


def class_modalities(path: Path) -> dict[int, tuple[str, ...]]:
    """Per class id, the modalities its training data came from ("CT", "MRI"), as NV-Segment-CTMR's class list
    records them; {} for a class list that does not (NV-Segment-CT's: all CT). Read after load_label_dict."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not is_annotated_class_list(data):
        return {}
    return {int(entry["index"]): tuple(str(m) for m in entry.get("datasets") or ()) for entry in data.values()}


def _non_int_values(data: object) -> list[str]:
    if not isinstance(data, dict):
        return []
    return [f"{k!r}: {v!r}" for k, v in data.items() if not _is_int(v)]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_label_mapping(given: str | list) -> list[tuple[int, int]]:
    """Parse --label-mapping JSON such as '[[1, 23]]' (or the pairs a card or preset holds) into
    (local value, global id) pairs."""
    text = given if isinstance(given, str) else json.dumps(given)  # for the messages
    try:
        data = json.loads(given) if isinstance(given, str) else given
    except json.JSONDecodeError as exc:
        raise _mapping_syntax_error(text, f"not JSON: {exc.msg} at character {exc.pos}") from exc
    if not isinstance(data, list) or not data:
        raise _mapping_syntax_error(text, "expected a non-empty list of [local, global] pairs")
    pairs: list[tuple[int, int]] = []
    for item in data:
        if not isinstance(item, list) or len(item) != 2:
            raise _mapping_syntax_error(text, f"{json.dumps(item)} is not a [local, global] pair")
        if not all(_is_int(v) for v in item):
            raise _mapping_syntax_error(text, f"{json.dumps(item)} holds a non-integer value")
        if any(v < 0 for v in item):
            raise _mapping_syntax_error(text, f"{json.dumps(item)} holds a negative value")
        pairs.append((item[0], item[1]))
    _refuse_contradictions(text, pairs)
    return pairs


def _mapping_syntax_error(text: str, problem: str) -> MappingError:
    return MappingError(
        f"--label-mapping {text!r} does not parse",
        [problem],
        [f"Pass a JSON list of [local value, VISTA3D id] pairs, e.g. {MAPPING_EXAMPLE}."],
    )


def _refuse_contradictions(text: str, pairs: list[tuple[int, int]]) -> None:
    """Refuse background as a local value, a local value used twice, a global id used twice."""
    if any(local == 0 for local, _ in pairs):
        raise MappingError(
            f"--label-mapping {text!r} maps local value 0",
            ["Local value 0 is background; VISTA3D treats it as 'no class' and cannot learn it."],
            ["Map only your foreground label values (1, 2, ...)."],
        )
    for position, what in ((0, "local value"), (1, "VISTA3D id")):
        seen = [pair[position] for pair in pairs]
        twice = sorted({v for v in seen if seen.count(v) > 1})
        if twice:
            clash = [list(p) for p in pairs if p[position] in twice]
            raise MappingError(
                f"--label-mapping {text!r} uses {what} {', '.join(map(str, twice))} more than once",
                [f"conflicting pairs: {json.dumps(clash)}"],
                [f"Give each {what} exactly one pair, e.g. {MAPPING_EXAMPLE}."],
            )


def normalise_name(name: str) -> str:
    """Lower-case, strip, and collapse inner whitespace: '  Lung   Tumor ' -> 'lung tumor'."""
    return " ".join(name.split()).lower()


def resolve_target_anatomy(
    name: str, label_dict: dict[str, int], source: str = LABEL_DICT_SOURCE, flag: str = "--target-anatomy",
    fix: str = NO_NEW_CLASS,
) -> int:
    """Return the global id of a VISTA3D class name; unknown names get a did-you-mean naming `flag`."""
    by_key = {normalise_name(k): (k, v) for k, v in label_dict.items()}
    key = normalise_name(name)
    if key in by_key:
        return by_key[key][1]
    close = _closest(key, list(by_key))
    if close:
        shown = ", ".join(f"{by_key[c][0]!r} (id {by_key[c][1]})" for c in close)
        hint = f"Closest: {shown}. Classes are listed in {source}."
    else:
        hint = f"No class name is close. Classes are listed in {source}."
    raise MappingError(f"{flag} {name!r} is not a VISTA3D class.", [hint], [fix])


def _closest(key: str, names: list[str], shown: int = 5) -> list[str]:
    """Spelling neighbours first (difflib), then names that contain the key ('lung')."""
    close = difflib.get_close_matches(key, names, n=3, cutoff=0.6)
    containing = [n for n in names if key and key in n and n not in close]
    return (close + containing)[:shown]


def resolve_mapping(ask: MappingAsk, label_dict: dict[str, int], source: str = LABEL_DICT_SOURCE,
                    new_ids: range = NEW_IDS) -> ResolvedMapping:
    """The mapping the resolver chose (resolve.py applies the precedence), checked against the class list
    `source`: literal pairs parsed and their ids checked, or the anatomy name looked up."""
    if ask.literal is not None:
        literal = ask.literal
        pairs = parse_label_mapping(literal)
        resolution = f"--label-mapping {json.dumps([list(p) for p in pairs])}"
        if ask.ignored_anatomy is not None:
            resolution += f" (wins over --target-anatomy {ask.ignored_anatomy!r}, which was ignored)"
        if ask.source != "--label-mapping":
            resolution = f"{ask.source}: {resolution}"
        _refuse_unknown_ids(literal if isinstance(literal, str) else json.dumps(literal), pairs, label_dict, source,
                            allowed={local for local, _ in ask.new_classes}, new_ids=new_ids)
    elif ask.anatomy is not None:
        global_id = resolve_target_anatomy(ask.anatomy, label_dict, source)
        pairs = [(ask.local_value, global_id)]
        resolution = f"--target-anatomy {ask.anatomy!r} -> id {global_id} (local value {ask.local_value})"
    elif ask.new_classes:
        pairs, resolution = [], "--new-class"
    else:
        raise MappingError(
            "no label mapping was given (nothing was run)",
            ["The finetune needs to know which VISTA3D class each of your label values is."],
            [
                f"Pass {MAPPING_EXAMPLE},",
                f"or --target-anatomy NAME (a class in {source}; label value 1, or --user-label-idx N,",
                "maps to it).",
            ],
        )
    pairs, new = add_new_classes([tuple(p) for p in pairs], ask.new_classes, label_dict, new_ids)
    if new:
        resolution += "; new classes " + ", ".join(f"{c['local']}={c['name']!r} -> id {c['global']}" for c in new)
    supers = superclass.trained([glob for _, glob in pairs])
    if supers:
        resolution += f"; super-class {', '.join(map(str, supers))} trained as such (its subclass entry is dropped)"
    names_by_id = (superclass.names(supers) | {v: k for k, v in label_dict.items()}
                   | {c["global"]: c["name"] for c in new})
    return ResolvedMapping(
        pairs=[[local, glob] for local, glob in pairs],
        resolution=resolution,
        names={glob: names_by_id[glob] for _, glob in pairs},
        new_classes=tuple(new),
    )


def add_new_classes(pairs: list[tuple[int, int]], new_classes: tuple[tuple[int, str], ...],
                    label_dict: dict[str, int], new_ids: range = NEW_IDS
                    ) -> tuple[list[tuple[int, int]], list[dict[str, Any]]]:
    """Each --new-class on the id --label-mapping gives its value (which must be free and in the model's
    `new_ids`), else on the lowest free id there (NVIDIA's finetune notes use unused ids this way; the
    model's range comes from family.py: 133..254 on NV-Segment-CT, above CTMR's 345 on NV-Segment-CTMR)."""
    known, taken, found = set(label_dict.values()) | set(superclass.SUPER_CLASSES), {g for _, g in pairs}, []
    span = f"{new_ids.start}..{new_ids.stop - 1}"
    names = {v: k for k, v in label_dict.items()}
    for local, name in new_classes:
        given = next((g for value, g in pairs if value == local), None)
        if given is not None and (given in known or given not in new_ids):
            what = f"VISTA3D's {names.get(given, 'super-class')!r}" if given in known else f"outside {span}"
            raise MappingError(f"--new-class {local}={name}: --label-mapping puts value {local} on id {given}, {what}",
                               ["A new class needs an id no VISTA3D class uses."],
                               [f"Leave value {local} out of --label-mapping (the lowest free id is taken), or give "
                                f"it a free id in {span}."])
        if given is None:
            free = [i for i in new_ids if i not in known and i not in taken]
            if not free:
                raise MappingError(f"--new-class {local}={name}: no free id is left in {span}",
                                   ["Every id there is a VISTA3D class or another new class."], ["Map fewer new classes."])
            given = free[0]
            pairs.append((local, given))
            taken.add(given)
        found.append({"local": local, "global": given, "name": name})
    return pairs, found


def _refuse_unknown_ids(
    text: str, pairs: list[tuple[int, int]], label_dict: dict[str, int], source: str, allowed: set[int] = frozenset(),
    new_ids: range = NEW_IDS,
) -> None:
    """Ids that are no VISTA3D class, unless their local value is a --new-class (`allowed`); a super-class id
    (superclass.py) is one even where the class list leaves it out, as NV-Segment-CT's does."""
    known = set(label_dict.values()) | set(superclass.SUPER_CLASSES)
    unknown = [glob for local, glob in pairs if glob not in known and local not in allowed]
    if unknown:
        raise MappingError(
            f"--label-mapping {text!r} maps to {_ids(unknown)}, not a VISTA3D class",
            [f"VISTA3D class ids are {min(known)}..{max(known)} with gaps; see {source}."],
            [
                "--label-mapping alone cannot add a new class: map each local value onto an existing id,",
                f"e.g. {MAPPING_EXAMPLE}, or name a class VISTA3D lacks with --new-class VALUE=NAME",
                f"(it takes an unused id in {new_ids.start}..{new_ids.stop - 1}).",
            ],
        )


def _ids(values: list[int]) -> str:
    return ("id " if len(values) == 1 else "ids ") + ", ".join(map(str, values))


def local_values(mapping: ResolvedMapping) -> list[int]:
    """The local label values the mapping uses, in mapping order."""
    return [local for local, _ in mapping.pairs]
