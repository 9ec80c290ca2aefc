"""Evaluation iteration for VISTA3D: prompt every class of the label set, automatic segmentation only."""
from __future__ import annotations

import contextlib
from typing import Any

import torch
from monai.engines import SupervisedEvaluator
from monai.engines.utils import IterationEvents
from monai.utils.enums import CommonKeys as Keys


class Vista3dEvaluator(SupervisedEvaluator):
    """A SupervisedEvaluator that turns `hyper_kwargs['label_set']` into class prompts.

    With `user_prompt: false` (validation) the batch holds image and label. With `user_prompt: true`
    (inference) the batch holds only the image, and the classes come from the batch's `label_prompt`
    or from `hyper_kwargs['label_prompt']`.
    """

    def __init__(self, *args: Any, hyper_kwargs: dict | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hyper_kwargs = dict(hyper_kwargs or {})

    def _class_prompt(self, batchdata: dict, device: torch.device) -> torch.Tensor:
        hk = self.hyper_kwargs
        classes = batchdata.get("label_prompt") if hk.get("user_prompt") else None
        if classes is None:
            classes = hk.get("label_prompt") if hk.get("user_prompt") else hk.get("label_set")
        if classes is None:
            classes = list(range(int(hk["output_classes"])))
        values = torch.as_tensor(classes).flatten().long()
        if values.numel() == 0:
            raise ValueError("Vista3dEvaluator needs at least one class prompt (label_set or label_prompt).")
        return values.to(device).unsqueeze(-1)

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if self.amp:
            return torch.autocast(device_type=device.type, **self.amp_kwargs)
        return contextlib.nullcontext()

    def _iteration(self, engine: Any, batchdata: dict[str, torch.Tensor]) -> dict:
        if batchdata is None:
            raise ValueError("Vista3dEvaluator got an empty batch.")
        if self.hyper_kwargs.get("user_prompt"):
            inputs = batchdata[Keys.IMAGE].to(engine.state.device)
            labels = None
        else:
            inputs, labels = engine.prepare_batch(
                batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs
            )
        label_prompt = self._class_prompt(batchdata, inputs.device)
        engine.state.output = {Keys.IMAGE: inputs, Keys.LABEL: labels}
        with engine.mode(engine.network), self._autocast(inputs.device):
            pred = engine.inferer(inputs=inputs, network=engine.network, class_vector=label_prompt)
        engine.state.output[Keys.PRED] = pred.float()
        # a leading batch axis so decollate hands each item its prompts (VistaPostTransformd reads them)
        engine.state.output["label_prompt"] = label_prompt.unsqueeze(0)
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
