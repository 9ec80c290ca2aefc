"""One run, end to end: request -> preset -> data contract -> mapping -> plan -> weights -> staged
configs -> phases -> evidence -> decision -> output.json -> exit code.

`prepare` does everything that can refuse bad input before a phase starts (exit 2, nothing run);
`execute` runs the phases and always writes output.json, also when a phase fails or Ctrl-C lands.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import audit, dataset, environment, labels, layout, pins, preprocess_cache
from .errors import ArgumentError
from .phases import PhaseResult, PhaseSpec, bundle_command, child_env, command_prefix, run_phase
from .plan import Plan, make_plan
from .preset import Settings, choose_preset, default_dataset, preset_name, read_fixture_card, settle
from .staging import Staged, missing_bundle_configs, override_values, stage
from .weights import Weights, resolve_weights

REPO_BUNDLE = Path(__file__).resolve().parents[1] / "bundle"
FINETUNED_NAME = "model_finetune.pt"


@dataclass
class Request:
    """What the caller asked for; None means 'not given' so presets can fill it."""

    output_dir: Path
    dataset_dir: Path | None = None
    datalist: Path | None = None
    smoke: bool = False
    sanity: bool = False
    auto_seg: bool = False
    target_anatomy: str | None = None
    user_label_idx: int | None = None  # the local value --target-anatomy means; None = 1
    label_mapping: str | None = None
    patch_size: list[int] | None = None
    epochs: int | None = None
    learning_rate: float | None = None
    cache_rate: float | None = None
    skip_formal_eval: bool = False
    pretrained_ckpt: str | None = None
    network_config: Path | None = None
    bundle_dir: Path | None = None
    phase_timeout: float | None = None
    seed: int | None = None
    allow_cpu: bool = False
    nnodes: int | None = None
    node_rank: int | None = None
    rdzv_endpoint: str | None = None
    preprocess_cache: Path | None = None
    no_preprocess_cache: bool = False
    command_line: str = ""


@dataclass
class Prepared:
    request: Request
    settings: Settings
    bundle_dir: Path
    dataset_dir: Path
    out_dir: Path
    mapping: labels.ResolvedMapping
    entries: list[dict]
    datalist_path: Path
    audit: dict[str, Any]
    env: dict[str, Any]
    plan: Plan
    weights: Weights
    staged: Staged
    commands: dict[str, list[str]] = field(default_factory=dict)
    cache: preprocess_cache.PreprocessCache | None = None
    cache_note: str | None = None
    label_dict_path: Path | None = None  # the class list the mapping was resolved against


def resolve_dirs(req: Request) -> tuple[Path, Path, Path]:
    bundle_dir = (req.bundle_dir or REPO_BUNDLE).expanduser().resolve()
    if not (bundle_dir / "configs").is_dir():
        raise ArgumentError(f"--bundle-dir {bundle_dir} is not a MONAI bundle (no configs/ folder).",
                            fix=["Point --bundle-dir at a VISTA3D bundle, or leave it out to use this project's bundle/."])
    given = req.dataset_dir or default_dataset(req.smoke, req.sanity)
    dataset_dir = given.expanduser().resolve()
    if not dataset_dir.is_dir():
        raise ArgumentError(f"the dataset dir {given} does not exist.",
                            fix=["Pass a folder with imagesTr/ and labelsTr/ (for example fixtures/spleen_micro)."])
    out_dir = req.output_dir.expanduser().resolve()
    blocking = next(p for p in (out_dir, *out_dir.parents) if p.exists())
    if not blocking.is_dir():
        where = "is an existing file" if blocking == out_dir else f"lies under the existing file {blocking}"
        raise ArgumentError(f"--output-dir {req.output_dir} {where}, not a directory.",
                            fix=["Pass a new or existing directory, e.g. runs/NAME; this tool never overwrites a file "
                                 "it did not write."])
    for name, protected in (("bundle dir", bundle_dir), ("dataset dir", dataset_dir)):
        if dataset.is_inside(out_dir, protected):
            raise ArgumentError(f"--output-dir {req.output_dir} lies inside the {name} {protected}.",
                                fix=["Choose an output dir elsewhere, e.g. runs/NAME; this tool never writes into its inputs."])
    return bundle_dir, dataset_dir, out_dir


def resolve_label_mapping(req: Request, settings: Settings, label_dict: dict[str, int], source: str) -> labels.ResolvedMapping:
    if req.label_mapping or req.target_anatomy:
        return labels.resolve_mapping(req.label_mapping, req.target_anatomy, label_dict, source, req.user_label_idx or 1)
    if settings["label_mapping"]:
        found = labels.resolve_mapping(json.dumps(settings["label_mapping"]), None, label_dict, source)
        return labels.ResolvedMapping(found.pairs, f"{settings.source('label_mapping')}: {found.resolution}", found.names)
    return labels.resolve_mapping(None, None, label_dict, source)


def resampled_mb(findings: dict[str, Any], spacing_mm: float = 1.5) -> float:
    """Rough cache size: each training case resampled to 1.5 mm, float32 image + uint8 label."""
    total = 0.0
    for row in findings.get("samples", []):
        if row.get("fold") == 0 or not row.get("shape") or not row.get("spacing"):
            continue
        volume_mm3 = math.prod(row["shape"][:3]) * math.prod(row["spacing"][:3])
        total += volume_mm3 / spacing_mm**3 * 5
    return total / 2**20


def refuse_multi_gpu_sanity(req: Request, preset: str) -> None:
    """The Task06 reference recipe ran on one GPU; several processes would not reproduce it."""
    nproc = os.environ.get("NPROC_PER_NODE", "")
    asked = [f"--nnodes {req.nnodes}"] if (req.nnodes or 1) > 1 else []
    asked += [f"NPROC_PER_NODE={nproc}"] if nproc.strip().isdigit() and int(nproc) > 1 else []
    if preset == "sanity" and asked:
        raise ArgumentError(f"--sanity reproduces a one-GPU reference run, and {' and '.join(asked)} asks for more.",
                            fix=["Run --sanity on one GPU (unset NPROC_PER_NODE, drop --nnodes), or run your own "
                                 "finetune without --sanity on several GPUs."])


def prepare(req: Request) -> Prepared:
    preset_name(req.smoke, req.sanity)  # two preset flags are refused before anything else
    bundle_dir, dataset_dir, out_dir = resolve_dirs(req)
    card = read_fixture_card(dataset_dir)
    preset, why = choose_preset(req.smoke, req.sanity, dataset_dir, card)
    refuse_multi_gpu_sanity(req, preset)
    versions = pins.check_phase_versions()
    given = {"epochs": req.epochs, "learning_rate": req.learning_rate, "patch_size": req.patch_size,
             "cache_rate": req.cache_rate, "auto_seg": req.auto_seg}
    settings = settle(preset, given, card, why)
    dict_path = labels.find_label_dict(bundle_dir)
    mapping = resolve_label_mapping(req, settings, labels.load_label_dict(dict_path), str(dict_path))
    local = labels.local_values(mapping)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries, datalist_path, source = dataset.prepare_datalist(dataset_dir, req.datalist, out_dir)
    dataset.check_pairs_geometry(entries, dataset_dir)
    findings = audit.audit_dataset(entries, dataset_dir, local)
    findings["datalist_source"] = source
    audit.check_finite_images(findings)
    audit.check_mapped_values_present(findings, local)
    findings = audit.overview(findings, mapping.pairs, mapping.names, req.user_label_idx or 1)
    env = environment.collect()
    if preset == "sanity" and not env["cuda_available"] and not req.allow_cpu:
        raise ArgumentError("--sanity reproduces a single-GPU reference run, and no CUDA GPU is visible here.",
                            evidence=["nvidia-smi found no GPU (CUDA_VISIBLE_DEVICES="
                                      f"{env.get('cuda_visible_devices')!r})."],
                            fix=["Run it on a GPU machine, or add --allow-cpu to run the recipe on the CPU anyway "
                                 "(hours, and the reference ranges assume the GPU run)."])
    plan = make_plan(settings, env, resampled_mb(findings), os.environ.get("NPROC_PER_NODE"))
    plan.rationale.append(versions)
    if (req.nnodes or 1) > 1:
        plan.multi_gpu = True
        plan.rationale.append(f"multi_gpu: {req.nnodes} nodes x {plan.nproc_per_node} processes, DDP through torchrun")
    missing = missing_bundle_configs(bundle_dir, plan.multi_gpu)
    if missing:
        raise ArgumentError(f"the bundle {bundle_dir} lacks {', '.join(missing)}.",
                            fix=["Use a complete VISTA3D bundle (configs/train.json, train_continual.json, evaluate.json)."])
    network = req.network_config or (Path(card["network_config"]) if card.get("network_config") else None)
    if network is not None and not network.is_file():
        raise ArgumentError(f"--network-config {network} does not exist.",
                            fix=["Point it at a JSON file that sets network_def, or leave it out for the bundle's network."])
    weights = resolve_weights(req.pretrained_ckpt, card, bundle_dir)  # last: it may reach the hub
    if network is None:  # the bundle's own network_def: vista3d132 in this bundle and upstream's
        weights.layout_check = layout.check_layout(Path(weights.path), layout.expected_vista3d132(), "vista3d132")
    else:
        weights.layout_check = f"skipped: the network comes from {network.name}"
    values = override_values(plan, bundle_dir=bundle_dir, dataset_dir=dataset_dir, datalist=datalist_path,
                             out_dir=out_dir, pretrained=Path(weights.path), pairs=mapping.pairs,
                             auto_seg=bool(settings["auto_seg"]), seed=req.seed)
    staged = stage(plan, bundle_dir=bundle_dir, out_dir=out_dir, override=values, network_config=network)
    cache, cache_note = None, "multi-GPU runs partition their datasets; not cached" if plan.multi_gpu else None
    root, why = preprocess_cache.choose_root(req.preprocess_cache, req.no_preprocess_cache or plan.multi_gpu,
                                             {"dataset dir": dataset_dir, "bundle dir": bundle_dir})
    if root is not None:
        cache, staged = preprocess_cache.attach(root, staged=staged, entries=entries, dataset_dir=dataset_dir,
                                                values=values, formal_eval=not req.skip_formal_eval)
    prepared = Prepared(req, settings, bundle_dir, dataset_dir, out_dir, mapping, entries, datalist_path,
                        findings, env, plan, weights, staged, cache=cache, cache_note=cache_note or why)
    prepared.commands = phase_commands(prepared)
    prepared.label_dict_path = dict_path
    return prepared


def torchrun_args(req: Request) -> list[str]:
    """Multi-node pass-through: the same command runs on every node, each with its --node-rank."""
    args = []
    if req.nnodes is not None:
        args.append(f"--nnodes={req.nnodes}")
    if req.node_rank is not None:
        args.append(f"--node_rank={req.node_rank}")
    if req.rdzv_endpoint:
        args += ["--rdzv_backend=c10d", f"--rdzv_endpoint={req.rdzv_endpoint}"]
    return args


def phase_commands(p: Prepared) -> dict[str, list[str]]:
    prefix = command_prefix(p.plan.nproc_per_node, torchrun_args(p.request))
    finetuned = p.staged.ckpt_dir / FINETUNED_NAME
    commands = {"finetune": bundle_command(prefix, p.staged.train_stack, p.bundle_dir)}
    if not p.request.skip_formal_eval:
        for name, ckpt in (("eval_pretrained", Path(p.weights.path)), ("eval_finetuned", finetuned)):
            extra = {"ckpt_path": str(ckpt), "output_dir": str(p.out_dir / name)}
            commands[name] = bundle_command(prefix, p.staged.eval_stack, p.bundle_dir, extra)
    order = ["eval_pretrained", "finetune", "eval_finetuned"]
    return {name: commands[name] for name in order if name in commands}


def run_phases(p: Prepared, started_wall: float) -> tuple[dict[str, PhaseResult], bool]:
    """Run in order; stop at the first failure. Returns the results and whether Ctrl-C ended it."""
    results: dict[str, PhaseResult] = {}
    env = child_env(p.bundle_dir)
    if p.cache is not None:
        p.cache.begin()
        env |= p.cache.child_env()
    (p.out_dir / "logs").mkdir(exist_ok=True)
    names = list(p.commands)
    for index, name in enumerate(names, start=1):
        spec = PhaseSpec(name, index, len(names), p.commands[name], p.out_dir / "logs" / f"{name}.log")
        try:
            results[name] = run_phase(spec, cwd=p.out_dir, env=env, timeout=p.request.phase_timeout)
        except KeyboardInterrupt:
            results[name] = PhaseResult(name=name, command=spec.command, log_path=str(spec.log_path),
                                        failure="interrupted", seconds=round(time.time() - started_wall, 2))
            return results, True
        if results[name].return_code != 0:
            break
    return results, False
