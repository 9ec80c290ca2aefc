"""One run, end to end: request -> resolved values -> data contract -> mapping -> plan -> weights ->
staged configs -> phases -> evidence -> decision -> output.json -> exit code.

`prepare` does everything that can refuse bad input before a phase starts (exit 2, nothing run);
`run` owns the whole flow (a single run, a dry run or a seed sweep): it runs the phases, always writes
output.json, also when a phase fails or Ctrl-C lands, and returns the exit code. cli.py only parses
the command line into a Request and prints what goes wrong before a run starts.
"""
from __future__ import annotations

import os
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from nvseg_bench import PROG, sweep
from nvseg_bench.inputs import audit, dataset, labels
from nvseg_bench.model import bundle_source, layout
from nvseg_bench.store import limits as cache_store
from nvseg_bench.planning import environment, network, pins, slurm
from nvseg_bench.phases import eval_memo, warm
from nvseg_bench.evidence import collect as evidence
from nvseg_bench.output import write as output, result
from nvseg_bench.stage import preprocess_cache, resume
from nvseg_bench.errors import ArgumentError
from nvseg_bench.phases.runner import (PhaseResult, PhaseSpec, allocator_line, bundle_command, bundle_env,
                                       command_prefix, phase_log, run_phase)
from nvseg_bench.planning.plan import Plan, make_plan
from nvseg_bench.prepared import FINETUNED_NAME, Prepared
from nvseg_bench.inputs.preset import default_dataset, preset_name
from nvseg_bench.inputs.request import Request
from nvseg_bench.inputs.resolve import Resolved, resolve_for
from nvseg_bench.stage.configs import RECIPE_TO_BUNDLE, Staged, missing_bundle_configs, override_values, stage
from nvseg_bench.model.weights import resolve_weights


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
    if dataset.is_inside(out_dir, protected):
        raise ArgumentError(f"--output-dir {given} lies inside the {name} {protected}.",
                            fix=["Choose an output dir elsewhere, e.g. runs/NAME; this tool never writes into its inputs."])


def choose_bundle(req: Request, preset: str, out_dir: Path) -> tuple[bundle_source.BundleSource, Path]:
    """The bundle (bundle_source.py) and its class list. NVIDIA's hub snapshot ships none (nor does a
    folder downloaded from it), so the builtin bundle's, the same 124 classes as upstream's
    (docs/design.md), stands in; the plan says so."""
    chosen = bundle_source.choose(req.bundle_dir, preset)
    refuse_output_inside(req.output_dir, out_dir, "bundle dir", chosen.path)
    return chosen, labels.find_label_dict(chosen.path, bundle_source.BUILTIN / labels.LABEL_DICT_PLACES[0])


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


def resolve_label_mapping(req: Request, resolved: Resolved, label_dict: dict[str, int], source: str) -> labels.ResolvedMapping:
    chosen = resolved.values["label_mapping"]
    if chosen.from_caller:  # --label-mapping, or --target-anatomy (with --user-label-idx)
        return labels.resolve_mapping(req.label_mapping, req.target_anatomy, label_dict, source, req.user_label_idx or 1)
    if chosen.value:
        found = labels.resolve_mapping(chosen.value, None, label_dict, source)
        return labels.ResolvedMapping(found.pairs, f"{chosen.source}: {found.resolution}", found.names)
    return labels.resolve_mapping(None, None, label_dict, source)


def resampled_mb(findings: dict[str, Any]) -> float:
    """Rough RAM cache size: each training case resampled to 1.5 mm, float32 image + uint8 label."""
    rows = [row for row in findings.get("samples", []) if row.get("fold") != 0]
    return sum(cache_store.resampled_voxels(row) * 5 for row in rows) / 2**20


