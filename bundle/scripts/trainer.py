"""Training iteration for VISTA3D: sample class/point prompts from the label, sum a loss per prompt."""
from __future__ import annotations

from typing import Any

import torch
from monai.apps.vista3d.sampler import sample_prompt_pairs
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.utils.enums import CommonKeys as Keys


class Vista3dTrainer(SupervisedTrainer):
    """A SupervisedTrainer whose iteration builds VISTA3D prompts.

    hyper_kwargs carries the prompt-sampling settings (label_set, patch_size, max_point, drop_label_prob,
    drop_point_prob, exclude_background, ...). The batch size must be 1: the prompt sampler supports
    nothing else.
    """

    def __init__(self, *args: Any, hyper_kwargs: dict | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hyper_kwargs = dict(hyper_kwargs or {})

    def _sample_prompts(self, labels: torch.Tensor) -> tuple:
        hk = self.hyper_kwargs
        label_set = hk.get("label_set")
        if label_set is None:
            label_set = list(range(int(hk["output_classes"])))
        return sample_prompt_pairs(
            labels,
            list(label_set),
            max_prompt=hk.get("max_prompt"),
            max_foreprompt=hk.get("max_foreprompt"),
            max_backprompt=hk.get("max_backprompt"),
            max_point=int(hk.get("max_point", 5)),
            include_background=not hk.get("exclude_background", True),
            drop_label_prob=float(hk.get("drop_label_prob", 0.25)),
            drop_point_prob=float(hk.get("drop_point_prob", 0.25)),
        )

    def _prompt_loss(self, engine: Any, inputs: torch.Tensor, labels: torch.Tensor, prompts: tuple) -> torch.Tensor:
        label_prompt, point, point_label, prompt_class = prompts
        outputs = engine.network(
            input_images=inputs, point_coords=point, point_labels=point_label, class_vector=label_prompt
        )
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        loss = torch.zeros((), device=inputs.device)
        counted = 0
        for index, cls in enumerate(prompt_class.flatten().tolist()):
            if cls == 0:  # background prompt: no loss, as upstream
                continue
            # float target: MONAI 1.5's Dice crashes on boolean targets
            target = (labels == cls).float()
            loss = loss + engine.loss_function(outputs[[index]].float(), target)
            counted += 1
        return loss / max(counted, 1)

    def _iteration(self, engine: Any, batchdata: dict[str, torch.Tensor]) -> dict:
        if batchdata is None:
            raise ValueError("Vista3dTrainer got an empty batch.")
        inputs, labels = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs)
        engine.state.output = {Keys.IMAGE: inputs, Keys.LABEL: labels}
        prompts = self._sample_prompts(labels)
        if prompts[0] is None and prompts[1] is None:
            # no usable prompt in this crop: nothing to learn from it
            engine.state.output[Keys.LOSS] = torch.zeros((), device=inputs.device)
            return engine.state.output

        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        if engine.amp and engine.scaler is not None:
            with torch.autocast(device_type=inputs.device.type, **engine.amp_kwargs):
                loss = self._prompt_loss(engine, inputs, labels, prompts)
            engine.state.output[Keys.LOSS] = loss
            engine.fire_event(IterationEvents.LOSS_COMPLETED)
            engine.scaler.scale(loss).backward()
            engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
            engine.scaler.step(engine.optimizer)
            engine.scaler.update()
        else:
            loss = self._prompt_loss(engine, inputs, labels, prompts)
            engine.state.output[Keys.LOSS] = loss
            engine.fire_event(IterationEvents.LOSS_COMPLETED)
            loss.backward()
            engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
            engine.optimizer.step()
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
