"""End-to-end fixtures: a simulator, a stack written into a project dir, and the leak check
every test ends with (no pod exists at the simulator that the stack's state does not record)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from runpod_deploy.api import ApplyRequest, apply_stack, load_stack
from runpod_sim.testing import Simulator
from runtime.executor import ApplyResult
from runtime.reporter import PlainReporter
from runtime.statestore import StateStore

BASE_STACK: dict[str, Any] = {
    "schema_version": 2,
    "name": "e2e",
    "pod": {
        "image": "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04",
        "datacenters": ["EU-RO-1", "US-IL-1"],
        "gpu_order": ["NVIDIA RTX A4000"],
    },
    "storage": {"mode": "ephemeral", "volume_gb": 5},
    "budget": {"cost_cap_usd": 1.0, "max_runtime_minutes": 10, "poll_interval_sec": 1},
    "telemetry": {"sample_interval_sec": 5},
    "run": {
        "script_path": "/workspace/job.sh",
        "log_path": "/workspace/job.log",
        "success_marker": "[job] DONE",
        "body": "echo hello\necho '[job] DONE'\n",
    },
    "artifacts": [{"label": "log", "remote_path": "/workspace/job.log", "local_path": "{run_dir}/pulled"}],
    "lifecycle": {"on_success": "delete", "on_failure": "delete"},
}


def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


class ScaledClock:
    """Monotonic time runs `scale` times faster (sleeps shrink to match): lets a test reach a
    one-minute max runtime in seconds while every other clock-driven path runs as usual."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self._origin = time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return self._origin + (time.monotonic() - self._origin) * self.scale

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.scale)


@dataclass
class Project:
    root: Path
    sim: Simulator
    key: Path
    env: dict[str, str]
    log: io.StringIO

    def stack(self, changes: dict[str, Any] | None = None, name: str = "stack.yaml") -> Path:
        data = merge(BASE_STACK, changes or {})
        data = merge(data, {"ssh": {"key_path": str(self.key)}})
        path = self.root / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def apply(self, config: Path, request: ApplyRequest | None = None, clock: Any = None) -> ApplyResult:
        result = apply_stack(
            config,
            request or ApplyRequest(provider="api"),
            env=self.env,
            clock=clock,
            reporter=PlainReporter(self.log),
        )
        assert result is not None
        return result

    def state(self, config: Path) -> Any:
        stack = load_stack(config, env=self.env)
        return StateStore(stack.state_path, stack.identity).read()

    def live_pods(self) -> list[dict[str, Any]]:
        return [p for p in self.sim.status()["pods"] if p["desiredStatus"] != "TERMINATED"]

    def assert_no_leak(self, *configs: Path) -> None:
        """Every pod that exists (and may bill) is recorded by one of the stacks' states."""
        recorded = {s.pod.pod_id for s in (self.state(c) for c in configs) if s.pod is not None}
        live = {p["id"] for p in self.live_pods()}
        assert live <= recorded, f"pods no state records: {live - recorded}\n{self.log.getvalue()[-3000:]}"


@pytest.fixture
def project(runpod_sim: Simulator, sim_ssh_key: Path, tmp_path: Path) -> Iterator[Project]:
    root = tmp_path / "project"
    root.mkdir()
    env = {**runpod_sim.env, "RUNPOD_DEPLOY_STATE_DIR": str(tmp_path / "state")}
    yield Project(root=root, sim=runpod_sim, key=sim_ssh_key, env=env, log=io.StringIO())


def events_of(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if line.strip()]


def manifest_of(run_dir: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((run_dir / "runpod_deploy_pull_manifest.json").read_text())
    return manifest


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)
