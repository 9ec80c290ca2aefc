"""Build step of the wheel: copy the checkout's bundle/, micro fixture and micro model into the package.

pyproject.toml holds the project's metadata; this file only adds the copy, so that an installed wheel
runs `nvseg-finetune --smoke` and the harness's smoke run from any folder. What is copied, and where to,
is read from nvseg_bench/paths.py (SHIPPED_PARTS, SHIPPED_DIR): the checkout's folders stay the one
source, the copy exists only in the build (never committed). An editable install copies nothing: the
package then finds the checkout's folders beside it.
"""
from __future__ import annotations

import runpy
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
PATHS = runpy.run_path(str(HERE / "nvseg_bench" / "paths.py"))  # only pathlib: safe to run at build time
SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc")


class BuildPyWithShipped(build_py):
    """build_py, then the shipped data under build_lib/nvseg_bench/shipped/."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "nvseg_bench" / PATHS["SHIPPED_DIR"]
        for part in PATHS["SHIPPED_PARTS"]:
            source = HERE / part
            if not source.is_dir():
                raise SystemExit(f"setup.py: {source} is missing; a wheel needs it (build from a checkout or an sdist "
                                 "of nvseg-bench)")
            shutil.copytree(source, target / part, ignore=SKIPPED, dirs_exist_ok=True)
            print(f"setup.py: shipped {part} in nvseg_bench/{PATHS['SHIPPED_DIR']}/{part}")


setup(cmdclass={"build_py": BuildPyWithShipped})
