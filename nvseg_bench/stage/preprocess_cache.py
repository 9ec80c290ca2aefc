"""Preprocessing cache: each case's deterministic transform head, computed once for every phase and later run.

Switches the bundle's datasets (train#dataset, validate#dataset) to MONAI's own PersistentDataset by
config override files only, so an upstream bundle given with --bundle-dir runs unchanged. The head of
each chain (load, crop, intensity window, orientation, spacing, up to the first random transform)
is stored once per case and read by eval_pretrained, the finetune's training and validation,
eval_finetuned, and the next run on the same files (a seed sweep, another learning rate).

Keys: one folder per chain under ROOT/<key>/, where the key hashes the bundle config files of the
stack, the run's config values that can change preprocessing (all but the run-only ones below) and
the MONAI version; inside it PersistentDataset names each entry by the datalist item, which this
module extends with the sha256 of the image and label (so an edited file is a new entry). Digests
are remembered by (path, size, mtime) in ROOT/digests.json, so a later run does not read the data
again to key it; the audit (audit.py) takes them from the bytes it reads anyway, and keeps its
per-case rows under ROOT/audit/. Writes are atomic: the children get TMPDIR=ROOT/tmp, on the same file system, so
PersistentDataset's temp-file-then-move is a rename. Entries that do not open as a torch archive of
allowed types are removed before the phases start, so MONAI rebuilds them instead of failing.
The cache never lives under the dataset or bundle dir. No monai or torch import (model/checkpoints.py vets entries).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

from nvseg_bench.model import checkpoints
from nvseg_bench.stage import overrides
from nvseg_bench.stage.configs import Staged
from nvseg_bench.store.digests import FILE as DIGESTS_FILE
from nvseg_bench.store.digests import file_digests

EVAL_CHAIN = "evaluate"  # validate#dataset of the eval stack (evaluate.json's own chain)
# What a cached entry may contain: MetaTensors with their metadata and transform trace (names as
# torch's weights-only loader reports them; the bundle side allowlists the same classes).
ALLOWED_GLOBALS = ("monai.data.meta_tensor.MetaTensor", "monai.utils.enums.TraceKeys", "monai.utils.enums.MetaKeys",
                   "monai.utils.enums.SpaceKeys", "numpy.core.multiarray._reconstruct", "numpy.core.multiarray.scalar",
                   "numpy.ndarray", "numpy.dtype")
# numpy 2 pickles the same functions under numpy._core (a GPU machine may run it with the drift
# allowed); the bundle side's names resolve either way, the scrub compares names, so it takes both
SCRUB_ACCEPTS = frozenset(ALLOWED_GLOBALS) | {n.replace("numpy.core.", "numpy._core.") for n in ALLOWED_GLOBALS}
NUMPY_DTYPES = "[t for t in vars(numpy.dtypes).values() if isinstance(t, type) and issubclass(t, numpy.dtype)]"


@dataclass(frozen=True)
class PreprocessCache:
    root: Path
    key_dir: Path
    needed: dict[str, int]  # chain -> distinct entries this run reads
    digests: dict[str, str] | None = None  # sha256 of every dataset file, by absolute path
    cap: int | None = None  # the root's cap in bytes (store/limits.py)
    removed: tuple[str, ...] = ()  # keys removed to make room for this run

    def chain_dir(self, chain: str) -> Path:
        return self.key_dir / chain

    def env_vars(self) -> dict[str, str]:
        return {"TMPDIR": str(self.root / "tmp")}

    def entries(self) -> dict[str, set[str]]:
        return {c: {p.name for p in self.chain_dir(c).glob("*.pt")} for c in self.needed}

    def begin(self) -> CacheStart:
        """Remove entries MONAI could not load, then note what is there: the phases' starting point."""
        rebuilt = scrub([self.chain_dir(c) for c in self.needed])
        return CacheStart(self.entries(), rebuilt)

    def report(self, start: CacheStart | None) -> dict[str, Any]:
        """Hits and misses since `start` (None: no phase ran, so nothing was read or written)."""
        after = self.entries()
        before = after if start is None else start.entries
        misses = {c: len(after[c] - before[c]) for c in self.needed}
        hits = {c: max(0, self.needed[c] - misses[c]) if start is not None else 0 for c in self.needed}
        size = sum(p.stat().st_size for p in self.key_dir.rglob("*.pt"))
        return {"enabled": True, "dir": str(self.key_dir), "hits": sum(hits.values()), "misses": sum(misses.values()),
                "per_chain": {c: {"needed": self.needed[c], "hits": hits[c], "misses": misses[c]} for c in self.needed},
                "rebuilt_bad_entries": start.rebuilt if start else 0, "bytes": size, "note": None,
                "cap_bytes": self.cap, "removed_keys": list(self.removed)}


