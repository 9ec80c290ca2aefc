"""Checkpoint layout checks: a checkpoint that does not fit the network is refused by name."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nvseg_bench.errors import ArgumentError
from nvseg_bench.model.layout import check_layout, expected_vista3d132

EXPECTED = {"image_encoder.conv.weight": [8, 1, 3, 3, 3], "class_head.embed.weight": [512, 8]}


def save(path: Path, shapes: dict[str, list[int]], wrap: str | None = None) -> Path:
    state = {k: torch.zeros(v) for k, v in shapes.items()}
    torch.save({wrap: state} if wrap else state, path)
    return path


def test_a_fitting_checkpoint_passes_also_when_wrapped(tmp_path):
    assert check_layout(save(tmp_path / "m.pt", EXPECTED, wrap="model"), EXPECTED, "net") == "2 tensors match net"


def test_an_older_layout_is_refused_naming_the_keys(tmp_path):
    renamed = {"encoder.conv.weight": [8, 1, 3, 3, 3], "class_head.embed.weight": [512, 8]}
    with pytest.raises(ArgumentError) as caught:
        check_layout(save(tmp_path / "old.pt", renamed), EXPECTED, "vista3d132")
    text = caught.value.render()
    assert "image_encoder.conv.weight" in text and "encoder.conv.weight" in text and "MONAI 1.3" in text


def test_a_wrong_architecture_is_refused_naming_the_shapes(tmp_path):
    wider = dict(EXPECTED, **{"class_head.embed.weight": [512, 48]})
    with pytest.raises(ArgumentError, match=r"class_head.embed.weight \[512, 48\] vs \[512, 8\]"):
        check_layout(save(tmp_path / "wide.pt", wider), EXPECTED, "net")


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ArgumentError, match="cannot be read as tensors"):
        check_layout(tmp_path / "x.pt", EXPECTED, "net")


def test_the_micro_checkpoint_does_not_pass_as_the_full_model():
    micro = Path(__file__).resolve().parents[1] / "fixtures" / "micro_model" / "model.pt"
    with pytest.raises(ArgumentError, match="differ in shape"):
        check_layout(micro, expected_vista3d132(), "vista3d132")


@pytest.mark.slow
def test_the_stored_vista3d132_layout_matches_monai():
    from monai.networks.nets import vista3d132

    state = vista3d132(in_channels=1).state_dict()
    assert expected_vista3d132() == {k: list(v.shape) for k, v in state.items()}
