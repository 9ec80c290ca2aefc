"""What the benchmarks share: the bundle driven by hand (three `monai.bundle run` calls with only the
recipe on the command line, as a user types them) and a randomly initialised checkpoint. Imported by
scale_bench.py, gpu_check.py, full_rehearsal.py and sw_batch_bench.py; it imports none of them."""
from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from nvseg_bench.phases.runner import PhaseSpec, bundle_command, bundle_env, command_prefix, run_phase  # noqa: E402

BUNDLE = REPO / "bundle"
MICRO = REPO / "fixtures" / "micro_model"
MAPPING = [[1, 3]]  # spleen


def random_checkpoint(path: Path, micro: bool) -> None:
    import torch
    from monai.bundle import ConfigParser

    torch.manual_seed(0)
    parser = ConfigParser()
    parser.read_config([str(REPO / "bundle" / "configs" / "train.json")] + ([str(MICRO / "network.json")] if micro else []))
    torch.save(parser.get_parsed_content("network_def").state_dict(), path)


def hand_values(data: Path, datalist: Path, patch: int, recipe: dict[str, str] | None = None) -> dict[str, str]:
    """The command-line values of the by-hand runs. `monai.bundle run` reads them with fire, so a boolean is
    spelled as Python writes it: "False" is False, "false" a string, and a true one in `not @x`."""
    edge = json.dumps([patch] * 3)
    return {"dataset_dir": str(data), "data_list_file_path": str(datalist), "fold": "0",
            "label_mappings": json.dumps({"default": MAPPING}), "patch_size": edge, "patch_size_valid": edge,
            "drop_label_prob": "0.0", "drop_point_prob": "1.0",
            # upstream turns TensorBoard and MLflow on; a user without them installed turns them off, as we do
            "use_tensorboard": "False", "use_mlflow": "False"} | (recipe or {})


def by_hand(work: Path, data: Path, datalist: Path, ckpt: Path, network: Path | None, *, epochs: int, patch: int,
            recipe: dict[str, str] | None = None, budget: float | None = None,
            device_env: dict[str, str] | None = None, bundle: Path = BUNDLE) -> dict:
    """The three bundle runs a user would type, timed with the wrapper's own phase runner (GPU sampled).
    `recipe` adds overrides beyond the spleen mapping; a phase gets at most what is left of `budget`."""
    out = work / "by_hand"
    out.mkdir(parents=True, exist_ok=True)
    configs = bundle / "configs"
    tail = [network] if network else []
    train = [configs / "train.json", configs / "train_continual.json", *tail]
    evaluate = [configs / "train.json", configs / "train_continual.json", configs / "evaluate.json", *tail]
    values = hand_values(data, datalist, patch, recipe)
    finetuned = out / "checkpoints" / "model_finetune.pt"
    calls = {
        "eval_pretrained": (evaluate, {"ckpt_path": str(ckpt), "output_dir": str(out / "eval_pretrained")}),
        "finetune": (train, {"epochs": str(epochs), "finetune_model_path": str(ckpt),
                             "ckpt_dir": str(out / "checkpoints"), "output_dir": str(out / "train")}),
        "eval_finetuned": (evaluate, {"ckpt_path": str(finetuned), "output_dir": str(out / "eval_finetuned")}),
    }
    env = bundle_env(bundle, allocator=False) | (device_env or {})  # as a user types it: no tuning
    started, phases = time.monotonic(), {}
    for index, (name, (stack, extra)) in enumerate(calls.items(), start=1):
        left = None if budget is None else budget - (time.monotonic() - started)
        if left is not None and left < 30:
            break
        cmd = bundle_command(command_prefix(1), [str(p) for p in stack], bundle, values | extra)
        spec = PhaseSpec(name, index, 3, cmd, out / f"{name}.log")
        result = run_phase(spec, cwd=out, env=env, timeout=left, stream=io.StringIO())
        phases[name] = {"seconds": result.seconds, "return_code": result.return_code, "failure": result.failure,
                        "peak_gpu_mb": result.peak_gpu_mb, **result.timing(), **result.gpu}
    complete = len(phases) == 3 and all(p["return_code"] == 0 for p in phases.values())
    return {"wall_seconds": round(time.monotonic() - started, 1), "complete": complete, "phases": phases}