@dataclass(frozen=True)
class CacheStart:
    entries: dict[str, set[str]]  # the entries found when the phases began
    rebuilt: int  # damaged entries removed then, for MONAI to build again


def disabled(note: str) -> dict[str, Any]:
    return {"enabled": False, "dir": None, "hits": 0, "misses": 0, "per_chain": {}, "rebuilt_bad_entries": 0,
            "bytes": 0, "note": note}


def keyed_datalist(entries: list[dict], dataset_dir: Path, digests: dict[str, str], path: Path) -> Path:
    """The run's datalist with each file's sha256 beside it: PersistentDataset keys entries by the whole item."""
    keyed = []
    for entry in entries:
        item = dict(entry)
        for key in ("image", "label"):
            item[f"{key}_sha256"] = digests[str(dataset_dir / entry[key])]
        keyed.append(item)
    path.write_text(json.dumps({"training": keyed}, indent=2) + "\n")
    return path


def chain_key(config_files: list[Path], values: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    for path in config_files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    ignored = overrides.not_preprocessing()
    kept = {k: v for k, v in sorted(values.items()) if k not in ignored}
    digest.update(json.dumps(kept, sort_keys=True, default=str).encode())
    digest.update(metadata.version("monai").encode())
    return digest.hexdigest()[:20]


def _persistent(data: str, transform: str, cache_dir: Path) -> dict[str, Any]:
    allowed = ", ".join(ALLOWED_GLOBALS)
    return {
        "_target_": "PersistentDataset",
        # MONAI 1.4 loads entries with torch.load's default, weights-only under torch >= 2.6: allow its types
        "_requires_": f"$torch.serialization.add_safe_globals([{allowed}] + {NUMPY_DTYPES})",
        "data": data,
        "transform": transform,
        "cache_dir": str(cache_dir),
        "hash_transform": "$monai.data.utils.json_hashing",
    }


def train_override(cache: PreprocessCache, datalist: Path) -> dict[str, Any]:
    return {"data_list_file_path": str(datalist),
            "train#dataset": _persistent("@train_datalist", "@train#preprocessing", cache.chain_dir("train")),
            "validate#dataset": _persistent("$list(@val_datalist)", "@validate#preprocessing", cache.chain_dir("validate"))}


def eval_override(cache: PreprocessCache, datalist: Path) -> dict[str, Any]:
    return {"data_list_file_path": str(datalist),
            "validate#dataset": _persistent("$list(@val_datalist)", "@validate#preprocessing", cache.chain_dir(EVAL_CHAIN))}


def scrub(folders: list[Path]) -> int:
    """Remove entries that are not complete torch archives of allowed types; return how many."""
    removed = 0
    for folder in folders:
        for path in folder.glob("*.pt"):
            if not _loadable(path):
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def _loadable(path: Path) -> bool:
    found = checkpoints.pickle_globals(path)
    if found is None:
        return False
    return all(name in checkpoints.TORCH_GLOBALS or name in SCRUB_ACCEPTS or name.startswith("numpy.dtypes.")
               for name in found)


def _with_cache(stack: list[str], path: Path) -> list[str]:
    return [*stack[:-1], str(path), stack[-1]]  # after the run's override, before the logging switch


def attach(root: Path, *, staged: Staged, entries: list[dict], dataset_dir: Path, values: dict[str, Any],
           formal_eval: bool, digests: dict[str, str] | None = None) -> tuple[PreprocessCache, Staged]:
    """Key the cache for this run, write the two override files, and put them into the config stacks."""
    run_files = {str(staged.override), str(staged.no_logging)} | ({str(staged.tracking)} if staged.tracking else set())
    bundle_files = [Path(f) for f in dict.fromkeys(staged.train_stack + staged.eval_stack) if f not in run_files]
    key_dir = root / chain_key(bundle_files, values)
    n_val = sum(1 for e in entries if int(e.get("fold", -1)) == 0)
    needed = {"train": len(entries) - n_val, "validate": n_val} | ({EVAL_CHAIN: n_val} if formal_eval else {})
    paths = [dataset_dir / e[k] for e in entries for k in ("image", "label")]
    cache = PreprocessCache(root=root, key_dir=key_dir, needed=needed,
                            digests=digests or file_digests(paths, root / DIGESTS_FILE))
    datalist = keyed_datalist(entries, dataset_dir, cache.digests, staged.config_dir / "datalist_content_keyed.json")
    train = _write(staged.config_dir / "preprocess_cache_train.json", train_override(cache, datalist))
    evaluate = _write(staged.config_dir / "preprocess_cache_eval.json", eval_override(cache, datalist))
    return cache, replace(staged, train_stack=_with_cache(staged.train_stack, train),
                          eval_stack=_with_cache(staged.eval_stack, evaluate))


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
