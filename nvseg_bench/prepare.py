"""Prepare: everything that can refuse bad input before a phase starts, in the order of the flow.

request -> resolved values -> mapping -> data contract -> audit -> bundle -> plan -> weights -> resume
point -> staged configs -> preprocessing cache -> phase commands, gathered into one frozen `Prepared`.
Each step takes the values the steps before it built and returns new ones; none is changed after it
is made. Any refusal is an NvsegError (exit 2) and nothing has run; the only files written are under
OUT (its configs/). No torch, no monai.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from nvseg_bench.phase_names import (EVAL_FINETUNED, EVAL_PRETRAINED, EVAL_TEST_FINETUNED, EVAL_TEST_PRETRAINED,
                                     FINETUNE, FORGETTING, RUN_ORDER)
from nvseg_bench import paths
from nvseg_bench.errors import ArgumentError
from nvseg_bench.evidence import boundary
from nvseg_bench.evidence.collect import dataset_inputs
from nvseg_bench.inputs import audit, dataset, family, labels, modality, superclass, testing
from nvseg_bench.inputs.preset import default_dataset, preset_name
from nvseg_bench.inputs.request import Request
from nvseg_bench.inputs.resolve import Resolved, resolve_for
from nvseg_bench.model import axis, bundle_source, checkpoints
from nvseg_bench.model.weights import Weights, hub_cache_dir, resolve_weights
from nvseg_bench.phases import eval_memo
from nvseg_bench.phases.runner import allocator_line, bundle_command, command_prefix
from nvseg_bench.planning import environment, forgetting, network, pins, slurm
from nvseg_bench.planning.plan import Plan, make_plan
from nvseg_bench.prepared import FINETUNED_NAME, Prepared
from nvseg_bench.stage import overrides, preprocess_cache, resume
from nvseg_bench.stage.configs import Staged, missing_bundle_configs, override_values, stage
from nvseg_bench.stage.inference import Inference, stage_inference
from nvseg_bench.store import digests as store_digests
from nvseg_bench.store import limits
from nvseg_bench.store import root as store_root
from nvseg_bench.tracking import bundle as tracking_bundle
from nvseg_bench.tracking import choice as tracking_choice



def resolve_dirs(req: Request) -> tuple[Path, Path]:
    """The dataset dir and the output dir, checked; the bundle is chosen once the preset is known."""
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
    if not os.access(blocking, os.W_OK | os.X_OK):
        raise _unwritable(req.output_dir, blocking, "this user may not write there")
    refuse_output_inside(req.output_dir, out_dir, "dataset dir", dataset_dir)
    return dataset_dir, out_dir


def refuse_output_inside(given: Path, out_dir: Path, name: str, protected: Path) -> None:
    if paths.is_inside(out_dir, protected):
        raise ArgumentError(f"--output-dir {given} lies inside the {name} {protected}.",
                            fix=["Choose an output dir elsewhere, e.g. runs/NAME; this tool never writes into its inputs."])


def class_list(known: Path | None) -> Path:
    """The class list the mapping is checked against. NVIDIA's hub snapshot ships none (nor does a folder
    downloaded from it), so the builtin bundle's, the same 124 classes as upstream's (docs/design.md), stands
    in; it is known before the hub bundle is, so a wrong mapping is reported before a missing bundle."""
    fallback = bundle_source.BUILTIN / labels.LABEL_DICT_PLACES[0]
    return labels.find_label_dict(known, fallback) if known is not None else fallback


def choose_bundle(req: Request, preset: str, out_dir: Path, dict_path: Path,
                  spec: family.Model = family.MODELS[family.CT]) -> bundle_source.BundleSource:
    """The bundle (bundle_source.py), chosen after the user's data and mapping were checked; its class list
    must be the one the mapping was checked against."""
    chosen = bundle_source.choose(req.bundle_dir, preset, spec=spec)
    refuse_output_inside(req.output_dir, out_dir, "bundle dir", chosen.path)
    found = labels.find_label_dict(chosen.path, dict_path)
    if found != dict_path:  # only a hub snapshot can differ: the pinned revision ships no class list
        raise ArgumentError(f"the bundle {chosen.path} holds the class list {found}, which {chosen.repo or 'it'} at "
                            "the pinned revision does not ship; the cached bundle was altered.",
                            fix=["Remove that snapshot from the Hugging Face cache and run `nvseg-finetune "
                                 "fetch-bundle`, or pass --bundle-dir DIR."])
    return chosen


def check_patch(resolved: Resolved, bundle_dir: Path) -> int:
    """The network's grid factor; a --patch-size (or card's) that does not fit it is refused."""
    factor = network.network_factor(bundle_dir, resolved["network_config"])
    if resolved["patch_size"] is not None:
        network.check_patch(list(resolved["patch_size"]), factor, resolved.source("patch_size"))
    return factor


def _unwritable(given: Path, where: Path, why: str) -> ArgumentError:
    return ArgumentError(f"--output-dir {given} cannot be written: {where} is not writable ({why}).",
                         fix=["Pass an --output-dir in a folder you can write to, e.g. runs/NAME, or fix that folder's "
                              "permissions."])


def make_output_dir(given: Path, out_dir: Path) -> None:
    """Create OUT (and missing parents); a place that refuses it is bad input, not an internal error."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        where = next((p for p in (out_dir, *out_dir.parents) if p.exists()), out_dir)
        raise _unwritable(given, where, exc.strerror or str(exc)) from exc


