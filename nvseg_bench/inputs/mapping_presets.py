"""Dataset presets: `--mapping-preset NAME` takes a label mapping from the bundle's `configs/label_mappings.json`.

NV-Segment-CTMR ships that file: for each public dataset it was trained on (Task06, TotalSegmentatorV2,
AMOS22, AMOS22MR, LUMIR, ...), the pairs [dataset label value, VISTA3D id] as a JSON object of name ->
list of pairs. NV-Segment-CT ships none. A preset becomes the mapping's literal pairs, checked like any
--label-mapping (labels.py: ids valid for the model; the audit: values present in the labels), and
its resolution names the file it came from, so output.json records the source. `nvseg-finetune presets`
lists them. Read as data; no torch, no monai.
"""
from __future__ import annotations

import json
from pathlib import Path

from nvseg_bench.errors import ArgumentError
from nvseg_bench.inputs.family import MAPPINGS_FILE


def presets_file(bundle_dir: Path) -> Path:
    return bundle_dir / MAPPINGS_FILE


def load(bundle_dir: Path) -> dict[str, list[list[int]]]:
    """The bundle's presets, name -> pairs; refuses a bundle without the file or with a malformed one."""
    path = presets_file(bundle_dir)
    if not path.is_file():
        raise ArgumentError(f"the bundle {bundle_dir} ships no {MAPPINGS_FILE}, so it has no dataset presets.",
                            fix=["NV-Segment-CTMR ships them: pass --model ctmr (or --bundle-dir with its NV-Segment-"
                                 "CTMR/ folder), or give the mapping yourself with --label-mapping."])
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArgumentError(f"{path} cannot be read as JSON ({exc}).",
                            fix=[f"Restore {MAPPINGS_FILE} from the bundle's release."]) from None
    if not isinstance(data, dict) or not all(_is_pairs(v) for v in data.values()):
        raise ArgumentError(f"{path} is not an object of dataset name -> [[label value, VISTA3D id], ...].",
                            fix=[f"Restore {MAPPINGS_FILE} from the bundle's release."])
    return {str(name): [list(p) for p in pairs] for name, pairs in data.items()}


def _is_pairs(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in p)
        for p in value)


def pick(bundle_dir: Path, name: str) -> tuple[list[list[int]], str]:
    """The pairs of preset `name` (matched case-insensitively) and the resolution's source text."""
    presets = load(bundle_dir)
    by_key = {key.lower(): key for key in presets}
    key = by_key.get(name.strip().lower())
    if key is None:
        raise ArgumentError(f"--mapping-preset {name!r} is not in {presets_file(bundle_dir)}.",
                            evidence=[f"presets there: {', '.join(sorted(presets))}"],
                            fix=["Pass one of those names (`nvseg-finetune presets` lists them with their pairs)."])
    if not presets[key]:
        raise ArgumentError(f"--mapping-preset {key} maps no label value in {presets_file(bundle_dir)}.",
                            fix=["Choose another preset, or give the mapping with --label-mapping."])
    return presets[key], f"--mapping-preset {key} ({presets_file(bundle_dir)})"


def listing(bundle_dir: Path) -> list[str]:
    """One line per preset for `nvseg-finetune presets`: its name, size and first pairs."""
    lines = []
    for name, pairs in sorted(load(bundle_dir).items(), key=lambda kv: kv[0].lower()):
        shown = json.dumps(pairs[:3]) + (" ..." if len(pairs) > 3 else "")
        lines.append(f"{name:<32} {len(pairs):>3} pair(s)  {shown}")
    return lines
