"""Make the stored evidence packs the gate tests judge, from one real smoke run.

    PYTHONPATH=. python tests/packs/make_packs.py RUN_DIR
    (RUN_DIR: the --output-dir of `python -m nvseg_bench fixtures/spleen_micro --smoke`)

Each pack keeps the run's output.json (its own paths written as @PACK@, this checkout as @REPO@),
its predictions and logs (the verifier recomputes Dice and the trajectory from them), and replaces
the two checkpoints with tiny ones, so a pack is about 40 kB:
  smoke/         the finetuned checkpoint differs from the pretrained one in one tensor;
  smoke_epoch0/  both are the same, and output.json reports the epoch-0 trap.
The comparison fields come from the project's own compare_checkpoints (in output.json's shape), and manifest.json keeps
only the run's `inputs` (tests/helpers.py `materialize_pack` hashes the files anew). Re-run this
script when output.json's shape changes.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch

from nvseg_bench.evidence.collect import compare_checkpoints
from nvseg_bench.output.peer import checkpoint_comparisons
from nvseg_bench.store.files import sha256_file

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FINETUNED = "checkpoints/model_finetune.pt"
KEPT = ("eval_pretrained/*_seg.nii.gz", "eval_finetuned/*_seg.nii.gz", "eval_*/val_mean_dice_raw.csv", "eval_*/metrics.csv",
        "logs/*.log")  # what the verifier re-reads
PRETRAINED = "pretrained.pt"
EPOCH0_REASON = ("no epoch beat the epoch-0 score, so the best checkpoint holds the pretrained weights "
                 "(epoch-0 trap); keep the pretrained checkpoint")


def tiny_state(changed: bool) -> dict[str, torch.Tensor]:
    state = {"conv.weight": torch.arange(8, dtype=torch.float32).reshape(2, 4), "conv.bias": torch.zeros(2)}
    if changed:
        state["conv.bias"] = torch.tensor([0.0, 0.25])
    return state


def templated(value: object, run_dir: str) -> object:
    """Every string with the run's paths in it, written with @PACK@ / @REPO@ instead."""
    if isinstance(value, dict):
        return {k: templated(v, run_dir) for k, v in value.items()}
    if isinstance(value, list):
        return [templated(v, run_dir) for v in value]
    if isinstance(value, str):
        return value.replace(run_dir, "@PACK@").replace(str(REPO), "@REPO@")
    return value


def make(run_dir: Path, name: str, changed: bool) -> None:
    pack = HERE / name
    shutil.rmtree(pack, ignore_errors=True)
    (pack / Path(FINETUNED).parent).mkdir(parents=True)
    for pattern in KEPT:
        for path in run_dir.glob(pattern):
            (pack / path.parent.relative_to(run_dir)).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, pack / path.relative_to(run_dir))
    torch.save(tiny_state(False), pack / PRETRAINED)
    torch.save(tiny_state(changed), pack / FINETUNED)
    doc = json.loads((run_dir / "output.json").read_text())
    doc.pop("gates", None)
    out = doc["output"]
    finetuned, pretrained = str(run_dir / FINETUNED), str(run_dir / PRETRAINED)
    comparison = compare_checkpoints(pack / FINETUNED, pack / PRETRAINED)
    comparison.update(finetuned=finetuned, pretrained=pretrained)
    out.update(finetuned_ckpt=finetuned, pretrained_ckpt=pretrained,
               checkpoint_comparisons_to_pretrained=checkpoint_comparisons(comparison),
               finetuned_ckpt_matches_pretrained_weights=comparison["identical"])
    if changed:
        out["recommended_ckpt"] = finetuned if out.get("recommended_is_finetuned") else pretrained
    else:
        out.update(recommended_ckpt=pretrained, recommended_is_finetuned=False, decision_reason=EPOCH0_REASON)
    inputs = json.loads((run_dir / "manifest.json").read_text())["inputs"]
    inputs["pretrained_ckpt"] = {"path": pretrained, "sha256": sha256_file(pack / PRETRAINED)}
    (pack / "output.json").write_text(json.dumps(templated(doc, str(run_dir)), indent=2) + "\n")
    (pack / "manifest.json").write_text(json.dumps({"inputs": templated(inputs, str(run_dir))}, indent=2) + "\n")
    print(f"{pack}: {sum(p.stat().st_size for p in pack.rglob('*') if p.is_file())} bytes")


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not (Path(argv[0]) / "output.json").is_file():
        print(__doc__, file=sys.stderr)
        return 2
    run_dir = Path(argv[0]).resolve()
    make(run_dir, "smoke", changed=True)
    make(run_dir, "smoke_epoch0", changed=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
