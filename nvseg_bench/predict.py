"""`nvseg-finetune predict RUN_DIR IMAGE_OR_DIR... --output-dir OUT`: segment new scans with a run's checkpoint.

Reads the run folder as data (run_folder.py: output.json's plain values, the network definition checked
to carry no code, the checkpoint inside the folder verified as a plain state dict), runs the bundle's own
`configs/inference.json` as one `monai.bundle run` phase over every image (prompted with the mapped
VISTA3D ids; the wrapper never infers itself), then writes one label map per image in that image's own
grid and affine, holding the user's local label values, and OUT/predictions.json: per image its path and
sha256, the label map, voxels and mL per class, and the anatomy plausibility verdict. Inputs meet the
data contract's limits (readable 3D NIfTI, finite voxels, usable spacing); bad input is exit 2 before
the phase. No monai; torch only for a checkpoint of a format this tool does not read itself.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import nibabel
import numpy as np

from nvseg_bench.phase_names import PREDICT
from nvseg_bench import PROG, paths
from nvseg_bench.errors import EXIT_OK, EXIT_PHASE_FAILED, ArgumentError, DataContractError
from nvseg_bench.inputs import anatomy, superclass
from nvseg_bench.inputs.family import MODALITIES
from nvseg_bench.inputs.audit import components, load_hashed, nonfinite_count
from nvseg_bench.inputs.dataset import UNUSABLE, case_name, spacing_problem, voxel_spacing, voxels
from nvseg_bench import run_folder
from nvseg_bench.phases.runner import PhaseSpec, bundle_command, bundle_env, command_prefix, run_phase
from nvseg_bench.run_folder import RunValues
from nvseg_bench.stage.inference import Inference, stage_inference
from nvseg_bench.store.files import sha256_file, write_atomic

RAW = "raw"  # OUT/raw/NAME_seg.nii.gz: the bundle's label maps, VISTA3D ids
RESULT = "predictions.json"


@dataclass(frozen=True)
class Model:
    """What predict runs: the bundle by this tool's rule, the run's plain values and checked network, one checkpoint."""

    run_dir: Path
    checkpoint: Path
    which: str  # recommended | pretrained | a path
    bundle_dir: Path
    network: dict[str, Any] | None  # the run's network definition, checked as plain data (run_folder.network)
    values: RunValues
    modality: str | None = None  # the run's input.modality (inputs/modality.py); None for a run before the axis

    @property
    def pairs(self) -> list[list[int]]:
        return self.values.pairs

    @property
    def names(self) -> dict[int, str]:
        return self.values.names


def read_run(run_dir: Path, checkpoint: str, bundle_dir: Path | None = None) -> Model:
    """The model a run kept (or its pretrained one, or a given file), read as data; exit 2 for anything else."""
    doc = run_folder.read_output(run_dir)
    values = run_folder.run_values(doc, run_dir / "output.json")
    network = run_folder.network(run_dir)
    bundle = run_folder.bundle(doc, bundle_dir)
    if not (bundle / "configs" / "inference.json").is_file():
        raise ArgumentError(f"the bundle {bundle} has no configs/inference.json.",
                            fix=["Fetch NVIDIA's bundle (`nvseg-finetune fetch-bundle`), or pass --bundle-dir DIR."])
    block = doc.get("input")
    recorded = block.get("modality") if isinstance(block, dict) else None  # untrusted: read as data
    chosen = recorded.get("modality") if isinstance(recorded, dict) and recorded.get("modality") in MODALITIES else None
    return Model(run_dir, run_folder.checkpoint(doc, run_dir, checkpoint), checkpoint, bundle, network, values, chosen)


def find_images(given: Sequence[Path]) -> list[Path]:
    """Every .nii/.nii.gz named, or inside a named folder (sorted); one name per output file."""
    images: list[Path] = []
    for item in given:
        if item.is_dir():
            images += sorted(p for p in item.iterdir() if p.name.endswith((".nii.gz", ".nii")))
        elif item.is_file():
            images.append(item)
        else:
            raise ArgumentError(f"{item} does not exist.", fix=["Pass NIfTI images (.nii.gz) or folders of them."])
    if not images:
        raise ArgumentError(f"no .nii.gz or .nii image in {', '.join(map(str, given))}.",
                            fix=["Pass NIfTI images (.nii.gz) or folders of them."])
    stems = [case_stem(p) for p in images]
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:
        raise ArgumentError(f"two images would write the same label map: {', '.join(twice)}.",
                            fix=["Rename one of them, or predict them in two runs."])
    return [p.resolve() for p in images]


def case_stem(path: Path) -> str:
    return case_name(path)


def check_image(path: Path) -> tuple[Any, str]:
    """A readable 3D NIfTI with finite voxels and a usable spacing, and its sha256."""
    image, digest = load_hashed(path)
    if len(image.shape) != 3:
        raise DataContractError(UNUSABLE, [f"{path} has shape {list(image.shape)}, not a 3D volume"],
                                ["Pass 3D CT volumes (one channel, one time point)."])
    if problem := spacing_problem(image, str(path)):  # the data contract's rule, as for a training case
        raise DataContractError(UNUSABLE, [problem], ["Fix the header's affine (pixdim and sform) so every spacing is "
                                                      "above 0."])
    if bad := nonfinite_count(np.ravel(voxels(image, path), order="K")):
        raise DataContractError(UNUSABLE, [f"{path} holds {bad} NaN or Inf voxels"],
                                ["Replace them (e.g. by the air value -1024 HU) and save again."])
    return image, digest


def refuse_output_inside(out_dir: Path, inputs: Sequence[Path]) -> None:
    """Label maps go to a folder of their own: never inside an input folder (a later predict of that folder
    would read them as scans), never beside a scan given by name, never over a file."""
    for item in inputs:
        if item.is_dir() and paths.is_inside(out_dir, item):
            raise ArgumentError(f"--output-dir {out_dir} lies inside the input folder {item}.",
                                fix=["Choose an output dir outside the images, e.g. runs/predict."])
        if item.is_file() and out_dir.resolve() == item.resolve().parent:
            raise ArgumentError(f"--output-dir {out_dir} is the folder of the scan {item}: the label maps would be "
                                "written beside the scans.",
                                fix=["Choose an output dir of its own, e.g. runs/predict."])
    if out_dir.exists() and not out_dir.is_dir():
        raise ArgumentError(f"--output-dir {out_dir} is a file, not a folder.",
                            fix=["Choose a new folder, e.g. runs/predict."])


def inference(model: Model, images: list[Path], out_dir: Path) -> Inference:
    v = model.values
    prompts = tuple(glob for _, glob in v.pairs)  # a trained super-class id keeps its class: out of `subclass`
    return Inference(model.bundle_dir, model.checkpoint, tuple(images), prompts, out_dir / RAW, v.patch_size,
                     v.sw_overlap, v.amp, model.modality, superclass.trained(prompts))


def to_local(global_map: np.ndarray, pairs: list[list[int]]) -> np.ndarray:
    """The bundle's VISTA3D ids as the user's label values; everything else background."""
    local = np.zeros(global_map.shape, np.uint8)
    for value, glob in pairs:
        local[global_map == glob] = value
    return local


def summarise(name: str, labels: np.ndarray, image: Any, model: Model) -> dict[str, Any]:
    voxel_ml = float(np.prod(voxel_spacing(image))) / 1000.0
    counts = {str(v): int(np.count_nonzero(labels == v)) for v, _ in model.pairs}
    row = {"name": name, "foreground_ml": {k: round(n * voxel_ml, 6) for k, n in counts.items()},
           "components": {str(v): components(labels, v) for v, _ in model.pairs if counts[str(v)]}}
    verdict = anatomy.assess([row], model.pairs, model.names)
    return {"voxels": counts, "ml": row["foreground_ml"], "components": row["components"],
            "anatomy": verdict["anatomy"], "anatomy_warnings": verdict.get("anatomy_warnings", []),
            "plausible": not verdict.get("anatomy_warnings")}


def predict(model: Model, checked: dict[Path, tuple[Any, str]], out_dir: Path) -> tuple[dict[str, Any], int]:
    """Run the inference phase over the checked images (path -> (image, sha256)) and write the label maps."""
    images = list(checked)
    configs = out_dir / "configs"
    run = inference(model, images, out_dir)
    network = None
    if model.network is not None:  # our own copy of the checked definition, never the run's file
        configs.mkdir(parents=True, exist_ok=True)
        network = configs / "network.json"
        write_atomic(network, json.dumps(model.network, indent=2) + "\n")
    stack = stage_inference(run, configs / "predict_override.json", network)
    (out_dir / paths.LOGS).mkdir(exist_ok=True)
    spec = PhaseSpec(PREDICT, 1, 1, bundle_command(command_prefix(1), stack, model.bundle_dir),
                     paths.phase_log(out_dir, PREDICT))
    started = time.monotonic()
    result = run_phase(spec, cwd=out_dir, env=bundle_env(model.bundle_dir, configs))
    rows = []
    for path in images if result.return_code == 0 else []:
        image, digest = checked[path]
        labels = to_local(np.asarray(nibabel.load(run.label_map(path)).dataobj), model.pairs)
        target = out_dir / f"{case_stem(path)}_seg.nii.gz"
        nibabel.save(nibabel.Nifti1Image(labels, image.affine, image.header), str(target))
        rows.append({"image": str(path), "image_sha256": digest, "label_map": str(target),
                     "label_map_sha256": sha256_file(target)} | summarise(case_stem(path), labels, image, model))
    doc = {"headline": (f"{len(rows)} of {len(images)} images segmented with the {model.which} checkpoint"
                        if result.return_code == 0 else f"predict failed (exit {result.return_code}); see {spec.log_path}"),
           "run_dir": str(model.run_dir), "checkpoint": str(model.checkpoint), "which_checkpoint": model.which,
           "bundle_dir": str(model.bundle_dir), "label_mappings": model.pairs,
           "label_names": {str(g): model.names.get(g) for _, g in model.pairs}, "command": spec.command,
           "log_path": str(spec.log_path), "seconds": round(time.monotonic() - started, 2), "images": rows}
    write_atomic(out_dir / RESULT, json.dumps(doc, indent=2) + "\n")
    return doc, EXIT_OK if result.return_code == 0 else EXIT_PHASE_FAILED


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"{PROG} predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="the --output-dir of a finished run")
    parser.add_argument("inputs", type=Path, nargs="+", metavar="IMAGE_OR_DIR")
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--checkpoint", default="recommended", help="recommended (default), pretrained, or a path")
    parser.add_argument("--bundle-dir", type=Path, default=None,
                        help="the bundle to run (default: the one the run's recorded source names: this project's "
                             "bundle/ or NVIDIA's pinned hub snapshot; a run on its own bundle needs it)")
    args = parser.parse_args(list(argv))
    model = read_run(args.run_dir.resolve(), args.checkpoint, args.bundle_dir)
    images = find_images(args.inputs)
    out_dir = args.output_dir.resolve()
    refuse_output_inside(out_dir, [p.resolve() for p in args.inputs])
    checked = {path: check_image(path) for path in images}  # before anything is written
    out_dir.mkdir(parents=True, exist_ok=True)
    doc, code = predict(model, checked, out_dir)
    print(f"{PROG} predict: {doc['headline']}")
    for row in doc["images"]:
        volumes = ", ".join(f"label {k}: {v:.1f} mL" for k, v in row["ml"].items())
        print(f"  {row['label_map']}  {volumes}" + ("" if row["plausible"] else "  (implausible: see predictions.json)"))
    print(f"  predictions.json: {out_dir / RESULT}")
    return code
