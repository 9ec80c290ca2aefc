"""The skill's own files: SKILL.md, skill_manifest.yaml and their agreement with the CLI and pyproject."""
from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys

import jsonschema
import pytest
import yaml

from eval_engine.run_trusted import build_parser as verifier_parser
from eval_engine.run_trusted import skill_paths
from nvseg_bench import __version__
from nvseg_bench.cli import build_parser

from ..helpers import REPO

MANIFEST = yaml.safe_load((REPO / "skill_manifest.yaml").read_text())
SEED_INPUTS = {"dataset_dir", "datalist", "target_anatomy", "label_mapping", "smoke", "sanity", "auto_seg",
               "skip_formal_eval", "user_label_idx"}  # the seed's inputs and the peer's --user-label-idx


def cli_flags() -> dict[str, str]:
    """Every long option of the CLI -> the argparse dest it fills."""
    return {opt: action.dest for action in build_parser()._actions for opt in action.option_strings
            if opt.startswith("--")}


def test_the_manifest_validates_against_its_schema():
    schema = json.loads((REPO / "nvseg_bench" / "schema" / "skill_manifest.schema.json").read_text())
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(MANIFEST)) == []


def test_every_declared_input_is_a_real_flag_and_back():
    flags = cli_flags()
    declared = MANIFEST["inputs"]
    assert set(declared) == SEED_INPUTS
    for name, spec in declared.items():
        assert flags.get(spec["flag"]) == name, (name, spec["flag"])
    for name in SEED_INPUTS:  # and back: the flag named after each seed input is the declared one
        assert declared[name]["flag"] == "--" + name.replace("_", "-")


def test_declared_dependencies_equal_pyprojects_pins():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert MANIFEST["runtime"]["dependencies"] == project["dependencies"]
    assert MANIFEST["runtime"]["python"] == project["requires-python"]
    assert "version" in project["dynamic"]  # pyproject reads nvseg_bench.__version__
    assert MANIFEST["version"] == __version__


def test_the_declared_entrypoint_and_result_schema_exist():
    entry, schema = skill_paths(REPO)
    assert entry == REPO / MANIFEST["runtime"]["entrypoint"] and entry.is_file()
    assert schema.is_file() and json.loads(schema.read_text())["title"].startswith("nvseg-bench run result")


def test_the_declared_peer_schema_is_the_one_output_json_is_checked_against():
    from nvseg_bench.output.write import PEER_SCHEMA_PATH

    assert REPO / MANIFEST["outputs"]["result_json"]["peer_schema"] == PEER_SCHEMA_PATH


def skill_md() -> tuple[dict, str]:
    text = (REPO / "SKILL.md").read_text()
    front, body = re.match(r"^---\n(.*?)\n---\n(.*)$", text, re.S).groups()
    return yaml.safe_load(front), body


def test_skill_md_front_matter_names_the_skill():
    front, _ = skill_md()
    assert front["name"] == MANIFEST["name"] and front["version"] == MANIFEST["version"]
    assert front["license"] == MANIFEST["license"] and len(front["description"]) > 40


def commands() -> list[list[str]]:
    _, body = skill_md()
    blocks = re.findall(r"```bash\n(.*?)```", body, re.S)
    lines = [line for block in blocks for line in block.strip().splitlines()]
    return [shlex.split(line) for line in lines]


def pytest_accepts(args: list[str]) -> None:
    """pytest with the plugin knows every option (collecting only; no run starts, no report is written)."""
    args = [a for a in args if not a.startswith(("--nvseg-report", "--junitxml"))]
    proc = subprocess.run([sys.executable, "-m", "pytest", *args, "--collect-only", "-q",
                           "tests/harness/test_gates.py"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_skill_md_commands_parse_as_written():
    found = commands()
    assert len(found) >= 6
    for argv in found:
        if argv[:2] == ["python", "scripts/run_finetune.py"]:
            build_parser().parse_args(argv[2:])  # SystemExit(2) on a flag the CLI does not know
        elif argv[:3] == ["python", "-m", "eval_engine.run_trusted"]:
            verifier_parser().parse_args(argv[3:])
        elif argv[:3] == ["python", "-m", "pytest"]:
            pytest_accepts(argv[3:])
        else:
            assert argv[:2] == ["pip", "install"], argv


def test_the_smoke_command_in_skill_md_runs_as_written_with_dry_run(tmp_path):
    smoke = next(argv for argv in commands() if "--smoke" in argv)
    smoke[smoke.index("--output-dir") + 1] = str(tmp_path / "out")
    proc = subprocess.run([sys.executable, *smoke[1:], "--dry-run"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "out" / "output.json").read_text())["status"] == "planned"


@pytest.mark.slow
def test_the_verifier_finds_a_skill_that_lives_in_another_folder(tmp_path):
    skill = tmp_path / "elsewhere" / "nv-segment-ct-finetune"
    shutil.copytree(REPO, skill, ignore=shutil.ignore_patterns(".git", ".venv", "runs", "__pycache__", ".pytest_cache"))
    proc = subprocess.run([sys.executable, "-m", "eval_engine.run_trusted", str(skill), "--fixture",
                           str(skill / "fixtures" / "spleen_micro"), "--out", str(tmp_path / "trusted")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    summary = json.loads((tmp_path / "trusted" / "trust_summary.json").read_text())
    run = next(f for f in summary["findings"] if f["name"] == "fixture_run")
    assert run["numbers"]["command"][1] == str(skill / "scripts" / "run_finetune.py")
    assert summary["verdict"] == "passed"