def resampled_mb(findings: dict[str, Any]) -> float:
    """Rough RAM cache size: each training case resampled to 1.5 mm, float32 image + uint8 label."""
    rows = [row for row in findings.get("samples", []) if row.get("fold") != 0]
    return sum(limits.resampled_voxels(row) * 5 for row in rows) / 2**20


def refuse_multi_gpu_sanity(req: Request, preset: str) -> None:
    """The Task06 reference recipe ran on one GPU; several processes would not reproduce it."""
    nproc = os.environ.get("NPROC_PER_NODE", "")
    asked = [f"--nnodes {req.nnodes}"] if (req.nnodes or 1) > 1 else []
    asked += [f"NPROC_PER_NODE={nproc}"] if nproc.strip().isdigit() and int(nproc) > 1 else []
    if preset == "sanity" and asked:
        raise ArgumentError(f"--sanity reproduces a one-GPU reference run, and {' and '.join(asked)} asks for more.",
                            fix=["Run --sanity on one GPU (unset NPROC_PER_NODE, drop --nnodes), or run your own "
                                 "finetune without --sanity on several GPUs."])


def refuse_sanity_without_gpu(req: Request, preset: str, env: dict[str, Any]) -> None:
    if preset == "sanity" and not env["cuda_available"] and not req.allow_cpu:
        raise ArgumentError("--sanity reproduces a single-GPU reference run, and no CUDA GPU is visible here.",
                            evidence=["nvidia-smi found no GPU (CUDA_VISIBLE_DEVICES="
                                      f"{env.get('cuda_visible_devices')!r})."],
                            fix=["Run it on a GPU machine, or add --allow-cpu to run the recipe on the CPU anyway "
                                 "(hours, and the reference ranges assume the GPU run)."])


def audit_data(entries: list[dict], dataset_dir: Path, root: Path | None, local: list[int], source: str,
               mapping: labels.ResolvedMapping, local_value: int) -> tuple[dict[str, Any], dict[str, str]]:
    """The audit's findings (every contract check on them passed) and the sha256 of every dataset file:
    remembered by the cache root for unchanged files, taken by the audit for the rest."""
    files = [dataset_dir / e[k] for e in entries for k in ("image", "label")]
    digests = store_digests.known_digests(files, root / store_digests.FILE) if root else {}
    findings = audit.audit_dataset(entries, dataset_dir, local, digests=digests,
                                   memo_dir=root / "audit" if root else None)
    if root is not None:
        store_digests.remember_digests(digests, root / store_digests.FILE)
    findings["datalist_source"] = source
    audit.check_finite_images(findings)
    audit.check_labels_look_like_labels(findings)
    audit.check_mapped_values_present(findings, local)
    audit.check_mapped_values_validated(findings, local)
    return audit.overview(findings, mapping.pairs, mapping.names, local_value), digests


def plan_run(req: Request, resolved: Resolved, env: dict[str, Any], findings: dict[str, Any], factor: int,
             notes: list[str | None], first: str = "", bundle: Path | None = None) -> Plan:
    """The plan with the lines of the checks before it (`notes`), and several nodes making it a multi-GPU run;
    `first`: the model and its licence, the line after the preset's."""
    plan = make_plan(resolved, env, resampled_mb(findings), os.environ.get("NPROC_PER_NODE"))
    network.check_patch(plan.patch_size, factor, resolved.source("patch_size"))  # the plan's own choice too
    default = axis.default_patch_line(bundle, factor, plan.patch_size) if bundle is not None else None
    plan = replace(plan, rationale=(plan.rationale[0], first, *plan.rationale[1:]) if first else plan.rationale)
    plan = plan.noting(network.patch_note(factor), default, *notes)
    if (req.nnodes or 1) > 1:
        plan = replace(plan, multi_gpu=True).noting(
            f"multi_gpu: {req.nnodes} nodes x {plan.nproc_per_node} processes, DDP through torchrun")
    return plan


