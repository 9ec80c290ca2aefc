"""`--bundle-dir` on a bundle in the upstream NV-Segment-CT layout: class list under configs/, no
root label_dict.json, no models/, its own `scripts` package and a logging config that writes
training.log into the working directory (built by fixtures/make_upstream_bundle.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nvseg_bench.cli import main
from nvseg_bench.errors import MappingError
from nvseg_bench.inputs.labels import find_label_dict
from nvseg_bench.output.write import schema_errors

from ..helpers import FIXTURE, REPO, tree_digest

sys.path.insert(0, str(REPO / "fixtures"))
import make_upstream_bundle  # noqa: E402

MICRO = REPO / "fixtures" / "micro_model"
MICRO_ARGS = ["--pretrained-ckpt", str(MICRO / "model.pt"), "--network-config", str(MICRO / "network.json")]


@pytest.fixture
def upstream(tmp_path) -> Path:
    return make_upstream_bundle.build(tmp_path / "NV-Segment-CT")


def _class_list(root: Path, where: str, classes: dict[str, int]) -> Path:
    path = root / where
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(classes))
    return path


def _smoke(upstream: Path, out: Path, *extra: str) -> list[str]:
    return [str(FIXTURE), "--smoke", "--bundle-dir", str(upstream), *MICRO_ARGS, "--output-dir", str(out), *extra]


def test_the_upstream_copy_keeps_its_class_list_under_configs_and_has_no_model(upstream):
    assert (upstream / "configs" / "label_dict.json").is_file()
    assert not (upstream / "label_dict.json").exists() and not (upstream / "models").exists()
    assert (upstream / "scripts" / "__init__.py").is_file() and (upstream / "configs" / "logging.conf").is_file()


def test_the_class_list_under_configs_wins_over_one_at_the_bundle_root(tmp_path):
    under_configs = _class_list(tmp_path, "configs/label_dict.json", {"spleen": 3})
    _class_list(tmp_path, "label_dict.json", {"liver": 1})
    assert find_label_dict(tmp_path) == under_configs


def test_a_class_list_at_the_bundle_root_is_used_when_configs_has_none(tmp_path):
    (tmp_path / "configs").mkdir()
    at_root = _class_list(tmp_path, "label_dict.json", {"spleen": 3})
    assert find_label_dict(tmp_path) == at_root


def test_a_bundle_without_a_class_list_is_refused_naming_both_places(tmp_path):
    (tmp_path / "configs").mkdir()
    with pytest.raises(MappingError) as caught:
        find_label_dict(tmp_path)
    text = caught.value.render()
    assert str(tmp_path / "configs" / "label_dict.json") in text and str(tmp_path / "label_dict.json") in text


def test_a_bundle_without_a_class_list_borrows_the_builtin_one_and_the_plan_says_so(upstream, tmp_path, capsys):
    # a folder downloaded from the hub repo ships no class list; the builtin one holds the same classes
    (upstream / "configs" / "label_dict.json").unlink()
    assert main(_smoke(upstream, tmp_path / "out", "--dry-run")) == 0
    doc = json.loads((tmp_path / "out" / "output.json").read_text())
    builtin = REPO / "bundle" / "configs" / "label_dict.json"
    assert doc["input"]["label_dict_path"] == str(builtin)
    assert any(line.startswith(f"bundle: --bundle-dir {upstream}; class list {builtin} (the bundle ships none")
               for line in doc["plan"]["rationale"])


def test_dry_run_through_the_upstream_copy_records_the_class_list_it_used(upstream, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_smoke(upstream, out, "--dry-run")) == 0, capsys.readouterr().err
    doc = json.loads((out / "output.json").read_text())
    assert doc["input"]["label_dict_path"] == str(upstream / "configs" / "label_dict.json")
    assert schema_errors(doc) == []


def test_a_misspelt_anatomy_cites_the_class_list_of_the_bundle_used(upstream, tmp_path, capsys):
    code = main(_smoke(upstream, tmp_path / "out", "--dry-run", "--target-anatomy", "spleeen"))
    err = capsys.readouterr().err
    assert code == 2 and f"Classes are listed in {upstream / 'configs' / 'label_dict.json'}." in err


@pytest.mark.slow
def test_the_smoke_preset_runs_through_the_upstream_copy_and_leaves_it_untouched(upstream, tmp_path):
    before = tree_digest(upstream)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # the wrapper must set it
    proc = subprocess.run([sys.executable, "-m", "nvseg_bench", *_smoke(upstream, out)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((out / "output.json").read_text())
    assert doc["output"]["formal_pretrained_val_dice"] is not None
    assert doc["output"]["formal_finetuned_val_dice"] is not None
    assert doc["input"]["label_dict_path"] == str(upstream / "configs" / "label_dict.json")
    assert tree_digest(upstream) == before
    assert not list(upstream.rglob("__pycache__")) and not (upstream / "training.log").exists()
    assert (out / "training.log").is_file()  # upstream's logging config wrote into the working dir, OUT
