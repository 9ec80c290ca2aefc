"""Repo-level pytest settings only; the harness itself is the `nvseg` plugin in nvseg_bench/harness.

A test that needs a real finetune run is marked slow, so `pytest -m "not slow"` stays quick.

Benchmarks of the harness's own costs (tests/harness/test_harness_bench.py) run only when asked for
(`pytest --benchmark-only`), so they never weigh on the default run's time.
"""
from __future__ import annotations

import pytest

REAL_RUN_FIXTURES = {"nvseg_run", "nvseg_runs", "smoke_run"}
pytest_plugins = ["pytester"]  # the plugin's own tests run whole sessions with it


def pytest_configure(config: pytest.Config) -> None:
    # here, not in pyproject: `pytest --pyargs nvseg_bench...` from another project loads this file too
    config.addinivalue_line("markers", "slow: runs real bundle phases (minutes on CPU); deselect with -m 'not slow'")


@pytest.hookimpl(tryfirst=True)  # before -m selects, so `-m "not slow"` leaves real runs out
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if REAL_RUN_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    _benchmarks_only_when_asked(config, items)


def _benchmarks_only_when_asked(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Benchmarks only with --benchmark-only (then nothing else: 270 'skipped' lines help no one)."""
    only = config.getoption("benchmark_only", False)
    if config.getoption("benchmark_enable", False) and not only:
        return
    drop = [item for item in items if ("benchmark" in getattr(item, "fixturenames", ())) != only]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = [item for item in items if item not in drop]