def check_network_config(net_config: Path | None, source: str) -> None:
    if net_config is not None and not net_config.is_file():
        named = f"--network-config {net_config}" if source.startswith("--") else f"{source}'s network_config {net_config}"
        raise ArgumentError(f"{named} does not exist.",
                            fix=["Point it at a JSON file that sets network_def, or leave it out for the bundle's network."])


def checked_weights(resolved: Resolved, bundle_dir: Path, net_config: Path | None,
                    spec: family.Model = family.MODELS[family.CT]) -> Weights:
    """The pretrained weights (last: the hub may be reached), with their layout held against the network."""
    weights = resolve_weights(resolved["pretrained_ckpt"], resolved.source("pretrained_ckpt"), resolved["model_name"],
                              bundle_dir, spec)
    if net_config is not None:
        return replace(weights, layout_check=f"skipped: the network comes from {net_config.name}")
    # the bundle's own network_def: vista3d132 in this bundle and upstream's
    found = checkpoints.check_layout(Path(weights.path), checkpoints.expected_vista3d132(), "vista3d132")
    return replace(weights, layout_check=found)


def attach_cache(req: Request, root: Path, plan: Plan, staged: Staged, *, entries: list[dict], dataset_dir: Path,
                 values: dict[str, Any], rows: list[dict], digests: dict[str, str]
                 ) -> tuple[preprocess_cache.PreprocessCache | None, Staged, str | None, str | None]:
    """The preprocessing cache for this run under the root's cap (store/limits.py): room made by removing the
    least recently used keys, or no cache when the cap cannot hold this run's entries. Returns the cache, the
    staged configs, the note when it is off, and the plan's line."""
    if plan.multi_gpu:
        return None, staged, "multi-GPU runs partition their datasets; not cached", None
    cap = limits.cap_bytes(root, req.preprocess_cache_max_gb)
    incoming = limits.estimate_bytes(rows, not req.skip_formal_eval)
    capped = (f"cap {limits.gib(cap)}" + ("" if req.preprocess_cache_max_gb is not None else
                                          " (a quarter of the free disk plus what the cache holds)"))
    if incoming > cap:
        note = (f"the preprocess cache's {capped} cannot hold this run's entries (~{limits.gib(incoming)}); "
                "running without it (raise --preprocess-cache-max-gb, or free space: nvseg-finetune cache prune)")
        return None, staged, note, f"preprocess_cache: off, {note}"
    cache, staged = preprocess_cache.attach(root, staged=staged, entries=entries, dataset_dir=dataset_dir,
                                            values=values, formal_eval=not req.skip_formal_eval, digests=digests)
    held = limits.total_bytes(cache.key_dir)
    removed = limits.make_room(root, cap, max(0, incoming - held), keep=frozenset({cache.key_dir}),
                               dry_run=req.dry_run)  # a dry run only says what it would remove
    cache = replace(cache, cap=cap, removed=tuple(info.name for info in removed))
    verb = "would remove" if req.dry_run else "removed"
    freed = f"; {verb} {len(removed)} least recently used keys ({limits.gib(sum(i.bytes for i in removed))}) " \
            "to make room" if removed else ""
    return cache, staged, None, (f"preprocess_cache: {capped}, this run's entries ~{limits.gib(incoming)} "
                                 f"({limits.gib(held)} of them cached already){freed}")


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


def phase_commands(req: Request, plan: Plan, staged: Staged, bundle_dir: Path, out_dir: Path,
                   pretrained: Path) -> dict[str, list[str]]:
    prefix = command_prefix(plan.nproc_per_node, torchrun_args(req))
    tracked = {"tracking": "mlflow"} if tracking_choice.from_items(req.tracking).mlflow else None
    commands = {FINETUNE: bundle_command(prefix, staged.train_stack, bundle_dir, tracked)}
    if not req.skip_formal_eval:
        for name, ckpt in ((EVAL_PRETRAINED, pretrained), (EVAL_FINETUNED, staged.ckpt_dir / FINETUNED_NAME)):
            extra = {"ckpt_path": str(ckpt), "output_dir": str(out_dir / name)}
            commands[name] = bundle_command(prefix, staged.eval_stack, bundle_dir, extra)
    return {name: commands[name] for name in RUN_ORDER if name in commands}


