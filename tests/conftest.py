"""Suite-wide fixtures and checks: a clean environment so no test sees the developer's RunPod
settings, and the `sim` marker kept honest so that `pytest -m "not sim"` never starts a
simulator.

The marker is checked twice, because either check alone can be dodged:
- at collection, a test whose fixtures (directly or through other fixtures) include one that
  starts a simulator must carry `sim`, or the run stops before any test runs and names it;
- while a test is set up and runs, starting a simulator in this process (`Simulator.start`,
  `--local`) fails the test unless it carries `sim` (one started in the test body or a
  helper, not through a fixture).
A test that starts one only through a subprocess (`runpod-sim up` in a script) is beyond both:
mark it by hand (the docs recipe tests do).
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from runpod_sim import cli as sim_cli
from runpod_sim.control import SimInfo

pytest_plugins = ["runpod_sim.pytest_plugin", "pytester"]

SIMULATOR_FIXTURES = frozenset({"runpod_sim", "shared_sim"})
"""The fixtures that start a simulator; every fixture built on them is found through them."""

_MARK_HINT = 'add `pytestmark = pytest.mark.sim` to the module (or `@pytest.mark.sim`)'


@pytest.fixture(autouse=True)
def _clean_runpod_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No RUNPOD_* or RUNPOD_DEPLOY_* variable leaks in from the developer's shell."""
    for key in list(os.environ):
        if key.startswith("RUNPOD_"):
            monkeypatch.delenv(key, raising=False)


def simulator_fixtures_without_marker(items: list[pytest.Item]) -> list[str]:
    """Node ids (with the fixture) of the tests that use a simulator fixture but lack `sim`."""
    unmarked = []
    for item in items:
        used = SIMULATOR_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if used and item.get_closest_marker("sim") is None:
            unmarked.append(f"{item.nodeid} (uses {', '.join(sorted(used))})")
    return unmarked


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: an unmarked test is never hidden
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    unmarked = simulator_fixtures_without_marker(items)
    if unmarked:
        raise pytest.UsageError(
            "these tests start the simulator but are not marked `sim` (so `-m \"not sim\"` "
            f"would run them); {_MARK_HINT}:\n  " + "\n  ".join(unmarked))


class _SimulatorGuard:
    """Wraps `runpod_sim.cli.up` (what `Simulator.start` and `--local` call) for the session:
    allowed outside tests (plugins, scripts) and in tests marked `sim`; a failure in any other
    test."""

    def __init__(self) -> None:
        self.unmarked_test: str | None = None

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = sim_cli.up
        guard = self

        def up(home: Path, knobs: dict[str, Any] | None = None, timeout: float = 20.0) -> SimInfo:
            if guard.unmarked_test is not None:
                pytest.fail(f"{guard.unmarked_test} starts the simulator but is not marked "
                            f"`sim`; {_MARK_HINT}", pytrace=False)
            return original(home, knobs, timeout)

        monkeypatch.setattr(sim_cli, "up", up)

    def watching(self, item: pytest.Item) -> Iterator[None]:
        self.unmarked_test = None if item.get_closest_marker("sim") else item.nodeid
        try:
            yield
        finally:
            self.unmarked_test = None


_GUARD = _SimulatorGuard()
_GUARD_PATCH = pytest.MonkeyPatch()


def pytest_configure(config: pytest.Config) -> None:
    _GUARD.install(_GUARD_PATCH)


def pytest_unconfigure(config: pytest.Config) -> None:
    _GUARD_PATCH.undo()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    yield from _GUARD.watching(item)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    yield from _GUARD.watching(item)
