"""The ops tests run on the simulator: pods made through the API provider, stacks and state
files in tmp. Goldens live in `golden/` (`RUNPOD_DEPLOY_ACCEPT=1` rewrites them)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconciler.desired import PodRequest
from reconciler.observed import CloudType, ObservedPod
from reconciler.state import PodRecord, StackState
from runpod_deploy.api import Stack, load_stack
from runpod_deploy.cli import app
from runpod_sim.testing import Simulator
from runtime.providers.api import ApiProvider, ApiSettings
from runtime.statestore import StateStore
from tests.golden_files import golden_in

GOLDEN = Path(__file__).parent / "golden"
GPU = "NVIDIA RTX A4000"

STACK = """\
name: {name}
pod:
  image: runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04
  datacenters: [EU-RO-1, US-IL-1]
  gpu_order: [NVIDIA RTX A4000, NVIDIA RTX A5000]
  container_disk_gb: 10
storage:
  mode: ephemeral
  volume_gb: 5
budget:
  cost_cap_usd: 2.0
  max_runtime_minutes: 30
  assumed_hourly_rate_usd: 0.5
run:
  script_path: /workspace/job.sh
  log_path: /workspace/job.log
  success_marker: DONE
  body: echo DONE
"""


@dataclass
class Account:
    sim: Simulator
    provider: ApiProvider
    root: Path
    env: dict[str, str]

    def pod(self, name: str, *, volume_gb: int = 5, stopped: bool = False) -> ObservedPod:
        pod = self.provider.create_pod(PodRequest(
            name=name, image="img", gpu_type_id=GPU, datacenter_id="EU-RO-1",
            cloud_type=CloudType.SECURE, container_disk_gb=10, volume_gb=volume_gb))
        if stopped:
            self.provider.stop_pod(pod.pod_id)
        return pod

    def stack(self, name: str = "job") -> Stack:
        path = self.root / f"{name}.yaml"
        path.write_text(STACK.format(name=name))
        return load_stack(path, env=self.env)

    def record(self, stack: Stack, pod: ObservedPod, pins: tuple[str, ...] = ()) -> None:
        StateStore(stack.state_path, stack.identity).write(StackState(
            identity=stack.identity, pod=PodRecord(pod_id=pod.pod_id, name=pod.name,
                                                   host_key_pins=pins)))

    def run(self, *args: str | Path, stdin: str | None = None) -> tuple[int, str, str]:
        result = CliRunner().invoke(app, [str(a) for a in args] + ["--provider", "api"],
                                    input=stdin)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    def normalise(self, text: str) -> str:
        """Pod ids numbered by first appearance, the tmp dir and stack keys as placeholders."""
        text = text.replace(str(self.root), "<TMP>")
        text = re.sub(r"--[0-9a-f]{6}--", "--<key>--", text)
        text = re.sub(r"-[0-9a-f]{8}\.json", "-<hash>.json", text)
        every_id = "|".join(re.escape(i) for i in self.sim.billing()["pods"])
        if not every_id:
            return text
        numbered: dict[str, str] = {}
        return re.sub(every_id, lambda m: numbered.setdefault(
            m.group(0), f"<pod{len(numbered) + 1}>"), text)


@pytest.fixture
def account(runpod_sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Account:
    """The CLI reads os.environ: point it (and the API provider) at this simulator."""
    for key, value in runpod_sim.env.items():
        if key.startswith("RUNPOD_") or key == "PATH":
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("RUNPOD_DEPLOY_STATE_DIR", str(tmp_path / "state"))
    env = dict(os.environ)
    return Account(sim=runpod_sim, provider=ApiProvider(ApiSettings.from_env(env)),
                   root=tmp_path, env=env)


@pytest.fixture
def golden() -> Callable[[str, str], None]:
    """Compare text with `golden/<name>`; `RUNPOD_DEPLOY_ACCEPT=1` rewrites the file instead."""
    return golden_in(GOLDEN)
