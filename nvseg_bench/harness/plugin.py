"""pytest plugin (entry point `nvseg`): markers, the header line, the run fixtures, the ledger of
gate outcomes, and what the session leaves behind (output.json `gates`, the terminal table). The
options are the runs' own (options.py) and each feature's: FEATURES, the gate table (gates.py) and
the report last, each adds and reads its own and has its step at the session's end.

Loaded in every project that installs nvseg-bench, so it adds no items and runs nothing on its
own: runs start only when a test asks for `nvseg_run` or `nvseg_runs`.
"""
from __future__ import annotations

import sys
import uuid
from contextlib import nullcontext
from typing import Any, Callable

import pytest

from nvseg_bench import __version__
from nvseg_bench.planning.environment import package_versions, visible_gpus_from_smi
from nvseg_bench.harness.broker import RunBroker
from nvseg_bench.harness.cache import DigestMemo, KeyValues, RunStore, choose_cache, shared_digest_memo
from nvseg_bench.harness import report
from nvseg_bench.harness.feature import Feature
from nvseg_bench.harness.gates import FEATURES as GATE_FEATURES, gate_names
from nvseg_bench.harness.ledger import Ledger
from nvseg_bench.harness.options import HarnessOptions, add_options
from nvseg_bench.harness.runs import RunEvidence, RunSkipped

MARKERS = {
    "smoke": "nvseg smoke run: the shipped spleen_micro fixture, CPU, about 90 s",
    "sanity": "nvseg sanity run: MSD Task06 reference recipe on one GPU (needs --gpu and --nvseg-task06)",
    "user": "nvseg user run: your dataset (needs --nvseg-dataset)",
    "gpu": "needs a CUDA GPU and --gpu",
}
RUN_PARAMS = [
    pytest.param("smoke", marks=pytest.mark.smoke, id="smoke"),
    pytest.param("sanity", marks=[pytest.mark.sanity, pytest.mark.gpu], id="sanity"),
    pytest.param("user", marks=pytest.mark.user, id="user"),
]
OPTIONS = pytest.StashKey[HarnessOptions]()
SESSION = pytest.StashKey[str]()
LEDGER = pytest.StashKey[Ledger]()
BROKER = pytest.StashKey[RunBroker]()
GPUS = pytest.StashKey[list]()
CACHE = pytest.StashKey[tuple]()  # (KeyValues, header note or None)
FEATURES: tuple[Feature, ...] = (*GATE_FEATURES, report.FEATURE)


class XdistSession:
    """Hands the controller's session id to every worker, so workers can tell 'this session'."""

    def __init__(self, session: str) -> None:
        self.session = session

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["nvseg_session"] = self.session


def pytest_addoption(parser: pytest.Parser) -> None:
    group = add_options(parser)
    for feature in FEATURES:
        if feature.add_options is not None:
            feature.add_options(group, parser)


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    config.stash[OPTIONS] = HarnessOptions.from_config(config, FEATURES)
    workerinput = getattr(config, "workerinput", None)
    config.stash[SESSION] = workerinput.get("nvseg_session", "") if workerinput else uuid.uuid4().hex
    config.stash[CACHE] = choose_cache(config, config.stash[OPTIONS].out, config.stash[SESSION])
    config.stash[LEDGER] = Ledger([f.read_properties for f in FEATURES if f.read_properties])
    config.pluginmanager.register(config.stash[LEDGER], "nvseg-ledger")
    if workerinput is None and config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistSession(config.stash[SESSION]), "nvseg-xdist-session")


def _gpus(config: pytest.Config) -> list[dict[str, Any]]:
    if GPUS not in config.stash:
        config.stash[GPUS] = visible_gpus_from_smi() or []
    return config.stash[GPUS]


