"""Presets, caller-wins settling, and the plan's choices with their rationale."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nvseg_bench.errors import ArgumentError
from nvseg_bench.planning.plan import PEAK_GPU_MB_BY_VOXELS, expected_peak_gpu_mb, make_plan, patch_for_free_mb
from nvseg_bench.inputs.preset import preset_name, read_fixture_card
from nvseg_bench.inputs.request import Request
from nvseg_bench.inputs.resolve import resolve

CPU_ENV = {"cuda_available": False, "gpu_count": 0, "host_ram_mb": 24000, "cpu_count": 2}


def gpu_env(free_mb: float, count: int = 1) -> dict:
    return {"cuda_available": True, "gpu_count": count, "gpu_free_mb": free_mb, "host_ram_mb": 128000, "cpu_count": 16}


def test_smoke_and_sanity_together_are_refused():
    with pytest.raises(ArgumentError, match="both given"):
        preset_name(smoke=True, sanity=True)


def test_caller_flags_win_over_the_preset_and_say_so():
    settings = resolve(Request(Path("out"), epochs=9), {}, "smoke")
    assert settings["epochs"] == 9 and settings.source("epochs") == "--epochs"
    assert settings["learning_rate"] == 1e-3 and settings.source("learning_rate") == "preset smoke"
    plan = make_plan(settings, CPU_ENV, dataset_mb=10)
    assert "epochs: 9 (your --epochs wins over the preset)" in plan.rationale


def test_fixture_card_paths_resolve_against_the_dataset_dir(tmp_path):
    (tmp_path / "fixture.json").write_text(json.dumps({"pretrained_ckpt": "../m/model.pt", "label_mapping": [[1, 3]]}))
    card = read_fixture_card(tmp_path)
    assert card["pretrained_ckpt"] == str((tmp_path.parent / "m" / "model.pt").resolve())
    assert resolve(Request(Path("out")), card, "smoke").source("label_mapping") == "fixture.json"


def test_a_broken_fixture_card_is_a_clear_error(tmp_path):
    (tmp_path / "fixture.json").write_text("{not json")
    with pytest.raises(ArgumentError, match="fixture.json is not valid JSON"):
        read_fixture_card(tmp_path)


@pytest.mark.parametrize("free_mb, edge", [(7000, 64), (12000, 96), (20000, 128), (40000, 160)])
def test_patch_ladder_follows_free_gpu_memory(free_mb, edge):
    assert patch_for_free_mb(free_mb) == [edge] * 3


def test_patch_ladder_tops_out_at_192_192_128():
    assert patch_for_free_mb(80000) == [192, 192, 128]


def test_user_finetune_on_cpu_plans_64_cubed_and_says_why():
    plan = make_plan(resolve(Request(Path("out")), {}, "finetune"), CPU_ENV, dataset_mb=10)
    assert plan.patch_size == [64, 64, 64] and plan.device == "cpu" and plan.amp is False
    assert any("no CUDA GPU" in line for line in plan.rationale)


def test_user_finetune_on_gpu_takes_the_ladder_patch():
    plan = make_plan(resolve(Request(Path("out")), {}, "finetune"), gpu_env(20000), dataset_mb=10)
    assert plan.patch_size == [128, 128, 128] and plan.amp is True


@pytest.mark.parametrize("voxels, peak", PEAK_GPU_MB_BY_VOXELS)
def test_expected_peak_gpu_memory_is_the_measured_value_at_each_measured_patch(voxels, peak):
    edge = round(voxels ** (1 / 3))
    assert expected_peak_gpu_mb([edge] * 3) == peak


def test_expected_peak_gpu_memory_grows_with_the_patch_between_and_beyond_the_measured_points():
    small, mid, large = (expected_peak_gpu_mb(p) for p in ([112] * 3, [192, 192, 128], [512] * 3))
    assert 5222 < small < 8704 and 15770 < mid < large


def test_a_gpu_plan_states_its_expected_peak_and_a_cpu_plan_none():
    gpu = make_plan(resolve(Request(Path("out")), {}, "sanity"), gpu_env(70000), dataset_mb=10)
    assert gpu.expected_peak_gpu_mb == 8704 and any("expected peak GPU memory: 8704 MiB" in r for r in gpu.rationale)
    assert make_plan(resolve(Request(Path("out")), {}, "finetune"), CPU_ENV, dataset_mb=10).expected_peak_gpu_mb is None


def test_a_patch_too_large_for_the_free_gpu_memory_is_warned_about_in_the_plan():
    request = Request(Path("out"), patch_size=[512, 512, 512])
    plan = make_plan(resolve(request, {}, "finetune"), gpu_env(81000), dataset_mb=10)
    warning = [line for line in plan.rationale if line.startswith("warning:")]
    assert len(warning) == 1 and "81000 MiB free" in warning[0] and "out-of-memory" in warning[0]
    fits = make_plan(resolve(Request(Path("out")), {}, "finetune"), gpu_env(81000), dataset_mb=10)
    assert not any(line.startswith("warning:") for line in fits.rationale)


def test_a_gpu_mostly_held_by_another_process_is_warned_about_in_the_plan():
    env = gpu_env(16451) | {"gpu_total_mb": 81559}  # seen on an H100: an orphaned phase held 77.7 GiB
    plan = make_plan(resolve(Request(Path("out")), {}, "sanity"), env, dataset_mb=10)
    assert any(line.startswith("warning: only 16451 of 81559 MiB") for line in plan.rationale)
    idle = make_plan(resolve(Request(Path("out")), {}, "sanity"), gpu_env(81000) | {"gpu_total_mb": 81559}, dataset_mb=10)
    assert not any(line.startswith("warning:") for line in idle.rationale)


def test_the_cpu_scores_two_windows_per_pass_and_a_gpu_keeps_the_bundle_default():
    cpu = make_plan(resolve(Request(Path("out")), {}, "finetune"), CPU_ENV, dataset_mb=10)
    gpu = make_plan(resolve(Request(Path("out")), {}, "finetune"), gpu_env(20000), dataset_mb=10)
    assert (cpu.sw_batch_size, gpu.sw_batch_size) == (2, 1)
    assert any(line.startswith("sw_batch_size: 2") for line in cpu.rationale)


def test_sanity_runs_on_one_gpu_even_when_several_are_visible():
    plan = make_plan(resolve(Request(Path("out")), {}, "sanity"), gpu_env(70000, count=4), dataset_mb=10, nproc_env="4")
    assert plan.nproc_per_node == 1 and plan.multi_gpu is False


def test_nproc_per_node_selects_multi_gpu_for_a_user_finetune():
    plan = make_plan(resolve(Request(Path("out")), {}, "finetune"), gpu_env(70000, count=2), dataset_mb=10, nproc_env="2")
    assert plan.nproc_per_node == 2 and plan.multi_gpu is True


def test_cache_rate_shrinks_when_the_dataset_outgrows_host_ram():
    env = dict(CPU_ENV, host_ram_mb=1000)
    plan = make_plan(resolve(Request(Path("out")), {}, "finetune"), env, dataset_mb=800)
    assert plan.train_dataset_cache_rate == pytest.approx(0.5)


def plan_with(precision: str | None, env: dict) -> object:
    return make_plan(resolve(Request(Path("out"), precision=precision), {}, "finetune"), env, dataset_mb=10)


def test_a_gpu_trains_with_fp16_autocast_and_a_cpu_in_fp32_unless_told():
    assert (plan_with(None, gpu_env(20000)).precision, plan_with(None, gpu_env(20000)).amp) == ("fp16", True)
    assert (plan_with(None, CPU_ENV).precision, plan_with(None, CPU_ENV).amp) == ("fp32", False)
    bf16 = plan_with("bf16", gpu_env(20000))
    assert (bf16.precision, bf16.amp) == ("bf16", True)
    assert "precision: bf16 autocast (your --precision wins over the preset)" in bf16.rationale
    assert plan_with("fp32", gpu_env(20000)).amp is False


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_mixed_precision_without_a_gpu_is_refused_with_the_fix(precision):
    with pytest.raises(ArgumentError, match=f"--precision {precision} needs a CUDA GPU"):
        plan_with(precision, CPU_ENV)


@pytest.mark.parametrize("precision, dtype", [("fp16", "$torch.float16"), ("bf16", "$torch.bfloat16"), ("fp32", None)])
def test_the_precision_reaches_the_trainer_and_the_evaluator_through_the_override(precision, dtype, tmp_path):
    from nvseg_bench.stage.configs import override_values

    plan = plan_with(precision, gpu_env(20000))
    values = override_values(plan, bundle_dir=tmp_path, dataset_dir=tmp_path, datalist=tmp_path / "d.json",
                             out_dir=tmp_path, pretrained=tmp_path / "m.pt", pairs=[[1, 3]], auto_seg=True)
    assert values["amp"] is values["validate#evaluator#amp"] is (dtype is not None)
    assert values.get("train#trainer#amp_kwargs") == values.get("validate#evaluator#amp_kwargs") == \
        ({"dtype": dtype} if dtype else None)


def test_a_non_finite_loss_names_the_precision_flag_as_the_fix():
    from nvseg_bench.output.result import loss_warning

    trace = {"train_loss_finite": False, "train_iterations": 12}
    assert "--precision bf16 (or fp32)" in loss_warning(trace, "fp16")
    assert "--precision fp32" in loss_warning(trace, "bf16")
    assert loss_warning(dict(trace, train_loss_finite=True), "fp16") is None
