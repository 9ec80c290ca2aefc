"""The resolver: every value a caller may override, with the one rule and where each value came from.

The rule: the caller's flag wins over the dataset's fixture card, which wins over the preset. For the
label mapping, --label-mapping also wins over --target-anatomy (which then names one class for one
local value, --user-label-idx or 1); `MappingAsk` carries that outcome to labels.py, which checks
and looks up, and to the output's resolution record. The plan (its rationale lines), the staging (the
bundle override) and the harness's cache key all read the `Resolved` this module returns; nothing
else re-reads the card or re-applies the rule.

Adding a recipe flag: a parser argument (cli.py), a `Request` field (request.py), a key in
`RESOLVED` here, and its row in stage/overrides.py (docs/contributing.md walks through it).
No torch, no monai.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nvseg_bench.inputs.preset import FIXTURE_CARD, PRESETS, choose_preset, read_fixture_card
from nvseg_bench.inputs.request import Request

# the overridable values, in the order the plan reports them; CARD_KEYS may also come from fixture.json
RESOLVED = ("epochs", "learning_rate", "patch_size", "cache_rate", "auto_seg", "sw_overlap", "val_interval",
            "label_mapping", "pretrained_ckpt", "network_config", "model_name", "seed", "precision")
CARD_KEYS = frozenset({"label_mapping", "pretrained_ckpt", "network_config", "model_name"})


@dataclass(frozen=True)
class Value:
    """One resolved value and its source: '--epochs', '--no-auto-seg', 'fixture.json', 'preset smoke', 'default'."""

    value: Any
    source: str

    @property
    def from_caller(self) -> bool:
        return self.source.startswith("--")


@dataclass(frozen=True)
class MappingAsk:
    """What the label mapping is to be, after the rule: literal pairs (as the flag, the card or the preset
    gave them) or a class name to look up for `local_value`; neither when nothing gave one."""

    literal: str | list | None
    anatomy: str | None
    local_value: int
    source: str  # '--label-mapping', '--target-anatomy', 'fixture.json', 'preset smoke', 'default'
    ignored_anatomy: str | None = None  # --target-anatomy given beside --label-mapping, which wins
    new_classes: tuple[tuple[int, str], ...] = ()  # --new-class VALUE=NAME: classes VISTA3D lacks


@dataclass(frozen=True)
class Resolved:
    """The run's preset (and why it was chosen), every overridable value with its source, and the label
    mapping as the rule decided it."""

    preset: str
    preset_why: str
    values: dict[str, Value]
    mapping: MappingAsk

    def __getitem__(self, key: str) -> Any:
        return self.values[key].value

    def source(self, key: str) -> str:
        return self.values[key].source

    def to_json(self) -> dict[str, dict[str, Any]]:
        return {key: {"value": _plain(v.value), "source": v.source} for key, v in self.values.items()}


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def _flag(key: str, value: Any) -> str:
    name = key.replace("_", "-")
    return f"--no-{name}" if value is False else f"--{name}"


def _from_request(key: str, req: Request) -> Value | None:
    if key == "label_mapping" and req.label_mapping is None and req.target_anatomy is not None:
        return Value(None, "--target-anatomy")  # _mapping_ask names the class; labels.py looks it up
    value = getattr(req, key, None)
    if value is None:
        return None
    return Value(Path(value) if key == "network_config" else value, _flag(key, value))


def resolve(req: Request, card: dict[str, Any], preset: str, why: str = "") -> Resolved:
    """Flag, else fixture card, else preset, else None ('default'), for every key in RESOLVED."""
    values: dict[str, Value] = {}
    for key in RESOLVED:
        given = _from_request(key, req)
        if given is not None:
            values[key] = given
        elif key in CARD_KEYS and card.get(key) is not None:
            values[key] = Value(Path(card[key]) if key == "network_config" else card[key], FIXTURE_CARD)
        elif key in PRESETS[preset]:
            values[key] = Value(PRESETS[preset][key], f"preset {preset}")
        else:
            values[key] = Value(None, "default")
    return Resolved(preset, why, values, _mapping_ask(req, values["label_mapping"]))


def _mapping_ask(req: Request, chosen: Value) -> MappingAsk:
    local, new = req.user_label_idx or 1, tuple(req.new_classes or ())
    if chosen.source == "--label-mapping":
        return MappingAsk(req.label_mapping, None, local, chosen.source, req.target_anatomy, new)
    if chosen.source == "--target-anatomy":
        return MappingAsk(None, req.target_anatomy, local, chosen.source, new_classes=new)
    if new:  # the new classes alone: the card's or the preset's pairs do not join them
        return MappingAsk(None, None, local, "--new-class", new_classes=new)
    return MappingAsk(chosen.value, None, local, chosen.source, new_classes=new)


def resolve_for(req: Request, dataset_dir: Path) -> Resolved:
    """The preset a dataset dir and the preset flags choose, then `resolve` with that dir's card."""
    card = read_fixture_card(dataset_dir)
    preset, why = choose_preset(req.smoke, req.sanity, dataset_dir, card)
    return resolve(req, card, preset, why)
