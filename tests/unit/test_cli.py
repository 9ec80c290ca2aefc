"""The command line: fast help, the seed's argument surface, and bad arguments as exit 2."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nvseg_bench.cli import build_parser, main

from ..helpers import FIXTURE, REPO


def test_help_answers_without_importing_torch_or_monai():
    code = ("import sys; from nvseg_bench.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('LOADED', sorted(m for m in ('torch', 'monai') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "LOADED []" in out and "--output-dir" in out


def test_the_seed_argument_surface_parses():
    args = build_parser().parse_args([
        "data", "--output-dir", "o", "--smoke", "--auto-seg", "--dataset-dir", "data", "--datalist", "d.json",
        "--target-anatomy", "lung tumor", "--label-mapping", "[[1, 23]]", "--patch-size", "[96,96,96]",
        "--epochs", "3", "--learning-rate", "1e-4", "--cache-rate", "0.5", "--skip-formal-eval"])
    assert args.patch_size == [96, 96, 96] and args.epochs == 3 and args.cache_rate == 0.5
    assert build_parser().parse_args(["x", "--output-dir", "o", "--sanity"]).sanity


@pytest.mark.parametrize("argv, message", [
    (["--patch-size", "[64,64]"], "three integers"),
    (["--epochs", "0"], "at least 1"),
    (["--learning-rate", "-1"], "above 0"),
    (["--cache-rate", "2"], "between 0 and 1"),
    (["--nsd-tolerance-mm", "0"], "above 0"),
])
def test_bad_recipe_values_exit_2_naming_the_value(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main([str(FIXTURE), "--output-dir", str(tmp_path / "o"), *argv])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_an_unknown_anatomy_exits_2_with_a_suggestion_and_no_traceback(capsys, tmp_path):
    code = main([str(FIXTURE), "--output-dir", str(tmp_path / "o"), "--target-anatomy", "spleeen"])
    err = capsys.readouterr().err
    assert code == 2 and "Closest: 'spleen' (id 3)" in err and "Traceback" not in err


def test_an_output_dir_inside_the_dataset_is_refused(capsys):
    code = main([str(FIXTURE), "--output-dir", str(FIXTURE / "runs"), "--smoke"])
    assert code == 2 and "lies inside the dataset dir" in capsys.readouterr().err
    assert not (FIXTURE / "runs").exists()


def test_a_missing_dataset_is_refused(capsys, tmp_path):
    code = main([str(tmp_path / "nope"), "--output-dir", str(tmp_path / "o"), "--smoke"])
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_two_different_datasets_are_refused(capsys, tmp_path):
    code = main([str(FIXTURE), "--dataset-dir", str(tmp_path), "--output-dir", str(tmp_path / "o")])
    assert code == 2 and "two datasets were given" in capsys.readouterr().err


def test_scripts_run_finetune_is_the_same_cli():
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "run_finetune.py"), "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith("usage: nvseg-finetune")


def test_python_dash_m_is_the_same_cli():
    out = subprocess.run([sys.executable, "-m", "nvseg_bench", "--version"], capture_output=True, text=True,
                         check=True, cwd=REPO).stdout
    assert out.startswith("nvseg-finetune ")


def test_dry_run_stages_configs_prints_commands_and_starts_no_phase(tmp_path, capsys):
    from nvseg_bench.output.write import schema_errors

    out = tmp_path / "out"
    code = main([str(FIXTURE), "--smoke", "--dry-run", "--output-dir", str(out)])
    printed = capsys.readouterr().out
    doc = json.loads((out / "output.json").read_text())
    assert code == 0 and doc["status"] == "planned" and schema_errors(doc) == []
    assert "phase finetune: (cd" in printed and "-m monai.bundle run" in printed
    assert (out / "configs" / "auto_override.json").is_file() and not (out / "logs").exists()
    assert doc["invocation"]["phase_return_codes"] == {} and doc["plan"]["rationale"][0] == "preset: smoke"