def test_commands(req: Request, plan: Plan, staged: Staged, bundle_dir: Path, out_dir: Path, pretrained: Path,
                  split: testing.TestSplit | None) -> dict[str, list[str]]:
    """The test split's two formal evaluations (inputs/testing.py), after the finetune: the eval stack unchanged,
    pointed at the staged datalist of the labelled testing cases (as fold 0)."""
    if split is None or not split.entries or req.skip_formal_eval:
        return {}
    prefix = command_prefix(plan.nproc_per_node, torchrun_args(req))
    datalist = testing.stage(split, staged.config_dir)
    pairs = ((EVAL_TEST_PRETRAINED, pretrained), (EVAL_TEST_FINETUNED, staged.ckpt_dir / FINETUNED_NAME))
    return {name: bundle_command(prefix, staged.eval_stack, bundle_dir,
                                 {"ckpt_path": str(ckpt), "output_dir": str(out_dir / name),
                                  "data_list_file_path": str(datalist), "fold": "0"}) for name, ckpt in pairs}


def forgetting_commands(forget: forgetting.ForgettingPlan, plan: Plan, staged: Staged, bundle_dir: Path, out_dir: Path,
                        images: tuple[Path, ...], pretrained: Path, modality_name: str | None = None,
                        trained_super: tuple[int, ...] = ()) -> dict[str, list[str]]:
    """The forgetting check's two inference phases (one process each: the inference config is not distributed),
    run after the formal evaluation; their overrides are staged under OUT/configs/."""
    if not forget.enabled:
        return {}
    commands = {}
    for name, ckpt in zip(FORGETTING, (pretrained, staged.ckpt_dir / FINETUNED_NAME)):
        run = Inference(bundle_dir, ckpt, images, forget.prompts, out_dir / name, plan.patch_size, plan.sw_overlap,
                        plan.amp, modality_name, trained_super)
        stack = stage_inference(run, staged.config_dir / f"{name}.json", staged.network)
        commands[name] = bundle_command(command_prefix(1), stack, bundle_dir)
    return commands


