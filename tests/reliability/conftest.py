"""Reliability fixtures: one simulator per test module (stacks are told apart by their pod-name
prefix, so many tests share it), a project per test, the real CLI as a subprocess, and the leak
check scoped to one stack's prefix.

The e2e helpers (the base stack, `merge`, the event and manifest readers) are imported from
tests/e2e/conftest.py rather than copied.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from runpod_deploy.api import ApplyRequest, apply_stack, load_stack
from runpod_sim.testing import FAST_KNOBS, Simulator
from runtime.executor import ApplyResult
from runtime.reporter import PlainReporter
from runtime.statestore import StateStore
from tests.e2e.conftest import BASE_STACK, merge

CLI = str(Path(sys.executable).with_name("runpod-deploy"))


@pytest.fixture(scope="module")
def shared_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    sim = Simulator.start(tmp_path_factory.mktemp("sim"), **FAST_KNOBS)
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture(scope="module")
def shared_key(shared_sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Path:
    key = tmp_path_factory.mktemp("ssh") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rel", "-f", str(key)], check=True)
    shared_sim.add_pubkey(key.with_suffix(".pub").read_text())
    return key


@dataclass
class Proj:
    """A project directory with one or more stacks on a (shared) simulator."""

    root: Path
    sim: Simulator
    key: Path
    env: dict[str, str]
    log: io.StringIO = field(default_factory=io.StringIO)

    def stack(self, changes: dict[str, Any] | None = None, name: str = "stack.yaml", job: str | None = None) -> Path:
        data = merge(BASE_STACK, {"name": job or f"rel-{self.root.parent.name}"[:40]})
        data = merge(data, {"ssh": {"key_path": str(self.key)}})
        data = merge(data, changes or {})
        path = self.root / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def cli(self, *args: str, crash_at: str | None = None, timeout: float = 120,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        run_env = dict(env or self.env)
        if crash_at:
            run_env["RUNPOD_DEPLOY_CRASH_AT"] = crash_at
        return subprocess.run([CLI, *args], env=run_env, capture_output=True, text=True, timeout=timeout,
                              cwd=self.root, check=False)

    def apply(self, config: Path, request: ApplyRequest | None = None, clock: Any = None) -> ApplyResult:
        result = apply_stack(config, request or ApplyRequest(provider="api"), env=self.env, clock=clock,
                             reporter=PlainReporter(self.log))
        assert result is not None
        return result

    def store(self, config: Path, cli_vars: Sequence[str] = ()) -> StateStore:
        """The stack's state; `cli_vars`: of the instance those `--var`s make."""
        stack = load_stack(config, env=self.env, cli_vars=cli_vars)
        return StateStore(stack.state_path, stack.identity)

    def state(self, config: Path, cli_vars: Sequence[str] = ()) -> Any:
        return self.store(config, cli_vars).read()

    def prefix(self, config: Path, cli_vars: Sequence[str] = ()) -> str:
        return load_stack(config, env=self.env, cli_vars=cli_vars).pod_prefix

    def pods(self, config: Path, *, live: bool = True,
             cli_vars: Sequence[str] = ()) -> list[dict[str, Any]]:
        """The stack's pods at the simulator (by name prefix); `live`: not terminated."""
        prefix = self.prefix(config, cli_vars)
        return [p for p in self.sim.pods() if p["name"].startswith(prefix)
                and (not live or p["desiredStatus"] != "TERMINATED")]

    def assert_no_leak(self, config: Path, cli_vars: Sequence[str] = ()) -> None:
        """Every pod of the stack that exists is the one its state records (at most one)."""
        state = self.state(config, cli_vars)
        live = {p["id"] for p in self.pods(config, cli_vars=cli_vars)}
        recorded = {state.pod.pod_id} if state.pod else set()
        assert live <= recorded, f"pods no state records: {live - recorded}\n{self.log.getvalue()[-3000:]}"


@pytest.fixture
def proj(shared_sim: Simulator, shared_key: Path, tmp_path: Path) -> Proj:
    root = tmp_path / "project"
    root.mkdir()
    env = {**shared_sim.env, "RUNPOD_DEPLOY_STATE_DIR": str(tmp_path / "state")}
    env.pop("RUNPOD_DEPLOY_CRASH_AT", None)
    return Proj(root=root, sim=shared_sim, key=shared_key, env=env)


def run_dirs(root: Path) -> list[Path]:
    return sorted(p for p in (root / "artifacts" / "runpod").glob("*") if p.is_dir())


def events_in(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "events.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass  # a line torn by a kill
    return out


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    """Poll an observable condition (an event in a file, a pod at the simulator)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not met within {timeout}s")
        time.sleep(0.05)


def start_cli(proj: Proj, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([CLI, *args], env=env or proj.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=proj.root)


__all__ = ["CLI", "Proj", "events_in", "os", "run_dirs", "start_cli", "wait_until"]
