"""stage/overrides.py: the one table of override keys, from which the staging, the preprocessing cache's key
and the kept evaluation's key are all derived."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from nvseg_bench.inputs.request import Request
from nvseg_bench.inputs.resolve import resolve
from nvseg_bench.phases import eval_memo
from nvseg_bench.planning.plan import make_plan
from nvseg_bench.stage import overrides
from nvseg_bench.stage.configs import override_values
from nvseg_bench.stage.preprocess_cache import chain_key

CPU = {"cuda_available": False, "gpu_count": 0, "host_ram_mb": 24000, "cpu_count": 2}
GPU = {"cuda_available": True, "gpu_count": 1, "gpu_free_mb": 40000, "gpu_total_mb": 80000, "host_ram_mb": 64000,
       "cpu_count": 16}


def _values(tmp_path: Path, env: dict, recipe: dict | None = None, auto_seg: bool = True) -> dict:
    plan = make_plan(resolve(Request(Path("out")), {}, "finetune"), env, dataset_mb=1)
    return override_values(plan, bundle_dir=tmp_path, dataset_dir=tmp_path, datalist=tmp_path / "d.json",
                           out_dir=tmp_path / "out", pretrained=tmp_path / "m.pt", pairs=[[1, 3]], auto_seg=auto_seg,
                           recipe=recipe)


@pytest.mark.parametrize("env, recipe, auto_seg", [(CPU, None, True), (GPU, {"seed": 3}, False)])
def test_every_key_the_staging_writes_is_described_in_the_table(tmp_path, env, recipe, auto_seg):
    values = _values(tmp_path, env, recipe, auto_seg)
    assert overrides.unknown(values) == []
    assert ("train#trainer#amp_kwargs" in values) is bool(env["cuda_available"])  # both plans' keys were written


def test_the_cache_keys_read_their_key_sets_from_the_table():
    assert "learning_rate" in overrides.not_preprocessing() and "resample_to_spacing" not in overrides.not_preprocessing()
    assert "learning_rate" in overrides.training_only() and "sw_overlap" not in overrides.training_only()
    assert overrides.training_only() <= overrides.not_preprocessing()


def test_a_new_recipe_flag_is_one_row_of_the_table(tmp_path, monkeypatch):
    """The row alone stages the value, keeps it out of both cache keys (only training reads it), and a row that
    says the preprocessing head reads it puts it into the preprocessing cache's key."""
    row = overrides.Key("num_patches_per_image", overrides.ONLY_TRAINING, "random crops per case",
                        recipe="patches_per_image")
    monkeypatch.setattr(overrides, "TABLE", (*overrides.TABLE, row))
    monkeypatch.setattr(overrides, "KEYS", {**overrides.KEYS, row.name: row})
    one, two = (_values(tmp_path, CPU, {"patches_per_image": n}) for n in (1, 4))
    assert one["num_patches_per_image"] == 1 and two["num_patches_per_image"] == 4
    assert overrides.unknown(two) == []
    config = tmp_path / "train.json"
    config.write_text("{}")
    assert chain_key([config], one) == chain_key([config], two)
    staged = tmp_path / "out" / "configs"
    staged.mkdir(parents=True)
    digests = []
    for values in (one, two):
        (staged / "auto_override.json").write_text(json.dumps(values))
        digests.append(eval_memo._config_digest(staged / "auto_override.json", tmp_path / "out"))
    assert digests[0] == digests[1]
    read_by_all = replace(row, readers=overrides.ALL)
    monkeypatch.setattr(overrides, "TABLE", (*overrides.TABLE[:-1], read_by_all))
    monkeypatch.setattr(overrides, "KEYS", {**overrides.KEYS, row.name: read_by_all})
    assert chain_key([config], one) != chain_key([config], two)