def refuse_multi_gpu_sanity(req: Request, preset: str) -> None:
    """The Task06 reference recipe ran on one GPU; several processes would not reproduce it."""
    nproc = os.environ.get("NPROC_PER_NODE", "")
    asked = [f"--nnodes {req.nnodes}"] if (req.nnodes or 1) > 1 else []
    asked += [f"NPROC_PER_NODE={nproc}"] if nproc.strip().isdigit() and int(nproc) > 1 else []
    if preset == "sanity" and asked:
        raise ArgumentError(f"--sanity reproduces a one-GPU reference run, and {' and '.join(asked)} asks for more.",
                            fix=["Run --sanity on one GPU (unset NPROC_PER_NODE, drop --nnodes), or run your own "
                                 "finetune without --sanity on several GPUs."])


def audited_digests(entries: list[dict], dataset_dir: Path, root: Path | None) -> dict[str, str]:
    """Digests the cache root remembers for unchanged files; the audit adds those of the files it reads."""
    if root is None:
        return {}
    paths = [dataset_dir / e[k] for e in entries for k in ("image", "label")]
    return preprocess_cache.known_digests(paths, root / "digests.json")


def prepare(req: Request) -> Prepared:
    preset_name(req.smoke, req.sanity)  # two preset flags are refused before anything else
    req, slurm_line = slurm.apply(req, os.environ)  # an srun step: nodes, rank and rendezvous from the job
    if req.bundle_dir is not None:
        bundle_source.bundle_dir(req.bundle_dir)  # a wrong --bundle-dir is answered first
    dataset_dir, out_dir = resolve_dirs(req)
    resolved = resolve_for(req, dataset_dir)
    preset = resolved.preset
    refuse_multi_gpu_sanity(req, preset)
    bundle, dict_path = choose_bundle(req, preset, out_dir)
    bundle_dir = bundle.path
    factor = network.network_factor(bundle_dir, resolved["network_config"])
    if resolved["patch_size"] is not None:  # before the audit reads every file
        network.check_patch(list(resolved["patch_size"]), factor, resolved.source("patch_size"))
    versions = pins.check_phase_versions()
    mapping = resolve_label_mapping(req, resolved, labels.load_label_dict(dict_path), str(dict_path))
    local = labels.local_values(mapping)
    make_output_dir(req.output_dir, out_dir)
    entries, datalist_path, source = dataset.prepare_datalist(dataset_dir, req.datalist, out_dir)
    dataset.check_pairs_geometry(entries, dataset_dir)
    root, why = preprocess_cache.choose_root(req.preprocess_cache, req.no_preprocess_cache,
                                             {"dataset dir": dataset_dir, "bundle dir": bundle_dir})
    digests = audited_digests(entries, dataset_dir, root)
    findings = audit.audit_dataset(entries, dataset_dir, local, digests=digests,
                                   memo_dir=root / "audit" if root else None)
    if root is not None:
        preprocess_cache.remember_digests(digests, root / "digests.json")
    findings["datalist_source"] = source
    audit.check_finite_images(findings)
    audit.check_labels_look_like_labels(findings)
    audit.check_mapped_values_present(findings, local)
    audit.check_mapped_values_validated(findings, local)
    findings = audit.overview(findings, mapping.pairs, mapping.names, req.user_label_idx or 1)
    env = environment.collect()
    if preset == "sanity" and not env["cuda_available"] and not req.allow_cpu:
        raise ArgumentError("--sanity reproduces a single-GPU reference run, and no CUDA GPU is visible here.",
                            evidence=["nvidia-smi found no GPU (CUDA_VISIBLE_DEVICES="
                                      f"{env.get('cuda_visible_devices')!r})."],
                            fix=["Run it on a GPU machine, or add --allow-cpu to run the recipe on the CPU anyway "
                                 "(hours, and the reference ranges assume the GPU run)."])
    plan = make_plan(resolved, env, resampled_mb(findings), os.environ.get("NPROC_PER_NODE"))
    network.check_patch(plan.patch_size, factor, resolved.source("patch_size"))  # the plan's own choice too
    plan.rationale += [network.patch_note(factor), bundle_source.plan_line(bundle, dict_path), versions,
                       allocator_line(os.environ)]
    plan.rationale += [slurm_line] if slurm_line else []
    if (req.nnodes or 1) > 1:
        plan.multi_gpu = True
        plan.rationale.append(f"multi_gpu: {req.nnodes} nodes x {plan.nproc_per_node} processes, DDP through torchrun")
    missing = missing_bundle_configs(bundle_dir, plan.multi_gpu)
    if missing:
        raise ArgumentError(f"the bundle {bundle_dir} lacks {', '.join(missing)}.",
                            fix=["Use a complete VISTA3D bundle (configs/train.json, train_continual.json, evaluate.json)."])
    net_config, network_source = resolved["network_config"], resolved.source("network_config")
    if net_config is not None and not net_config.is_file():
        named = f"--network-config {net_config}" if network_source.startswith("--") else f"{network_source}'s network_config {net_config}"
        raise ArgumentError(f"{named} does not exist.",
                            fix=["Point it at a JSON file that sets network_def, or leave it out for the bundle's network."])
    weights = resolve_weights(resolved["pretrained_ckpt"], resolved.source("pretrained_ckpt"), resolved["model_name"],
                              bundle_dir)  # last: it may reach the hub
    if net_config is None:  # the bundle's own network_def: vista3d132 in this bundle and upstream's
        weights.layout_check = layout.check_layout(Path(weights.path), layout.expected_vista3d132(), "vista3d132")
    else:
        weights.layout_check = f"skipped: the network comes from {net_config.name}"
    point = resume_point(req, out_dir, plan, bundle, entries, dataset_dir, digests, weights.sha256)
    values = override_values(plan, bundle_dir=bundle_dir, dataset_dir=dataset_dir, datalist=datalist_path,
                             out_dir=out_dir, pretrained=Path(weights.path), pairs=mapping.pairs,
                             auto_seg=bool(resolved["auto_seg"]),
                             recipe={key: resolved[key] for key in RECIPE_TO_BUNDLE})
    staged = stage(plan, bundle_dir=bundle_dir, out_dir=out_dir, override=values, network_config=net_config)
    cache, cache_note = None, why
    if root is not None:
        cache, staged, cache_note = attach_cache(req, root, plan, staged, entries=entries, dataset_dir=dataset_dir,
                                                 values=values, rows=findings["samples"], digests=digests)
    if not plan.multi_gpu:  # each epoch kept for --resume; several processes would write it at once
        staged = resume.attach(staged, out_dir, point, plan.amp)
    prepared = Prepared(req, resolved, bundle_dir, dataset_dir, out_dir, mapping, entries, datalist_path,
                        findings, env, plan, weights, staged, cache=cache, cache_note=cache_note,
                        digests=digests, bundle=bundle, resume_point=point)
    prepared.commands = phase_commands(prepared)
    prepared.label_dict_path = dict_path
    return prepared


