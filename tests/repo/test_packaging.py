"""What the built distributions hold: `python -m build` (an sdist, then the wheel built from it) carries every
package, the schemas and data, and the bundle, micro fixture and micro model the smoke run needs, copied in
by setup.py; one version; and no copy of the shipped data is committed inside the package.

The build runs once per session (about 10 s, needs the `build` package from the [test] extra): slow-marked."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import eval_engine
from nvseg_bench import __version__, paths

from ..helpers import REPO

SHIPPED_LIMIT_MB = 4  # the bundle, fixture and micro model are about 2 MB; a wheel is no place for a data set


@pytest.fixture(scope="session")
def wheel_names(tmp_path_factory) -> list[str]:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (wheel,) = out.glob("*.whl")
    assert len(list(out.glob("*.tar.gz"))) == 1
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def tracked(folder: str) -> list[str]:
    """The checkout's files under folder (git's list: what a clean clone builds from)."""
    listed = subprocess.run(["git", "ls-files", "-z", folder], cwd=REPO, capture_output=True, text=True, check=True)
    return [name for name in listed.stdout.split("\0") if name]


@pytest.mark.slow
def test_the_wheel_holds_every_package_of_the_checkout(wheel_names):
    packages = sorted({p.parent.relative_to(REPO).as_posix() for top in ("nvseg_bench", "eval_engine")
                       for p in (REPO / top).rglob("__init__.py")})
    assert len(packages) > 10
    assert [p for p in packages if f"{p}/__init__.py" not in wheel_names] == []
    modules = [f for top in ("nvseg_bench", "eval_engine") for f in tracked(top) if f.endswith(".py")]
    assert [m for m in modules if m not in wheel_names] == []


@pytest.mark.slow
def test_the_wheel_ships_the_bundle_fixture_and_micro_model_inside_the_package(wheel_names):
    shipped = [f"nvseg_bench/{paths.SHIPPED_DIR}/{name}" for part in paths.SHIPPED_PARTS for name in tracked(part)]
    for needed in ("bundle/configs/train.json", "bundle/scripts/trainer.py", "fixtures/spleen_micro/fixture.json",
                   "fixtures/spleen_micro/imagesTr/spleen_01.nii.gz", "fixtures/micro_model/model.pt"):
        assert f"nvseg_bench/{paths.SHIPPED_DIR}/{needed}" in shipped
    assert [name for name in shipped if name not in wheel_names] == []


@pytest.mark.slow
def test_the_wheel_ships_the_schemas_and_the_reference_data(wheel_names):
    data = [f for folder in ("nvseg_bench/schema", "nvseg_bench/data") for f in tracked(folder)]
    data += [f for f in tracked("eval_engine") if f.endswith(".json")]
    assert "nvseg_bench/schema/output.schema.json" in data and "eval_engine/output.schema.json" in data
    assert [f for f in data if f not in wheel_names] == []


@pytest.mark.slow
def test_the_wheel_declares_the_command_the_plugin_and_the_package_version(wheel_names):
    info = f"nvseg_bench-{__version__}.dist-info"
    assert f"{info}/METADATA" in wheel_names and f"{info}/entry_points.txt" in wheel_names


def test_the_shipped_data_stays_small():
    size = sum((REPO / name).stat().st_size for part in paths.SHIPPED_PARTS for name in tracked(part))
    assert 0 < size < SHIPPED_LIMIT_MB * 2**20


def test_no_copy_of_the_shipped_data_is_committed_inside_the_package():
    assert tracked(f"nvseg_bench/{paths.SHIPPED_DIR}") == []


def test_a_checkout_finds_its_own_bundle_and_fixture():
    assert paths.BUILTIN_BUNDLE == REPO / "bundle" and paths.SHIPPED_FIXTURE == REPO / "fixtures" / "spleen_micro"


def test_the_verifier_states_the_package_version():
    assert eval_engine.VERSION == __version__
