"""Sliding-window inference for VISTA3D with class (and optional point) prompts."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from monai.inferers import Inferer, sliding_window_inference


class Vista3dInferer(Inferer):
    """Run VISTA3D over a whole volume in `roi_size` windows, Gaussian-blended.

    The network returns one logit channel per prompt; `transpose=True` makes each window's output
    [1, n_prompts, H, W, D] so windows stitch like an ordinary multi-channel prediction.
    """

    def __init__(self, roi_size: Sequence[int], overlap: float = 0.625, sw_batch_size: int = 1) -> None:
        super().__init__()
        self.roi_size = list(roi_size)
        self.overlap = float(overlap)
        self.sw_batch_size = int(sw_batch_size)

    def __call__(  # type: ignore[override]
        self,
        inputs: torch.Tensor,
        network: Any,
        class_vector: torch.Tensor | None = None,
        point_coords: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        return sliding_window_inference(
            inputs=inputs,
            roi_size=self.roi_size,
            sw_batch_size=self.sw_batch_size,
            predictor=network,
            overlap=self.overlap,
            mode="gaussian",
            transpose=True,
            with_coord=True,
            class_vector=class_vector,
            point_coords=point_coords,
            point_labels=point_labels,
            prompt_class=class_vector,
            **kwargs,
        )