def resume_point(req: Request, out_dir: Path, plan: Plan, bundle: bundle_source.BundleSource, entries: list[dict],
                 dataset_dir: Path, digests: dict[str, str], weights_sha256: str) -> resume.ResumePoint | None:
    """For --resume: where the stopped run continues, after checking that nothing it used has changed."""
    if not req.resuming:
        return None
    if plan.multi_gpu:
        raise ArgumentError(f"--resume {out_dir}: that run used several processes; resuming is for one-process runs.",
                            fix=["Start it again in a new --output-dir."])
    doc, manifest = resume.read_stopped(out_dir)
    differs = resume.changes(doc, manifest, bundle=bundle.configs_sha256, weights_sha256=weights_sha256,
                             dataset=evidence.dataset_inputs(entries, dataset_dir, digests))
    if differs:
        raise ArgumentError(f"--resume {out_dir}: the inputs changed since that run stopped, so the resumed run would "
                            "mix two recipes; nothing was run.", evidence=differs,
                            fix=["Restore those files, or start a new run in a new --output-dir."])
    point = replace(resume.last_point(out_dir), since=float((doc.get("runtime") or {}).get("started_at") or 0.0),
                    stopped=doc)
    if resume.finished(doc, out_dir, "finetune"):
        where = "the finetune had finished: only the phases after it run"
    else:
        kept = point.checkpoint or "no epoch had completed: the finetune starts again"
        where = f"after epoch {point.epoch} of {plan.epochs} ({kept})"
        if point.incomplete:
            where += (f"; {', '.join(p.name for p in point.incomplete)} is incomplete (the stop came while it was "
                      "written) and is passed over")
    plan.rationale.append(f"resume: {where}; the inputs are those of the stopped run")
    return point


