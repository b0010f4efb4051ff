"""Suite-wide fixtures and checks: a clean environment so no test sees the developer's RunPod
settings, and the `sim` marker kept honest so that `pytest -m "not sim"` never starts a
simulator.

The marker is checked twice, because either check alone can be dodged:
- a test whose fixtures (directly or through other fixtures) include one that starts a
  simulator fails before its fixtures are set up unless it carries `sim` (found at collection,
  before `-m` deselects, so `-m "not sim"` runs it and reports it);
- while a test is set up and runs, starting a simulator in this process (`Simulator.start`,
  `--local`) fails the test unless it carries `sim` (one started in the test body or a
  helper, not through a fixture).
Both fail the test rather than stop the session, which pytest-xdist workers cannot report.
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


_UNMARKED = pytest.StashKey[str]()
"""On an item that uses a simulator fixture without the marker: why it fails."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = SIMULATOR_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if used and item.get_closest_marker("sim") is None:
            item.stash[_UNMARKED] = (
                f"{item.nodeid} starts the simulator (through {', '.join(sorted(used))}) but is "
                f"not marked `sim`, so `-m \"not sim\"` would run it; {_MARK_HINT}")


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
    if _UNMARKED in item.stash:  # before any fixture, so no simulator starts
        pytest.fail(item.stash[_UNMARKED], pytrace=False)
    yield from _GUARD.watching(item)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    yield from _GUARD.watching(item)