def pytest_report_header(config: pytest.Config) -> list[str]:
    versions = package_versions()
    gpus = _gpus(config)
    if gpus:
        names = ", ".join(sorted({g["name"] for g in gpus}))
        use = "used (--gpu)" if config.stash[OPTIONS].gpu else "hidden from runs (pass --gpu)"
        device = f"GPU {names} x{len(gpus)}, {use}"
    else:
        device = "CPU only (no CUDA GPU visible)"
    lines = [f"nvseg-bench {__version__}: torch {versions.get('torch')}, monai {versions.get('monai')}, "
             f"numpy {versions.get('numpy')}; {device}"]
    note = config.stash[CACHE][1]
    if config.stash[OPTIONS].trusted_only is not None:
        lines.append(f"nvseg: judging the pack {config.stash[OPTIONS].trusted_only} as found; nothing runs")
        note = None
    return lines + ([note] if note else [])


def _say(config: pytest.Config) -> Callable[[str], None]:
    """Progress lines that get past output capture: a finetune is minutes of silence otherwise."""
    def say(line: str) -> None:
        capman = config.pluginmanager.getplugin("capturemanager")
        reporter = config.pluginmanager.getplugin("terminalreporter")
        with capman.global_and_fixture_disabled() if capman else nullcontext():
            if reporter is not None:
                reporter.write_line(line)
            else:  # xdist workers have no terminal; their stderr still reaches a log
                print(line, file=sys.stderr, flush=True)
    return say


@pytest.fixture(scope="session")
def nvseg_runs(pytestconfig: pytest.Config) -> RunBroker:
    """The session's run broker: `nvseg_runs.get("smoke")` returns that run's evidence."""
    config = pytestconfig
    if BROKER not in config.stash:
        opts = config.stash[OPTIONS]
        cache: KeyValues = config.stash[CACHE][0]
        memo = DigestMemo(cache, shared_digest_memo(opts.args))
        config.stash[BROKER] = RunBroker(opts, RunStore(cache, opts.out), memo, config.stash[SESSION],
                                         len(_gpus(config)), _say(config))
    return config.stash[BROKER]


def _parametrized_by_caller(metafunc: pytest.Metafunc, name: str) -> bool:
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0] if marker.args else marker.kwargs.get("argnames", "")
        if name in ([n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)):
            return True
    return False


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`nvseg_run` covers every run unless the test picks its own; then `nvseg_gate` every gate of the session."""
    if "nvseg_run" in metafunc.fixturenames and not _parametrized_by_caller(metafunc, "nvseg_run"):
        metafunc.parametrize("nvseg_run", RUN_PARAMS, indirect=True, scope="session")
    if "nvseg_gate" in metafunc.fixturenames:
        names = gate_names(metafunc.config.stash[OPTIONS].trusted)
        metafunc.parametrize("nvseg_gate", names, ids=names)


@pytest.fixture(scope="session")
def nvseg_run(request: pytest.FixtureRequest, nvseg_runs: RunBroker) -> RunEvidence:
    """One finished run per preset (smoke, sanity, user): cached, shared by xdist workers."""
    try:
        return nvseg_runs.get(request.param)
    except RunSkipped as skipped:
        pytest.skip(str(skipped))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tag gate items so every report (also a setup skip, also from an xdist worker) names its run."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "nvseg_run" in params and "nvseg_gate" in params:
            item.user_properties += [("nvseg_run", params["nvseg_run"]), ("nvseg_gate", params["nvseg_gate"])]


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if hasattr(config, "workerinput") or not config.stash[LEDGER].runs:
        return
    from nvseg_bench.harness.finish import finish_session

    finish_session(config.stash[LEDGER], config.stash[OPTIONS], config.stash[SESSION], FEATURES,
                   config.rootpath)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    ledger = config.stash[LEDGER]
    if not ledger.runs and config.stash[OPTIONS].report is not None:
        terminalreporter.write_line(
            "nvseg: --nvseg-report was given, but no gate item ran, so no report was written. Collect them with "
            "`from nvseg_bench.harness.gate_items import test_gate` in a test file, or "
            "`--pyargs nvseg_bench.harness.gate_items`, and select a run with -m smoke / sanity / user.", yellow=True)
    if ledger.runs and not hasattr(config, "workerinput"):
        from nvseg_bench.harness.summary import summary_lines

        terminalreporter.section("nvseg-bench runs")
        for line in summary_lines(ledger, config.stash[OPTIONS]):
            terminalreporter.write_line(line)