def attach_cache(req: Request, root: Path, plan: Plan, staged: Staged, *, entries: list[dict], dataset_dir: Path,
                 values: dict[str, Any], rows: list[dict], digests: dict[str, str]
                 ) -> tuple[preprocess_cache.PreprocessCache | None, Staged, str | None]:
    """The preprocessing cache for this run under the root's cap (cache_store.py): room made by removing the
    least recently used keys, or no cache when the cap cannot hold this run's entries. Adds the plan's line."""
    if plan.multi_gpu:
        return None, staged, "multi-GPU runs partition their datasets; not cached"
    cap = cache_store.cap_bytes(root, req.preprocess_cache_max_gb)
    incoming = cache_store.estimate_bytes(rows, not req.skip_formal_eval)
    capped = (f"cap {cache_store.gib(cap)}" + ("" if req.preprocess_cache_max_gb is not None else
                                               " (a quarter of the free disk plus what the cache holds)"))
    if incoming > cap:
        note = (f"the preprocess cache's {capped} cannot hold this run's entries (~{cache_store.gib(incoming)}); "
                "running without it (raise --preprocess-cache-max-gb, or free space: nvseg-finetune cache prune)")
        plan.rationale.append(f"preprocess_cache: off, {note}")
        return None, staged, note
    cache, staged = preprocess_cache.attach(root, staged=staged, entries=entries, dataset_dir=dataset_dir,
                                            values=values, formal_eval=not req.skip_formal_eval, digests=digests)
    held = cache_store.total_bytes(cache.key_dir)
    removed = cache_store.make_room(root, cap, max(0, incoming - held), keep=frozenset({cache.key_dir}),
                                    dry_run=req.dry_run)  # a dry run only says what it would remove
    cache.cap, cache.removed = cap, [info.name for info in removed]
    verb = "would remove" if req.dry_run else "removed"
    freed = f"; {verb} {len(removed)} least recently used keys ({cache_store.gib(sum(i.bytes for i in removed))}) " \
            "to make room" if removed else ""
    plan.rationale.append(f"preprocess_cache: {capped}, this run's entries ~{cache_store.gib(incoming)} "
                          f"({cache_store.gib(held)} of them cached already){freed}")
    return cache, staged, None


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


