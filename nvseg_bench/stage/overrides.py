"""The one table of override keys: every config id this tool sets on top of the bundle, and who reads it.

Readers: the training run (train.json + train_continual.json), the formal evaluation (evaluate.json on
top of them) and the deterministic preprocessing head that the preprocessing cache stores. From this
table come the staged override (configs.py), the preprocessing cache's key (a key no preprocessing
reads leaves it unchanged) and the kept evaluation's key (a key only training reads leaves it
unchanged). A pass-through recipe flag is one row with `recipe` set to its resolver key; nothing else
in this package needs to change (docs/contributing.md).
"""
from __future__ import annotations

from dataclasses import dataclass

TRAINING, EVALUATION, PREPROCESSING = "training", "evaluation", "preprocessing"
BOTH = frozenset({TRAINING, EVALUATION})
ALL = frozenset({TRAINING, EVALUATION, PREPROCESSING})
ONLY_TRAINING = frozenset({TRAINING})


@dataclass(frozen=True)
class Key:
    name: str  # the bundle config id, as monai.bundle addresses it
    readers: frozenset[str]
    why: str
    recipe: str | None = None  # a resolved value staged as it is, by resolver key (when it is not None)


TABLE: tuple[Key, ...] = (
    # where things are
    Key("bundle_root", BOTH, "the bundle folder, read in place"),
    Key("dataset_dir", BOTH, "the dataset; the cache keys cases by their bytes instead"),
    Key("data_list_file_path", BOTH, "the run's datalist; the cache keys cases by their bytes instead"),
    Key("fold", BOTH, "fold 0 validates"),
    Key("ckpt_dir", ONLY_TRAINING, "where the finetune writes model_finetune.pt"),
    Key("output_dir", BOTH, "the training's output folder; each evaluation gets its own on the command line"),
    # the recipe
    Key("finetune", ONLY_TRAINING, "start from the pretrained weights"),
    Key("finetune_model_path", ONLY_TRAINING, "the pretrained weights"),
    Key("epochs", ONLY_TRAINING, "the plan's epochs"),
    Key("learning_rate", ONLY_TRAINING, "the plan's learning rate"),
    Key("lr_schedule#activate", ONLY_TRAINING, "constant learning rate, as the continual recipe"),
    Key("val_interval", ONLY_TRAINING, "validation every epoch"),
    Key("val_at_start", ONLY_TRAINING, "epoch 0: the pretrained weights' validation Dice"),
    Key("seed", ONLY_TRAINING, "set_determinism in bundle/'s train.json", recipe="seed"),
    # --auto-seg: prompt sampling; upstream's evaluator receives them too (validate#evaluator#hyper_kwargs)
    Key("drop_label_prob", BOTH, "--auto-seg: keep class prompts"),
    Key("drop_point_prob", BOTH, "--auto-seg: drop point prompts"),
    # what the network sees
    Key("patch_size", ALL, "training crops (and the padding of the training head)"),
    Key("patch_size_valid", BOTH, "sliding-window size"),
    Key("resample_to_spacing", ALL, "the preprocessing head resamples to it"),
    Key("label_mappings", ALL, "local label values to VISTA3D ids, applied in the preprocessing head"),
    # resources
    Key("train_dataset_cache_rate", ONLY_TRAINING, "the plan's in-memory share of training cases"),
    Key("val_dataset_cache_rate", BOTH, "validation cases held in memory"),
    Key("num_cache_workers", BOTH, "threads filling the in-memory cache"),
    Key("num_workers", BOTH, "data loader workers (bundle/ reads it; upstream hard-codes 4)"),
    Key("sw_overlap", BOTH, "sliding-window overlap"),
    Key("sw_batch_size", BOTH, "windows per forward pass"),
    Key("validate#inferer#sw_batch_size", BOTH, "upstream's inferer takes it but its config does not pass it"),
    Key("amp", BOTH, "autocast on a GPU"),
    Key("validate#evaluator#amp", BOTH, "upstream's evaluator turns amp on by itself: fp32 means fp32"),
    Key("train#trainer#amp_kwargs", ONLY_TRAINING, "the autocast dtype of --precision"),
    Key("validate#evaluator#amp_kwargs", BOTH, "the autocast dtype of --precision"),
    # --tracking (tracking/bundle.py): the finetune phase's handlers; nothing a run computes reads them
    Key("use_mlflow", ONLY_TRAINING, "the bundle's own MLflow handler stays off: MONAI's --tracking adds one"),
    Key("use_tensorboard", ONLY_TRAINING, "--tracking tensorboard: the bundle's TensorBoard handlers, into OUT/train"),
    Key("tracking_uri", ONLY_TRAINING, "--tracking mlflow: the store the MLflow handlers log to"),
    Key("experiment_name", ONLY_TRAINING, "--tracking mlflow: the experiment of the tool's run"),
    Key("run_name", ONLY_TRAINING, "--tracking mlflow: the handlers find the run the tool opened by this name"),
    Key("save_execute_config", ONLY_TRAINING, "--tracking mlflow: the parsed config, kept in OUT/train and logged"),
)
KEYS: dict[str, Key] = {key.name: key for key in TABLE}


def read_by(reader: str) -> frozenset[str]:
    return frozenset(key.name for key in TABLE if reader in key.readers)


def not_preprocessing() -> frozenset[str]:
    """Keys the preprocessing head never reads: left out of the preprocessing cache's key."""
    return frozenset(KEYS) - read_by(PREPROCESSING)


def training_only() -> frozenset[str]:
    """Keys only the training run reads: left out of the kept evaluation's key."""
    return frozenset(key.name for key in TABLE if key.readers == ONLY_TRAINING)


def recipe_rows() -> dict[str, str]:
    """Resolved values staged as they are: resolver key -> config id."""
    return {key.recipe: key.name for key in TABLE if key.recipe}


def unknown(values: dict[str, object]) -> list[str]:
    """Keys an override sets that the table does not describe (a test holds this empty)."""
    return sorted(set(values) - set(KEYS))
