"""Random number states of a finetune, for nvseg-bench's --resume: stage/resume.py copies this file into
OUT/configs as nvseg_rng.py, where the finetune phase (which has OUT/configs on its PYTHONPATH) imports it.

Every source of randomness an epoch draws from, as a state dict a checkpoint can hold: torch (CPU and CUDA),
numpy and Python's global generators, and the generator of each random transform of the training chain
(MONAI seeds each one from set_determinism; in the training process they advance with every case). Plain
lists and tensors only: MONAI's CheckpointLoader reads the file with torch.load's weights-only default.
Runs only inside the phase's interpreter, never in nvseg-bench's own process.
"""
import random

import numpy as np
import torch


def _generators(transform):
    """Every numpy generator the transform chain holds, in a fixed order: those of the transforms and of
    the transforms they wrap (a dictionary crop keeps its own array cropper, with its own generator)."""
    found, seen, stack = [], set(), [transform]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, np.random.RandomState):
            found.append(node)
        elif isinstance(node, (list, tuple)):
            stack.extend(reversed(node))
        elif type(node).__module__.startswith("monai.") and hasattr(node, "__dict__"):
            stack.extend(reversed(list(vars(node).values())))
    return found


def _numpy_state(generator):
    name, keys, pos, has_gauss, gauss = generator.get_state()
    return [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)]


def _set_numpy_state(generator, state):
    name, keys, pos, has_gauss, gauss = state
    generator.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))


class RandomStates:
    def __init__(self, transform):
        self.transforms = _generators(transform)

    def state_dict(self):
        return {"torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "numpy": _numpy_state(np.random.mtrand._rand), "python": random.getstate(),
                "transforms": [_numpy_state(g) for g in self.transforms]}

    def load_state_dict(self, state):
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        _set_numpy_state(np.random.mtrand._rand, state["numpy"])
        random.setstate(state["python"])
        if len(state["transforms"]) != len(self.transforms):
            raise ValueError(f"the checkpoint holds {len(state['transforms'])} random transform states, "
                             f"the training chain has {len(self.transforms)}")
        for generator, saved in zip(self.transforms, state["transforms"]):
            _set_numpy_state(generator, saved)