def run_phases(p: Prepared, started_wall: float,
               starter: warm.WarmStarter | None = None) -> tuple[dict[str, PhaseResult], bool]:
    """Run in order; stop at the first failure. Returns the results and whether Ctrl-C ended it.
    `starter` is a warm-start server started early; it is used when warm start applies, and closed."""
    results: dict[str, PhaseResult] = {}
    env = bundle_env(p.bundle_dir, p.staged.config_dir)
    hold = None
    if p.cache is not None:
        p.cache.begin()
        hold = cache_store.Hold(p.cache.key_dir)  # no other run removes this key while the phases read it
        env |= p.cache.env_vars()
    (p.out_dir / "logs").mkdir(exist_ok=True)
    p.warm_note = warm.choose(p.plan.device, p.plan.nproc_per_node, p.plan.multi_gpu, os.environ)
    if p.warm_note and starter is not None:
        starter.close()
        starter = None
    elif not p.warm_note and starter is None:
        starter = warm.WarmStarter(pins.phase_python(), p.out_dir, env)
    names = list(p.commands)
    memo_key = eval_memo.key(p) if p.cache is not None and eval_memo.PHASE in names else None
    try:
        for index, name in enumerate(names, start=1):
            spec = PhaseSpec(name, index, len(names), p.commands[name], phase_log(p.out_dir, name))
            kept = eval_memo.recall(p.cache.root, memo_key, p) if memo_key and name == eval_memo.PHASE else None
            if kept is not None:
                results[name] = kept[0]
                print(f"[{index}/{len(names)} {name}] reused: the run in {kept[1]} scored the same checkpoint on the "
                      "same cases with the same configs and versions; its predictions, metrics and log are copied")
                continue
            if p.resume_point is not None and (earlier := resume.earlier_phase(p.resume_point, p.out_dir, name,
                                                                                spec.command)):
                results[name] = earlier
                print(f"[{index}/{len(names)} {name}] kept: it finished before the run stopped")
                continue
            if p.resume_point is not None and name == "finetune":
                resume.set_aside_log(spec.log_path)
            try:
                results[name] = run_phase(spec, cwd=p.out_dir, env=env, timeout=p.request.phase_timeout, warm=starter)
            except KeyboardInterrupt:
                results[name] = PhaseResult(name=name, command=spec.command, log_path=str(spec.log_path),
                                            failure="interrupted", seconds=round(time.time() - started_wall, 2))
                return results, True
            if memo_key and name == eval_memo.PHASE:
                eval_memo.keep(p.cache.root, memo_key, results[name], p)
            if results[name].return_code != 0:
                break
            if name == "finetune":
                resume.discard(p.out_dir)  # a finished finetune needs no epoch checkpoint
    finally:
        if starter is not None:
            starter.close(p.out_dir / "logs" / "warm_start.log")
            p.warm_note = starter.note
        if hold is not None and p.cache is not None:
            hold.close()
            if p.cache.cap is not None:  # what the phases wrote may have passed the cap: trim the others
                cache_store.make_room(p.cache.root, p.cache.cap, 0, keep=frozenset({p.cache.key_dir}))
        if p.resume_point is not None and "finetune" in results:  # the trace of every epoch, each once
            results["finetune"].facts = resume.merged_facts(p.out_dir, results["finetune"].facts)
    return results, False


Say = Callable[[str], None]


def _warn(text: str) -> None:
    print(text, file=sys.stderr)


def print_warnings(warnings: list[str], say: Say, shown: int = 10) -> None:
    """Anatomy plausibility warnings: the run goes on; output.json keeps the full list."""
    for line in warnings[:shown]:
        say(f"  warning {line}")
    if len(warnings) > shown:
        say(f"  warning and {len(warnings) - shown} more (input.dataset_audit.anatomy_warnings in output.json)")


def announce(p: Prepared, say: Say) -> None:
    """The plan, before anything runs: preset, every choice with its reason, dry-run commands."""
    say(f"{PROG}: {p.resolved.preset} run of {p.dataset_dir} -> {p.out_dir}")
    for line in p.plan.rationale:
        say(f"  plan  {line}")
    print_warnings(p.audit.get("anatomy_warnings", []), say)
    if p.cache is None and p.cache_note and not p.request.no_preprocess_cache:
        _warn(f"{PROG}: warning: {p.cache_note}")
    if p.request.dry_run:
        for name, command in p.commands.items():
            paths = os.pathsep.join([str(p.bundle_dir), str(p.staged.config_dir)])
            env = f"PYTHONPATH={shlex.quote(paths)} PYTHONDONTWRITEBYTECODE=1"
            say(f"  phase {name}: (cd {shlex.quote(str(p.out_dir))} && {env} {shlex.join(command)})")


def finish(p: Prepared, results: dict[str, PhaseResult], *, started: float, started_epoch: float,
           interrupted: bool) -> tuple[dict[str, Any], Path, int]:
    """output.json and the evidence manifest for a run that got this far; (doc, path, exit code)."""
    doc, code = result.build(p, results, wall=time.monotonic() - started, started_epoch=started_epoch,
                             interrupted=interrupted, planned=p.request.dry_run)
    evidence.write_manifest(p.out_dir, {"pretrained_ckpt": p.weights.to_json(),
                                        "dataset": evidence.dataset_inputs(p.entries, p.dataset_dir, p.digests)})
    path, errors = output.write(doc, p.out_dir)
    if errors:
        _warn(f"{PROG}: output.json does not match its schema ({len(errors)} problems, first: {errors[0]}); "
              "this is a bug in nvseg-bench, please report it.")
        code = max(code, 3)
    return doc, path, 130 if interrupted else code


