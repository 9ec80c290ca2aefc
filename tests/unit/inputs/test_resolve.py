"""One path from a flag to the bundle: the request built from the parser, the resolver's precedence
(flag, then fixture card, then preset) with sources, --no-auto-seg, and no import circle."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from nvseg_bench.cli import build_parser, main, to_request
from nvseg_bench.harness.runs import model_inputs
from nvseg_bench.inputs.request import CLI_ONLY, Request, uncarried
from nvseg_bench.inputs.resolve import resolve

from ...helpers import FIXTURE, REPO

PACKAGE = REPO / "nvseg_bench"


def test_a_flag_wins_over_the_card_which_wins_over_the_preset_and_each_says_where_it_came_from():
    card = {"label_mapping": [[1, 5]], "network_config": "/card/net.json", "pretrained_ckpt": "/card/model.pt"}
    resolved = resolve(Request(Path("out"), epochs=9, network_config=Path("/mine/net.json")), card, "smoke")
    assert [(resolved[k], resolved.source(k)) for k in ("epochs", "network_config", "label_mapping", "learning_rate")] == [
        (9, "--epochs"), (Path("/mine/net.json"), "--network-config"), ([[1, 5]], "fixture.json"), (1e-3, "preset smoke")]


def test_a_value_nobody_gives_is_none_from_the_default():
    resolved = resolve(Request(Path("out")), {}, "finetune")
    assert (resolved["pretrained_ckpt"], resolved.source("pretrained_ckpt")) == (None, "default")


def test_no_auto_seg_is_a_caller_value_that_beats_the_preset():
    resolved = resolve(Request(Path("out"), auto_seg=False), {}, "smoke")
    assert (resolved["auto_seg"], resolved.source("auto_seg")) == (False, "--no-auto-seg")


def test_target_anatomy_is_the_callers_label_mapping_over_the_card():
    resolved = resolve(Request(Path("out"), target_anatomy="spleen"), {"label_mapping": [[1, 3]]}, "smoke")
    assert resolved.source("label_mapping") == "--target-anatomy"


def test_every_parser_destination_reaches_the_request():
    dests = {action.dest for action in build_parser()._actions}
    assert uncarried(dests) == set() and CLI_ONLY <= dests


def test_a_flag_without_a_request_field_is_refused_at_start_up():
    args = build_parser().parse_args(["--output-dir", "out"])
    args.new_recipe_flag = 3
    with pytest.raises(RuntimeError, match="new_recipe_flag"):
        to_request(args, [])


def test_the_request_carries_the_parsed_values():
    args = build_parser().parse_args([str(FIXTURE), "--output-dir", "o", "--epochs", "3", "--no-auto-seg", "--seeds", "0,1"])
    req = to_request(args, ["x"])
    assert (req.dataset_dir, req.epochs, req.auto_seg, req.seeds) == (FIXTURE, 3, False, [0, 1])


def test_auto_seg_and_no_auto_seg_together_are_refused(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--output-dir", "o", "--auto-seg", "--no-auto-seg"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_no_auto_seg_under_smoke_stages_point_prompts_and_says_so_in_the_plan(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--smoke", "--no-auto-seg", "--dry-run", "--output-dir", str(out)]) == 0
    override = json.loads((out / "configs" / "auto_override.json").read_text())
    plan = json.loads((out / "output.json").read_text())["plan"]["rationale"]
    assert "drop_point_prob" not in override
    assert "auto_seg: class and point prompts (your --no-auto-seg wins over the preset)" in plan


def test_the_harness_cache_key_reads_the_checkpoint_the_run_resolves(tmp_path):
    card = json.loads((FIXTURE / "fixture.json").read_text())
    mine = tmp_path / "mine.pt"
    mine.write_bytes(b"x")
    assert model_inputs([str(FIXTURE), "--smoke"])["pretrained checkpoint"] == (FIXTURE / card["pretrained_ckpt"]).resolve()
    assert model_inputs([str(FIXTURE), "--smoke", "--pretrained-ckpt", str(mine)])["pretrained checkpoint"] == mine


def _imports(path: Path, module: str) -> set[str]:
    """nvseg_bench modules a module imports, at any depth in its code (lazy imports count too)."""
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rsplit(".", 1)[0]
            target = (base + "." + node.module if node.module else base) if node.level else node.module or ""
            names = [f"{target}.{a.name}" for a in node.names]
            found |= {n for n in names if n in MODULES} or ({target} & MODULES.keys())
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names} & MODULES.keys()
    return found - {module, "nvseg_bench"}


MODULES = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): p
           for p in PACKAGE.rglob("*.py") if "schema" not in p.parts}


def _cycle() -> list[str] | None:
    graph = {m: _imports(p, m) for m, p in MODULES.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt]
            if nxt not in state and (found := visit(nxt, trail + [nxt])):
                return found
        state[node] = 2
        return None

    return next((c for m in sorted(graph) if m not in state and (c := visit(m, [m]))), None)


def test_no_two_nvseg_bench_modules_import_each_other_even_lazily():
    assert _cycle() is None
