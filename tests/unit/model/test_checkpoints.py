"""model/checkpoints.py: torch.save archives read without torch (every value must match what torch.load gives),
and a checkpoint that does not fit the network refused by name."""
from __future__ import annotations

import json
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from nvseg_bench.errors import ArgumentError
from nvseg_bench.model import checkpoints
from nvseg_bench.model.checkpoints import check_layout, expected_vista3d132, read_tensors

from ...helpers import REPO


def _state() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    big = torch.randn(6, 5, generator=gen)
    return {
        "f32": torch.randn(3, 4, 2, generator=gen),
        "f16": torch.randn(7, generator=gen).half(),
        "bf16": torch.randn(2, 3, generator=gen).bfloat16(),
        "f64": torch.randn(4, generator=gen).double(),
        "i64": torch.arange(-5, 5),
        "i32": torch.arange(6, dtype=torch.int32).reshape(2, 3),
        "u8": torch.arange(250, 256, dtype=torch.uint8),
        "flag": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 4),
        "transposed": big.t(),  # a stride other than row-major
        "sliced": big[2:4],  # an offset into a storage another tensor shares
        "whole": big,
        "param": torch.nn.Parameter(torch.ones(2, 2)),
    }


def _saved(path: Path, obj: object) -> Path:
    torch.save(obj, path)
    return path


def _as_numpy(tensor: torch.Tensor) -> np.ndarray:
    return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).detach().numpy()


def test_every_dtype_stride_and_offset_reads_as_torch_loads_it(tmp_path):
    state = _state()
    found = checkpoints.read_archive(_saved(tmp_path / "m.pt", state))
    assert sorted(found) == sorted(state)
    for key, tensor in state.items():
        stored = found[key]
        assert stored.shape == tuple(tensor.shape) and stored.element_size() == tensor.element_size(), key
        values = stored.floats() if stored.is_floating_point() else stored.array()
        np.testing.assert_array_equal(values, _as_numpy(tensor), err_msg=key)


def test_wrapped_and_ddp_prefixed_state_dicts_unwrap_to_plain_names(tmp_path):
    wrapped = {"model": OrderedDict([("module.encoder.w", torch.ones(2))]), "epoch": 3}
    assert list(checkpoints.read_archive(_saved(tmp_path / "w.pt", wrapped))) == ["encoder.w"]


def test_a_pickle_naming_other_code_is_refused_without_running_it(tmp_path):
    path = _saved(tmp_path / "odd.pt", {"w": torch.ones(2), "when": np.float64(1.0)})
    with pytest.raises(checkpoints.NotTorchZip, match="numpy"):
        checkpoints.read_archive(path)


def test_a_legacy_file_is_not_read_but_torch_still_reads_it_for_the_layout(tmp_path):
    path = tmp_path / "legacy.pt"
    torch.save({"w": torch.arange(3.0)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(checkpoints.NotTorchZip, match="not a zip archive"):
        checkpoints.read_archive(path)
    np.testing.assert_array_equal(read_tensors(path)["w"].floats(), [0.0, 1.0, 2.0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_compare_agrees_with_torch_on_equality_and_differences(tmp_path, dtype):
    gen = torch.Generator().manual_seed(1)
    old = torch.randn(1000, generator=gen).to(dtype)
    new = old.clone()
    new[[3, 500, 999]] += torch.tensor([0.5, -2.0, 0.25]).to(dtype)
    tensors = checkpoints.read_archive(_saved(tmp_path / "pair.pt", {"new": new, "old": old, "same": old.clone()}))
    equal, max_diff, total = checkpoints.compare(tensors["new"], tensors["old"])
    diff = (new.float() - old.float()).abs()
    assert not equal and max_diff == pytest.approx(float(diff.max())) and total == pytest.approx(float(diff.sum()))
    assert checkpoints.compare(tensors["same"], tensors["old"]) == (True, 0.0, 0.0)


def test_compare_treats_nan_and_signed_zero_as_torch_equal_does(tmp_path):
    a, b = torch.tensor([float("nan"), 0.0]), torch.tensor([float("nan"), -0.0])
    tensors = checkpoints.read_archive(_saved(tmp_path / "n.pt", {"a": a, "z": torch.tensor([0.0]), "nz": torch.tensor([-0.0])}))
    assert checkpoints.compare(tensors["a"], tensors["a"])[0] is torch.equal(a, a) is False
    assert checkpoints.compare(tensors["z"], tensors["nz"])[0] is torch.equal(b[1:], a[1:]) is True


def test_a_change_beyond_the_first_chunk_is_found(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoints, "CHUNK", 8)
    old = torch.zeros(40, dtype=torch.int64)
    new = old.clone()
    new[37] = 1
    tensors = checkpoints.read_archive(_saved(tmp_path / "c.pt", {"new": new, "old": old}))
    assert checkpoints.compare(tensors["new"], tensors["old"]) == (False, 0.0, 0.0)


def test_pickle_globals_names_what_the_archive_needs_and_rejects_a_truncated_file(tmp_path):
    path = _saved(tmp_path / "entry.pt", {"image": torch.ones(2), "meta": np.array([1.0])})
    found = checkpoints.pickle_globals(path)
    assert {"torch._utils._rebuild_tensor_v2", "torch.FloatStorage", "numpy.ndarray"} <= found
    truncated = tmp_path / "cut.pt"
    truncated.write_bytes(path.read_bytes()[:-100])
    assert checkpoints.pickle_globals(truncated) is None


def test_the_checkpoint_comparison_runs_without_importing_torch(tmp_path):
    old = _saved(tmp_path / "old.pt", {"w": torch.zeros(3), "b": torch.ones(2)})
    new = _saved(tmp_path / "new.pt", {"w": torch.tensor([0.0, 1.0, 0.0]), "b": torch.ones(2)})
    code = ("import json, sys; from pathlib import Path; from nvseg_bench.model.checkpoints import compare_checkpoints; "
            "r = compare_checkpoints(Path(sys.argv[1]), Path(sys.argv[2])); "
            "print(json.dumps([r['n_changed'], r['max_abs_diff'], 'torch' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code, str(new), str(old)], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out) == [1, 1.0, False]


def test_a_path_given_as_text_reads_the_same(tmp_path):
    path = _saved(tmp_path / "t.pt", {"w": torch.arange(4.0)})
    assert checkpoints.read_archive(str(path))["w"].shape == (4,) and checkpoints.pickle_globals(str(path))


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
    micro = REPO / "fixtures" / "micro_model" / "model.pt"
    with pytest.raises(ArgumentError, match="differ in shape"):
        check_layout(micro, expected_vista3d132(), "vista3d132")


@pytest.mark.slow
def test_the_stored_vista3d132_layout_matches_monai():
    from monai.networks.nets import vista3d132

    state = vista3d132(in_channels=1).state_dict()
    assert expected_vista3d132() == {k: list(v.shape) for k, v in state.items()}