def prepare(req: Request) -> Prepared:
    preset_name(req.smoke, req.sanity)  # two preset flags are refused before anything else
    tracking = tracking_choice.checked(req.tracking)  # --tracking without its package: refused first
    req, slurm_line = slurm.apply(req, os.environ)  # an srun step: nodes, rank and rendezvous from the job
    if req.bundle_dir is not None:
        bundle_source.bundle_dir(req.bundle_dir)  # a wrong --bundle-dir is answered first
    dataset_dir, out_dir = resolve_dirs(req)
    resolved = resolve_for(req, dataset_dir)
    refuse_multi_gpu_sanity(req, resolved.preset)
    spec, model_why = family.choose_model(req.model, bundle_source.bundle_dir(req.bundle_dir) if req.bundle_dir else None)
    known = axis.early_bundle(req, resolved.preset, spec)
    resolved = axis.with_preset(resolved, req, known)
    # the user's own inputs first (mapping, data contract, audit), NVIDIA's hub bundle after them: a broken dataset
    # is reported before a bundle that is not cached, whose download would be wasted on it
    guarded = {"bundle dir": known} if known is not None else {"Hugging Face cache": hub_cache_dir()}
    for name, folder in guarded.items():
        refuse_output_inside(req.output_dir, out_dir, name, folder)
    factor = check_patch(resolved, known) if known is not None else None  # before the audit reads every file
    versions = pins.check_phase_versions()
    dict_path = class_list(known) if spec.name == family.CT else labels.find_label_dict(known)
    label_dict = labels.load_label_dict(dict_path)
    mapping = labels.resolve_mapping(resolved.mapping, label_dict, str(dict_path), spec.new_ids)
    local = labels.local_values(mapping)
    make_output_dir(req.output_dir, out_dir)
    entries, datalist_path, source = dataset.prepare_datalist(dataset_dir, req.datalist, out_dir)
    dataset.check_pairs_geometry(entries, dataset_dir)
    split = testing.read_testing(datalist_path, source, dataset_dir)  # held-out cases: refused when they leak
    testing.refuse_leaks(split, entries, dataset_dir)
    dataset.check_pairs_geometry(list(split.entries) if split else [], dataset_dir)
    root, cache_why = store_root.choose_root(req.preprocess_cache, req.no_preprocess_cache,
                                             {"dataset dir": dataset_dir, **guarded})
    findings, digests = audit_data(entries, dataset_dir, root, local, source, mapping, resolved.mapping.local_value)
    chosen_modality = modality.choose(spec, req.modality, findings["samples"])  # a CT-only recipe on MR: refused
    bundle = choose_bundle(req, resolved.preset, out_dir, dict_path, spec)
    trained_super = superclass.trained([g for _, g in mapping.pairs])
    factor = factor if factor is not None else check_patch(resolved, bundle.path)
    env = environment.collect()
    refuse_sanity_without_gpu(req, resolved.preset, env)
    forget = forgetting.plan_forgetting(req.forgetting_check, preset=resolved.preset, cuda=bool(env["cuda_available"]),
                                        label_dict=label_dict, mapped={g for _, g in mapping.pairs}, source=str(dict_path),
                                        everything=axis.everything_pool(chosen_modality.modality, bundle.path,
                                                                        set(label_dict.values())))
    plan = plan_run(req, resolved, env, findings, factor,
                    [bundle_source.plan_line(bundle, dict_path), chosen_modality.plan_line(), superclass.route_line(trained_super), versions,
                     allocator_line(os.environ), slurm_line], first=spec.licence_line(model_why), bundle=bundle.path)
    missing = missing_bundle_configs(bundle.path, plan.multi_gpu)
    if missing:
        raise ArgumentError(f"the bundle {bundle.path} lacks {', '.join(missing)}.",
                            fix=["Use a complete VISTA3D bundle (configs/train.json, train_continual.json, evaluate.json)."])
    net_config = resolved["network_config"]
    check_network_config(net_config, resolved.source("network_config"))
    weights = checked_weights(resolved, bundle.path, net_config, spec)
    point, resume_line = resume.choose_point(req, out_dir, plan, bundle_sha256=bundle.configs_sha256,
                                             dataset=lambda: dataset_inputs(entries, dataset_dir, digests),
                                             weights_sha256=weights.sha256)
    values = override_values(plan, bundle_dir=bundle.path, dataset_dir=dataset_dir, datalist=datalist_path,
                             out_dir=out_dir, pretrained=Path(weights.path), pairs=mapping.pairs,
                             auto_seg=bool(resolved["auto_seg"]),
                             recipe={key: resolved[key] for key in overrides.recipe_rows()})
    staged = stage(plan, bundle_dir=bundle.path, out_dir=out_dir, override=values, network_config=net_config,
                   tracking=tracking_bundle.values(tracking, out_dir))
    cache, cache_line = None, None
    if root is not None:
        cache, staged, cache_why, cache_line = attach_cache(req, root, plan, staged, entries=entries,
                                                            dataset_dir=dataset_dir, values=values,
                                                            rows=findings["samples"], digests=digests)
    if not plan.multi_gpu:  # each epoch kept for --resume; several processes would write it at once
        staged = resume.attach(staged, out_dir, point, plan.amp)
    prepared = Prepared(request=req, resolved=resolved, bundle_dir=bundle.path, dataset_dir=dataset_dir, out_dir=out_dir,
                    mapping=mapping, entries=entries, datalist_path=datalist_path, audit=findings, env=env,
                    plan=plan.noting(forget.reason, resume_line, cache_line,
                                     boundary.plan_note(req.nsd_tolerance_mm, not req.skip_formal_eval)),
                    weights=weights, staged=staged,
                    commands=phase_commands(req, plan, staged, bundle.path, out_dir, Path(weights.path))
                    | test_commands(req, plan, staged, bundle.path, out_dir, Path(weights.path), split)
                    | forgetting_commands(forget, plan, staged, bundle.path, out_dir, dataset.validation_images(entries, dataset_dir),
                                          Path(weights.path), chosen_modality.modality, trained_super), forgetting=forget,
                    modality=chosen_modality,
                    cache=cache, digests=digests, cache_note=cache_why, label_dict_path=dict_path, bundle=bundle,
                    resume_point=point, test_split=split)
    return replace(prepared, plan=prepared.plan.noting(eval_memo.plan_line(prepared)))  # kept passes, in the plan