def run(req: Request, say: Say = print) -> int:
    """The whole flow for one request; returns the exit code. Bad input raises NvsegError before any phase."""
    if req.seeds:
        return run_sweep(req, say)
    started, started_epoch = time.monotonic(), time.time()
    starter = None if req.dry_run else warm.start_early(pins.phase_python(), bundle_env(req.bundle_dir or bundle_source.BUILTIN))
    try:
        prepared = prepare(req)
    except BaseException:
        if starter is not None:
            starter.close()
        raise
    announce(prepared, say)
    results, interrupted = ({}, False) if req.dry_run else run_phases(prepared, started_epoch, starter)
    doc, path, code = finish(prepared, results, started=started, started_epoch=started_epoch, interrupted=interrupted)
    say(f"{PROG}: {doc['headline']}")
    for warning in (doc["output"].get("gain_warning"), doc["output"].get("loss_warning")):
        if warning:
            say(f"{PROG}: warning: {warning}")
    say(f"  output.json: {path}")
    say(f"  recommended checkpoint: {doc['output']['recommended_ckpt']}")
    say(f"  preprocess cache: {result.cache_line(doc['runtime']['preprocess_cache'])}")
    if "error" in doc:
        _warn(f"  {doc['error']['message']}")
    return code


def run_seed(req: Request, seed: int, shared: PhaseResult | None, first_dir: Path | None,
             say: Say) -> tuple[dict[str, Any], Path, PhaseResult | None, int]:
    """One seed's run into OUT/seed-S; `shared` is the first seed's eval_pretrained result."""
    started, started_epoch = time.monotonic(), time.time()
    prepared = prepare(replace(req, output_dir=sweep.seed_dir(req.output_dir, seed), seed=seed, seeds=None))
    commands = dict(prepared.commands)
    if shared is not None:
        sweep.share(first_dir, prepared.out_dir)
        prepared.commands = {k: v for k, v in commands.items() if k != sweep.SHARED_PHASE}
    results, interrupted = run_phases(prepared, started_epoch)
    prepared.commands = commands
    if shared is not None:  # evaluated once for the sweep; its figures are that evaluation's
        log = str(phase_log(prepared.out_dir, sweep.SHARED_PHASE))
        results = {sweep.SHARED_PHASE: replace(shared, log_path=log)} | results
    doc, path, code = finish(prepared, results, started=started, started_epoch=started_epoch, interrupted=interrupted)
    say(f"{PROG}: seed {seed}: {doc['headline']}\n  output.json: {path}")
    if doc["output"].get("gain_warning"):
        say(f"{PROG}: seed {seed}: warning: {doc['output']['gain_warning']}")
    return doc, path, results.get(sweep.SHARED_PHASE), code


def run_sweep(req: Request, say: Say = print) -> int:
    """`--seeds`: run every seed, write OUT/sweep.json, print the spread and the recommendation."""
    sweep.refuse_combinations(req.seed, req.dry_run, req.skip_formal_eval)
    docs: dict[int, tuple[dict[str, Any], Path]] = {}
    shared, first_dir, code = None, None, 0
    seeds = req.seeds or []
    for index, seed in enumerate(seeds, start=1):
        say(f"{PROG}: sweep seed {seed} ({index} of {len(seeds)})")
        doc, path, pre, seed_code = run_seed(req, seed, shared, first_dir, say)
        docs[seed] = (doc, path)
        code = code or seed_code
        if shared is None:
            shared, first_dir = pre, path.parent
        if seed_code == 130 or pre is None or pre.return_code != 0:
            break  # interrupted, or the shared evaluation failed: later seeds cannot be compared
    target, doc = sweep.write(docs, req.output_dir)
    say(f"{PROG}: {sweep.sweep_line(doc)}\n  sweep.json: {target.resolve()}")
    return code
